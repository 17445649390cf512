import LVMTestSupport
import Testing

@testable import SharedLVM

struct DeviceMapperTests {
    @Test func parsesInfoDepsAndTables() {
        let info = """
            sanlock||dm-0|Suspended|3
            vglab-lvmlock|LVM-AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAABBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBB|dm-1|Active|1
            vglab-t--a|LVM-AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAACCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCC|dm-2|Active|0
            """
        let d = DMSetup.parseInfo(info)
        #expect(d.map(\.name) == ["sanlock", "vglab-lvmlock", "vglab-t--a"])
        #expect(d[0].suspended && !d[1].suspended)
        #expect(d[0].openCount == 3 && d[0].uuid.isEmpty && d[0].blockDevice == "dm-0")
        #expect(d[1].vgKey == d[2].vgKey && d[1].vgKey != nil && d[0].vgKey == nil)
        #expect(DMSetup.parseInfo("No devices found\n").isEmpty)
        #expect(DMSetup.parseDeps(" 1 dependencies\t: (dm-0)\n") == ["dm-0"])
        #expect(DMSetup.parseDeps("2 dependencies : (sdb) (sdc)") == ["sdb", "sdc"])
        #expect(
            DMSetup.parseTable("0 2097152 linear 254:16 0\n") == [
                DMTableLine(start: 0, length: 2_097_152, target: "linear", params: "254:16 0")
            ])
        #expect(DMSetup.parseTable("0 8192 error\n").first?.target == "error")
    }

    @Test func lvmNamesRoundTrip() {
        #expect(DMName.lv(vg: "vg-a", lv: "volume-1") == "vg--a-volume--1")
        #expect(DMName.split("vg--a-volume--1")! == ("vg-a", "volume-1"))
        #expect(DMName.split("vglab-lvmlock")! == ("vglab", "lvmlock"))
        #expect(DMName.split("sanlock") == nil)
        #expect(DMName.split("vg-lv-tpool") == nil)  // a layer, not an LV
    }

    @Test func errorTableIsLoadThenResumeByArgv() async throws {
        let exec = ScriptedCommandExecutor()
        let dm = DMSetup(executor: exec)
        try await dm.replaceWithErrorTable("vglab-t--a", sectors: 8192)
        try await dm.message("mpatha", "fail_if_no_path")
        #expect(
            exec.calls == [
                ["dmsetup", "load", "vglab-t--a", "--table", "0 8192 error"], ["dmsetup", "resume", "vglab-t--a"],
                ["dmsetup", "message", "mpatha", "0", "fail_if_no_path"],
            ])
    }

    @Test func multipathdQueueingByArgvAndItsFailReply() async throws {
        let exec = ScriptedCommandExecutor()
        exec.on(["multipathd", "disablequeueing"], stdout: "ok\n")
        exec.on(["multipathd", "restorequeueing"], stdout: "fail\n")
        let dm = DMSetup(executor: exec)
        try await dm.multipathdQueueing("mpatha", disable: true)
        // Older clients exit 0 with "fail": still a failure, with a termination (multipathd is there).
        do {
            try await dm.multipathdQueueing("mpatha", disable: false)
            Issue.record("expected a failure")
        } catch {
            #expect(error.termination != nil)
        }
        await #expect(throws: DMError.self) { try await dm.multipathdQueueing("-x", disable: true) }
        #expect(
            exec.calls == [
                ["multipathd", "disablequeueing", "map", "mpatha"], ["multipathd", "restorequeueing", "map", "mpatha"],
            ])
    }

    @Test func refusesOptionLikeNamesAndReportsStderr() async {
        let exec = ScriptedCommandExecutor()
        exec.on(["dmsetup", "table"], exit: 1, stderr: "Device does not exist.\nCommand failed.\n")
        let dm = DMSetup(executor: exec)
        await #expect(throws: DMError.self) { try await dm.remove("--force") }
        #expect(exec.calls.isEmpty)
        do {
            _ = try await dm.table(of: "gone")
            Issue.record("expected a failure")
        } catch {
            #expect(error.message == "Device does not exist.")
            #expect(error.argv == ["dmsetup", "table", "gone"])
        }
    }
}
