import AMQPClient
import Logging
import RPCWire
import Synchronization

/// What a handler learns about the request besides its arguments.
public struct RPCCallContext: Sendable {
    public var method: String
    /// The caller's context (`_context_*` keys), e.g. request_id, user_id.
    public var context: [String: JSONValue]
    /// When the caller stops waiting (from the message TTL, counted from receipt).
    /// Handlers doing slow work should check it before acting; nil for casts.
    public var deadline: ContinuousClock.Instant?
    public var uniqueID: String?
    public var isCall: Bool
    /// The AMQP `user_id` of the message: the publisher's broker login, checked by RabbitMQ
    /// (a publisher cannot set another user's name). nil when the publisher did not set it
    /// (oslo.messaging never does).
    public var userID: String?
    /// Which of the server's queues the request came from.
    public var route: RPCRoute = .topic
    /// The routing key it was published with (`T`, `T.S`, or the queue name via the default exchange).
    public var routingKey: String = ""
    public var msgID: String?
    public var replyQueue: String?
    public var namespace: String?
    public var version: String?

    public var requestID: String? { context["request_id"]?.stringValue }
    public var hasExpired: Bool { deadline.map { ContinuousClock.now >= $0 } ?? false }
}

/// The queue a request was consumed from: the shared topic queue `T`, the server's own
/// `T.S`, or its private fanout queue (a copy sent to every server of the topic).
public enum RPCRoute: String, Sendable, Equatable {
    case topic
    case directed
    case fanout
}

/// Decides, before dispatch, whether a request may run; a failure is sent back to a caller
/// (when it named a reply queue) and nothing is executed. Must be quick and not block.
public typealias RPCAdmission = @Sendable (RPCCallContext, _ args: [String: JSONValue]) -> RPCFailure?

public typealias RPCHandler = @Sendable (RPCCallContext, [String: JSONValue]) async throws -> JSONValue

/// A set of methods under one namespace and version, like an oslo endpoint object.
public struct RPCEndpoint: Sendable {
    public var namespace: String?
    public var version: RPCVersion
    public var handlers: [String: RPCHandler]

    public init(namespace: String? = nil, version: RPCVersion = RPCVersion(major: 1, minor: 0),
                handlers: [String: RPCHandler] = [:]) {
        self.namespace = namespace
        self.version = version
        self.handlers = handlers
    }
}

/// Finds the handler for a request with oslo's dispatcher rules, or the failure
/// oslo would return (NoSuchMethod / UnsupportedVersion).
public struct RPCDispatcher: Sendable {
    public var endpoints: [RPCEndpoint]

    public init(endpoints: [RPCEndpoint]) { self.endpoints = endpoints }

    public func handler(for request: RPCRequest) -> Result<RPCHandler, RPCFailure> {
        let requested = request.version.flatMap(RPCVersion.init) ?? RPCVersion(major: 1, minor: 0)
        if let v = request.version, RPCVersion(v) == nil {
            return .failure(.unsupportedVersion(v, method: request.method))
        }
        var compatibleFound = false
        for e in endpoints where e.namespace == request.namespace && e.version.canServe(requested) {
            compatibleFound = true
            // Methods starting with '_' are private in oslo's default access policy.
            if !request.method.hasPrefix("_"), let h = e.handlers[request.method] { return .success(h) }
        }
        if compatibleFound { return .failure(.noSuchMethod(request.method)) }
        return .failure(.unsupportedVersion(request.version ?? "1.0", method: request.method))
    }
}

/// An oslo.messaging-compatible RPC server: consumes `T`, `T.S` and a private
/// fanout queue, dispatches to async handlers with bounded concurrency, replies
/// on the caller's reply queue, sends call-monitor heartbeats, drops duplicates.
public final class RPCServer: Sendable {
    public struct Options: Sendable {
        public var flavor = QueueFlavor()
        /// Requests executed at once; more wait in process memory (as with oslo, prefetch 0).
        public var maxConcurrency = 64
        /// How many `_unique_id`s to remember (oslo keeps 16; retries need more).
        public var duplicateWindow = 1024
        /// How long to retry a reply whose queue is missing (oslo: 60 s).
        public var replyRetryTimeout: Duration = .seconds(60)
        /// Drop requests already waiting in `T.S` when the server starts. For a
        /// per-host agent whose callers fail fast while it is down: what queued up
        /// meanwhile was already answered with an error and must not run later.
        public var purgeDirectedQueueOnStart = false
        /// Authorization and transport policy (who may call what, and how); nil admits all.
        public var admit: RPCAdmission?
        public init() {}
    }

    public let target: RPCTarget
    private let connection: AMQPConnection
    private let dispatcher: RPCDispatcher
    private let options: Options
    private let logger: Logger
    private let duplicates: Mutex<DuplicateFilter>
    private let fanoutQueue: String

    public init(connection: AMQPConnection, target: RPCTarget, dispatcher: RPCDispatcher,
                options: Options = Options(), logger: Logger) {
        precondition(target.server != nil, "an RPC server needs a server name")
        self.connection = connection
        self.target = target
        self.dispatcher = dispatcher
        self.options = options
        self.logger = logger
        self.duplicates = Mutex(DuplicateFilter(capacity: options.duplicateWindow))
        self.fanoutQueue = "\(target.topic)_fanout_\(makeUUIDHex())"
    }

    /// Declares the topology (same flags and order as oslo) and serves until the
    /// task is cancelled; then stops consuming, lets in-flight requests finish and
    /// deletes its fanout queue. `onReady` runs once consumers are in place.
    public func run(onReady: (@Sendable () -> Void)? = nil) async throws {
        let f = options.flavor
        let topic = target.topic, server = target.server!
        try await connection.declare(exchange: f.topicExchange(target.exchange))
        try await connection.declare(queue: f.topicQueue(topic))
        try await connection.bind(QueueBinding(queue: topic, exchange: target.exchange, routingKey: topic))
        try await connection.declare(queue: f.topicQueue("\(topic).\(server)"))
        try await connection.bind(QueueBinding(queue: "\(topic).\(server)", exchange: target.exchange,
                                               routingKey: "\(topic).\(server)"))
        if options.purgeDirectedQueueOnStart {
            let dropped = try await connection.purgeQueue("\(topic).\(server)")
            if dropped > 0 {
                logger.warning("dropped requests queued while this server was down (their callers were told it was unavailable)",
                               metadata: ["queue": "\(topic).\(server)", "count": "\(dropped)"])
            }
        }
        try await connection.declare(exchange: f.fanoutExchange(target.fanoutExchange))
        try await connection.declare(queue: f.transientQueue(fanoutQueue))
        try await connection.bind(QueueBinding(queue: fanoutQueue, exchange: target.fanoutExchange, routingKey: topic))

        // Each delivery becomes one task straight from the I/O thread (no stream
        // hop: latency matters). Tasks are unstructured on purpose: on shutdown a
        // request already taken off the queue runs to completion, uncancelled.
        let inflight = InflightLimiter(limit: options.maxConcurrency)
        var tags: [String] = []
        for (q, route) in [(topic, RPCRoute.topic), ("\(topic).\(server)", .directed), (fanoutQueue, .fanout)] {
            tags.append(try await connection.consume(queue: q) { delivery in
                inflight.start { await self.process(delivery, route: route) }
            })
        }
        logger.info("RPC server ready", metadata: ["target": "\(target)", "fanout_queue": "\(fanoutQueue)"])
        onReady?()

        await waitForCancellation()
        for t in tags { connection.cancel(consumerTag: t) }
        await inflight.waitUntilIdle()
        try? await connection.deleteQueue(fanoutQueue, timeout: .seconds(5))
        logger.info("RPC server stopped", metadata: ["target": "\(target)"])
    }

    private func process(_ d: AMQPDelivery, route: RPCRoute) async {
        let request: RPCRequest
        do {
            request = try RPCRequest.decode(body: d.body, contentType: d.properties.contentType)
        } catch {
            logger.warning("dropping malformed RPC message", metadata: ["error": "\(error)", "routing_key": "\(d.routingKey)"])
            await replyToMalformed(d, error: error)
            return
        }
        if let u = request.uniqueID, duplicates.withLock({ $0.isDuplicate(u) }) {
            logger.info("ignoring duplicate message", metadata: ["unique_id": "\(u)", "method": "\(request.method)"])
            return
        }
        var deadline: ContinuousClock.Instant?
        if let exp = d.properties.expiration, let ms = Int64(exp) {
            deadline = d.receivedAt + .milliseconds(max(0, min(ms, 7 * 86_400_000)))  // bounded: no overflow
        }
        if let explicit = RPCDeadline.instant(from: request.context) {
            deadline = min(deadline ?? explicit, explicit)
        }
        let ctx = RPCCallContext(method: request.method, context: request.context, deadline: deadline,
                                 uniqueID: request.uniqueID, isCall: request.isCall, userID: d.properties.userID,
                                 route: route, routingKey: d.routingKey, msgID: request.msgID,
                                 replyQueue: request.replyQueue, namespace: request.namespace, version: request.version)
        if ctx.hasExpired {
            logger.warning("not executing a request whose caller has given up",
                           metadata: ["method": "\(request.method)", "msg_id": "\(request.msgID ?? "-")"])
            return
        }
        var heartbeat: Task<Void, Never>?
        if let msgID = request.msgID, let replyQ = request.replyQueue, let t = request.monitorTimeout {
            let interval = Int(t / 2)  // decode keeps `t` finite and bounded
            if interval >= 1 {
                heartbeat = Task {
                    while !Task.isCancelled {
                        try? await Task.sleep(for: .seconds(interval))
                        if Task.isCancelled { break }
                        await self.send(.heartbeat(msgID: msgID, uniqueID: makeUUIDHex()), to: replyQ, retry: false)
                    }
                }
            } else {
                logger.warning("call_monitor_timeout below 2 s: no heartbeats sent", metadata: ["method": "\(request.method)"])
            }
        }
        var reply: RPCReply?
        let admitted: Result<RPCHandler, RPCFailure>
        if let refusal = options.admit?(ctx, request.args) {
            logger.warning("refused RPC request", metadata: [
                "method": "\(request.method)", "user": "\(ctx.userID ?? "-")", "route": "\(route.rawValue)",
                "error": "\(refusal.message)"])
            admitted = .failure(refusal)
        } else {
            admitted = dispatcher.handler(for: request)
        }
        switch admitted {
        case .failure(let f):
            reply = RPCReply(failure: f, msgID: request.msgID ?? "")
        case .success(let handler):
            do {
                let result = try await handler(ctx, request.args)
                reply = RPCReply(result: result, msgID: request.msgID ?? "")
            } catch {
                let failure = (error as? any RPCFailureConvertible)?.rpcFailure
                    ?? RPCFailure(className: "RuntimeError", module: "builtins", message: "\(error)")
                logger.info("RPC method failed", metadata: ["method": "\(request.method)", "error": "\(failure)"])
                reply = RPCReply(failure: failure, msgID: request.msgID ?? "")
            }
        }
        heartbeat?.cancel()
        if var reply, let replyQ = request.replyQueue, request.msgID != nil {
            reply.uniqueID = makeUUIDHex()
            await send(reply, to: replyQ, retry: true)
        }
    }

    /// Bad input must still get a clear error when the caller can be identified.
    private func replyToMalformed(_ d: AMQPDelivery, error: any Error) async {
        guard let o = try? OsloEnvelope.unwrap(d.body),
              case .string(let msgID) = o["_msg_id"] ?? .null,
              case .string(let replyQ) = o["_reply_q"] ?? .null else { return }
        let f = RPCFailure(className: "ValueError", module: "builtins", message: "malformed RPC request: \(error)")
        await send(RPCReply(failure: f, msgID: msgID, uniqueID: makeUUIDHex()), to: replyQ, retry: false)
    }

    private func send(_ reply: RPCReply, to queue: String, retry: Bool) async {
        let body = reply.encodeBody()
        let giveUp = ContinuousClock.now + options.replyRetryTimeout
        while true {
            do {
                try await connection.publish(body, exchange: "", routingKey: queue, properties: .oslo(), mandatory: true,
                                             timeout: .seconds(30))
                return
            } catch AMQPError.unroutable where retry && ContinuousClock.now < giveUp {
                try? await Task.sleep(for: .milliseconds(250))
            } catch AMQPError.connectionLost where retry && ContinuousClock.now < giveUp {
                continue
            } catch {
                logger.warning("could not send RPC reply", metadata: ["reply_queue": "\(queue)", "error": "\(error)"])
                return
            }
        }
    }
}

/// Suspends until the current task is cancelled.
func waitForCancellation() async {
    let (stream, cont) = AsyncStream<Void>.makeStream()
    await withTaskCancellationHandler {
        for await _ in stream {}
    } onCancel: {
        cont.finish()
    }
}

/// Bounds how many requests execute at once and lets shutdown wait for them.
final class InflightLimiter: Sendable {
    private struct State {
        /// Started and not finished (queued or running): what shutdown waits for.
        var outstanding = 0
        var running = 0
        var queued: [CheckedContinuation<Void, Never>] = []
        var idleWaiters: [CheckedContinuation<Void, Never>] = []
    }

    private let limit: Int
    private let state = Mutex(State())

    init(limit: Int) { self.limit = max(1, limit) }

    /// Called from the I/O thread: never blocks, only creates a task.
    func start(_ work: @escaping @Sendable () async -> Void) {
        state.withLock { $0.outstanding += 1 }
        Task {
            await acquire()
            await work()
            release()
        }
    }

    private func acquire() async {
        await withCheckedContinuation { cont in
            let now = state.withLock { s -> Bool in
                if s.running < limit {
                    s.running += 1
                    return true
                }
                s.queued.append(cont)
                return false
            }
            if now { cont.resume() }
        }
    }

    private func release() {
        let (next, idle) = state.withLock { s -> (CheckedContinuation<Void, Never>?, [CheckedContinuation<Void, Never>]) in
            s.outstanding -= 1
            var next: CheckedContinuation<Void, Never>?
            if s.queued.isEmpty { s.running -= 1 } else { next = s.queued.removeFirst() }  // slot handed over
            var idle: [CheckedContinuation<Void, Never>] = []
            if s.outstanding == 0 { idle = s.idleWaiters; s.idleWaiters = [] }
            return (next, idle)
        }
        next?.resume()
        for w in idle { w.resume() }
    }

    func waitUntilIdle() async {
        await withCheckedContinuation { cont in
            let idle = state.withLock { s -> Bool in
                if s.outstanding == 0 { return true }
                s.idleWaiters.append(cont)
                return false
            }
            if idle { cont.resume() }
        }
    }
}
