import HostCommands
import Testing

@testable import AgentCore

#if canImport(Glibc)
import Glibc
#endif

/// A host made of fixture files and canned command results (argv joined by spaces).
struct FixtureHost: PreflightHost {
    var files: [String: String] = [:]
    var commands: [String: CommandResult] = [:]

    func readFile(_ path: String) -> String? { files[path] }
    func exists(_ path: String) -> Bool { files[path] != nil }
    func run(_ argv: [String]) async -> CommandResult? { commands[argv.joined(separator: " ")] }

    mutating func command(_ line: String, exit: Int32 = 0, stdout: String = "", stderr: String = "") {
        commands[line] = CommandResult(
            argv: line.split(separator: " ").map(String.init), termination: .exited(exit), stdout: stdout, stderr: stderr)
    }
}

/// The seed's host preparation (its lvm.conf settings, host_id 11, /dev/mapper/sanlock on
/// multipath with queue_if_no_path, one iSCSI session) plus our kill command and wdmd.
func seedHost() -> FixtureHost {
    var h = FixtureHost()
    h.files["/etc/lvm/lvm.conf"] = """
        # This is an example configuration file for the LVM2 system.
        config {
        \tchecks = 1
        }
        devices {
        \tdir = "/dev"
        \t# filter = [ "a|.*|" ]
        \tfilter = [ "a|^/dev/mapper/sanlock$|", "r|.*/|" ]
        }
        global {
        \tumask = 077
        \tuse_lvmlockd = 1
        \tlvmlockctl_kill_command = "/usr/bin/aos-agent fence"
        }
        activation {
        \tvolume_list = [ ]
        \tmonitoring = 0
        }

        """
    h.files["/etc/lvm/lvmlocal.conf"] = """
        local {
        \t# system_id = ""
        \thost_id = 11
        }

        """
    h.files["/dev/mapper/sanlock"] = ""
    h.files["/run/wdmd/wdmd.pid"] = "812\n"
    h.files["/proc/812"] = ""
    h.command("pvs --noheadings --separator | -o pv_name,vg_name", stdout: "  /dev/mapper/sanlock|vg01\n  /dev/sda2|\n")
    h.command(
        "sanlock client status",
        stdout: "daemon 5f1c4bd3-node11\np -1 helper\np -1 listener\np 2071 lvmlockd\ns lvm_vg01:11:/dev/mapper/vg01-lvmlock:0\n")
    h.command("lvmlockctl --info", stdout: "info=global pid=2071 parent=1 ...\n")
    h.command(
        "dmsetup table sanlock",
        stdout: "0 585871964 multipath 1 queue_if_no_path 1 alua 2 1 round-robin 0 1 1 8:80 100 round-robin 0 1 1 8:48 100\n")
    h.command("iscsiadm -m session", stdout: "tcp: [1] 10.0.0.5:3260,1 iqn.2015-01.com.hp:msa2040 (non-flash)\n")
    return h
}

let seedExpect = PreflightExpectations(volumeGroups: ["vg01"])

@Suite struct PreflightTests {
    @Test func seedHostPassesEveryItem() async {
        let r = await Preflight.run(host: seedHost(), expect: seedExpect)
        for item in r.items { #expect(item.status == .pass, "\(item)") }
        #expect(r.worst == .pass)
        #expect(
            r.items.map(\.id) == [
                "lvm_conf", "use_lvmlockd", "pvs", "device_filter", "host_id", "lvmlockd", "sanlock", "kill_command", "multipath",
                "iscsi", "watchdog",
            ])
        #expect(r.item("use_lvmlockd")?.evidence == "/etc/lvm/lvm.conf:12: use_lvmlockd = 1")
        #expect(r.item("host_id")?.evidence == "/etc/lvm/lvmlocal.conf:3: host_id = 11")
        #expect(r.table.contains("result: PASS (11 PASS, 0 WARN, 0 FAIL)"))
        #expect(r.problems.isEmpty)
    }

    @Test func useLVMLockdOffIsABlockingFail() async {
        var h = seedHost()
        h.files["/etc/lvm/lvm.conf"] = h.files["/etc/lvm/lvm.conf"]!.replacingOnce("use_lvmlockd = 1", "use_lvmlockd = 0")
        let r = await Preflight.run(host: h, expect: seedExpect)
        let item = r.item("use_lvmlockd")
        #expect(item?.status == .fail && item?.blocking == true)
        #expect(item?.finding == "use_lvmlockd is 0, not 1: LVM ignores lvmlockd, two hosts can activate one LV")
        #expect(item?.evidence == "/etc/lvm/lvm.conf:12: use_lvmlockd = 0")
        #expect(r.blocking.map(\.id) == ["use_lvmlockd"])
        #expect(r.worst == .fail)
    }

    @Test func useLVMLockdMissingFailsAndLvmlocalOverrides() async {
        var h = seedHost()
        h.files["/etc/lvm/lvm.conf"] = h.files["/etc/lvm/lvm.conf"]!.replacingOnce("\tuse_lvmlockd = 1\n", "")
        var r = await Preflight.run(host: h, expect: seedExpect)
        #expect(r.item("use_lvmlockd")?.finding.hasPrefix("use_lvmlockd is not set (LVM's default is 0)") == true)
        // lvmlocal.conf is read on top of lvm.conf.
        h.files["/etc/lvm/lvmlocal.conf"]! += "global {\n\tuse_lvmlockd = 1\n}\n"
        r = await Preflight.run(host: h, expect: seedExpect)
        #expect(r.item("use_lvmlockd")?.status == .pass)
        #expect(r.item("use_lvmlockd")?.evidence == "/etc/lvm/lvmlocal.conf:6: use_lvmlockd = 1")
    }

    @Test func filterRejectingThePVFails() async {
        var h = seedHost()
        h.files["/etc/lvm/lvm.conf"] = h.files["/etc/lvm/lvm.conf"]!.replacingOnce(
            "[ \"a|^/dev/mapper/sanlock$|\", \"r|.*/|\" ]", "[ \"a|^/dev/sd|\", \"r|.*|\" ]")
        let r = await Preflight.run(host: h, expect: seedExpect)
        let item = r.item("device_filter")
        #expect(item?.status == .fail && item?.blocking == false)
        #expect(item?.finding == "filter rejects the PV /dev/mapper/sanlock (by \"r|.*|\"): LVM cannot see the VG")
        #expect(item?.evidence == "/etc/lvm/lvm.conf:8: filter = [ \"a|^/dev/sd|\", \"r|.*|\" ]")
    }

    @Test func globalFilterRejectingTheSeedPathFailsWhenNoPVIsVisible() async {
        var h = seedHost()
        h.files["/etc/lvm/lvm.conf"] = h.files["/etc/lvm/lvm.conf"]!.replacingOnce(
            "\tdir = \"/dev\"\n", "\tdir = \"/dev\"\n\tglobal_filter = [ \"r|^/dev/mapper/|\" ]\n")
        h.command("pvs --noheadings --separator | -o pv_name,vg_name", stdout: "  /dev/sda2|\n")
        let r = await Preflight.run(host: h, expect: seedExpect)
        #expect(r.item("pvs")?.status == .fail)
        #expect(
            r.item("pvs")?.finding
                == "no PV of VG vg01 is visible: the agent would wait pv_wait_timeout and leave vg01 unavailable")
        #expect(
            r.item("device_filter")?.finding
                == "global_filter rejects the PV /dev/mapper/sanlock (by \"r|^/dev/mapper/|\"): LVM cannot see the VG")
        #expect(r.item("device_filter")?.evidence == "/etc/lvm/lvm.conf:7: global_filter = [ \"r|^/dev/mapper/|\" ]")
        #expect(r.blocking.isEmpty)
    }

    @Test func filterAcceptingEverythingWarns() async {
        var h = seedHost()
        h.files["/etc/lvm/lvm.conf"] = h.files["/etc/lvm/lvm.conf"]!.replacingOnce(
            "\tfilter = [ \"a|^/dev/mapper/sanlock$|\", \"r|.*/|\" ]\n", "")
        let r = await Preflight.run(host: h, expect: seedExpect)
        #expect(r.item("device_filter")?.status == .warn)
        #expect(
            r.item("device_filter")?.finding == "the device filter accepts every device: LVM also scans the VMs' own PVs inside the LVs")
        #expect(r.worst == .warn)
    }

    @Test func hostIDProblems() async {
        var h = seedHost()
        // A different --host-id than lvmlocal.conf's.
        var r = await Preflight.run(host: h, expect: PreflightExpectations(volumeGroups: ["vg01"], hostIdOverride: 12))
        #expect(r.item("host_id")?.finding == "host_id = 11, but the agent was given --host-id 12")
        #expect(r.item("host_id")?.blocking == true)
        // Out of range.
        h.files["/etc/lvm/lvmlocal.conf"] = "local {\n\thost_id = 2001\n}\n"
        r = await Preflight.run(host: h, expect: seedExpect)
        #expect(r.item("host_id")?.finding == "host_id = 2001 is not a number in 1..2000")
        #expect(r.item("host_id")?.evidence == "/etc/lvm/lvmlocal.conf:2: host_id = 2001")
        // Missing.
        h.files["/etc/lvm/lvmlocal.conf"] = "local {\n\t# host_id = 11\n}\n"
        r = await Preflight.run(host: h, expect: seedExpect)
        #expect(r.item("host_id")?.finding == "no host_id: lvmlockd cannot join a sanlock lockspace")
        #expect(r.blocking.map(\.id) == ["host_id"])
        // Changed after the lockspace started: sanlock still runs it as 11.
        h.files["/etc/lvm/lvmlocal.conf"] = "local {\n\thost_id = 7\n}\n"
        r = await Preflight.run(host: h, expect: seedExpect)
        #expect(
            r.item("host_id")?.finding
                == "host_id = 7 in the file, but the lockspace of vg01 runs as host_id 11 (changed since it started)")
        // The agent's lvmlocal_conf is another file with another host_id.
        h.files["/etc/lvm/lvmlocal.conf"] = "local {\n\thost_id = 11\n}\n"
        h.files["/etc/aos/lvmlocal.conf"] = "local { host_id = 3 }\n"
        r = await Preflight.run(
            host: h, expect: PreflightExpectations(volumeGroups: ["vg01"], agentLVMLocalConf: "/etc/aos/lvmlocal.conf"))
        #expect(r.item("host_id")?.finding == "host_id = 11 for LVM, but the agent's [agent] lvmlocal_conf says 3")
    }

    @Test func daemonsNotRunningAreBlockingFails() async {
        var h = seedHost()
        h.command("lvmlockctl --info", exit: 1, stderr: "Cannot connect to lvmlockd.\n")
        h.command("sanlock client status", exit: 1, stderr: "connect error -111\n")
        let r = await Preflight.run(host: h, expect: seedExpect)
        #expect(r.item("lvmlockd")?.finding == "lvmlockd does not answer (exit 1)")
        #expect(r.item("lvmlockd")?.evidence == "$ lvmlockctl --info: Cannot connect to lvmlockd.")
        #expect(r.item("sanlock")?.finding == "sanlock does not answer (exit 1)")
        #expect(r.blocking.map(\.id) == ["lvmlockd", "sanlock"])
        // Tools missing: the sockets decide.
        h.commands["lvmlockctl --info"] = nil
        h.files["/run/lvm/lvmlockd.socket"] = ""
        let r2 = await Preflight.run(host: h, expect: seedExpect)
        #expect(r2.item("lvmlockd")?.status == .pass)
    }

    @Test func atStartWaitsOnlyForTheDaemons() async {
        var h = seedHost()
        h.command("sanlock client status", exit: 1, stderr: "connect error -111\n")
        let r = await Preflight.atStart(host: h, expect: seedExpect, wait: .zero)
        #expect(r.blocking.map(\.id) == ["sanlock"])
    }

    @Test func killCommandAndWatchdog() async {
        var h = seedHost()
        h.files["/etc/lvm/lvm.conf"] = h.files["/etc/lvm/lvm.conf"]!.replacingOnce(
            "\tlvmlockctl_kill_command = \"/usr/bin/aos-agent fence\"\n", "")
        h.files["/run/wdmd/wdmd.pid"] = nil
        var r = await Preflight.run(host: h, expect: seedExpect)
        #expect(
            r.item("kill_command")?.finding
                == "lvmlockctl_kill_command is not set: fencing is not armed; on a lost lease this host's writes are not failed")
        #expect(r.item("kill_command")?.status == .warn)
        #expect(r.item("watchdog")?.status == .warn)
        #expect(r.item("watchdog")?.finding.hasSuffix("(and no kill command either)") == true)
        #expect(r.worst == .warn)
        h.files["/etc/lvm/lvm.conf"]! += "global { lvmlockctl_kill_command = \"/usr/sbin/other-fence --now\" }\n"
        r = await Preflight.run(host: h, expect: seedExpect)
        #expect(r.item("kill_command")?.finding.hasPrefix("lvmlockctl_kill_command runs another command") == true)
        // The lab's form: another path, extra arguments.
        h.files["/etc/lvm/lvm.conf"]! += "global { lvmlockctl_kill_command = \"/mnt/host/aos-agent fence --config /x.conf\" }\n"
        r = await Preflight.run(host: h, expect: seedExpect)
        #expect(r.item("kill_command")?.status == .pass)
    }

    @Test func multipathAndISCSI() async {
        var h = seedHost()
        h.command("dmsetup table sanlock", stdout: "0 585871964 multipath 0 1 alua 2 1 round-robin 0 1 1 8:80 100\n")
        h.command("iscsiadm -m session", exit: 21, stderr: "iscsiadm: No active sessions.\n")
        var r = await Preflight.run(host: h, expect: seedExpect)
        #expect(r.item("multipath")?.status == .warn)
        #expect(r.item("multipath")?.finding.hasPrefix("multipath sanlock does not queue I/O when all paths fail") == true)
        #expect(r.item("iscsi")?.status == .warn)
        #expect(r.item("iscsi")?.evidence == "$ iscsiadm -m session: iscsiadm: No active sessions.")
        // A plain disk (the lab): not multipath; iscsiadm not installed passes.
        h.command("pvs --noheadings --separator | -o pv_name,vg_name", stdout: "  /dev/vdb|vg01\n")
        h.commands["iscsiadm -m session"] = nil
        r = await Preflight.run(host: h, expect: seedExpect)
        #expect(r.item("multipath")?.finding.hasPrefix("PV /dev/vdb is not a dm-multipath device") == true)
        #expect(r.item("iscsi")?.status == .pass)
        // The seed's filter accepts only /dev/mapper/sanlock.
        #expect(r.item("device_filter")?.finding == "filter rejects the PV /dev/vdb (by \"r|.*/|\"): LVM cannot see the VG")
        // A linear device-mapper device named by /dev/dm-N.
        h.command("pvs --noheadings --separator | -o pv_name,vg_name", stdout: "  /dev/dm-3|vg01\n")
        h.files["/sys/block/dm-3/dm/name"] = "sanlock\n"
        h.command("dmsetup table sanlock", stdout: "0 8388608 linear 254:16 0\n")
        r = await Preflight.run(host: h, expect: seedExpect)
        #expect(r.item("multipath")?.finding.hasPrefix("PV /dev/dm-3 is a device-mapper linear device, not multipath") == true)
    }

    @Test func jsonReport() async {
        var h = seedHost()
        h.files["/run/wdmd/wdmd.pid"] = nil
        let r = await Preflight.run(host: h, expect: seedExpect)
        let json = r.json
        #expect(json.objectValue?["status"]?.stringValue == "FAIL")
        let items = json.objectValue?["items"]?.arrayValue ?? []
        #expect(items.count == 11)
        let wd = items.first { $0.objectValue?["id"]?.stringValue == "watchdog" }?.objectValue
        #expect(wd?["status"]?.stringValue == "FAIL")
        #expect(wd?["blocking"]?.boolValue == true)
        #expect(wd?["evidence"]?.stringValue == "/run/wdmd/wdmd.pid: no running pid")
    }

    /// Fencing configured (the seed's kill command) and no wdmd: the fence is the only thing
    /// between a lost lease and stale writes, so the start check fails and the agent stops,
    /// unless [agent] risk_stale_writes_without_watchdog accepts that (then a WARN).
    @Test func watchdogRequiredWhereFencingIsConfigured() async {
        var h = seedHost()
        h.files["/run/wdmd/wdmd.pid"] = nil
        let r = await Preflight.atStart(host: h, expect: seedExpect, wait: .zero)
        #expect(r.item("kill_command")?.status == .pass)
        #expect(r.item("watchdog")?.status == .fail)
        #expect(r.blocking.map(\.id) == ["watchdog"])
        #expect(r.item("watchdog")?.fix.hasSuffix("risk_stale_writes_without_watchdog = true") == true)
        // A stale pid file (wdmd died) is the same as none.
        h.files["/run/wdmd/wdmd.pid"] = "999\n"
        #expect(await Preflight.run(host: h, expect: seedExpect).item("watchdog")?.status == .fail)
        // Accepted by the option: a WARN that names it, nothing blocks.
        var risked = seedExpect
        risked.riskStaleWritesWithoutWatchdog = true
        let w = await Preflight.atStart(host: h, expect: risked, wait: .zero)
        #expect(w.item("watchdog")?.status == .warn)
        #expect(w.item("watchdog")?.finding.hasSuffix("accepted by risk_stale_writes_without_watchdog)") == true)
        #expect(w.blocking.isEmpty)
        // wdmd running: PASS whatever the option says.
        h.files["/run/wdmd/wdmd.pid"] = "812\n"
        #expect(await Preflight.run(host: h, expect: risked).item("watchdog")?.status == .pass)
    }

    /// The real file reader with a root prefix, on files written to a temporary directory.
    @Test func systemHostReadsUnderItsRoot() async throws {
        var template = Array("/tmp/aos-preflight-XXXXXX".utf8CString)
        let made = template.withUnsafeMutableBufferPointer { mkdtemp($0.baseAddress!) }
        let root = try #require(made.map { String(cString: $0) })
        defer { _ = unlink(root + "/etc/lvm/lvm.conf"); _ = rmdir(root + "/etc/lvm"); _ = rmdir(root + "/etc"); _ = rmdir(root) }
        _ = mkdir(root + "/etc", 0o700)
        _ = mkdir(root + "/etc/lvm", 0o700)
        let text = "global {\n  use_lvmlockd = 0\n}\n"
        let f = try #require(fopen(root + "/etc/lvm/lvm.conf", "w"))
        _ = fputs(text, f)
        fclose(f)
        let host = PreflightSystemHost(root: root)
        #expect(host.readFile("/etc/lvm/lvm.conf") == text)
        #expect(host.readFile("/etc/lvm/lvmlocal.conf") == nil)
        #expect(host.exists("/etc/lvm"))
        let files = LVMConfigFiles(
            lvm: host.readFile("/etc/lvm/lvm.conf").map { LVMConfigFile(text: $0, fileName: "lvm.conf") }, local: nil)
        let item = Preflight.useLVMLockd(files, lvmPath: "lvm.conf")
        #expect(item.evidence == "lvm.conf:2: use_lvmlockd = 0")
        #expect(item.status == .fail)
    }
}

@Suite struct LVMConfigParserTests {
    @Test func sectionsCommentsStringsArrays() {
        let f = LVMConfigFile(
            text: """
                # comment = 1
                devices { # trailing
                  filter = [ "a|^/dev/x$|", # inside
                             "r|.*|" ]
                  scan = [ "/dev" ]
                  nested { deeper { n = -5 } }
                }
                global/use_lvmlockd = 1
                s = "with \\"quote\\" and # hash"
                """, fileName: "t.conf")
        #expect(f.problems.isEmpty)
        #expect(f.setting("devices", "filter")?.value == .array([.string("a|^/dev/x$|"), .string("r|.*|")]))
        #expect(f.setting("devices", "filter")?.line == 3)
        #expect(f.settings.first { $0.name == "n" }?.section == ["devices", "nested", "deeper"])
        #expect(f.settings.first { $0.name == "n" }?.value.int == -5)
        #expect(f.setting("global", "use_lvmlockd")?.value.int == 1)
        #expect(f.settings.last?.value == .string("with \"quote\" and # hash"))
    }

    @Test func brokenInputGivesProblemsNotTraps() {
        let inputs = [
            "", "{", "}", "]", "[", "=", "a", "a =", "a = [", "a = [1, 2", "a = [ { ]", "x { y = 1", "\"", "a = \"open",
            "a = = 1", "}}}} a = 1", String(repeating: "[", count: 10000), String(repeating: "a { ", count: 10000),
            "a = " + String(repeating: "[", count: 500) + String(repeating: "]", count: 500), "\u{0}\u{1}\u{FFFF} = ☃",
            "a=1\r\nb=2", String(repeating: "\\", count: 99),
        ]
        for text in inputs {
            let f = LVMConfigFile(text: text, fileName: "bad.conf")
            _ = f.settings.count + f.problems.count
        }
        #expect(LVMConfigFile(text: "x { y = 1", fileName: "b").problems == ["line 1: section 'x' is not closed"])
        #expect(LVMConfigFile(text: "x { y = 1", fileName: "b").setting("x", "y")?.value.int == 1)
        #expect(LVMConfigFile(text: "a = \"open", fileName: "b").problems == ["line 1: unterminated string"])
        #expect(LVMConfigFile(text: "} a = 2", fileName: "b").setting("", "a") == nil)
        #expect(LVMConfigFile(text: "} a = 2", fileName: "b").settings.first?.value.int == 2)
    }

    /// Random bytes: every input ends, with bounded problems.
    @Test func randomGarbage() {
        var rng = SystemRandomNumberGenerator()
        let alphabet = Array("{}[]=,\"#\\ \t\nab1/".utf8)
        for _ in 0..<2000 {
            let n = Int.random(in: 0..<200, using: &rng)
            let bytes = (0..<n).map { _ in alphabet[Int.random(in: 0..<alphabet.count, using: &rng)] }
            let f = LVMConfigFile(text: String(decoding: bytes, as: UTF8.self), fileName: "r")
            #expect(f.problems.count <= 100)
        }
    }

    @Test func filterSemantics() {
        let seed = ["a|^/dev/mapper/sanlock$|", "r|.*/|"]
        #expect(Preflight.filterAccepts(seed, "/dev/mapper/sanlock").accepted)
        #expect(!Preflight.filterAccepts(seed, "/dev/sda").accepted)
        #expect(!Preflight.filterAccepts(seed, "/dev/mapper/sanlock2").accepted)
        #expect(Preflight.filterAccepts([], "/dev/sda").accepted)
        #expect(Preflight.filterAccepts(["x"], "/dev/sda").unreadable == ["x"])
        #expect(Preflight.filterAccepts(["r/(/"], "/dev/sda").accepted)
    }
}

extension String {
    fileprivate func replacingOnce(_ a: String, _ b: String) -> String {
        guard let r = firstRange(of: a) else { return self }
        var s = self
        s.replaceSubrange(r, with: b)
        return s
    }
}
