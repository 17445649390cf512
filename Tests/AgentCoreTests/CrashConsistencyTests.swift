import RPCWire
import SharedLVM
import Testing

@testable import AgentCore

#if canImport(Glibc)
import Glibc
#endif

/// The agent killed between the steps of an activation change (simulated: the store "dies"
/// before a chosen write, and a new agent starts on the same state directory, the host's
/// LVM state as the killed one left it).
struct CrashConsistencyTests {
    @Test func killedBetweenTheActivationAndItsRecordTheHeldLVIsRecorded() async throws {
        let c = Cluster()
        let dir = "\(c.root)/host-a"
        let a = try await c.agent("host-a", hostId: 1, stateDir: dir)
        try await a.call("create_lv", ["vg": "vg1", "name": "v1", "size_gb": 1])
        a.store.crash(before: { $0 != "settle" })
        // The reply may say anything (the process is gone): what counts is the state after it.
        _ = try? await a.call("activate_lv", ["vg": "vg1", "name": "v1", "mode": "exclusive"])
        #expect(c.sim.lockHolders(vg: "vg1", lv: "v1")?.exclusive == "host-a")
        #expect(readFile("\(dir)/activations.json")?.contains(#""op": "activate""#) == true)

        let a2 = try await c.agent("host-a", hostId: 1, stateDir: dir)
        #expect(a2.store.all == [ActivationRecord(vg: "vg1", name: "v1", mode: .exclusive)])
        #expect(a2.store.intents.isEmpty)
        #expect(a2.health()["active_lvs"] == [["vg": "vg1", "name": "v1", "mode": "exclusive"]])
        #expect(try await a2.call("lv_info", ["vg": "vg1", "name": "v1"])["mode"] == "exclusive")
    }

    @Test func killedBeforeTheActivationRanNothingIsRecorded() async throws {
        let c = Cluster()
        let dir = "\(c.root)/host-a"
        let a = try await c.agent("host-a", hostId: 1, stateDir: dir)
        try await a.call("create_lv", ["vg": "vg1", "name": "v1", "size_gb": 1])
        a.store.crash(before: { $0 != "intent" })
        await expectError("internal") { _ = try await a.call("activate_lv", ["vg": "vg1", "name": "v1", "mode": "exclusive"]) }
        #expect(c.sim.lockHolders(vg: "vg1", lv: "v1")?.exclusive == nil)  // LVM never ran
        let a2 = try await c.agent("host-a", hostId: 1, stateDir: dir)
        #expect(a2.store.all.isEmpty && a2.store.intents.isEmpty)
    }

    @Test func killedAfterADeactivateTheRestoreDoesNotTakeTheLVBack() async throws {
        let c = Cluster()
        let dir = "\(c.root)/host-a"
        let a = try await c.agent("host-a", hostId: 1, stateDir: dir)
        let b = try await c.agent("host-b", hostId: 2)
        for name in ["v1", "v2"] {
            try await a.call("create_lv", ["vg": "vg1", "name": .string(name), "size_gb": 1])
            try await a.call("activate_lv", ["vg": "vg1", "name": .string(name), "mode": "exclusive"])
        }
        a.store.crash(before: { $0 != "settle" })
        _ = try? await a.call("deactivate_lv", ["vg": "vg1", "name": "v1"])
        #expect(c.sim.lockHolders(vg: "vg1", lv: "v1")?.exclusive == nil)
        // The caller released it; another host takes it before the agent is back.
        try await b.call("activate_lv", ["vg": "vg1", "name": "v1", "mode": "exclusive"])
        c.sim.clearCalls()

        let a2 = try await c.agent("host-a", hostId: 1, stateDir: dir)
        #expect(!c.sim.calls(host: "host-a").contains { $0.method == "activate" && $0.arguments.contains("v1") })
        #expect(a2.store.all.map(\.name) == ["v2"])
        #expect(a2.health()["restore_failures"] == [])
        #expect(c.sim.lockHolders(vg: "vg1", lv: "v1")?.exclusive == "host-b")
        #expect(c.sim.lockHolders(vg: "vg1", lv: "v2")?.exclusive == "host-a")
    }

    @Test func killedBeforeTheDeactivateRanTheLVStaysRecorded() async throws {
        let c = Cluster()
        let dir = "\(c.root)/host-a"
        let a = try await c.agent("host-a", hostId: 1, stateDir: dir)
        try await a.call("create_lv", ["vg": "vg1", "name": "v1", "size_gb": 1])
        try await a.call("activate_lv", ["vg": "vg1", "name": "v1", "mode": "shared"])
        // The intent is written, then the process dies before lvchange -an: simulated by an
        // LVM refusal after the intent (the intent stays on disk, the store is dead).
        a.store.crash(before: { $0 != "settle" })
        _ = c.sim.setOpen(host: "host-a", vg: "vg1", lv: "v1", true)
        _ = try? await a.call("deactivate_lv", ["vg": "vg1", "name": "v1"])
        _ = c.sim.setOpen(host: "host-a", vg: "vg1", lv: "v1", false)
        #expect(c.sim.lockHolders(vg: "vg1", lv: "v1")?.shared == ["host-a"])
        let a2 = try await c.agent("host-a", hostId: 1, stateDir: dir)
        #expect(a2.store.all == [ActivationRecord(vg: "vg1", name: "v1", mode: .shared)])
        #expect(a2.store.intents.isEmpty)
    }

    @Test func repeatedKillsAtEveryPointLeaveRecordsThatMatchLVM() async throws {
        // Many iterations: a random operation, killed before a random write; after the
        // restart the records match what LVM shows on this host, and a retry works.
        var rng = SystemRandomNumberGenerator()
        let c = Cluster()
        let dir = "\(c.root)/host-a"
        var a = try await c.agent("host-a", hostId: 1, stateDir: dir)
        for name in ["v1", "v2", "v3"] { try await a.call("create_lv", ["vg": "vg1", "name": .string(name), "size_gb": 1]) }
        var mismatches = 0
        for _ in 0..<40 {
            let name = ["v1", "v2", "v3"].randomElement(using: &rng)!
            let point = ["intent", "settle", "none"].randomElement(using: &rng)!
            a.store.crash(before: { $0 != point })
            if Bool.random(using: &rng) {
                let mode = Bool.random(using: &rng) ? "exclusive" : "shared"
                _ = try? await a.call("activate_lv", ["vg": "vg1", "name": .string(name), "mode": .string(mode)])
            } else {
                _ = try? await a.call("deactivate_lv", ["vg": "vg1", "name": .string(name)])
            }
            a = try await c.agent("host-a", hostId: 1, stateDir: dir)
            for lv in ["v1", "v2", "v3"] {
                let holders = c.sim.lockHolders(vg: "vg1", lv: lv)
                let held: LVActivationMode? =
                    holders?.exclusive == "host-a"
                    ? .exclusive
                    : (holders?.shared.contains("host-a") == true ? .shared : nil)
                if held != a.store.record(vg: "vg1", name: lv)?.mode { mismatches += 1 }
            }
            #expect(a.store.intents.isEmpty)
        }
        #expect(mismatches == 0)
        try await a.call("activate_lv", ["vg": "vg1", "name": "v1", "mode": "exclusive"])
        try await a.call("deactivate_lv", ["vg": "vg1", "name": "v1"])
    }

    @Test func aDeactivateThatCannotBeCheckedKeepsItsLVOutOfTheRestore() async throws {
        let c = Cluster()
        let dir = "\(c.root)/host-a"
        _ = try await c.agent("host-a", hostId: 1, stateDir: dir, boot: false)
        writeFile(
            "\(dir)/activations.json",
            """
            {"activations": [{"mode": "exclusive", "name": "v1", "vg": "vg1"}], "format": 1, "host": "host-a", \
            "intents": [{"name": "v1", "op": "deactivate", "vg": "vg1"}]}

            """)
        c.sim.failLockspace(vg: "vg1", host: "host-a")  // the lockspace does not start: LVM cannot be asked
        let a = try await c.agent("host-a", hostId: 1, stateDir: dir)
        #expect(a.health()["restore_failures"]?.arrayValue?.map { $0["code"] } == ["deactivate_pending"])
        #expect(a.store.intent(vg: "vg1", name: "v1")?.operation == .deactivate)
        #expect(!c.sim.calls(host: "host-a").contains { $0.method == "activate" })
    }

    @Test func temporaryFilesOfAnInterruptedWriteAreRemovedAtStart() async throws {
        let c = Cluster()
        let dir = "\(c.root)/host-a"
        let a = try await c.agent("host-a", hostId: 1, stateDir: dir)
        try await a.call("create_lv", ["vg": "vg1", "name": "v1", "size_gb": 1])
        writeFile("\(dir)/activations.json.tmp.4242", "{\"activations\": [")
        writeFile("\(dir)/activations.json.tmp.17", "")
        writeFile("\(dir)/unrelated.tmp.1", "keep")
        _ = try await c.agent("host-a", hostId: 1, stateDir: dir)
        #expect(readFile("\(dir)/activations.json.tmp.4242") == nil)
        #expect(readFile("\(dir)/activations.json.tmp.17") == nil)
        #expect(readFile("\(dir)/unrelated.tmp.1") == "keep")
    }
}
