import AMQPClient
import Logging
import RPCWire
import Synchronization

/// Why a call did not return a result.
public enum RPCCallError: Error, Sendable, CustomStringConvertible {
    /// The server raised; carries oslo's serialized exception.
    case remote(RPCFailure)
    /// No reply within the call timeout, or no heartbeat within the monitor timeout.
    case timedOut(method: String, msgID: String, after: Duration, monitor: Bool)
    /// No queue is bound for the target: no such server is running.
    case undeliverable(target: RPCTarget, reason: String)
    /// The broker could not be reached or refused the request.
    case transport(AMQPError)
    /// A reply to this call arrived but was not accepted: larger than the client's
    /// `maxReplyBytes`, or not an oslo reply. The server may have done the work.
    case badReply(method: String, msgID: String, reason: String)

    public var description: String {
        switch self {
        case .remote(let f): return "remote error: \(f.className): \(f.message)"
        case .timedOut(let m, let id, let after, let monitor):
            return monitor
                ? "no heartbeat from the server within \(after) for '\(m)' (message ID \(id))"
                : "timed out after \(after) waiting for a reply to '\(m)' (message ID \(id))"
        case .undeliverable(let t, _): return "no server is listening on \(t)"
        case .transport(let e): return "messaging error: \(e)"
        case .badReply(let m, let id, let reason): return "unusable reply to '\(m)' (message ID \(id)): \(reason)"
        }
    }
}

/// An oslo.messaging-compatible RPC client (call, cast, fanout cast) on one
/// AMQP connection, with one reply queue per client like oslo's per-transport one.
///
/// Replies are as hostile as requests: anyone who may publish to reply queues and learns
/// this client's queue name (it is in every request) can send to it. A reply above
/// `maxReplyBytes` is never copied whole, and one that is too large or does not decode
/// fails the call it names (a `_msg_id` found by a tolerant scan) with `badReply` at once
/// rather than leaving it to its timeout.
public final class RPCClient: Sendable {
    private struct Pending {
        let continuation: CheckedContinuation<JSONValue, any Error>
        let method: String
        let start: ContinuousClock.Instant
        let deadline: ContinuousClock.Instant
        let monitor: Duration?
        var monitorDeadline: ContinuousClock.Instant?
        var lastResult: JSONValue = .null
    }

    private struct State {
        var pending: [String: Pending] = [:]
        var replyQueueReady: Task<Void, any Error>?
        /// The reply queue is declared and consumed (the common case: no task to await).
        var replyQueueConsumed = false
        var declaredExchanges: Set<String> = []
        /// One timer task per client, alive only while calls are pending (a task
        /// per call costs a scheduler wake-up on the hot path).
        var sweeperRunning = false
    }

    private let connection: AMQPConnection
    private let flavor: QueueFlavor
    private let logger: Logger
    private let state = Mutex(State())
    public let replyQueue: String
    /// Replies larger than this fail their call (`badReply`) instead of being copied and decoded.
    public let maxReplyBytes: Int

    /// Above the largest reply our servers send (a `list_volumes` of a whole cloud), below the
    /// broker's own message limit (128 MiB by default in RabbitMQ 3.10).
    public static let defaultMaxReplyBytes = 64 << 20

    public init(
        connection: AMQPConnection, flavor: QueueFlavor = QueueFlavor(), logger: Logger,
        maxReplyBytes: Int = RPCClient.defaultMaxReplyBytes
    ) {
        self.connection = connection
        self.flavor = flavor
        self.logger = logger
        self.replyQueue = "reply_\(makeUUIDHex())"
        self.maxReplyBytes = max(4096, maxReplyBytes)  // room for any failure reply
    }

    // MARK: Call

    /// Calls `method` and returns its result. `timeout` bounds the whole call and
    /// travels as the message TTL, so a server never picks it up after the caller
    /// gave up. `monitorTimeout` (≥ 2 s) asks the server for heartbeats.
    ///
    /// Cancelling the calling task ends the call at once with `CancellationError` (not an
    /// `RPCCallError`), whether it is still waiting for the broker or already for the reply:
    /// its pending-reply entry is released and a reply arriving later is dropped. A request
    /// already published may still run on the server.
    public func call(
        _ target: RPCTarget, method: String, args: [String: JSONValue] = [:],
        context: [String: JSONValue] = [:], timeout: Duration = .seconds(60),
        monitorTimeout: Duration? = nil, namespace: String? = nil, version: String? = nil
    ) async throws -> JSONValue {
        try Task.checkCancellation()
        let start = ContinuousClock.now
        let deadline = start + timeout
        do {
            try await ensureReplyQueue(timeout: timeout)
            try await ensureExchange(flavor.topicExchange(target.exchange), timeout: deadline - .now)
        } catch let e as AMQPError {
            throw RPCCallError.transport(e)
        }
        let msgID = makeUUIDHex()
        // The message TTL bounds the time in the queue only; the absolute deadline
        // lets a Swift server refuse a request that waited in its own backlog or
        // for a lock past the moment this caller gives up.
        var context = context
        if context[RPCDeadline.contextKey] == nil {
            context[RPCDeadline.contextKey] = .double(RPCDeadline.wallClockNow() + timeout.seconds)
        }
        let request = RPCRequest(
            method: method, args: args, namespace: namespace, version: version, msgID: msgID,
            replyQueue: replyQueue, monitorTimeout: monitorTimeout?.seconds.rounded(),
            uniqueID: makeUUIDHex(), context: context)
        let body = request.encodeBody()
        return try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (cont: CheckedContinuation<JSONValue, any Error>) in
                let startSweeper = state.withLock { s -> Bool in
                    s.pending[msgID] = Pending(
                        continuation: cont, method: method, start: start, deadline: deadline,
                        monitor: monitorTimeout, monitorDeadline: monitorTimeout.map { .now + $0 })
                    if s.sweeperRunning { return false }
                    s.sweeperRunning = true
                    return true
                }
                // Started whatever happens next: it clears `sweeperRunning` once nothing is pending.
                if startSweeper { Task { await self.sweepTimeouts() } }
                // Cancelled before the entry existed: the handler below found nothing to end.
                if Task.isCancelled { return finish(msgID, .failure(CancellationError())) }
                publishRequest(body, msgID: msgID, target: target, deadline: deadline)
            }
        } onCancel: {
            self.finish(msgID, .failure(CancellationError()))
        }
    }

    /// Calls waiting for a reply (tests).
    var pendingCount: Int { state.withLock { $0.pending.count } }

    /// Publishes a call; if the connection breaks mid-publish it retries with the
    /// same `_unique_id`, which the server's duplicate filter turns into one call.
    /// Completion-driven (no task per call) because this is the hot path.
    private func publishRequest(_ body: [UInt8], msgID: String, target: RPCTarget, deadline: ContinuousClock.Instant) {
        let remaining = deadline - .now
        guard remaining > .zero else { return }  // watchTimeout reports it
        connection.publish(
            body, exchange: target.exchange, routingKey: target.routingKey,
            properties: .oslo(expiration: remaining), mandatory: true, timeout: remaining
        ) { result in
            switch result {
            case .success:
                return
            case .failure(.connectionLost):
                self.publishRequest(body, msgID: msgID, target: target, deadline: deadline)
            case .failure(.unroutable(_, _, let reply)):
                self.finish(msgID, .failure(RPCCallError.undeliverable(target: target, reason: reply)))
            case .failure(let e):
                if case .notConnected = e, ContinuousClock.now >= deadline { return }
                self.finish(msgID, .failure(RPCCallError.transport(e)))
            }
        }
    }

    /// Fails calls whose deadline or monitor deadline passed. Wakes at the earliest
    /// deadline, and at least every 100 ms (a newer call may have a shorter timeout);
    /// exits when no call is pending, so an idle client has no timer at all.
    private func sweepTimeouts() async {
        while true {
            let now = ContinuousClock.now
            let (expired, next) = state.withLock { s -> ([(String, Pending)], ContinuousClock.Instant?) in
                var expired: [(String, Pending)] = []
                var next: ContinuousClock.Instant?
                for (id, p) in s.pending {
                    let due = min(p.deadline, p.monitorDeadline ?? p.deadline)
                    if due <= now { expired.append((id, p)) } else { next = min(next ?? due, due) }
                }
                for (id, _) in expired { s.pending[id] = nil }
                if next == nil { s.sweeperRunning = false }
                return (expired, next)
            }
            for (id, p) in expired {
                let monitorFired = p.monitorDeadline.map { $0 < p.deadline && $0 <= now } ?? false
                let after = monitorFired ? p.monitor ?? .zero : p.deadline - p.start
                p.continuation.resume(
                    throwing: RPCCallError.timedOut(
                        method: p.method, msgID: id, after: after,
                        monitor: monitorFired))
            }
            guard let next else { return }
            try? await Task.sleep(until: min(next, now + .milliseconds(100)), clock: .continuous)
        }
    }

    private func finish(_ msgID: String, _ result: Result<JSONValue, any Error>) {
        guard let p = state.withLock({ $0.pending.removeValue(forKey: msgID) }) else { return }
        p.continuation.resume(with: result)
    }

    /// Runs on the connection's I/O thread for every reply: must stay quick.
    private func onReply(_ d: AMQPDelivery) {
        if d.isTruncated || d.bodySize > maxReplyBytes {
            return reject(d, reason: "a reply of \(d.bodySize) bytes exceeds this client's limit of \(maxReplyBytes) bytes")
        }
        let reply: RPCReply
        do {
            reply = try RPCReply.decode(body: d.body, contentType: d.properties.contentType)
        } catch {
            return reject(d, reason: "not a valid oslo reply: \(error)")
        }
        if !reply.ending {
            // A heartbeat (or the first half of a legacy two-message reply).
            state.withLock { s in
                guard var p = s.pending[reply.msgID] else { return }
                if !reply.result.isNull { p.lastResult = reply.result }
                if let m = p.monitor { p.monitorDeadline = .now + m }
                s.pending[reply.msgID] = p
            }
            return
        }
        guard let p = state.withLock({ $0.pending.removeValue(forKey: reply.msgID) }) else { return }
        if let f = reply.failure {
            p.continuation.resume(throwing: RPCCallError.remote(f))
        } else {
            p.continuation.resume(returning: reply.result.isNull ? p.lastResult : reply.result)
        }
    }

    /// A reply that cannot be used: fails the pending call it names, if any, else only logs.
    private func reject(_ d: AMQPDelivery, reason: String) {
        let msgID = RPCReplyAddress.scanMsgID(d.body) ?? RPCReplyAddress.scanMsgID(d.bodyTail)
        let p = msgID.flatMap { id in state.withLock { $0.pending.removeValue(forKey: id) } }
        logger.warning(
            "dropping an unusable reply",
            metadata: [
                "error": "\(reason)", "msg_id": "\(msgID ?? "(none found)")", "call": "\(p?.method ?? "(none pending)")",
                "user": "\(d.properties.userID ?? "-")",
            ])
        guard let p, let msgID else { return }
        p.continuation.resume(throwing: RPCCallError.badReply(method: p.method, msgID: msgID, reason: reason))
    }

    private func ensureReplyQueue(timeout: Duration) async throws {
        let task = state.withLock { s -> Task<Void, any Error>? in
            if s.replyQueueConsumed { return nil }
            if let t = s.replyQueueReady { return t }
            let t = Task {
                try await self.connection.declare(queue: self.flavor.transientQueue(self.replyQueue), timeout: timeout)
                try await self.connection.consume(
                    queue: self.replyQueue, options: ConsumeOptions(maxBodyBytes: self.maxReplyBytes), timeout: timeout
                ) { [weak self] d in
                    self?.onReply(d)
                }
            }
            s.replyQueueReady = t
            return t
        }
        guard let task else { return }
        do {
            try await valueUnlessCancelled(task)
            state.withLock { $0.replyQueueConsumed = true }
        } catch is CancellationError {
            throw CancellationError()  // the declaration goes on for the next caller
        } catch {
            state.withLock { if $0.replyQueueReady == task { $0.replyQueueReady = nil } }
            throw error
        }
    }

    private func ensureExchange(_ e: ExchangeDeclaration, timeout: Duration) async throws {
        if state.withLock({ $0.declaredExchanges.contains(e.name) }) { return }
        // In a task of its own so that a cancelled caller need not wait for it.
        try await valueUnlessCancelled(
            Task {
                try await self.connection.declare(exchange: e, timeout: timeout)
                self.state.withLock { _ = $0.declaredExchanges.insert(e.name) }
            })
    }

    // MARK: Cast

    /// Fire-and-forget, like oslo's cast (no reply, no TTL). `mandatory` makes a
    /// cast to a topic nobody listens on fail instead of vanishing.
    public func cast(
        _ target: RPCTarget, method: String, args: [String: JSONValue] = [:],
        context: [String: JSONValue] = [:], namespace: String? = nil, version: String? = nil,
        mandatory: Bool = false, timeout: Duration = .seconds(30)
    ) async throws {
        let request = RPCRequest(
            method: method, args: args, namespace: namespace, version: version,
            uniqueID: makeUUIDHex(), context: context)
        do {
            try await ensureExchange(flavor.topicExchange(target.exchange), timeout: timeout)
            try await connection.publish(
                request.encodeBody(), exchange: target.exchange, routingKey: target.routingKey,
                properties: .oslo(), mandatory: mandatory, timeout: timeout)
        } catch AMQPError.unroutable(_, _, let reply) {
            throw RPCCallError.undeliverable(target: target, reason: reply)
        } catch let e as AMQPError {
            throw RPCCallError.transport(e)
        }
    }

    /// Sends to every server of `topic` through `<topic>_fanout`.
    public func fanoutCast(
        topic: String, method: String, args: [String: JSONValue] = [:],
        context: [String: JSONValue] = [:], timeout: Duration = .seconds(30)
    ) async throws {
        let target = RPCTarget(topic: topic)
        let request = RPCRequest(method: method, args: args, uniqueID: makeUUIDHex(), context: context)
        do {
            try await ensureExchange(flavor.fanoutExchange(target.fanoutExchange), timeout: timeout)
            try await connection.publish(
                request.encodeBody(), exchange: target.fanoutExchange, routingKey: "",
                properties: .oslo(), timeout: timeout)
        } catch let e as AMQPError {
            throw RPCCallError.transport(e)
        }
    }
}
