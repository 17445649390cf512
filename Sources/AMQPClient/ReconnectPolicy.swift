/// When to try connecting again, and to which of the URL's hosts: a pure value, owned by
/// the I/O thread's `ConnectionCore`.
///
/// A failed attempt moves to the next host. Every host of a multi-host URL is tried once
/// in a row without waiting; after each full round the wait doubles from `initialDelay`
/// up to `maxDelay`. A connection that was up and then broke waits `initialDelay` (the
/// broker is probably restarting) and starts counting again.
struct ReconnectPolicy: Sendable {
    /// Spreads a delay (e.g. so that many agents do not reconnect in the same instant).
    /// The result is kept within `0...maxDelay`.
    typealias Jitter = @Sendable (Duration) -> Duration

    let initialDelay: Duration
    let maxDelay: Duration
    let hostCount: Int
    let jitter: Jitter
    /// Failed attempts since the last successful connection.
    private(set) var failedAttempts = 0
    /// Index into the URL's hosts of the next attempt.
    private(set) var hostIndex = 0

    /// `jitter` defaults to none: the delays are exactly the doubling sequence. `firstHost`: the
    /// index of the URL's host to try first (taken modulo the host count).
    init(
        initialDelay: Duration, maxDelay: Duration, hostCount: Int, firstHost: Int = 0,
        jitter: @escaping Jitter = { $0 }
    ) {
        self.initialDelay = max(.zero, initialDelay)
        self.maxDelay = max(.zero, maxDelay)
        self.hostCount = max(1, hostCount)
        self.hostIndex = ((firstHost % self.hostCount) + self.hostCount) % self.hostCount
        self.jitter = jitter
    }

    /// The jitter of `spreadLoad` connections: a delay d becomes a uniformly random one in
    /// [d/2, d], so that the agents of a cloud do not all come back in the same instant.
    static let halfToFull: Jitter = { d in
        let ns = d.components.seconds &* 1_000_000_000 &+ d.components.attoseconds / 1_000_000_000
        guard ns > 1 else { return d }
        return .nanoseconds(Int64.random(in: ((ns &+ 1) / 2)...ns))
    }

    /// An attempt failed: moves to the next host and returns how long to wait before it.
    mutating func attemptFailed() -> Duration {
        failedAttempts += 1
        hostIndex = (hostIndex + 1) % hostCount
        // Try every host of a multi-host URL once before backing off.
        guard failedAttempts % hostCount == 0 else { return .zero }
        let rounds = (failedAttempts - 1) / hostCount
        return spread(doubled(initialDelay, times: min(rounds, 10)))
    }

    /// Connected: the next failure starts a fresh count (on the same host).
    mutating func connected() { failedAttempts = 0 }

    /// A working connection broke: wait `initialDelay` and start counting again.
    mutating func connectionLost() -> Duration {
        failedAttempts = 0
        return spread(initialDelay)
    }

    private func doubled(_ d: Duration, times: Int) -> Duration {
        var d = d
        for _ in 0..<times where d < maxDelay { d = d * 2 }
        return min(d, maxDelay)
    }

    private func spread(_ d: Duration) -> Duration {
        guard d > .zero else { return d }
        return min(max(.zero, jitter(d)), max(maxDelay, initialDelay))
    }
}
