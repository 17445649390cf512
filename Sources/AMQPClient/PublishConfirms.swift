/// Publishes waiting for the broker's confirm on the current channel: a pure value, owned
/// by the I/O thread's `ConnectionCore`. `Waiter` is whoever wants the outcome (a
/// completion in the connection; a plain value in tests).
///
/// With confirms on, the broker numbers a channel's publishes 1, 2, 3… and answers each
/// with basic.ack or basic.nack, possibly for all tags up to one (`multiple`). A mandatory
/// publish that no queue took is first returned (basic.return, which carries no tag),
/// then acked: the oldest matching outstanding publish is marked and fails on its ack.
/// Each operation returns the settled waiters with their results, for the caller to run
/// after the bookkeeping is done.
struct PublishConfirms<Waiter> {
    struct Outstanding {
        let exchange: String
        let routingKey: String
        let mandatory: Bool
        var returned: String?
        let deadline: ContinuousClock.Instant
        let waiter: Waiter
    }

    typealias Settled = (waiter: Waiter, result: Result<Void, AMQPError>)

    private var nextTag: UInt64 = 1
    private var outstanding: [UInt64: Outstanding] = [:]

    init() {}

    var count: Int { outstanding.count }
    var isEmpty: Bool { outstanding.isEmpty }

    /// The earliest deadline of an outstanding publish.
    var soonestDeadline: ContinuousClock.Instant? {
        var soonest: ContinuousClock.Instant?
        for p in outstanding.values where soonest.map({ p.deadline < $0 }) ?? true { soonest = p.deadline }
        return soonest
    }

    /// Records a publish the broker accepted on the socket; returns its delivery tag.
    @discardableResult
    mutating func published(
        exchange: String, routingKey: String, mandatory: Bool,
        deadline: ContinuousClock.Instant, waiter: Waiter
    ) -> UInt64 {
        let tag = nextTag
        outstanding[tag] = Outstanding(
            exchange: exchange, routingKey: routingKey, mandatory: mandatory,
            returned: nil, deadline: deadline, waiter: waiter)
        nextTag += 1
        return tag
    }

    /// basic.return: marks the oldest mandatory publish to that exchange and key not yet
    /// marked, so that its ack fails with `.unroutable`.
    mutating func returned(exchange: String, routingKey: String, reply: String) {
        var oldest: UInt64?
        for (tag, p) in outstanding
        where p.mandatory && p.returned == nil && p.exchange == exchange
            && p.routingKey == routingKey && oldest.map({ tag < $0 }) ?? true
        {
            oldest = tag
        }
        if let oldest { outstanding[oldest]?.returned = reply }
    }

    /// basic.ack (`ok`) or basic.nack for `tag`, or for every tag up to it with `multiple`.
    mutating func confirmed(upTo tag: UInt64, multiple: Bool, ok: Bool) -> [Settled] {
        guard multiple else { return confirmed(tag: tag, ok: ok).map { [$0] } ?? [] }
        let tags = outstanding.keys.filter { $0 <= tag }.sorted()
        var settled: [Settled] = []
        settled.reserveCapacity(tags.count)
        for t in tags {
            guard let p = outstanding.removeValue(forKey: t) else { continue }
            settled.append(Self.outcome(of: p, ok: ok))
        }
        return settled
    }

    /// basic.ack or basic.nack for `tag` alone (not `multiple`: what the broker sends for a
    /// lone publish, once per call): no array, where the general form built two.
    mutating func confirmed(tag: UInt64, ok: Bool) -> Settled? {
        outstanding.removeValue(forKey: tag).map { Self.outcome(of: $0, ok: ok) }
    }

    private static func outcome(of p: Outstanding, ok: Bool) -> Settled {
        if !ok { return (p.waiter, .failure(.nacked)) }
        if let r = p.returned {
            return (p.waiter, .failure(.unroutable(exchange: p.exchange, routingKey: p.routingKey, reply: r)))
        }
        return (p.waiter, .success(()))
    }

    /// Publishes whose deadline has passed without a confirm, oldest first.
    mutating func expire(now: ContinuousClock.Instant) -> [Settled] {
        guard outstanding.values.contains(where: { $0.deadline <= now }) else { return [] }
        let due = outstanding.filter { $0.value.deadline <= now }.keys.sorted()
        return due.compactMap { t in
            outstanding.removeValue(forKey: t).map { ($0.waiter, .failure(.timedOut("no publisher confirm from the broker"))) }
        }
    }

    /// The channel is gone: every outstanding publish fails with `error` (oldest first),
    /// and the next channel numbers its publishes from 1 again.
    mutating func channelClosed(_ error: AMQPError) -> [Settled] {
        let all = outstanding
        outstanding = [:]
        nextTag = 1
        return all.keys.sorted().compactMap { t in all[t].map { ($0.waiter, .failure(error)) } }
    }
}
