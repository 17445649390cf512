/// How long to wait before the next try of something that failed: the one backoff policy of
/// the aos programs. The first retry waits `initial`; each further one doubles the wait up to
/// `maximum`; `attempts` bounds the tries (nil: until cancelled).
///
/// `run` sleeps with `Task.sleep`, so a cancelled task stops retrying at once.
public struct RetryPolicy: Sendable, Hashable {
    public var initial: Duration
    public var maximum: Duration
    /// Total tries including the first; nil means no limit.
    public var attempts: Int?

    public init(initial: Duration, maximum: Duration? = nil, attempts: Int? = nil) {
        precondition(initial >= .zero)
        self.initial = initial
        self.maximum = max(initial, maximum ?? initial)
        self.attempts = attempts.map { max(1, $0) }
    }

    /// The same wait before every retry.
    public static func fixed(_ interval: Duration, attempts: Int? = nil) -> RetryPolicy {
        RetryPolicy(initial: interval, maximum: interval, attempts: attempts)
    }

    /// The wait after `failures` failed tries (1 = after the first failure): `initial`,
    /// doubling up to `maximum`.
    public func delay(afterFailures failures: Int) -> Duration {
        guard failures > 1 else { return initial }
        var d = initial
        for _ in 1..<min(failures, 63) {
            d = d * 2
            if d >= maximum { return maximum }
        }
        return min(d, maximum)
    }

    /// Whether another try is allowed after `tries` tries.
    public func allowsAnother(after tries: Int) -> Bool {
        attempts.map { tries < $0 } ?? true
    }

    /// The outcome of `run`: the last value `body` returned, and how many tries it took.
    public struct Outcome<Value> {
        public var value: Value
        public var tries: Int
    }

    /// Calls `body` until `done` accepts its value, the tries run out, or the task is
    /// cancelled (then the last value is returned at once, without sleeping again).
    public func run<Value>(
        until done: (Value) -> Bool,
        _ body: () async -> Value
    ) async -> Outcome<Value> {
        var tries = 1
        var value = await body()
        while !done(value) && allowsAnother(after: tries) {
            do { try await Task.sleep(for: delay(afterFailures: tries)) } catch { break }
            tries += 1
            value = await body()
        }
        return Outcome(value: value, tries: tries)
    }
}

extension RetryPolicy.Outcome: Sendable where Value: Sendable {}
