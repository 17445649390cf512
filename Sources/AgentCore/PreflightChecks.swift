import HostCommands
import SharedLVM

/// `aos-agent check`: every item of a host's preparation for the shared VGs (the seed's
/// host setup plus our kill command), each PASS/WARN/FAIL with its evidence and fix.
/// Pure over `PreflightHost`: files and command results only. docs/operations.md, "Preflight".
public enum Preflight {
    public static let lvmlockdSocket = "/run/lvm/lvmlockd.socket"
    public static let sanlockSocket = "/run/sanlock/sanlock.sock"
    public static let wdmdPidFile = "/run/wdmd/wdmd.pid"
    /// The seed's multipath alias: the PV path checked when no PV of the VGs is visible.
    public static let seedPVPath = "/dev/mapper/sanlock"

    public static func run(host: some PreflightHost, expect: PreflightExpectations) async -> PreflightReport {
        var items: [PreflightItem] = []
        let lvmPath = expect.lvmDirectory + "/lvm.conf"
        let localPath = expect.lvmDirectory + "/lvmlocal.conf"
        let lvmFile = host.readFile(lvmPath).map { LVMConfigFile(text: $0, fileName: lvmPath) }
        let localFile = host.readFile(localPath).map { LVMConfigFile(text: $0, fileName: localPath) }
        let files = LVMConfigFiles(lvm: lvmFile, local: localFile)
        items.append(configSyntax(lvmFile, path: lvmPath))
        items.append(useLVMLockd(files, lvmPath: lvmPath))

        // The PVs of the served VGs, as LVM reports them.
        let pvsArgv = ["pvs", "--noheadings", "--separator", "|", "-o", "pv_name,vg_name"]
        let pvsResult = await host.run(pvsArgv)
        let pvs = parsePVs(pvsResult)
        items.append(contentsOf: pvItems(pvsResult, pvs: pvs, argv: pvsArgv, expect: expect))
        let ours = expect.volumeGroups.flatMap { vg in pvs.filter { $0.vg == vg }.map(\.path) }
        let checked = ours.isEmpty ? (host.exists(seedPVPath) ? [seedPVPath] : []) : ours
        items.append(deviceFilter(files, lvmPath: lvmPath, pvPaths: checked))

        let sanlockArgv = LVMCommands.sanlockStatus()
        let sanlockResult = await host.run(sanlockArgv)
        items.append(hostID(host: host, files: files, localPath: localPath, expect: expect, sanlock: sanlockResult))
        let lockctlArgv = ["lvmlockctl", "--info"]
        items.append(
            daemon(
                "lvmlockd", result: await host.run(lockctlArgv), argv: lockctlArgv, socket: lvmlockdSocket, host: host,
                fix: "start lvmlockd (systemctl enable --now lvmlockd) after sanlock"))
        items.append(
            daemon(
                "sanlock", result: sanlockResult, argv: sanlockArgv, socket: sanlockSocket, host: host,
                fix: "start sanlock (systemctl enable --now sanlock) before lvmlockd"))
        let kill = killCommand(files, lvmPath: lvmPath)
        items.append(kill)
        items.append(contentsOf: await multipath(host: host, pvPaths: ours))
        items.append(await iscsi(host: host))
        items.append(watchdog(host: host, fencingArmed: kill.status == .pass, risked: expect.riskStaleWritesWithoutWatchdog))
        return PreflightReport(items: items)
    }

    // MARK: - config files

    static func evidence(_ s: LVMConfigSetting, _ file: String) -> String {
        "\(file):\(s.line): \(s.name) = \(s.value.display)"
    }

    static func configSyntax(_ file: LVMConfigFile?, path: String) -> PreflightItem {
        guard let file else {
            return PreflightItem(
                id: "lvm_conf", status: .warn, finding: "\(path) does not exist or cannot be read: LVM uses its built-in defaults",
                evidence: path, fix: "install lvm2's lvm.conf and set the seed's settings (docs/operations.md)")
        }
        guard file.problems.isEmpty else {
            return PreflightItem(
                id: "lvm_conf", status: .warn, finding: "\(path) has syntax problems; settings on those lines may be ignored",
                evidence: file.problems.prefix(3).map { "\(path): \($0)" }.joined(separator: "; "),
                fix: "correct the lines named (lvmconfig --validate shows what LVM thinks)")
        }
        return PreflightItem(id: "lvm_conf", status: .pass, finding: "read \(file.settings.count) settings", evidence: path)
    }

    static func useLVMLockd(_ files: LVMConfigFiles, lvmPath: String) -> PreflightItem {
        let fix = "set `use_lvmlockd = 1` in the global { } section of \(lvmPath)"
        guard let found = files.lookup("global", "use_lvmlockd") else {
            return PreflightItem(
                id: "use_lvmlockd", status: .fail,
                finding: "use_lvmlockd is not set (LVM's default is 0): shared VGs are unlocked, two hosts can activate one LV",
                evidence: "\(lvmPath): no global/use_lvmlockd", fix: fix, blocking: true)
        }
        let (s, file) = found
        guard s.value.int == 1 else {
            return PreflightItem(
                id: "use_lvmlockd", status: .fail,
                finding: "use_lvmlockd is \(s.value.display), not 1: LVM ignores lvmlockd, two hosts can activate one LV",
                evidence: evidence(s, file), fix: fix, blocking: true)
        }
        return PreflightItem(id: "use_lvmlockd", status: .pass, finding: "use_lvmlockd = 1", evidence: evidence(s, file))
    }

    static func killCommand(_ files: LVMConfigFiles, lvmPath: String) -> PreflightItem {
        let fix =
            "set `lvmlockctl_kill_command = \"/usr/bin/aos-agent fence\"` in global { } of \(lvmPath) (deploy/lvm/lvm.conf.kill-command)"
        guard let found = files.lookup("global", "lvmlockctl_kill_command"), let text = found.setting.value.text,
            !text.split(separator: " ").isEmpty
        else {
            return PreflightItem(
                id: "kill_command", status: .warn,
                finding: "lvmlockctl_kill_command is not set: fencing is not armed; on a lost lease this host's writes are not failed",
                evidence: "\(lvmPath): no global/lvmlockctl_kill_command", fix: fix)
        }
        let (s, file) = found
        let words = text.split(whereSeparator: { $0 == " " || $0 == "\t" })
        let program = words.first.map { $0.split(separator: "/").last.map(String.init) ?? "" } ?? ""
        guard program == PreflightExpectations.fenceProgram, words.count >= 2, words[1] == "fence" else {
            return PreflightItem(
                id: "kill_command", status: .warn,
                finding: "lvmlockctl_kill_command runs another command, not `aos-agent fence`: the agent is not told of a lost lease",
                evidence: evidence(s, file), fix: fix)
        }
        return PreflightItem(id: "kill_command", status: .pass, finding: "fencing armed: \(text)", evidence: evidence(s, file))
    }

    /// One LVM filter pattern: `a|regex|` or `r|regex|` (any delimiter).
    struct FilterPattern {
        var accept: Bool
        var regex: String
        var source: String

        init?(_ text: String) {
            let chars = Array(text)
            guard chars.count >= 3, chars[0] == "a" || chars[0] == "r" else { return nil }
            let delimiter = chars[1]
            guard let end = chars.lastIndex(of: delimiter), end > 1 else { return nil }
            accept = chars[0] == "a"
            regex = String(chars[2..<end])
            source = text
        }

        /// nil when the regex cannot be compiled here.
        func matches(_ path: String) -> Bool? {
            guard let r = try? Regex(regex) else { return nil }
            return (try? r.firstMatch(in: path)) != nil
        }
    }

    /// LVM's rule: the first pattern that matches decides; no match accepts.
    static func filterAccepts(_ patterns: [String], _ path: String) -> (accepted: Bool, by: String?, unreadable: [String]) {
        var unreadable: [String] = []
        for p in patterns {
            guard let f = FilterPattern(p), let m = f.matches(path) else {
                unreadable.append(p)
                continue
            }
            if m { return (f.accept, p, unreadable) }
        }
        return (true, nil, unreadable)
    }

    static func deviceFilter(_ files: LVMConfigFiles, lvmPath: String, pvPaths: [String]) -> PreflightItem {
        let global = files.lookup("devices", "global_filter")
        let filter = files.lookup("devices", "filter")
        let seed =
            "filter = [ \"a|^/dev/mapper/sanlock$|\", \"r|.*/|\" ] in devices { } of \(lvmPath) (the PV path accepted, all else rejected)"
        for path in pvPaths {
            for (name, entry) in [("global_filter", global), ("filter", filter)] {
                guard let found = entry else { continue }
                let (s, file) = found
                let r = filterAccepts(s.value.texts, path)
                if !r.accepted {
                    return PreflightItem(
                        id: "device_filter", status: .fail,
                        finding: "\(name) rejects the PV \(path) (by \"\(r.by ?? "?")\"): LVM cannot see the VG",
                        evidence: evidence(s, file), fix: "accept \(path) before any reject pattern: " + seed)
                }
            }
        }
        let rejects = [global, filter].compactMap { $0 }.contains { e in
            e.setting.value.texts.contains { FilterPattern($0)?.accept == false }
        }
        guard rejects else {
            let shown = [global, filter].compactMap { $0 }.map { evidence($0.setting, $0.file) }
            return PreflightItem(
                id: "device_filter", status: .warn,
                finding: "the device filter accepts every device: LVM also scans the VMs' own PVs inside the LVs",
                evidence: shown.isEmpty ? "\(lvmPath): no devices/filter or devices/global_filter" : shown.joined(separator: "; "),
                fix: seed)
        }
        let shown = [global, filter].compactMap { $0 }.map { evidence($0.setting, $0.file) }.joined(separator: "; ")
        let what = pvPaths.isEmpty ? "no PV path to test it with" : "accepts \(pvPaths.joined(separator: ", "))"
        return PreflightItem(id: "device_filter", status: .pass, finding: "filter rejects other devices, \(what)", evidence: shown)
    }

    static func hostID(
        host: some PreflightHost, files: LVMConfigFiles, localPath: String, expect: PreflightExpectations, sanlock: CommandResult?
    ) -> PreflightItem {
        let fix = "set `local { host_id = N }` in \(localPath), N in 1..2000 and unique among the hosts of the VG"
        guard let found = files.lookup("local", "host_id") else {
            return PreflightItem(
                id: "host_id", status: .fail, finding: "no host_id: lvmlockd cannot join a sanlock lockspace",
                evidence: "\(localPath): no local/host_id", fix: fix, blocking: true)
        }
        let (s, file) = found
        guard let id = s.value.int, (1...2000).contains(id) else {
            return PreflightItem(
                id: "host_id", status: .fail, finding: "host_id = \(s.value.display) is not a number in 1..2000",
                evidence: evidence(s, file), fix: fix, blocking: true)
        }
        if let want = expect.hostIdOverride, want != id {
            return PreflightItem(
                id: "host_id", status: .fail, finding: "host_id = \(id), but the agent was given --host-id \(want)",
                evidence: evidence(s, file), fix: "make them equal: \(fix)", blocking: true)
        }
        if expect.agentLVMLocalConf != localPath, let text = host.readFile(expect.agentLVMLocalConf) {
            let agents = LVMConfigFile(text: text, fileName: expect.agentLVMLocalConf)
            if let a = agents.setting("local", "host_id"), a.value.int != id {
                return PreflightItem(
                    id: "host_id", status: .fail,
                    finding: "host_id = \(id) for LVM, but the agent's [agent] lvmlocal_conf says \(a.value.display)",
                    evidence: evidence(s, file) + "; " + evidence(a, expect.agentLVMLocalConf),
                    fix: "point [agent] lvmlocal_conf at \(localPath)", blocking: true)
            }
        }
        if let r = sanlock, r.termination.isSuccess, let status = try? SanlockStatus.parse(r.stdout) {
            for ls in status.lockspaces where expect.volumeGroups.contains(ls.vg) && ls.hostId != id {
                return PreflightItem(
                    id: "host_id", status: .fail,
                    finding:
                        "host_id = \(id) in the file, but the lockspace of \(ls.vg) runs as host_id \(ls.hostId) (changed since it started)",
                    evidence: evidence(s, file) + "; $ sanlock client status: s \(ls.name):\(ls.hostId):\(ls.path):\(ls.offset)",
                    fix: "restore host_id = \(ls.hostId), or stop the lockspace (vgchange --lock-stop \(ls.vg)) before changing it",
                    blocking: true)
            }
        }
        return PreflightItem(id: "host_id", status: .pass, finding: "host_id = \(id)", evidence: evidence(s, file))
    }

    // MARK: - daemons

    static func firstLine(_ r: CommandResult) -> String {
        let text = r.termination.isSuccess ? r.stdout : (r.stderr.isEmpty ? r.stdout : r.stderr)
        let line = text.split(separator: "\n").first.map(String.init) ?? ""
        return line.count > 200 ? String(line.prefix(200)) + "…" : line
    }

    static func daemon(
        _ name: String, result: CommandResult?, argv: [String], socket: String, host: some PreflightHost, fix: String
    ) -> PreflightItem {
        let cmd = "$ " + argv.joined(separator: " ")
        guard let result else {
            if host.exists(socket) {
                return PreflightItem(
                    id: name, status: .pass, finding: "\(name) socket present (\(argv[0]) not installed)", evidence: socket)
            }
            return PreflightItem(
                id: name, status: .fail, finding: "\(name) is not running (no \(socket); \(argv[0]) not installed)",
                evidence: "\(cmd): cannot run", fix: fix, blocking: true)
        }
        guard result.termination.isSuccess else {
            return PreflightItem(
                id: name, status: .fail, finding: "\(name) does not answer (\(result.termination))",
                evidence: "\(cmd): \(firstLine(result))", fix: fix, blocking: true)
        }
        return PreflightItem(id: name, status: .pass, finding: "\(name) answers", evidence: "\(cmd): \(firstLine(result))")
    }

    static func pidRunning(_ host: some PreflightHost, pidFile: String) -> Int? {
        guard let text = host.readFile(pidFile),
            let pid = Int(text.split(whereSeparator: { $0 == "\n" || $0 == " " }).first ?? ""), pid > 0,
            host.exists("/proc/\(pid)")
        else { return nil }
        return pid
    }

    /// With fencing configured (the kill command), a missing wdmd is a blocking FAIL unless
    /// `risked` (`[agent] risk_stale_writes_without_watchdog`): the fence is then the only thing
    /// between a lost lease and writes to LVs another host may activate, and it can fail
    /// (multipath queueing, a stuck device). Without fencing it stays a WARN: that host is
    /// unprotected either way, and the kill_command item says so.
    static func watchdog(host: some PreflightHost, fencingArmed: Bool, risked: Bool = false) -> PreflightItem {
        if let pid = pidRunning(host, pidFile: wdmdPidFile) {
            return PreflightItem(id: "watchdog", status: .pass, finding: "wdmd runs (pid \(pid))", evidence: wdmdPidFile)
        }
        let finding = "wdmd is not running: a host whose lease expired and whose fence failed keeps writing"
        let fix = "start wdmd (systemctl enable --now wdmd) with a watchdog device, and sanlock with its watchdog on (-w 1)"
        guard fencingArmed else {
            return PreflightItem(
                id: "watchdog", status: .warn, finding: finding + " (and no kill command either)",
                evidence: "\(wdmdPidFile): no running pid", fix: fix)
        }
        if risked {
            return PreflightItem(
                id: "watchdog", status: .warn,
                finding: finding + " (the kill command is the only fence; accepted by risk_stale_writes_without_watchdog)",
                evidence: "\(wdmdPidFile): no running pid; [agent] risk_stale_writes_without_watchdog = true", fix: fix)
        }
        return PreflightItem(
            id: "watchdog", status: .fail,
            finding: finding + " (fencing is configured and the kill command is the only fence)",
            evidence: "\(wdmdPidFile): no running pid",
            fix: fix + "; or accept the risk: [agent] risk_stale_writes_without_watchdog = true", blocking: true)
    }

    // MARK: - PVs and their paths

    struct PV: Hashable {
        var path: String
        var vg: String
    }

    static func parsePVs(_ r: CommandResult?) -> [PV] {
        guard let r, r.termination.isSuccess else { return [] }
        return r.stdout.split(separator: "\n").compactMap { line in
            let f = line.split(separator: "|", omittingEmptySubsequences: false).map { $0.trimmingSpaces }
            guard f.count >= 2, !f[0].isEmpty else { return nil }
            return PV(path: f[0], vg: f[1])
        }
    }

    static func pvItems(_ r: CommandResult?, pvs: [PV], argv: [String], expect: PreflightExpectations) -> [PreflightItem] {
        let cmd = "$ " + argv.joined(separator: " ")
        guard let r else {
            return [
                PreflightItem(id: "pvs", status: .fail, finding: "pvs cannot run (lvm2 not installed?)", evidence: cmd, fix: "install lvm2")
            ]
        }
        guard r.termination.isSuccess else {
            return [
                PreflightItem(
                    id: "pvs", status: .fail, finding: "pvs failed (\(r.termination))", evidence: "\(cmd): \(firstLine(r))",
                    fix: "see the error; the VG's disk must be visible (iSCSI login, multipath)")
            ]
        }
        return expect.volumeGroups.map { vg in
            let mine = pvs.filter { $0.vg == vg }
            guard !mine.isEmpty else {
                return PreflightItem(
                    id: "pvs", status: .fail,
                    finding: "no PV of VG \(vg) is visible: the agent would wait pv_wait_timeout and leave \(vg) unavailable",
                    evidence: "\(cmd): no line with VG \(vg)",
                    fix: "make the shared disk visible (iSCSI login, multipath -ll) and let the device filter accept it")
            }
            let line = mine.map(\.path).joined(separator: ", ")
            return PreflightItem(id: "pvs", status: .pass, finding: "VG \(vg): PV \(line)", evidence: "\(cmd): \(mine[0].path)|\(vg)")
        }
    }

    /// The device-mapper name of a PV path, or nil when it is not a device-mapper device.
    static func dmName(_ path: String, host: some PreflightHost) -> String? {
        if path.hasPrefix("/dev/mapper/") { return String(path.dropFirst("/dev/mapper/".count)) }
        if path.hasPrefix("/dev/dm-") {
            let node = path.dropFirst("/dev/".count)
            return host.readFile("/sys/block/\(node)/dm/name").map { $0.trimmingSpaces }
        }
        return nil
    }

    static func multipath(host: some PreflightHost, pvPaths: [String]) async -> [PreflightItem] {
        let why = "without queueing, a short loss of all paths fails the VMs' writes and sanlock's renewals at once"
        let fix =
            "put the PV on dm-multipath with `no_path_retry` (e.g. 10) or `features \"1 queue_if_no_path\"` in /etc/multipath.conf, alias sanlock"
        guard !pvPaths.isEmpty else {
            return [PreflightItem(id: "multipath", status: .warn, finding: "no PV of the VGs to check", evidence: "", fix: fix)]
        }
        var out: [PreflightItem] = []
        for path in pvPaths {
            guard let name = dmName(path, host: host) else {
                out.append(
                    PreflightItem(
                        id: "multipath", status: .warn,
                        finding: "PV \(path) is not a dm-multipath device: one path, no failover; \(why)", evidence: path, fix: fix))
                continue
            }
            let argv = ["dmsetup", "table", name]
            let cmd = "$ " + argv.joined(separator: " ")
            guard let r = await host.run(argv), r.termination.isSuccess else {
                out.append(
                    PreflightItem(
                        id: "multipath", status: .warn, finding: "cannot read the table of \(name)", evidence: cmd, fix: fix))
                continue
            }
            let line = r.stdout.split(separator: "\n").first.map(String.init) ?? ""
            let fields = line.split(separator: " ").map(String.init)
            guard fields.count >= 3, fields[2] == "multipath" else {
                out.append(
                    PreflightItem(
                        id: "multipath", status: .warn,
                        finding: "PV \(path) is a device-mapper \(fields.count >= 3 ? fields[2] : "?") device, not multipath; \(why)",
                        evidence: "\(cmd): \(line)", fix: fix))
                continue
            }
            let count = fields.count > 3 ? Int(fields[3]) ?? 0 : 0
            let features = Array(fields.dropFirst(4).prefix(max(0, min(count, 64))))
            guard features.contains("queue_if_no_path") || features.contains("no_path_retry") else {
                out.append(
                    PreflightItem(
                        id: "multipath", status: .warn, finding: "multipath \(name) does not queue I/O when all paths fail; \(why)",
                        evidence: "\(cmd): \(line)", fix: fix))
                continue
            }
            out.append(
                PreflightItem(
                    id: "multipath", status: .pass, finding: "PV \(path) is multipath \(name), queue_if_no_path",
                    evidence: "\(cmd): \(line.prefix(160))"))
        }
        return out
    }

    static func iscsi(host: some PreflightHost) async -> PreflightItem {
        let argv = ["iscsiadm", "-m", "session"]
        let cmd = "$ " + argv.joined(separator: " ")
        guard let r = await host.run(argv) else {
            return PreflightItem(id: "iscsi", status: .pass, finding: "iscsiadm is not installed: the PVs are not on iSCSI", evidence: cmd)
        }
        let sessions = r.stdout.split(separator: "\n").filter { !$0.isEmpty }
        guard r.termination.isSuccess, !sessions.isEmpty else {
            return PreflightItem(
                id: "iscsi", status: .warn, finding: "no iSCSI session: if the PVs are on iSCSI, this host is not logged in",
                evidence: "\(cmd): \(firstLine(r))",
                fix: "iscsiadm -m node --targetname TARGET -p SAN_IP:PORT --login (and node.startup = automatic)")
        }
        return PreflightItem(
            id: "iscsi", status: .pass, finding: "\(sessions.count) iSCSI session(s)", evidence: "\(cmd): \(sessions[0])")
    }
}

extension Substring {
    var trimmingSpaces: String {
        let isSpace: (Character) -> Bool = { $0 == " " || $0 == "\t" || $0 == "\n" || $0 == "\r" }
        guard let s = firstIndex(where: { !isSpace($0) }), let e = lastIndex(where: { !isSpace($0) }) else { return "" }
        return String(self[s...e])
    }
}

extension String {
    var trimmingSpaces: String { self[...].trimmingSpaces }
}
