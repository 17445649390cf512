import AOSAPI
import RPCWire
import SharedLVM
import SimulatedLVM
import Testing

@testable import AgentCore

/// Copies of a source in use on the copying host (active exclusively there) read a short-lived
/// COW snapshot (docs/agent.md, "Jobs"): a point-in-time copy, whatever the VM writes meanwhile;
/// the snapshot goes at the end, whatever the end.
@Suite(.timeLimit(.minutes(1))) struct COWCopyTests {
    /// Host A holds `volume-src` (8 MiB, every block tag 1) exclusively, as for a VM; its
    /// copy runs 1 MiB per second of the manual clock.
    func inUseSource() async throws -> (JobCluster, AgentService) {
        let c = JobCluster()
        let a = try await c.agent("host-a", hostId: 1, bytesPerSecond: 1 << 20, chunk: 1 << 20)
        try await a.call("create_lv", ["vg": "vg1", "name": "volume-src", "size_bytes": .int(8 * MiB)])
        try await a.call("activate_lv", ["vg": "vg1", "name": "volume-src", "mode": "exclusive"])
        c.sim.writeData(vg: "vg1", lv: "volume-src", tag: 1, bytes: 8 << 20)
        return (c, a)
    }

    static let tag1: [UInt64: UInt32] = Dictionary(uniqueKeysWithValues: (0..<8).map { ($0, 1) })
    static let tag2: [UInt64: UInt32] = Dictionary(uniqueKeysWithValues: (0..<8).map { ($0, 2) })

    @Test func theCopyHoldsTheDataOfItsStartWhileTheVMWrites() async throws {
        let (c, a) = try await inUseSource()
        let job = try await a.startJob("copy_lv", ["vg": "vg1", "source": "volume-src", "target": "volume-dst", "verify": true])
        await c.clock.sleepers(atLeast: 1)  // one chunk copied
        let cow = JobLVName.cow(job.id)
        #expect(c.sim.snapshots(vg: "vg1", origin: "volume-src") == [cow])
        c.sim.writeData(vg: "vg1", lv: "volume-src", tag: 2, bytes: 8 << 20)  // the VM writes everything
        c.clock.release()
        await a.waitForJob(job.id)
        let done = try await a.job(job.id)
        #expect(done.state == .succeeded && done.checksum != nil && done.done_bytes == 8 * MiB)
        #expect(c.sim.data(vg: "vg1", lv: "volume-dst") == Self.tag1, "the point in time of the snapshot")
        #expect(c.sim.data(vg: "vg1", lv: "volume-src") == Self.tag2)
        #expect(c.names() == ["volume-dst", "volume-src"], "the COW snapshot is gone")
        #expect(c.sim.lockHolders(vg: "vg1", lv: "volume-src")?.exclusive == "host-a", "the VM's activation stays")
        let calls = c.sim.calls(host: "host-a").map(\.method)
        #expect(calls.filter { $0 == "createSnapshot" }.count == 1 && calls.filter { $0 == "removeSnapshot" }.count == 1)
        let create = try #require(c.sim.calls(host: "host-a").first { $0.method == "createSnapshot" })
        #expect(create.arguments == ["vg1", "volume-src", cow, "\(COWSnapshot.cowBytes(originBytes: 8 << 20))"])
    }

    @Test func anOverflowedSnapshotFailsTheCopyClearly() async throws {
        let (c, a) = try await inUseSource()
        let job = try await a.startJob("copy_lv", ["vg": "vg1", "source": "volume-src", "target": "volume-dst"])
        await c.clock.sleepers(atLeast: 1)
        c.sim.invalidateSnapshot(vg: "vg1", lv: JobLVName.cow(job.id))
        c.clock.release()
        await a.waitForJob(job.id)
        let failed = try await a.job(job.id)
        #expect(failed.state == .failed && failed.error?.code == "busy")
        #expect(failed.error?.message.contains("COW snapshot") == true, "\(failed.error?.message ?? "")")
        #expect(c.names() == ["volume-src"], "no half copy, no snapshot")
        #expect(c.sim.lockHolders(vg: "vg1", lv: "volume-src")?.exclusive == "host-a")
    }

    @Test func aCancelRemovesTheSnapshot() async throws {
        let (c, a) = try await inUseSource()
        let job = try await a.startJob("copy_lv", ["vg": "vg1", "source": "volume-src", "target": "volume-dst"])
        await c.clock.sleepers(atLeast: 1)
        try await a.call("cancel_job", ["id": .string(job.id)])
        await a.waitForJob(job.id)
        #expect(try await a.job(job.id).state == .cancelled)
        #expect(c.names() == ["volume-src"])
    }

    @Test func aRestartGoesOnFromTheSameSnapshot() async throws {
        let (c, a) = try await inUseSource()
        let job = try await a.startJob("copy_lv", ["vg": "vg1", "source": "volume-src", "target": "volume-dst"])
        await c.clock.sleepers(atLeast: 1)
        c.clock.advance(by: 1)
        await c.clock.sleepers(atLeast: 1)  // 2 MiB copied
        await a.stopJobs()
        c.sim.writeData(vg: "vg1", lv: "volume-src", tag: 2, bytes: 8 << 20)  // the VM goes on writing
        #expect(c.sim.snapshots(vg: "vg1", origin: "volume-src") == [JobLVName.cow(job.id)], "kept across the restart")
        c.sim.clearCalls()
        c.clock.release()

        let again = try await c.agent("host-a", hostId: 1)
        await again.waitForJob(job.id)
        #expect(try await again.job(job.id).state == .succeeded)
        #expect(c.sim.data(vg: "vg1", lv: "volume-dst") == Self.tag1)
        let calls = c.sim.calls(host: "host-a")
        #expect(!calls.contains { $0.method == "createSnapshot" }, "the same snapshot")
        #expect(calls.first { $0.method == "copyRange" }?.arguments[3] == "\(2 << 20)", "resumed, not restarted")
        #expect(c.names() == ["volume-dst", "volume-src"])
    }

    @Test func aRestartWithoutItsSnapshotStartsOverFromANewOne() async throws {
        let (c, a) = try await inUseSource()
        let job = try await a.startJob("copy_lv", ["vg": "vg1", "source": "volume-src", "target": "volume-dst"])
        await c.clock.sleepers(atLeast: 1)
        c.clock.advance(by: 1)
        await c.clock.sleepers(atLeast: 1)
        await a.stopJobs()
        // The snapshot is gone (removed by hand, say); the VM wrote meanwhile.
        try await SimulatedLVMBackend(cluster: c.sim, hostName: "host-a", hostId: 1)
            .removeSnapshot(vg: "vg1", name: JobLVName.cow(job.id))
        c.sim.writeData(vg: "vg1", lv: "volume-src", tag: 2, bytes: 8 << 20)
        c.sim.clearCalls()
        c.clock.release()

        let again = try await c.agent("host-a", hostId: 1)
        await again.waitForJob(job.id)
        #expect(try await again.job(job.id).state == .succeeded)
        #expect(c.sim.data(vg: "vg1", lv: "volume-dst") == Self.tag2, "one point in time: the new snapshot's, not a mix")
        let calls = c.sim.calls(host: "host-a")
        #expect(calls.filter { $0.method == "createSnapshot" }.count == 1)
        #expect(calls.first { $0.method == "copyRange" }?.arguments[3] == "0", "started over")
        #expect(c.names() == ["volume-dst", "volume-src"])
    }

    @Test func aSourceActiveSharedHereIsReadAsItIs() async throws {
        let c = JobCluster()
        let a = try await c.agent("host-a", hostId: 1)
        try await a.call("create_lv", ["vg": "vg1", "name": "volume-src", "size_bytes": .int(4 * MiB)])
        try await a.call("activate_lv", ["vg": "vg1", "name": "volume-src", "mode": "shared"])
        let job = try await a.startJob("copy_lv", ["vg": "vg1", "source": "volume-src", "target": "volume-dst"])
        await a.waitForJob(job.id)
        #expect(try await a.job(job.id).state == .succeeded)
        #expect(!c.sim.calls(host: "host-a").contains { $0.method == "createSnapshot" })
    }

    @Test func snapshotLVsAreRefusedLikeTheOtherJobLVs() async throws {
        let c = JobCluster()
        let a = try await c.agent("host-a", hostId: 1)
        for method in ["delete_lv", "activate_lv", "deactivate_lv", "refresh_lv"] {
            let e = await expectError("lv_not_managed") { try await a.call(method, ["vg": "vg1", "name": "aos-cow-1"]) }
            #expect(e?.message.contains("aos-cow-") == true)
        }
        #expect(JobLVName.isJobLV(JobLVName.cow("x")))
    }

    @Test func theCOWAreaIsAFractionWithAFloor() {
        #expect(COWSnapshot.cowBytes(originBytes: 100 << 30) == 20 << 30)
        #expect(COWSnapshot.cowBytes(originBytes: 1 << 30) == 256 << 20)
        #expect(COWSnapshot.cowBytes(originBytes: 64 << 20) == 72 << 20, "small volumes: the whole origin and a margin")
    }
}
