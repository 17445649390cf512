import Testing

@testable import AMQPClient

@Suite struct PublishConfirmsTests {
    private typealias Confirms = PublishConfirms<String>
    private let t0 = ContinuousClock.now

    private func publish(
        _ c: inout Confirms, _ name: String, exchange: String = "x", key: String = "k",
        mandatory: Bool = false, after: Duration = .seconds(30)
    ) -> UInt64 {
        c.published(exchange: exchange, routingKey: key, mandatory: mandatory, deadline: t0 + after, waiter: name)
    }

    private func outcome(_ s: [Confirms.Settled]) -> [String] {
        s.map { w, r in
            switch r {
            case .success: return "\(w):ok"
            case .failure(let e): return "\(w):\(e)"
            }
        }
    }

    private static func error(_ r: Result<Void, AMQPError>) -> AMQPError? {
        if case .failure(let e) = r { return e }
        return nil
    }

    @Test func tagsCountFromOneAndAnAckSettlesOnlyItsOwnTag() {
        var c = Confirms()
        #expect(publish(&c, "a") == 1)
        #expect(publish(&c, "b") == 2)
        #expect(publish(&c, "c") == 3)
        #expect(outcome(c.confirmed(upTo: 2, multiple: false, ok: true)) == ["b:ok"])
        #expect(c.count == 2)
        #expect(c.confirmed(upTo: 2, multiple: false, ok: true).isEmpty)  // twice, or unknown: nothing
        #expect(c.confirmed(upTo: 99, multiple: false, ok: true).isEmpty)
    }

    @Test func aMultipleAckSettlesEveryTagUpToItInOrder() {
        var c = Confirms()
        for n in ["a", "b", "c", "d"] { _ = publish(&c, n) }
        _ = c.confirmed(upTo: 2, multiple: false, ok: true)
        #expect(outcome(c.confirmed(upTo: 3, multiple: true, ok: true)) == ["a:ok", "c:ok"])
        #expect(c.count == 1)
    }

    @Test func nacksFail() {
        var c = Confirms()
        for n in ["a", "b", "c"] { _ = publish(&c, n) }
        let refused = "the broker refused the message (basic.nack)"
        #expect(outcome(c.confirmed(upTo: 3, multiple: true, ok: false)) == ["a:\(refused)", "b:\(refused)", "c:\(refused)"])
        #expect(c.isEmpty)
    }

    @Test func aReturnMarksTheOldestMatchingMandatoryPublishWhichFailsOnItsAck() {
        var c = Confirms()
        _ = publish(&c, "plain")  // not mandatory: never returned
        _ = publish(&c, "other-key", key: "z", mandatory: true)
        _ = publish(&c, "first", mandatory: true)
        _ = publish(&c, "second", mandatory: true)
        c.returned(exchange: "x", routingKey: "k", reply: "312 NO_ROUTE")
        let settled = c.confirmed(upTo: 4, multiple: true, ok: true)
        #expect(settled.map(\.waiter) == ["plain", "other-key", "first", "second"])
        #expect(
            settled.map { Self.error($0.result) } == [
                nil, nil, .unroutable(exchange: "x", routingKey: "k", reply: "312 NO_ROUTE"), nil,
            ])
    }

    /// The single-tag form the I/O thread uses for a lone ack or nack settles like the general one.
    @Test func aLoneAckOrNackSettlesItsTagWithTheSameOutcomes() {
        var c = Confirms()
        _ = publish(&c, "kept")
        _ = publish(&c, "returned", mandatory: true)
        _ = publish(&c, "refused")
        c.returned(exchange: "x", routingKey: "k", reply: "312 NO_ROUTE")
        let returned = c.confirmed(tag: 2, ok: true)
        #expect(returned?.waiter == "returned")
        #expect(returned.map { Self.error($0.result) } == .unroutable(exchange: "x", routingKey: "k", reply: "312 NO_ROUTE"))
        let refused = c.confirmed(tag: 3, ok: false)
        #expect(refused?.waiter == "refused" && refused.map { Self.error($0.result) } == .nacked)
        #expect(c.confirmed(tag: 3, ok: true) == nil)  // already settled
        let kept = c.confirmed(tag: 1, ok: true)
        #expect(kept?.waiter == "kept" && kept.map { Self.error($0.result) } == .some(nil))
        #expect(c.isEmpty)
    }

    @Test func aSecondReturnMarksTheNextOne() {
        var c = Confirms()
        _ = publish(&c, "first", mandatory: true)
        _ = publish(&c, "second", mandatory: true)
        c.returned(exchange: "x", routingKey: "k", reply: "r1")
        c.returned(exchange: "x", routingKey: "k", reply: "r2")
        c.returned(exchange: "x", routingKey: "k", reply: "r3")  // nothing left to mark
        #expect(
            c.confirmed(upTo: 2, multiple: true, ok: true).map { Self.error($0.result) } == [
                .unroutable(exchange: "x", routingKey: "k", reply: "r1"),
                .unroutable(exchange: "x", routingKey: "k", reply: "r2"),
            ])
    }

    @Test func losingTheChannelFailsAllOutstandingAndRestartsTheNumbering() {
        var c = Confirms()
        for n in ["a", "b", "c"] { _ = publish(&c, n) }
        _ = c.confirmed(upTo: 1, multiple: false, ok: true)
        #expect(
            outcome(c.channelClosed(.connectionLost("socket closed"))) == [
                "b:connection to the broker lost: socket closed", "c:connection to the broker lost: socket closed",
            ])
        #expect(c.isEmpty && c.soonestDeadline == nil)
        #expect(publish(&c, "fresh") == 1)
        // A late ack for the old channel's tag 3 settles nothing.
        #expect(c.confirmed(upTo: 3, multiple: false, ok: true).isEmpty)
        #expect(outcome(c.confirmed(upTo: 1, multiple: false, ok: true)) == ["fresh:ok"])
    }

    @Test func publishesPastTheirDeadlineTimeOutOldestFirst() {
        var c = Confirms()
        _ = publish(&c, "late", after: .seconds(5))
        _ = publish(&c, "soon", after: .seconds(1))
        _ = publish(&c, "sooner", after: .milliseconds(500))
        #expect(c.soonestDeadline == t0 + .milliseconds(500))
        #expect(c.expire(now: t0).isEmpty)
        #expect(
            outcome(c.expire(now: t0 + .seconds(1))) == [
                "soon:timed out: no publisher confirm from the broker",
                "sooner:timed out: no publisher confirm from the broker",
            ])
        #expect(c.soonestDeadline == t0 + .seconds(5))
        #expect(c.count == 1)
    }
}
