import AOSAPI
import RPCWire
import SharedLVM
import SimulatedLVM
import Synchronization
import Testing

@testable import AgentCore

/// A job clock the test moves by hand: sleeps return only when `advance` passes their end,
/// and `sleepers(atLeast:)` waits (without polling) until jobs are parked in a sleep, which
/// is where a rate-limited job sits between chunks.
final class ManualJobClock: JobClock {
    private struct Sleeper {
        var id: UInt64
        var until: Double
        var continuation: CheckedContinuation<Void, any Error>
    }

    private struct State {
        var now: Double = 1000
        var wall: Double = 1_800_000_000
        var next: UInt64 = 0
        var sleepers: [Sleeper] = []
        var watchers: [(Int, CheckedContinuation<Void, Never>)] = []
        var freeRunning = false
    }

    private let state = Mutex(State())

    var now: Double { state.withLock { $0.now } }
    var wallNow: Double { state.withLock { $0.wall } }

    func sleep(seconds: Double) async throws {
        guard seconds > 0 else { return }
        let id = state.withLock { s -> UInt64? in
            if s.freeRunning {
                s.now += seconds
                s.wall += seconds
                return nil
            }
            s.next += 1
            return s.next
        }
        guard let id else { return }
        try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (c: CheckedContinuation<Void, any Error>) in
                let watchers = state.withLock { s -> [CheckedContinuation<Void, Never>] in
                    if Task.isCancelled {
                        c.resume(throwing: CancellationError())
                        return []
                    }
                    s.sleepers.append(Sleeper(id: id, until: s.now + seconds, continuation: c))
                    return Self.due(&s)
                }
                for w in watchers { w.resume() }
            }
        } onCancel: {
            let c = state.withLock { s -> CheckedContinuation<Void, any Error>? in
                guard let i = s.sleepers.firstIndex(where: { $0.id == id }) else { return nil }
                return s.sleepers.remove(at: i).continuation
            }
            c?.resume(throwing: CancellationError())
        }
    }

    /// Moves both clocks; every sleep that ends by then returns.
    func advance(by seconds: Double) {
        let woken = state.withLock { s -> [CheckedContinuation<Void, any Error>] in
            s.now += seconds
            s.wall += seconds
            let due = s.sleepers.filter { $0.until <= s.now }
            s.sleepers.removeAll { $0.until <= s.now }
            return due.map(\.continuation)
        }
        for c in woken { c.resume() }
    }

    /// From now on every sleep returns at once, moving the clock by its length (lets the
    /// rest of a job run to its end); sleeping tasks wake.
    func release() {
        let woken = state.withLock { s -> [CheckedContinuation<Void, any Error>] in
            s.freeRunning = true
            if let latest = s.sleepers.map(\.until).max(), latest > s.now {
                s.wall += latest - s.now
                s.now = latest
            }
            defer { s.sleepers = [] }
            return s.sleepers.map(\.continuation)
        }
        for c in woken { c.resume() }
    }

    /// Returns once at least `count` tasks sleep on this clock.
    func sleepers(atLeast count: Int) async {
        await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in
            let ready = state.withLock { s -> Bool in
                if s.sleepers.count >= count { return true }
                s.watchers.append((count, c))
                return false
            }
            if ready { c.resume() }
        }
    }

    var sleeping: Int { state.withLock { $0.sleepers.count } }

    private static func due(_ s: inout State) -> [CheckedContinuation<Void, Never>] {
        let count = s.sleepers.count
        let ready = s.watchers.filter { $0.0 <= count }.map(\.1)
        s.watchers.removeAll { $0.0 <= count }
        return ready
    }
}

/// A simulated cluster with agents whose jobs run on a `ManualJobClock`.
struct JobCluster {
    let sim = SimulatedCluster()
    let root = makeTempDir("aos-jobs-test")
    let clock = ManualJobClock()

    init() { sim.ensureVolumeGroup("vg1", sizeBytes: 10 << 30) }

    func agent(
        _ host: String, hostId: Int, clear: VolumeClear = .zero, bytesPerSecond: UInt64 = 0, maxJobs: Int = 2,
        chunk: UInt64 = 64 << 20
    ) async throws -> AgentService {
        let config = AgentServiceConfiguration(
            host: host, hostId: hostId, volumeGroups: ["vg1"], stateDirectory: "\(root)/\(host)", volumeClear: clear,
            pvWaitTimeout: .milliseconds(200), pvPollInterval: .milliseconds(20), lvNames: .all, maxConcurrentJobs: maxJobs,
            volumeCopyBpsLimit: bytesPerSecond, jobChunkBytes: chunk)
        let agent = try AgentService(
            configuration: config, backend: SimulatedLVMBackend(cluster: sim, hostName: host, hostId: hostId), jobClock: clock)
        await agent.boot()
        return agent
    }

    func names() -> Set<String> { Set(sim.lvNames(vg: "vg1")) }
}

extension AgentService {
    func job(_ id: String) async throws -> JobInfo {
        try JSONValueDecoder().decode(JobInfo.self, from: try await handle(method: "job_info", args: ["id": .string(id)]))
    }

    /// Starts a job through the API and returns its info.
    func startJob(_ method: String, _ args: [String: JSONValue]) async throws -> JobInfo {
        let r = try await call(method, args)
        guard let job = r["job"] else {
            Issue.record("\(method) returned no job: \(r)")
            throw ServiceError(.internal, "no job")
        }
        return try JSONValueDecoder().decode(JobInfo.self, from: job)
    }
}
