import LVMTestSupport
import SharedLVM
import Testing

@testable import SimulatedLVM

/// Two simulated hosts on one fresh shared VG, lockspaces started.
func simulatedHosts(vgSize: UInt64 = 1 << 30) async throws -> (SimulatedCluster, LVMBehaviourHosts) {
    let cluster = SimulatedCluster()
    cluster.addVolumeGroup("vol", sizeBytes: vgSize)
    let a = SimulatedLVMBackend(cluster: cluster, hostName: "compute-1", hostId: 1)
    let b = SimulatedLVMBackend(cluster: cluster, hostName: "compute-2", hostId: 2)
    try await a.lockStart(vg: "vol")
    try await b.lockStart(vg: "vol")
    let hosts = LVMBehaviourHosts(a: a, b: b, vg: "vol") { lv, open in
        cluster.setOpen(host: "compute-1", vg: "vol", lv: lv, open)
    }
    return (cluster, hosts)
}

struct SimulatedBehaviourTests {
    @Test(arguments: LVMBehaviourSuite.scenarios)
    func scenario(_ scenario: LVMBehaviourScenario) async throws {
        let (cluster, hosts) = try await simulatedHosts()
        try await scenario.run(hosts)
        // Clean-up leaves nothing behind.
        #expect(try await hosts.a.listLVs(vg: "vol").isEmpty)
        #expect(cluster.lockHolders(vg: "vol", lv: "bt-ex") == nil)
    }

    @Test func runAllReportsNoFailures() async {
        let failures = await LVMBehaviourSuite.runAll { _ in try await simulatedHosts().1 }
        #expect(failures.isEmpty, "\(failures)")
    }
}

struct SimulatedLVMTests {
    @Test func recordsCalls() async throws {
        let (cluster, hosts) = try await simulatedHosts()
        cluster.clearCalls()
        _ = try await hosts.a.createLV(vg: "vol", name: "v1", sizeBytes: 4 << 20, activate: false)
        try await hosts.b.activate(vg: "vol", name: "v1", mode: .shared)
        #expect(
            cluster.calls == [
                SimulatedCall(host: "compute-1", method: "createLV", arguments: ["vol", "v1", "4194304", "activate=false"]),
                SimulatedCall(host: "compute-2", method: "activate", arguments: ["vol", "v1", "shared"]),
            ])
        #expect(cluster.calls(host: "compute-2").count == 1)
    }

    /// A simulated agent runs for days: its call record keeps the newest calls, not all of them.
    @Test func callRecordIsBoundedAndKeepsTheNewest() async throws {
        let cluster = SimulatedCluster(callHistoryLimit: 5)
        cluster.addVolumeGroup("vol", sizeBytes: 1 << 30)
        let host = SimulatedLVMBackend(cluster: cluster, hostName: "compute-1", hostId: 1)
        for i in 0..<23 { _ = try? await host.lvInfo(vg: "vol", name: "v\(i)") }
        let kept = cluster.calls.map { $0.arguments.last ?? "" }
        #expect(kept.count >= 5 && kept.count <= 10, "\(kept)")
        #expect(kept.last == "v22")
        #expect(kept == (23 - kept.count..<23).map { "v\($0)" })
    }

    @Test func errorsCarryLVMTextsAndArgv() async throws {
        let (_, hosts) = try await simulatedHosts()
        _ = try await hosts.a.createLV(vg: "vol", name: "lv1", sizeBytes: 4 << 20, activate: true)
        let error = await #expect(throws: LVMError.self) { try await hosts.b.activate(vg: "vol", name: "lv1", mode: .shared) }
        #expect(error?.message == "LV locked by other host: vol/lv1")
        #expect(error?.stderr == "  LV locked by other host: vol/lv1\n  Failed to lock logical volume vol/lv1.\n")
        #expect(error?.argv == ["lvchange", "-asy", "vol/lv1"])
        #expect(error?.termination == .exited(5))
    }

    @Test func sizesAndSpaceAccounting() async throws {
        let (_, hosts) = try await simulatedHosts(vgSize: 1 << 30)
        let before = try await hosts.a.vgInfo(vg: "vol")
        // 1 GiB = 256 extents, of which [lvmlock] takes 64.
        #expect(before.extentCount == 256 && before.freeExtentCount == 192)
        #expect(before.shared && before.lockType == "sanlock")
        let lv = try await hosts.a.createLV(vg: "vol", name: "v1", sizeBytes: 1, activate: false)
        #expect(lv.sizeBytes == 4 << 20)
        let after = try await hosts.b.vgInfo(vg: "vol")
        #expect(after.freeExtentCount == 191 && after.lvCount == 1)
        #expect(after.metadataAreaFreeBytes < before.metadataAreaFreeBytes)
        let error = await #expect(throws: LVMError.self) {
            _ = try await hosts.a.createLV(vg: "vol", name: "v2", sizeBytes: 192 << 22, activate: false)
        }
        #expect(error?.message == "Volume group \"vol\" has insufficient free space (191 extents): 192 required.")
    }

    @Test func lockStatusShowsModesAndOffsets() async throws {
        let (_, hosts) = try await simulatedHosts()
        let ex = try await hosts.a.createLV(vg: "vol", name: "ex", sizeBytes: 4 << 20, activate: true)
        let sh = try await hosts.a.createLV(vg: "vol", name: "sh", sizeBytes: 4 << 20, activate: false)
        try await hosts.a.activate(vg: "vol", name: "sh", mode: .shared)
        let status = try await hosts.a.lockStatus()
        #expect(status.lockspaces == [.init(name: "lvm_vol", vg: "vol", hostId: 1, path: "/dev/mapper/vol-lvmlock", offset: 0)])
        #expect(status.resource(lvUUID: ex.uuid)?.mode == .exclusive)
        #expect(status.resource(lvUUID: sh.uuid)?.mode == .shared)
        #expect(status.resource(lvUUID: ex.uuid)?.offset != status.resource(lvUUID: sh.uuid)?.offset)
        #expect("1.0.0:\(status.resource(lvUUID: ex.uuid)!.offset)" == ex.lockArgs)
        #expect(try await hosts.b.lockStatus().resources.isEmpty)
    }

    @Test func duplicateHostIdCannotJoin() async throws {
        let cluster = SimulatedCluster()
        cluster.addVolumeGroup("vol", sizeBytes: 1 << 30)
        try await SimulatedLVMBackend(cluster: cluster, hostName: "h1", hostId: 7).lockStart(vg: "vol")
        let error = await #expect(throws: LVMError.self) {
            try await SimulatedLVMBackend(cluster: cluster, hostName: "h2", hostId: 7).lockStart(vg: "vol")
        }
        #expect(error?.code == .internal)
    }

    @Test func lockspaceFailureAndDrop() async throws {
        let (cluster, hosts) = try await simulatedHosts()
        _ = try await hosts.a.createLV(vg: "vol", name: "v1", sizeBytes: 4 << 20, activate: true)
        _ = try await hosts.a.createLV(vg: "vol", name: "v2", sizeBytes: 4 << 20, activate: false)
        cluster.failLockspace(vg: "vol", host: "compute-1")
        // sanlock status shows no change until the drop.
        #expect(try await hosts.a.lockspaceStarted(vg: "vol"))
        let create = await #expect(throws: LVMError.self) {
            _ = try await hosts.a.createLV(vg: "vol", name: "v3", sizeBytes: 4 << 20, activate: false)
        }
        #expect(create?.code == .lockStorageFailed)
        let activate = await #expect(throws: LVMError.self) { try await hosts.a.activate(vg: "vol", name: "v2", mode: .exclusive) }
        #expect(activate?.code == .lockspaceNotStarted)
        let start = await #expect(throws: LVMError.self) { try await hosts.a.lockStart(vg: "vol") }
        #expect(start?.code == .lockStorageFailed)
        // Recovery: deactivate, drop, lock-start, reactivate.
        try await hosts.a.deactivate(vg: "vol", name: "v1")
        cluster.dropLockspace(vg: "vol", host: "compute-1")
        #expect(try await hosts.a.lockspaceStarted(vg: "vol") == false)
        try await hosts.a.lockStart(vg: "vol")
        try await hosts.a.activate(vg: "vol", name: "v1", mode: .exclusive)
    }

    @Test func dropWithoutDeactivateLeavesDeviceWithoutLock() async throws {
        let (cluster, hosts) = try await simulatedHosts()
        _ = try await hosts.a.createLV(vg: "vol", name: "v1", sizeBytes: 4 << 20, activate: true)
        cluster.failLockspace(vg: "vol", host: "compute-1")
        cluster.dropLockspace(vg: "vol", host: "compute-1")
        // The unsafe state from the lab: B can take the lock while A's device is still active.
        try await hosts.b.activate(vg: "vol", name: "v1", mode: .exclusive)
        #expect(try await hosts.a.lvInfo(vg: "vol", name: "v1").activeLocally)
        #expect(cluster.lockHolders(vg: "vol", lv: "v1")?.exclusive == "compute-2")
    }

    @Test func bootWait() async throws {
        let (cluster, hosts) = try await simulatedHosts()
        cluster.setPVsPresent(vg: "vol", false)
        #expect(try await hosts.a.pvsPresent(vg: "vol") == false)
        await #expect(throws: LVMError.self) { _ = try await hosts.a.vgInfo(vg: "vol") }
        cluster.setPVsPresent(vg: "vol", true)
        #expect(try await hosts.a.pvsPresent(vg: "vol"))
    }

    @Test func uuidsLookLikeLVMs() {
        var seed: UInt64 = 1
        let uuid = SimulatedCluster.lvmUUID(&seed)
        #expect(uuid.split(separator: "-").map(\.count) == [6, 4, 4, 4, 4, 4, 6])
        #expect(SimulatedCluster.lvmUUID(&seed) != uuid)
    }

    @Test func concurrentActivationsHaveOneWinner() async throws {
        let (cluster, _) = try await simulatedHosts()
        var backends: [SimulatedLVMBackend] = []
        for i in 1...8 {
            let b = SimulatedLVMBackend(cluster: cluster, hostName: "n\(i)", hostId: 100 + i)
            try await b.lockStart(vg: "vol")
            backends.append(b)
        }
        _ = try await backends[0].createLV(vg: "vol", name: "race", sizeBytes: 4 << 20, activate: false)
        let winners = await withTaskGroup(of: Bool.self) { group in
            for b in backends {
                group.addTask { (try? await b.activate(vg: "vol", name: "race", mode: .exclusive)) != nil }
            }
            return await group.reduce(0) { $0 + ($1 ? 1 : 0) }
        }
        #expect(winners == 1)
    }
}
