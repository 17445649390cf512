import AOSAPI
import HostCommands
import Hypervisor
import RPCWire
import SharedLVM
import SimulatedLVM
import Testing

@testable import AgentCore

/// The whole recovery on the simulator: host A loses the lockspace, B takes one of A's LVs
/// after A's leases expire, recovery brings A back without taking that LV from B.
struct RecoveryTests {
    func agent(_ c: Cluster, _ host: String, _ id: Int, hypervisor: (any Hypervisor)? = nil) async throws -> AgentService {
        let config = AgentServiceConfiguration(
            host: host, hostId: id, volumeGroups: ["vg1"], stateDirectory: "\(c.root)/\(host)",
            volumeClear: .none, pvWaitTimeout: .milliseconds(200), pvPollInterval: .milliseconds(20),
            lvNames: .all)
        let a = try AgentService(
            configuration: config, backend: SimulatedLVMBackend(cluster: c.sim, hostName: host, hostId: id),
            hypervisor: hypervisor)
        await a.boot()
        return a
    }

    func step(_ a: AgentService, _ s: String) async throws -> [String: JSONValue] {
        try await a.call("recover", ["vg": "vg1", "step": .string(s)])
    }

    @Test func recoversWithoutStealingWhatAnotherHostTook() async throws {
        let c = Cluster()
        let vms = InMemoryHypervisor(domains: [
            Domain(name: "vm-kept", running: true, disks: ["/dev/vg1/kept"]),
            Domain(name: "vm-taken", running: true, disks: ["/dev/mapper/vg1-taken"]),
            Domain(name: "vm-other", running: true, disks: ["/var/lib/libvirt/images/x.qcow2"]),
        ])
        let a = try await agent(c, "host-a", 1, hypervisor: vms)
        let b = try await agent(c, "host-b", 2)
        for (name, mode) in [("kept", "shared"), ("taken", "exclusive")] {
            try await a.call("create_lv", ["vg": "vg1", "name": .string(name), "size_gb": 1])
            try await a.call("activate_lv", ["vg": "vg1", "name": .string(name), "mode": .string(mode)])
        }
        #expect(try await step(a, "plan")["needs_recovery"] == false)

        // The storage blip: A's lease storage fails; B's sanlock later declares A dead.
        c.sim.failLockspace(vg: "vg1", host: "host-a")
        await expectError("lock_storage_failed") { try await a.call("create_lv", ["vg": "vg1", "name": "new", "size_gb": 1]) }
        #expect(a.health()["vgs"]?["vg1"]?["lockspace"] == "lost")
        c.sim.expireLeases(vg: "vg1", host: "host-a")
        try await b.call("activate_lv", ["vg": "vg1", "name": "taken", "mode": "exclusive"])

        let plan = try await step(a, "plan")
        #expect(plan["needs_recovery"] == true)
        #expect(plan["lockspace"] == "lost")
        #expect(plan["lvs"]?.arrayValue?.map { $0["name"] } == ["kept", "taken"])
        #expect(plan["lvs"]?.arrayValue?.map { $0["mode"] } == ["shared", "exclusive"])
        #expect(Set(plan["vms"]?.arrayValue?.compactMap { $0["name"]?.stringValue } ?? []) == ["vm-kept", "vm-taken"])
        #expect(vms.calls.filter { !$0.hasPrefix("domains") }.isEmpty)  // the plan changes nothing

        var statuses: [String: String] = [:]
        for s in RecoveryStep.execution {
            let r = try await step(a, s.rawValue)
            statuses[s.rawValue] = r["status"]?.stringValue
            if s == .reactivate {
                #expect(r["reactivated"] == [["name": "kept", "mode": "shared"]])
                #expect(r["left_alone"]?.arrayValue?.map { $0["name"] } == ["taken"])
            }
            if s == .finish {
                #expect(r["result"]?["vms_started"] == ["vm-kept"])
                #expect(r["result"]?["vms_not_started"]?.arrayValue?.map { $0["name"] } == ["vm-taken"])
            }
        }
        #expect(
            statuses == [
                "fence": "ok", "wait_path": "ok", "stop_vms": "ok", "deactivate": "ok", "drop": "ok",
                "lock_start": "ok", "reactivate": "ok", "start_vms": "ok", "finish": "ok",
            ])
        #expect(vms.calls.filter { !$0.hasPrefix("domains") }.sorted() == ["start vm-kept", "stop vm-kept", "stop vm-taken"])
        #expect(c.sim.lockHolders(vg: "vg1", lv: "taken")?.exclusive == "host-b")
        #expect(c.sim.lockHolders(vg: "vg1", lv: "kept")?.shared == ["host-a"])
        let h = a.health()
        #expect(h["vgs"]?["vg1"]?["lockspace"] == "started")
        #expect(h["vgs"]?["vg1"]?["fenced"] == nil)
        #expect(h["active_lvs"] == [["vg": "vg1", "name": "kept", "mode": "shared"]])

        // Run it again: nothing to do, nothing touched.
        c.sim.clearCalls()
        #expect(try await step(a, "plan")["needs_recovery"] == false)
        // Every acting step refuses the healthy VG (checked on the agent, not trusted from
        // the caller); forced, the lockspace steps still see it works and skip.
        for s in RecoveryStep.execution where s.acts {
            let e = await expectError("recovery_refused") { _ = try await step(a, s.rawValue) }
            #expect(e?.details["step"]?.stringValue == s.rawValue)
            #expect(e?.message.contains("started and works") == true)
        }
        #expect(vms.calls.filter { !$0.hasPrefix("domains") }.sorted() == ["start vm-kept", "stop vm-kept", "stop vm-taken"])
        #expect(try await a.call("recover", ["vg": "vg1", "step": "drop", "force": true])["status"] == "skipped")
        #expect(try await a.call("recover", ["vg": "vg1", "step": "lock_start", "force": true])["status"] == "skipped")
        #expect(!c.sim.calls(host: "host-a").contains { ["dropLockspace", "lockStart", "deactivate"].contains($0.method) })
        #expect(c.sim.lockHolders(vg: "vg1", lv: "kept")?.shared == ["host-a"])
    }

    @Test func aFalseLostStateIsNotTrustedByRecovery() async throws {
        let c = Cluster()
        let vms = InMemoryHypervisor(domains: [Domain(name: "vm-1", running: true, disks: ["/dev/vg1/v1"])])
        let a = try await agent(c, "host-a", 1, hypervisor: vms)
        try await a.call("create_lv", ["vg": "vg1", "name": "v1", "size_gb": 1])
        try await a.call("activate_lv", ["vg": "vg1", "name": "v1", "mode": "exclusive"])
        // The agent believes the lockspace lost (say, from a misread error text), but the
        // lease storage works: no fence record, LVM reports nothing.
        a.state.update { $0.lockspaces["vg1"] = .lost }
        c.sim.clearCalls()
        for s in ["fence", "stop_vms", "deactivate", "drop", "lock_start", "reactivate", "start_vms"] {
            await expectError("recovery_refused") { _ = try await step(a, s) }
        }
        #expect(vms.calls.filter { !$0.hasPrefix("domains") }.isEmpty)
        #expect(!c.sim.calls(host: "host-a").contains { ["dropLockspace", "lockStart", "deactivate", "activate"].contains($0.method) })
        #expect(c.sim.lockHolders(vg: "vg1", lv: "v1")?.exclusive == "host-a")
        // The check corrected the agent's state; the plan sees a healthy VG.
        #expect(a.health()["vgs"]?["vg1"]?["lockspace"] == "started")
        #expect(try await step(a, "plan")["needs_recovery"] == false)
    }

    @Test func aLeftoverJournalAloneNeedsNoRecovery() async throws {
        let c = Cluster()
        let a = try await agent(c, "host-a", 1)
        let dir = "\(c.root)/host-a"
        // From an earlier boot, and one of this boot tied to a fence record that is gone.
        writeFile(
            "\(dir)/recovery-vg1.json",
            #"{"boot_id": "earlier-boot", "loss_evidence": "x", "completed": ["fence", "deactivate", "drop"]}"# + "\n")
        #expect(try await step(a, "plan")["needs_recovery"] == false)
        #expect(try await step(a, "plan")["journal"] == nil)
        writeFile(
            "\(dir)/recovery-vg1.json",
            #"{"boot_id": "\#(HostFacts.bootID())", "fenced_at": 12.5, "loss_evidence": "x", "completed": ["fence", "deactivate", "drop"]}"#
                + "\n")
        #expect(try await step(a, "plan")["needs_recovery"] == false)
        await expectError("recovery_refused") { _ = try await step(a, "lock_start") }
        await expectError("recovery_refused") { _ = try await step(a, "reactivate") }
    }

    @Test func anInterruptedRecoveryOfThisBootContinuesAfterTheLockspaceIsBack() async throws {
        let c = Cluster()
        let a = try await agent(c, "host-a", 1)
        try await a.createLVs(["v1"], activate: "shared")
        c.sim.failLockspace(vg: "vg1", host: "host-a")
        await expectError("lock_storage_failed") { try await a.call("create_lv", ["vg": "vg1", "name": "new", "size_gb": 1]) }
        for s in ["fence", "wait_path", "stop_vms", "deactivate", "drop", "lock_start"] {
            #expect(try await step(a, s)["status"] != "failed", "step \(s)")
        }
        // The fence record went away (archived by hand, say): the journal alone now names no
        // outage, so the healthy lockspace is not torn down again.
        FenceRecord.archive(stateDirectory: "\(c.root)/host-a", vg: "vg1", suffix: "by-hand")
        await expectError("recovery_refused") { _ = try await step(a, "reactivate") }
    }

    @Test func aFailedStepNamesTheNextManualStepAndARerunContinues() async throws {
        let c = Cluster()
        let a = try await agent(c, "host-a", 1)
        try await a.createLVs(["busy"], activate: "exclusive")
        c.sim.failLockspace(vg: "vg1", host: "host-a")
        c.sim.setOpen(host: "host-a", vg: "vg1", lv: "busy", true)
        _ = try? await a.call("lv_info", ["vg": "vg1", "name": "nope"])
        a.state.update { $0.lockspaces["vg1"] = .lost }
        for s in ["fence", "wait_path", "stop_vms"] { _ = try await step(a, s) }
        let e = await expectError("recovery_failed") { _ = try await step(a, "deactivate") }
        #expect(e?.details["step"] == "deactivate")
        #expect(e?.details["next_step"]?.stringValue?.contains("run recover again") == true)
        // Whatever held it let go; the rerun skips what was done and finishes.
        c.sim.setOpen(host: "host-a", vg: "vg1", lv: "busy", false)
        #expect(try await step(a, "fence")["status"] == "skipped")
        for s in ["deactivate", "drop", "lock_start", "reactivate", "finish"] {
            #expect(try await step(a, s)["status"] == "ok", "step \(s)")
        }
        #expect(c.sim.lockHolders(vg: "vg1", lv: "busy")?.exclusive == "host-a")
    }

    @Test func aNewOutageDiscardsTheJournalOfAnEarlierRecovery() async throws {
        let c = Cluster()
        let a = try await agent(c, "host-a", 1)
        let dir = "\(c.root)/host-a"
        // An earlier recovery got this far and was then finished by hand.
        writeFile("\(dir)/recovery-vg1.json", #"{"completed": ["fence", "deactivate", "drop", "lock_start"]}"# + "\n")
        let record = FenceRecord(
            vg: "vg1", host: "host-a", fencedAt: HostFacts.now(), bootID: HostFacts.bootID(), paths: [],
            lvs: [], complete: true, durationMS: 3, source: "kill_command")
        try record.save(stateDirectory: dir)
        c.sim.failLockspace(vg: "vg1", host: "host-a")
        #expect(a.noteFenced("vg1"))
        #expect(readFile("\(dir)/recovery-vg1.json") == nil)
        #expect(try await step(a, "plan")["journal"] == nil)
        #expect(try await step(a, "drop")["status"] == "ok")  // not "already done"
    }

    @Test func withoutVirshTheVMStepIsSkippedAndDeactivateGuardsOpenLVs() async throws {
        let c = Cluster()
        let noVirsh = VirshHypervisor(uri: "qemu:///system", executor: CommandRunner(searchPath: "/nonexistent"))
        let a = try await agent(c, "host-a", 1, hypervisor: noVirsh)
        try await a.call("create_lv", ["vg": "vg1", "name": "v1", "size_gb": 1])
        try await a.call("activate_lv", ["vg": "vg1", "name": "v1", "mode": "exclusive"])
        c.sim.failLockspace(vg: "vg1", host: "host-a")
        a.state.update { $0.lockspaces["vg1"] = .lost }
        let plan = try await step(a, "plan")
        #expect(plan["vms_problem"]?.stringValue?.contains("cannot run virsh") == true)
        let stop = try await step(a, "stop_vms")
        #expect(stop["status"] == "skipped")
        #expect(stop["message"]?.stringValue?.contains("deactivate refuses LVs still in use") == true)
    }

    @Test func unknownStepIsRefusedBeforeAnythingRuns() async throws {
        let c = Cluster()
        let a = try await agent(c, "host-a", 1)
        c.sim.clearCalls()
        await expectError("invalid_argument") { _ = try await a.call("recover", ["vg": "vg1", "step": "everything"]) }
        await expectError("unknown_vg") { _ = try await a.call("recover", ["vg": "vg9", "step": "plan"]) }
        #expect(c.sim.calls(host: "host-a").isEmpty)
    }
}
