import AOSAPI
import RPCWire
import SharedLVM
import Testing

@testable import AgentCore

/// The agent's state value on its own: transitions, admission and the health report,
/// without LVM, files or locks.
@Suite struct AgentStateTests {
    let vgs = ["vg1", "vg2"]

    func record(_ vg: String = "vg1", complete: Bool = true, source: String = "kill_command") -> FenceRecord {
        FenceRecord(vg: vg, host: "h", fencedAt: 100.5, bootID: "b", paths: [], lvs: [], complete: complete, durationMS: 3, source: source)
    }

    @Test func startsNotReadyWithEveryLockspaceNotStarted() {
        let s = AgentState(volumeGroups: vgs)
        #expect(!s.ready && s.phase == "starting")
        #expect(s.lockspaces == ["vg1": .notStarted, "vg2": .notStarted])
        #expect(s.refusal(of: .createLV, vg: "vg1", host: "h")?.code == "not_ready")
        #expect(s.refusal(of: .createLV, vg: "vg1", host: "h")?.details["phase"] == "starting")
    }

    @Test func lvmErrorsMoveTheLockspaceOnlyWhenTheyTellAboutIt() {
        var s = AgentState(volumeGroups: vgs)
        s.lockStarted("vg1")
        let unrelated = s.noteLVMError(.lockedByOtherHost, vg: "vg1")
        #expect(unrelated == nil)
        #expect(s.lockspaces["vg1"] == .started)
        let change = s.noteLVMError(.lockStorageFailed, vg: "vg1")
        #expect(change?.previous == .started && change?.now == .lost)
        let notStarted = s.noteLVMError(.lockspaceNotStarted, vg: "vg2")
        #expect(notStarted?.now == .notStarted)
    }

    @Test func aLostLockspaceRefusesMutationsWithTheRecoveryHint() {
        var s = AgentState(volumeGroups: vgs)
        s.lockStarted("vg1")
        _ = s.finishBoot(volumeGroups: vgs, records: [])
        #expect(s.refusal(of: .activateLV, vg: "vg1", host: "h") == nil)
        s.lockStartFailed("vg1", problem: "lock start failed: x", lost: true)
        let e = s.refusal(of: .activateLV, vg: "vg1", host: "h")
        #expect(e?.code == "lockspace_lost")
        #expect(e?.details["hint"] == "run: aosctl recover --host h --vg vg1")
        #expect(e?.message.contains("fenced") == false)
        _ = s.noteFenced("vg1", record())
        #expect(s.refusal(of: .activateLV, vg: "vg1", host: "h")?.message.contains("its I/O on that host was fenced") == true)
        // The other VG is not concerned.
        #expect(s.refusal(of: .activateLV, vg: "vg2", host: "h") == nil)
    }

    @Test func sanlockCannotClearALossButLVMCan() {
        var s = AgentState(volumeGroups: vgs)
        _ = s.noteLVMError(.lockStorageFailed, vg: "vg1")
        let joined = s.observeLockspace("vg1", sanlockJoined: true)
        #expect(joined == .lost)
        let gone = s.observeLockspace("vg1", sanlockJoined: false)
        #expect(gone == .notStarted)
        _ = s.noteLVMError(.lockStorageFailed, vg: "vg1")
        s.observeLeaseProblem("vg1", nil)
        #expect(s.lockspaces["vg1"] == .started)
        s.observeLeaseProblem("vg1", .lockspaceNotStarted)
        #expect(s.lockspaces["vg1"] == .notStarted)
    }

    @Test func aFenceRecordIsNewOnceAndKeepsARestartedLockspace() {
        var s = AgentState(volumeGroups: vgs)
        s.lockStarted("vg1")
        let first = s.noteFenced("vg1", record())
        #expect(first)
        #expect(s.lockspaces["vg1"] == .lost)
        let again = s.noteFenced("vg1", record())
        #expect(!again)
        // A recovery started it again; the record, read again, does not take that back.
        s.lockStarted("vg1")
        let afterRestart = s.noteFenced("vg1", record())
        #expect(!afterRestart)
        #expect(s.lockspaces["vg1"] == .started)
        s.recoveryFinished("vg1")
        #expect(s.fenced["vg1"] == nil)
    }

    @Test func healthReportsWhatTheAgentHolds() {
        var s = AgentState(volumeGroups: vgs)
        s.lockStarted("vg1")
        s.lockStartFailed("vg2", problem: "PVs missing", lost: false)
        let held = ActivationRecord(vg: "vg1", name: "v1", mode: .shared)
        let failed = ActivationRecord(vg: "vg1", name: "v2", mode: .exclusive)
        s.restoreFailures[failed.key] = RestoreFailure(record: failed, code: "locked_by_other_host", message: "m")
        let summary = s.finishBoot(volumeGroups: vgs, records: [held, failed])
        #expect(summary == "ready: 1/2 lockspaces started, 1 LVs active, 1 restore failures")
        _ = s.noteFenced("vg1", record(complete: false))
        let h = s.health(host: "h", hostId: 7, version: "v", instanceID: "i", volumeGroups: vgs, records: [held, failed])
        #expect(h.ready && h.phase == "ready" && h.host_id == 7)
        #expect(h.active_lvs == [ActiveLV(vg: "vg1", name: "v1", mode: .shared)])
        #expect(h.restore_failures.map(\.name) == ["v2"])
        #expect(
            h.vgs["vg1"]
                == VGHealth(
                    lockspace: .lost, fenced: FencedSummary(at: 100.5, complete: false, lvs: 0, source: "kill_command"),
                    hint: "run: aosctl recover --host h --vg vg1"))
        #expect(h.vgs["vg2"] == VGHealth(lockspace: .notStarted, problem: "PVs missing"))
        #expect(h.state_problems == nil)
    }

    @Test func storeProblemsAreBoundedAndTheLastTenReported() {
        var s = AgentState()
        for i in 0..<250 { s.noteStoreProblem("p\(i)") }
        #expect(s.storeProblems.count == 100)
        let h = s.health(host: "h", hostId: 1, version: "v", instanceID: "i", volumeGroups: [], records: [])
        #expect(h.state_problems == (240..<250).map { "p\($0)" })
    }
}
