import AMQPClient
import Foundation
import Logging
import RPCWire
import Synchronization
import Testing

@testable import OsloRPC

private let replyQ = "reply_0123456789abcdef0123456789abcdef"
private let msgID = "0123456789abcdef0123456789abcdef"

private func delivery(_ text: String, contentType: String? = OsloEnvelope.contentType) -> AMQPDelivery {
    AMQPDelivery(body: Array(text.utf8), properties: AMQPProperties(contentType: contentType))
}

private func failure(_ s: RPCServer.Screened) -> (RPCServer.OutgoingReply?, String)? {
    if case .refused(let r, let why) = s { return (r, why) }
    return nil
}

@Suite struct ScreeningTests {
    let callInner = "{\"method\": \"ping\", \"args\": {}, \"_msg_id\": \"\(msgID)\", \"_reply_q\": \"\(replyQ)\"}"

    @Test func validCallIsPassedOn() {
        let d = AMQPDelivery(
            body: OsloEnvelope.wrap(try! JSONValue.parse(callInner)),
            properties: AMQPProperties(contentType: OsloEnvelope.contentType))
        guard case .request(let r) = RPCServer.screen(d, maxRequestBytes: 1 << 20) else {
            Issue.record("refused a valid call"); return
        }
        #expect(r.replyQueue == replyQ)
    }

    /// Every class that used to leave its caller silent gets a ValueError on its reply queue.
    @Test func undecodableCallsAreAnsweredWithValueError() {
        let escaped = JSONWriter.serialize(.string(callInner))
        let deep = String(repeating: "[", count: 600) + String(repeating: "]", count: 600)
        let bodies = [
            "{\"oslo.version\": \"3.0\", \"oslo.message\": \(escaped)}",  // wrong envelope version
            "{\"oslo.version\": \"2.0\", \"oslo.message\": \(callInner)}",  // oslo.message an object
            "{\"oslo.version\": \"2.0\", \"oslo.message\": 42, \"_msg_id\": \"\(msgID)\", \"_reply_q\": \"\(replyQ)\"}",
            "{\"oslo.version\": \"2.0\", \"x\": \(deep), \"oslo.message\": \(escaped)}",  // nesting past the limit
            "{\"oslo.version\": \"2.0\", \"oslo.message\": \(escaped)",  // truncated
        ]
        for b in bodies {
            guard let (reply, why) = failure(RPCServer.screen(delivery(b), maxRequestBytes: 1 << 20)) else {
                Issue.record("accepted: \(b.prefix(60))"); continue
            }
            #expect(reply?.queue == replyQ)
            #expect(reply?.reply.msgID == msgID)
            #expect(reply?.reply.failure?.className == "ValueError")
            #expect(why.contains("malformed"))
        }
        // A message that parses but is not a valid request answers its own top-level address,
        // not a `_msg_id` nested in its args (which comes first in the text).
        let inner =
            "{\"metho\\u0090d\": \"x\", \"args\": {\"_msg_id\": \"nested\", \"_reply_q\": \"reply_nested\"}, "
            + "\"_msg_id\": \"\(msgID)\", \"_reply_q\": \"\(replyQ)\"}"
        let body = "{\"oslo.version\": \"2.0\", \"oslo.message\": \(JSONWriter.serialize(.string(inner)))}"
        if let (reply, why) = failure(RPCServer.screen(delivery(body), maxRequestBytes: 1 << 20)) {
            #expect(why.contains("'method' is missing"))
            #expect(reply?.reply.msgID == msgID)
            #expect(reply?.queue == replyQ)
        } else {
            Issue.record("accepted: \(inner)")
        }
        // Wrong content type too.
        let d = AMQPDelivery(
            body: OsloEnvelope.wrap(try! JSONValue.parse(callInner)),
            properties: AMQPProperties(contentType: "text/plain"))
        #expect(failure(RPCServer.screen(d, maxRequestBytes: 1 << 20))?.0?.queue == replyQ)
    }

    @Test func forgedReplyQueueGetsNothing() {
        let inner = callInner.replacingOccurrences(of: replyQ, with: "aos-agent.compute-2")
        let body = OsloEnvelope.wrap(try! JSONValue.parse(inner))
        let d = AMQPDelivery(body: body, properties: AMQPProperties(contentType: OsloEnvelope.contentType))
        guard let (reply, _) = failure(RPCServer.screen(d, maxRequestBytes: 1 << 20)) else {
            Issue.record("a forged reply queue was accepted"); return
        }
        #expect(reply == nil)
    }

    @Test func oversizedBodyIsRefusedWithSizeAndLimit() {
        // As the AMQP layer hands it over: the first and last bytes only.
        let inner =
            "{\"method\": \"ping\", \"args\": {\"blob\": \"\(String(repeating: "x", count: 3000))\"}, \"_msg_id\": \"\(msgID)\", \"_reply_q\": \"\(replyQ)\"}"
        let full = OsloEnvelope.wrap(try! JSONValue.parse(inner))
        let d = AMQPDelivery(
            body: Array(full.prefix(512)), properties: AMQPProperties(contentType: OsloEnvelope.contentType),
            bodySize: full.count, bodyTail: Array(full.suffix(512)))
        #expect(d.isTruncated)
        guard let (reply, why) = failure(RPCServer.screen(d, maxRequestBytes: 2048)) else {
            Issue.record("an oversized body was accepted"); return
        }
        #expect(why == "request body of \(full.count) bytes exceeds the limit of 2048 bytes")
        #expect(reply?.queue == replyQ)
        #expect(reply?.reply.failure?.className == "ValueError")
        #expect(reply?.reply.failure?.message.contains("2048") == true)
        // An untruncated body over the limit (a consumer without a cap) is refused the same way.
        let whole = AMQPDelivery(body: full, properties: AMQPProperties(contentType: OsloEnvelope.contentType))
        #expect(failure(RPCServer.screen(whole, maxRequestBytes: 2048))?.0?.queue == replyQ)
        #expect(failure(RPCServer.screen(whole, maxRequestBytes: full.count)) == nil)
    }

    @Test func prefetchFollowsConcurrency() {
        var o = RPCServer.Options()
        o.maxConcurrency = 64
        #expect(o.effectivePrefetch == 80)
        o.maxConcurrency = 4
        #expect(o.effectivePrefetch == 8)
        o.maxConcurrency = 100_000
        #expect(o.effectivePrefetch == UInt16.max)
        o.prefetch = 3
        #expect(o.effectivePrefetch == 3)
    }
}

/// A publish that fails with `unroutable` for queues named in `missing`.
final class FakeBroker: Sendable {
    let missing: Set<String>
    let published = Mutex<[String]>([])
    let attempts = Mutex<[String: Int]>([:])
    init(missing: Set<String>) { self.missing = missing }

    var publish: ReplySender.Publish {
        { [self] _, queue in
            attempts.withLock { $0[queue, default: 0] += 1 }
            if missing.contains(queue) {
                throw AMQPError.unroutable(exchange: "", routingKey: queue, reply: "312 NO_ROUTE")
            }
            published.withLock { $0.append(queue) }
        }
    }
}

@Suite struct ReplySenderTests {
    func sender(_ broker: FakeBroker, retries: Int = 2, timeout: Duration = .milliseconds(50)) -> ReplySender {
        var o = RPCServer.Options()
        o.maxPendingReplyRetries = retries
        o.replyRetryTimeout = timeout
        return ReplySender(
            options: o, logger: Logger(label: "test"), retryInterval: .milliseconds(1),
            publish: broker.publish)
    }

    @Test func missingReplyQueuesDoNotHoldTheCallerAndAreBounded() async {
        let broker = FakeBroker(missing: ["reply_dead"])
        let s = sender(broker, retries: 2, timeout: .seconds(60))
        // 100 replies to a missing queue: each send returns after one attempt.
        for i in 0..<100 { await s.send(RPCReply(msgID: "m\(i)"), to: "reply_dead", retry: true) }
        #expect(s.pendingRetries <= 2)
        // A valid reply still goes out at once.
        await s.send(RPCReply(msgID: "ok"), to: "reply_live", retry: true)
        #expect(broker.published.withLock { $0 } == ["reply_live"])
    }

    @Test func aQueueStillMissingAfterTheRetryWindowIsRemembered() async {
        let broker = FakeBroker(missing: ["reply_dead"])
        let s = sender(broker, retries: 4, timeout: .milliseconds(30))
        await s.send(RPCReply(msgID: "m1"), to: "reply_dead", retry: true)
        await s.waitForRetries()
        #expect(s.isDead("reply_dead"))
        let before = broker.attempts.withLock { $0["reply_dead"] ?? 0 }
        #expect(before >= 2)
        // Later replies to it are dropped without a publish.
        await s.send(RPCReply(msgID: "m2"), to: "reply_dead", retry: true)
        await s.send(.heartbeat(msgID: "m3", uniqueID: "u"), to: "reply_dead", retry: false)
        #expect(broker.attempts.withLock { $0["reply_dead"] ?? 0 } == before)
        #expect(s.pendingRetries == 0)
    }

    @Test func withoutRetryNothingIsLeftBehind() async {
        let broker = FakeBroker(missing: ["reply_dead"])
        let s = sender(broker)
        await s.send(.heartbeat(msgID: "m", uniqueID: "u"), to: "reply_dead", retry: false)
        #expect(s.pendingRetries == 0)
        #expect(!s.isDead("reply_dead"))
    }

    @Test func deadQueueMemoryIsBoundedAndExpires() {
        var d = DeadReplyQueues(ttl: .seconds(60), capacity: 3)
        let t0 = ContinuousClock.now
        for i in 0..<5 { d.insert("reply_\(i)", now: t0) }
        #expect(d.count == 3)
        let oldest = d.contains("reply_0", now: t0)
        let newest = d.contains("reply_4", now: t0)
        let expired = d.contains("reply_4", now: t0 + .seconds(61))
        #expect(!oldest && newest && !expired)
        #expect(d.count == 2)
    }
}

@Suite struct SlotTests {
    /// A reply still being sent (e.g. retried) must not keep the next request waiting.
    @Test func replyPhaseDoesNotHoldAWorkSlot() async {
        let limiter = InflightLimiter(limit: 1)
        let (gate, open) = AsyncStream<Void>.makeStream()
        let secondRan = Mutex(false)
        let (done, finish) = AsyncStream<Void>.makeStream()
        limiter.start {
            return {  // the first request's reply: blocks until the gate opens
                for await _ in gate { break }
            }
        }
        limiter.start {
            secondRan.withLock { $0 = true }
            finish.yield()
            return nil
        }
        for await _ in done { break }  // the second request ran while the first reply was pending
        #expect(secondRan.withLock { $0 })
        open.yield()
        open.finish()
        await limiter.waitUntilIdle()
    }

    @Test func replyingIsBoundedToo() async {
        let limiter = InflightLimiter(limit: 2, replyLimit: 2)
        let (gate, open) = AsyncStream<Void>.makeStream(bufferingPolicy: .unbounded)
        let ran = Mutex(0)
        let (started, startedCont) = AsyncStream<Void>.makeStream(bufferingPolicy: .unbounded)
        for _ in 0..<2 {
            limiter.start {
                ran.withLock { $0 += 1 }
                startedCont.yield()
                return { for await _ in gate { break } }
            }
        }
        var it = started.makeAsyncIterator()
        _ = await it.next(); _ = await it.next()
        // Two replies pending = the limit: a third request waits.
        limiter.start {
            ran.withLock { $0 += 1 }; startedCont.yield(); return nil
        }
        while limiter.queuedCount == 0 && ran.withLock({ $0 }) < 3 { await Task.yield() }
        #expect(ran.withLock { $0 } == 2)
        open.finish()  // both replies complete
        _ = await it.next()
        #expect(ran.withLock { $0 } == 3)
        await limiter.waitUntilIdle()
    }

    /// The callback form (the server's): the reply slot is held until `done` is called, from
    /// whichever thread learns the outcome; the task itself has ended before that.
    @Test func callbackReplyHoldsItsSlotUntilDone() async {
        let limiter = InflightLimiter(limit: 1, replyLimit: 1)
        let pending = Mutex<(@Sendable () -> Void)?>(nil)
        let (started, startedCont) = AsyncStream<Void>.makeStream(bufferingPolicy: .unbounded)
        limiter.startReplying {
            return { done in
                pending.withLock { $0 = done }
                startedCont.yield()
            }
        }
        var it = started.makeAsyncIterator()
        _ = await it.next()  // the first reply is handed on, not yet done
        let ran = Mutex(false)
        limiter.startReplying {
            ran.withLock { $0 = true }
            startedCont.yield()
            return nil
        }
        while limiter.queuedCount == 0 && !ran.withLock({ $0 }) { await Task.yield() }
        #expect(!ran.withLock { $0 })  // waits: the one reply slot is taken
        let done = pending.withLock { $0 }
        done?()
        _ = await it.next()
        #expect(ran.withLock { $0 })
        await limiter.waitUntilIdle()
    }

    /// The server takes a slot on the I/O thread as a request arrives (to ack it there): only
    /// a free one, never ahead of a task already waiting, and the task it starts releases it.
    @Test func slotTakenAtArrivalIsBoundedAndReleased() async {
        let limiter = InflightLimiter(limit: 1, replyLimit: 1)
        #expect(limiter.tryAcquire())
        #expect(!limiter.tryAcquire())  // the one slot is taken
        let (gate, open) = AsyncStream<Void>.makeStream(bufferingPolicy: .unbounded)
        let (started, startedCont) = AsyncStream<Int>.makeStream(bufferingPolicy: .unbounded)
        limiter.startReplying(holdingSlot: true) {
            startedCont.yield(1)
            for await _ in gate { break }
            return nil
        }
        var it = started.makeAsyncIterator()
        #expect(await it.next() == 1)  // ran at once on the slot taken for it
        limiter.startReplying {  // no slot: this one waits in the queue
            startedCont.yield(2)
            return nil
        }
        while limiter.queuedCount == 0 { await Task.yield() }
        open.yield()
        open.finish()
        #expect(await it.next() == 2)  // the first released its slot to the queued one
        await limiter.waitUntilIdle()
        #expect(limiter.runningCount == 0)
        #expect(limiter.tryAcquire())
        limiter.startReplying(holdingSlot: true) { nil }
        await limiter.waitUntilIdle()
        #expect(limiter.runningCount == 0)
    }

    @Test func goingIdleRunsTheHook() async {
        let calls = Mutex(0)
        let limiter = InflightLimiter(limit: 2) { calls.withLock { $0 += 1 } }
        limiter.start { nil }
        await limiter.waitUntilIdle()
        #expect(calls.withLock { $0 } >= 1)
    }
}
