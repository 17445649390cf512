import HostSupport
import RPCWire
import SharedLVM
import SimulatedLVM
import Synchronization
import Testing

@testable import AgentCore

/// Wraps a backend: every LV/VG command takes `delay`, and the wrapper records how many ran
/// at once overall and whether two ever overlapped on one LV.
final class SlowBackend: LVMBackend {
    let inner: any LVMBackend
    let delay: Duration
    let inFlight = Mutex(0)
    let maxInFlight = Mutex(0)
    let perLV = Mutex<[String: Int]>([:])
    let overlapOnOneLV = Mutex(false)

    init(_ inner: any LVMBackend, delay: Duration) {
        self.inner = inner
        self.delay = delay
    }

    private func timed<T>(_ key: String?, _ body: () async throws(LVMError) -> T) async throws(LVMError) -> T {
        inFlight.withLock { n in
            n += 1
            let current = n
            maxInFlight.withLock { $0 = max($0, current) }
        }
        if let key {
            perLV.withLock { m in
                m[key, default: 0] += 1
                if m[key]! > 1 { overlapOnOneLV.withLock { $0 = true } }
            }
        }
        defer {
            inFlight.withLock { $0 -= 1 }
            if let key { perLV.withLock { $0[key]! -= 1 } }
        }
        try? await Task.sleep(for: delay)
        return try await body()
    }

    func createLV(vg: String, name: String, sizeBytes: UInt64, activate: Bool) async throws(LVMError) -> LogicalVolume {
        try await timed("\(vg)/\(name)") { () async throws(LVMError) in
            try await inner.createLV(vg: vg, name: name, sizeBytes: sizeBytes, activate: activate)
        }
    }
    func extendLV(vg: String, name: String, newSizeBytes: UInt64, sharedUpdate: Bool) async throws(LVMError) {
        try await timed("\(vg)/\(name)") { () async throws(LVMError) in
            try await inner.extendLV(vg: vg, name: name, newSizeBytes: newSizeBytes, sharedUpdate: sharedUpdate)
        }
    }
    func removeLV(vg: String, name: String) async throws(LVMError) {
        try await timed("\(vg)/\(name)") { () async throws(LVMError) in try await inner.removeLV(vg: vg, name: name) }
    }
    func activate(vg: String, name: String, mode: LVActivationMode) async throws(LVMError) {
        try await timed("\(vg)/\(name)") { () async throws(LVMError) in try await inner.activate(vg: vg, name: name, mode: mode) }
    }
    func deactivate(vg: String, name: String) async throws(LVMError) {
        try await timed("\(vg)/\(name)") { () async throws(LVMError) in try await inner.deactivate(vg: vg, name: name) }
    }
    func addTag(vg: String, name: String, tag: String) async throws(LVMError) {
        try await timed("\(vg)/\(name)") { () async throws(LVMError) in try await inner.addTag(vg: vg, name: name, tag: tag) }
    }
    func removeTag(vg: String, name: String, tag: String) async throws(LVMError) {
        try await timed("\(vg)/\(name)") { () async throws(LVMError) in try await inner.removeTag(vg: vg, name: name, tag: tag) }
    }
    func refresh(vg: String, name: String) async throws(LVMError) {
        try await timed("\(vg)/\(name)") { () async throws(LVMError) in try await inner.refresh(vg: vg, name: name) }
    }
    func listLVs(vg: String) async throws(LVMError) -> [LogicalVolume] {
        try await timed(nil) { () async throws(LVMError) in try await inner.listLVs(vg: vg) }
    }
    func lvInfo(vg: String, name: String) async throws(LVMError) -> LogicalVolume {
        try await timed("\(vg)/\(name)") { () async throws(LVMError) in try await inner.lvInfo(vg: vg, name: name) }
    }
    func vgInfo(vg: String) async throws(LVMError) -> VolumeGroup {
        try await timed(nil) { () async throws(LVMError) in try await inner.vgInfo(vg: vg) }
    }
    // Boot-time and status calls are not slowed down.
    func lockStart(vg: String) async throws(LVMError) { try await inner.lockStart(vg: vg) }
    func lockStop(vg: String) async throws(LVMError) { try await inner.lockStop(vg: vg) }
    func lockspaceStarted(vg: String) async throws(LVMError) -> Bool { try await inner.lockspaceStarted(vg: vg) }
    func lockStatus() async throws(LVMError) -> SanlockStatus { try await inner.lockStatus() }
    func deviceSize(vg: String, name: String) async throws(LVMError) -> UInt64? { try await inner.deviceSize(vg: vg, name: name) }
    func renameLV(vg: String, from: String, to: String) async throws(LVMError) { try await inner.renameLV(vg: vg, from: from, to: to) }
    func fillRange(vg: String, name: String, offset: UInt64, length: UInt64, fill: RangeFill) async throws(LVMError) -> RangeFill {
        try await inner.fillRange(vg: vg, name: name, offset: offset, length: length, fill: fill)
    }
    func copyRange(vg: String, source: String, target: String, offset: UInt64, length: UInt64) async throws(LVMError) {
        try await inner.copyRange(vg: vg, source: source, target: target, offset: offset, length: length)
    }
    func checksum(vg: String, name: String, length: UInt64) async throws(LVMError) -> String {
        try await inner.checksum(vg: vg, name: name, length: length)
    }
    func pvsPresent(vg: String) async throws(LVMError) -> Bool { try await inner.pvsPresent(vg: vg) }
    func lockspaceProblem(vg: String) async throws(LVMError) -> LVMErrorCode? { try await inner.lockspaceProblem(vg: vg) }
    func dropLockspace(vg: String) async throws(LVMError) { try await inner.dropLockspace(vg: vg) }
}

struct ConcurrencyTests {
    @Test func boundedConcurrencyAndOneOperationPerLV() async throws {
        let c = Cluster(vgSize: 40 << 30)
        let slow = SlowBackend(SimulatedLVMBackend(cluster: c.sim, hostName: "host-a", hostId: 1), delay: .milliseconds(20))
        let a = try await makeAgent(slow, host: "host-a", hostId: 1, stateDir: "\(c.root)/a", maxConcurrent: 3)
        // 8 LVs, each hammered by 4 concurrent requests of different kinds.
        try await withThrowingTaskGroup(of: Void.self) { group in
            for i in 0..<8 {
                let name = JSONValue.string("lv\(i)")
                group.addTask {
                    try await a.call("create_lv", ["vg": "vg1", "name": name, "size_gb": 1])
                    try await withThrowingTaskGroup(of: Void.self) { inner in
                        inner.addTask { _ = try await a.call("activate_lv", ["vg": "vg1", "name": name, "mode": "shared"]) }
                        inner.addTask {
                            _ = try await a.call("extend_lv", ["vg": "vg1", "name": name, "size_gb": 2, "shared_update": true])
                        }
                        inner.addTask { _ = try await a.call("lv_info", ["vg": "vg1", "name": name]) }
                        inner.addTask { _ = try await a.call("refresh_lv", ["vg": "vg1", "name": name]) }
                        try await inner.waitForAll()
                    }
                }
            }
            try await group.waitForAll()
        }
        #expect(slow.maxInFlight.withLock { $0 } <= 3)
        #expect(slow.maxInFlight.withLock { $0 } >= 2, "different LVs should run in parallel")
        #expect(slow.overlapOnOneLV.withLock { $0 } == false)
        #expect(a.health()["active_lvs"]?.arrayValue?.count == 8)
    }

    @Test func semaphoreIsFIFOAndCounts() async {
        let s = AsyncSemaphore(2)
        await s.acquire()
        await s.acquire()
        final class Order: Sendable { let list = Mutex<[Int]>([]) }
        let order = Order()
        let waiters = (0..<3).map { i in
            Task {
                await s.acquire()
                order.list.withLock { $0.append(i) }
            }
        }
        while s.waiting < 3 { await Task.yield() }
        for _ in 0..<3 { s.release() }
        for w in waiters { await w.value }
        #expect(order.list.withLock { Set($0) } == [0, 1, 2])
        #expect(s.waiting == 0)
    }

    @Test func keyedLockReleasesKeys() async {
        let l = KeyedAsyncLock()
        await l.lock("a")
        await l.lock("b")
        #expect(l.heldKeys == 2)
        let t = Task {
            await l.lock("a"); l.unlock("a")
        }
        l.unlock("a")
        await t.value
        l.unlock("b")
        #expect(l.heldKeys == 0)
    }
}
