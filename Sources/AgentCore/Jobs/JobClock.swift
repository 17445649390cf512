import Synchronization

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// The time jobs run by: monotonic seconds for rates, limits and backoff, wall seconds for
/// what they report. Injected so tests drive rate limits and retries without waiting.
public protocol JobClock: Sendable {
    /// Seconds on a monotonic clock (any origin).
    var now: Double { get }
    /// Seconds since the epoch (reported times, `next_attempt_at`).
    var wallNow: Double { get }
    /// Returns after `seconds` of `now`; throws `CancellationError` when the task is cancelled.
    func sleep(seconds: Double) async throws
}

/// The real clocks.
public struct SystemJobClock: JobClock {
    public init() {}

    public var now: Double { Self.read(CLOCK_MONOTONIC) }
    public var wallNow: Double { Self.read(CLOCK_REALTIME) }

    public func sleep(seconds: Double) async throws {
        guard seconds > 0, seconds.isFinite else { return }
        try await Task.sleep(for: .milliseconds(Int64(min(seconds, 86_400) * 1000)))
    }

    private static func read(_ id: clockid_t) -> Double {
        var ts = timespec()
        clock_gettime(id, &ts)
        return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
    }
}

/// Bytes per second shared by every job of the agent (`[agent] volume_copy_bps_limit`).
/// Each chunk reserves its bytes on a virtual timeline and waits until its turn, so the
/// average rate holds over any stretch longer than one chunk, however many jobs run.
final class RateLimiter: Sendable {
    let bytesPerSecond: UInt64
    let clock: any JobClock
    private let nextFree: Mutex<Double>

    init(bytesPerSecond: UInt64, clock: any JobClock) {
        self.bytesPerSecond = bytesPerSecond
        self.clock = clock
        self.nextFree = Mutex(-Double.infinity)
    }

    /// Waits until `bytes` may move. No limit: returns at once.
    func wait(for bytes: UInt64) async throws {
        guard bytesPerSecond > 0 else { return }
        let now = clock.now
        let delay = nextFree.withLock { next -> Double in
            let start = max(now, next)
            next = start + Double(bytes) / Double(bytesPerSecond)
            return start - now
        }
        if delay > 0 { try await clock.sleep(seconds: delay) }
    }
}
