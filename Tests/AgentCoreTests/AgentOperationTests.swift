import RPCWire
import SharedLVM
import SimulatedLVM
import Testing

@testable import AgentCore

struct AgentOperationTests {
    @Test func createIsInactiveAndIdempotent() async throws {
        let c = Cluster()
        let a = try await c.agent("host-a", hostId: 1)
        let r = try await a.call("create_lv", ["vg": "vg1", "name": "volume-1", "size_bytes": .int(GiB)])
        #expect(r == ["host": "host-a", "vg": "vg1", "name": "volume-1", "size_bytes": .int(GiB), "changed": true])
        // Created inactive: nobody holds it.
        let holders = c.sim.lockHolders(vg: "vg1", lv: "volume-1")
        #expect(holders?.exclusive == nil && holders?.shared.isEmpty == true)
        #expect(c.sim.calls(host: "host-a").contains { $0.method == "createLV" && $0.arguments.last == "activate=false" })
        // Same size again (bytes or GiB): no change.
        #expect(try await a.call("create_lv", ["vg": "vg1", "name": "volume-1", "size_bytes": .int(GiB)])["changed"] == false)
        #expect(try await a.call("create_lv", ["vg": "vg1", "name": "volume-1", "size_gb": 1])["changed"] == false)
        // A size that rounds to the same extents is the same size.
        #expect(try await a.call("create_lv", ["vg": "vg1", "name": "volume-1", "size_bytes": .int(GiB - 1)])["changed"] == false)
        let e = await expectError("size_conflict") {
            try await a.call("create_lv", ["vg": "vg1", "name": "volume-1", "size_gb": 2])
        }
        #expect(e?.message.contains("vg1/volume-1") == true)
        #expect(e?.details["existing_size_bytes"] == .int(GiB))
    }

    @Test func createRoundsUpAndReportsSpace() async throws {
        let c = Cluster(vgSize: 1 << 30)
        let a = try await c.agent("host-a", hostId: 1)
        let r = try await a.call("create_lv", ["vg": "vg1", "name": "odd", "size_bytes": 5_000_000])
        #expect(r["size_bytes"] == .int(8 * MiB))
        let e = await expectError("insufficient_space") {
            try await a.call("create_lv", ["vg": "vg1", "name": "big", "size_gb": 5])
        }
        #expect(e?.details["stderr"]?.stringValue?.contains("insufficient free space") == true)
        #expect(e?.details["argv"]?.arrayValue?.first == "lvcreate")
        #expect(e?.details["host"] == "host-a" && e?.details["lv"] == "big")
        #expect(e?.message.contains("host host-a") == true)
    }

    @Test func exclusiveAndSharedAcrossTwoHosts() async throws {
        let c = Cluster()
        let a = try await c.agent("host-a", hostId: 1)
        let b = try await c.agent("host-b", hostId: 2)
        try await a.call("create_lv", ["vg": "vg1", "name": "v1", "size_gb": 1])

        let ex = try await a.call("activate_lv", ["vg": "vg1", "name": "v1", "mode": "exclusive"])
        #expect(ex["changed"] == true && ex["mode"] == "exclusive" && ex["device_path"] == "/dev/vg1/v1")
        #expect(try await a.call("activate_lv", ["vg": "vg1", "name": "v1", "mode": "exclusive"])["changed"] == false)
        // Default mode is exclusive.
        #expect(try await a.call("activate_lv", ["vg": "vg1", "name": "v1"])["changed"] == false)

        let refused = await expectError("locked_by_other_host") {
            try await b.call("activate_lv", ["vg": "vg1", "name": "v1", "mode": "exclusive"])
        }
        #expect(refused?.rpcFailure.className == "LockedByOtherHost")
        #expect(refused?.details["host"] == "host-b")
        await expectError("locked_by_other_host") {
            try await b.call("activate_lv", ["vg": "vg1", "name": "v1", "mode": "shared"])
        }
        // B's failed attempt left no record.
        #expect(b.store.record(vg: "vg1", name: "v1") == nil)

        // Downgrade ex -> sh on the holder, then B joins shared.
        #expect(try await a.call("activate_lv", ["vg": "vg1", "name": "v1", "mode": "shared"])["changed"] == true)
        #expect(try await b.call("activate_lv", ["vg": "vg1", "name": "v1", "mode": "shared"])["changed"] == true)
        #expect(c.sim.lockHolders(vg: "vg1", lv: "v1")?.shared == ["host-a", "host-b"])
        // Upgrade refused while B shares it.
        await expectError("locked_by_other_host") {
            try await a.call("activate_lv", ["vg": "vg1", "name": "v1", "mode": "exclusive"])
        }
        #expect(a.store.record(vg: "vg1", name: "v1")?.mode == .shared)
        // After B deactivates, A can upgrade.
        #expect(try await b.call("deactivate_lv", ["vg": "vg1", "name": "v1"])["changed"] == true)
        #expect(try await b.call("deactivate_lv", ["vg": "vg1", "name": "v1"])["changed"] == false)
        #expect(try await a.call("activate_lv", ["vg": "vg1", "name": "v1", "mode": "exclusive"])["changed"] == true)
        #expect(c.sim.lockHolders(vg: "vg1", lv: "v1")?.exclusive == "host-a")

        let health = a.health()
        #expect(health["active_lvs"] == [["vg": "vg1", "name": "v1", "mode": "exclusive"]])
        #expect(b.health()["active_lvs"] == [])
    }

    @Test func activateMissingLVIsNotFound() async throws {
        let c = Cluster()
        let a = try await c.agent("host-a", hostId: 1)
        let e = await expectError("not_found") { try await a.call("activate_lv", ["vg": "vg1", "name": "nope"]) }
        #expect(e?.rpcFailure.className == "NotFound")
        // Deactivating a missing LV is fine (already in the wanted state).
        #expect(try await a.call("deactivate_lv", ["vg": "vg1", "name": "nope"])["changed"] == false)
    }

    @Test func extendGrowsRefreshesAndRefusesShrink() async throws {
        let c = Cluster()
        let a = try await c.agent("host-a", hostId: 1)
        let b = try await c.agent("host-b", hostId: 2)
        try await a.call("create_lv", ["vg": "vg1", "name": "v1", "size_gb": 1])

        var r = try await a.call("extend_lv", ["vg": "vg1", "name": "v1", "size_gb": 2])
        #expect(r == ["host": "host-a", "vg": "vg1", "name": "v1", "size_bytes": .int(2 * GiB), "changed": true, "refreshed": false])
        r = try await a.call("extend_lv", ["vg": "vg1", "name": "v1", "size_bytes": .int(2 * GiB)])
        #expect(r["changed"] == false)
        await expectError("size_conflict") { try await a.call("extend_lv", ["vg": "vg1", "name": "v1", "size_gb": 1]) }

        // Active exclusively on B: A cannot extend, B can (and refreshes its device).
        try await b.call("activate_lv", ["vg": "vg1", "name": "v1", "mode": "exclusive"])
        await expectError("locked_by_other_host") { try await a.call("extend_lv", ["vg": "vg1", "name": "v1", "size_gb": 3]) }
        r = try await b.call("extend_lv", ["vg": "vg1", "name": "v1", "size_gb": 3])
        #expect(r["changed"] == true && r["refreshed"] == true && r["size_bytes"] == .int(3 * GiB))

        // Shared on both: plain extend is refused, shared_update works; the other host sees
        // the new size after refresh_lv.
        try await b.call("activate_lv", ["vg": "vg1", "name": "v1", "mode": "shared"])
        try await a.call("activate_lv", ["vg": "vg1", "name": "v1", "mode": "shared"])
        await expectError("incompatible_lock_mode") { try await a.call("extend_lv", ["vg": "vg1", "name": "v1", "size_gb": 4]) }
        r = try await a.call("extend_lv", ["vg": "vg1", "name": "v1", "size_gb": 4, "shared_update": true])
        #expect(r["changed"] == true && r["size_bytes"] == .int(4 * GiB))
        #expect(try await b.backend.deviceSize(vg: "vg1", name: "v1") == UInt64(3 * GiB))
        let refreshed = try await b.call("refresh_lv", ["vg": "vg1", "name": "v1"])
        #expect(refreshed["size_bytes"] == .int(4 * GiB) && refreshed["active"] == true)
    }

    @Test func deleteRulesAndClearing() async throws {
        let c = Cluster()
        let a = try await c.agent("host-a", hostId: 1)
        let b = try await c.agent("host-b", hostId: 2)
        try await a.call("create_lv", ["vg": "vg1", "name": "v1", "size_gb": 1])
        try await a.call("activate_lv", ["vg": "vg1", "name": "v1"])

        let here = await expectError("busy") { try await a.call("delete_lv", ["vg": "vg1", "name": "v1"]) }
        #expect(here?.details["active_here"] == true)
        #expect(here?.message.contains("deactivate it first") == true)
        await expectError("locked_by_other_host") { try await b.call("delete_lv", ["vg": "vg1", "name": "v1"]) }
        // Clearing renames the LV first, which LVM refuses the same way.
        await expectError("locked_by_other_host") {
            try await b.call("delete_lv", ["vg": "vg1", "name": "v1", "volume_clear": "zero"])
        }
        try await a.call("deactivate_lv", ["vg": "vg1", "name": "v1"])

        c.sim.clearCalls()
        let r = try await b.call("delete_lv", ["vg": "vg1", "name": "v1", "volume_clear": "none"])
        #expect(r == ["host": "host-b", "vg": "vg1", "name": "v1", "changed": true, "job": .null])
        #expect(c.sim.calls(host: "host-b").map(\.method) == ["lvInfo", "removeLV"])
        // Deleting a missing LV succeeds without change.
        #expect(try await b.call("delete_lv", ["vg": "vg1", "name": "v1"])["changed"] == false)
        #expect(a.store.record(vg: "vg1", name: "v1") == nil)
    }

    @Test func readOnlyOperations() async throws {
        let c = Cluster()
        let a = try await c.agent("host-a", hostId: 7)
        try await a.call("create_lv", ["vg": "vg1", "name": "v1", "size_gb": 1])
        try await a.call("create_lv", ["vg": "vg1", "name": "v2", "size_gb": 2])
        try await a.call("activate_lv", ["vg": "vg1", "name": "v2", "mode": "shared"])

        let info = try await a.call("lv_info", ["vg": "vg1", "name": "v2"])
        #expect(info["active"] == true && info["mode"] == "shared" && info["size_bytes"] == .int(2 * GiB))
        #expect(info["device_path"] == "/dev/vg1/v2" && info["host"] == "host-a")

        let list = try await a.call("list_lvs", ["vg": "vg1"])
        let lvs = list["lvs"]?.arrayValue ?? []
        #expect(lvs.map { $0["name"] } == ["v1", "v2"])
        #expect(lvs.map { $0["mode"] } == [.null, "shared"])
        #expect(lvs.map { $0["active"] } == [false, true])

        let vg = try await a.call("vg_info", ["vg": "vg1"])
        #expect(vg["size_bytes"] == .int(10 * GiB) && vg["lv_count"] == 2 && vg["lockspace"] == "started")
        #expect(vg["extent_size_bytes"] == .int(4 * MiB) && vg["lock_type"] == "sanlock")
        #expect(vg["metadata_area_size_bytes"]?.int64Value ?? 0 > 0 && vg["metadata_area_free_bytes"] != nil)
        #expect(vg["free_bytes"]?.int64Value ?? 0 < 10 * GiB - 3 * GiB)

        let locks = try await a.call("lock_status")
        #expect(locks["host_id"] == 7)
        #expect(locks["lockspaces"]?.arrayValue?.map { $0["vg"] } == ["vg1"])
        #expect(locks["locks"] == [locks["locks"]!.arrayValue![0]])
        #expect(locks["locks"]?.arrayValue?.first?["name"] == "v2")
        #expect(locks["locks"]?.arrayValue?.first?["mode"] == "shared")

        let h = try await a.call("health")
        #expect(h["host"] == "host-a" && h["host_id"] == 7 && h["ready"] == true && h["version"] == .string(AgentVersion.current))
        #expect(h["vgs"] == ["vg1": ["lockspace": "started"]])
        #expect(h["restore_failures"] == [])
    }

    @Test func notReadyBeforeBoot() async throws {
        let c = Cluster()
        let a = try await c.agent("host-a", hostId: 1, boot: false)
        await expectError("not_ready") { try await a.call("create_lv", ["vg": "vg1", "name": "v1", "size_gb": 1]) }
        #expect(try await a.call("health")["ready"] == false)
        await a.boot()
        try await a.call("create_lv", ["vg": "vg1", "name": "v1", "size_gb": 1])
    }

    @Test func lockspaceProblemsAreReported() async throws {
        let c = Cluster()
        let a = try await c.agent("host-a", hostId: 1)
        try await a.call("create_lv", ["vg": "vg1", "name": "v1", "size_gb": 1])
        c.sim.failLockspace(vg: "vg1", host: "host-a")
        await expectError("lock_storage_failed") { try await a.call("create_lv", ["vg": "vg1", "name": "v2", "size_gb": 1]) }
        #expect(a.health()["vgs"] == ["vg1": ["lockspace": "lost", "hint": "run: aosctl recover --host host-a --vg vg1"]])
        // Lock start before the drop cannot succeed: the storage still fails.
        await expectError("lockspace_lost") { try await a.call("start_lockspace", ["vg": "vg1"]) }
        c.sim.dropLockspace(vg: "vg1", host: "host-a")
        // After lvmlockctl --drop: lock start brings the VG back without restarting the agent.
        let r = try await a.call("start_lockspace", ["vg": "vg1"])
        #expect(r["lockspace"] == "started" && r["changed"] == true)
        #expect(a.health()["vgs"] == ["vg1": ["lockspace": "started"]])
        #expect(try await a.call("activate_lv", ["vg": "vg1", "name": "v1"])["changed"] == true)
    }

    @Test func pvWaitTimesOutAndBootStillCompletes() async throws {
        let c = Cluster()
        c.sim.setPVsPresent(vg: "vg1", false)
        let a = try await c.agent("host-a", hostId: 1)
        let h = a.health()
        #expect(h["ready"] == true)
        #expect(h["vgs"]?["vg1"]?["lockspace"] == "not_started")
        #expect(h["vgs"]?["vg1"]?["problem"]?.stringValue?.contains("did not appear") == true)
        #expect(!c.sim.calls(host: "host-a").contains { $0.method == "lockStart" })
    }

    @Test func pvWaitSucceedsWhenPVsAppear() async throws {
        let c = Cluster()
        c.sim.setPVsPresent(vg: "vg1", false)
        let config = AgentServiceConfiguration(
            host: "host-a", hostId: 1, volumeGroups: ["vg1"], stateDirectory: "\(c.root)/a",
            pvWaitTimeout: .seconds(30), pvPollInterval: .milliseconds(10))
        let a = try AgentService(configuration: config, backend: SimulatedLVMBackend(cluster: c.sim, hostName: "host-a", hostId: 1))
        let boot = Task { await a.boot() }
        // Wait until the agent has polled at least once, then let the PVs appear.
        while !c.sim.calls(host: "host-a").contains(where: { $0.method == "pvsPresent" }) { await Task.yield() }
        c.sim.setPVsPresent(vg: "vg1", true)
        await boot.value
        #expect(a.health()["vgs"] == ["vg1": ["lockspace": "started"]])
    }

    @Test func expiredRequestsDoNothing() async throws {
        let c = Cluster()
        let a = try await c.agent("host-a", hostId: 1)
        c.sim.clearCalls()
        let past = ContinuousClock.now - .milliseconds(1)
        for (method, args) in [
            ("create_lv", ["vg": "vg1", "name": "v1", "size_gb": 1]),
            ("activate_lv", ["vg": "vg1", "name": "v1"] as [String: JSONValue]),
            ("delete_lv", ["vg": "vg1", "name": "v1"]),
            ("list_lvs", ["vg": "vg1"]),
        ] as [(String, [String: JSONValue])] {
            let e = await expectError("expired") { try await a.call(method, args, deadline: past) }
            #expect(e?.rpcFailure.className == "Expired")
        }
        #expect(c.sim.calls.isEmpty)
    }

    @Test func deadlineCheckedAfterWaitingForTheLV() async throws {
        // A slow backend: the second request on the same LV waits behind the first and
        // finds its deadline passed when it gets its turn.
        let c = Cluster()
        let slow = SlowBackend(SimulatedLVMBackend(cluster: c.sim, hostName: "host-a", hostId: 1), delay: .milliseconds(300))
        let a = try await makeAgent(slow, host: "host-a", hostId: 1, stateDir: "\(c.root)/a")
        try await a.call("create_lv", ["vg": "vg1", "name": "v1", "size_gb": 1])
        let first = Task { try await a.call("activate_lv", ["vg": "vg1", "name": "v1"]) }
        while slow.inFlight.withLock({ $0 }) == 0 { await Task.yield() }
        c.sim.clearCalls()
        await expectError("expired") {
            try await a.call("deactivate_lv", ["vg": "vg1", "name": "v1"], deadline: .now + .milliseconds(50))
        }
        _ = try await first.value
        // Only the first request's calls ran after the snapshot; the expired one ran nothing.
        #expect(!c.sim.calls.contains { $0.method == "deactivate" })
        #expect(c.sim.lockHolders(vg: "vg1", lv: "v1")?.exclusive == "host-a")
    }
}

@Suite struct LockspaceLossTests {
    @Test func lostLockspaceIsReportedAndFailsMutationsFast() async throws {
        let c = Cluster()
        let a = try await c.agent("host-a", hostId: 1)
        _ = try await a.call("create_lv", ["vg": "vg1", "name": "volume-1", "size_gb": 1])
        c.sim.failLockspace(vg: "vg1", host: "host-a")
        // lvcreate reports "VG vg1 lock failed: storage failed for sanlock leases" (lab notes);
        // that text is how the agent learns of the loss when no kill command told it.
        _ = await expectError("lock_storage_failed") {
            try await a.call("create_lv", ["vg": "vg1", "name": "volume-2", "size_gb": 1])
        }
        #expect(a.health()["vgs"]?["vg1"]?["lockspace"] == "lost")
        // From then on mutations are refused at once, naming the VG, the host and what to do,
        // and no LVM command runs.
        c.sim.clearCalls()
        for (method, extra) in [
            ("activate_lv", ["mode": JSONValue.string("shared")]), ("deactivate_lv", [:]),
            ("extend_lv", ["size_gb": 2]), ("delete_lv", [:]),
        ] {
            var args: [String: JSONValue] = ["vg": "vg1", "name": "volume-1"]
            args.merge(extra) { _, new in new }
            let e = await expectError("lockspace_lost") { try await a.call(method, args) }
            #expect(e?.message.contains("vg1") == true && e?.message.contains("host-a") == true)
            #expect(e?.message.contains("aosctl recover --host host-a --vg vg1") == true)
        }
        #expect(c.sim.calls(host: "host-a").isEmpty)
        // Another host is unaffected.
        let b = try await c.agent("host-b", hostId: 2)
        #expect(try await b.call("activate_lv", ["vg": "vg1", "name": "volume-1", "mode": "exclusive"])["changed"] == true)
    }
}
