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
///
/// Bounded on the receive path: each consumer holds at most `prefetch` unacked
/// messages, a body above `maxRequestBytes` is never copied whole, and a delivery is
/// acked when a work slot is free (still before execution: at-most-once, like oslo).
/// Replies are sent after the slot is released; replies waiting for a missing reply
/// queue are bounded, and queues found missing are remembered so that later replies
/// to them are dropped at once.
public final class RPCServer: Sendable {
    public struct Options: Sendable {
        public var flavor = QueueFlavor()
        /// Requests executed at once.
        public var maxConcurrency = 64
        /// Unacked requests the broker sends each of the three consumers; nil means
        /// `maxConcurrency` plus a quarter (at least 4) of headroom, so a freed slot finds
        /// the next request already here.
        public var prefetch: UInt16?
        /// The largest request body accepted. A larger one is refused with a ValueError
        /// reply (when a reply address is found in its first or last bytes) and is never
        /// parsed nor kept.
        public var maxRequestBytes = 1_048_576
        /// How many `_unique_id`s to remember (oslo keeps 16; retries need more).
        public var duplicateWindow = 1024
        /// How long to retry a reply whose queue is missing (oslo: 60 s).
        public var replyRetryTimeout: Duration = .seconds(60)
        /// Replies retried at once for a missing reply queue; more are dropped (logged).
        public var maxPendingReplyRetries = 32
        /// Reply queues found missing are remembered this long (oslo: 60 s) and replies
        /// to them dropped at once; at most `deadReplyQueueCapacity` (oslo: 200) of them.
        public var deadReplyQueueTTL: Duration = .seconds(60)
        public var deadReplyQueueCapacity = 200
        /// Give freed memory back to the system after large messages (Glibc: a fixed mmap
        /// threshold at start, `malloc_trim` when the server goes idle after one).
        public var returnMemoryToSystem = true
        /// Drop requests already waiting in `T.S` when the server starts. For a
        /// per-host agent whose callers fail fast while it is down: what queued up
        /// meanwhile was already answered with an error and must not run later.
        public var purgeDirectedQueueOnStart = false
        /// Authorization and transport policy (who may call what, and how); nil admits all.
        public var admit: RPCAdmission?
        public init() {}

        var effectivePrefetch: UInt16 {
            if let prefetch { return prefetch }
            let n = max(1, maxConcurrency)
            return UInt16(clamping: n + max(4, n / 4))
        }
    }

    public let target: RPCTarget
    private let connection: AMQPConnection
    private let dispatcher: RPCDispatcher
    private let options: Options
    private let logger: Logger
    private let duplicates: Mutex<DuplicateFilter>
    private let fanoutQueue: String
    private let replies: ReplySender
    /// Set when a large message went through; the next idle moment trims the heap.
    private let sawLargeMessage = Atomic<Bool>(false)

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
        self.replies = ReplySender(options: options, logger: logger) { [connection] body, queue in
            try await connection.publish(body, exchange: "", routingKey: queue, properties: .oslo(), mandatory: true,
                                         timeout: .seconds(30))
        }
    }

    /// Declares the topology (same flags and order as oslo) and serves until the
    /// task is cancelled; then stops consuming, lets in-flight requests finish and
    /// deletes its fanout queue. `onReady` runs once consumers are in place.
    public func run(onReady: (@Sendable () -> Void)? = nil) async throws {
        let f = options.flavor
        let topic = target.topic, server = target.server!
        if options.returnMemoryToSystem { MemoryReturn.configure() }
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
        let trim = options.returnMemoryToSystem
        let inflight = InflightLimiter(limit: options.maxConcurrency) { [weak self] in
            guard trim, let self, self.sawLargeMessage.exchange(false, ordering: .acquiringAndReleasing) else { return }
            MemoryReturn.trim()
        }
        let consume = ConsumeOptions(manualAck: true, prefetch: options.effectivePrefetch,
                                     maxBodyBytes: options.maxRequestBytes)
        var tags: [String] = []
        for (q, route) in [(topic, RPCRoute.topic), ("\(topic).\(server)", .directed), (fanoutQueue, .fanout)] {
            tags.append(try await connection.consume(queue: q, options: consume) { delivery in
                inflight.start {
                    // Acked once a slot is free, before execution (at-most-once). A copy
                    // whose connection is gone was requeued by the broker: not ours to run.
                    guard self.connection.ack(delivery) else {
                        self.logger.debug("dropping a delivery from a lost connection (the broker redelivers it)")
                        return nil
                    }
                    guard let out = await self.process(delivery, route: route) else { return nil }
                    return { await self.replies.send(out.reply, to: out.queue, retry: true) }
                }
            })
        }
        logger.info("RPC server ready", metadata: [
            "target": "\(target)", "fanout_queue": "\(fanoutQueue)", "prefetch": "\(options.effectivePrefetch)",
            "max_request_bytes": "\(options.maxRequestBytes)"])
        onReady?()

        await waitForCancellation()
        for t in tags { connection.cancel(consumerTag: t) }
        await inflight.waitUntilIdle()
        try? await connection.deleteQueue(fanoutQueue, timeout: .seconds(5))
        logger.info("RPC server stopped", metadata: ["target": "\(target)"])
    }

    struct OutgoingReply: Sendable {
        var reply: RPCReply
        var queue: String
    }

    /// Runs one request inside a work slot; returns the reply to send once the slot is free.
    private func process(_ d: AMQPDelivery, route: RPCRoute) async -> OutgoingReply? {
        if d.bodySize >= MemoryReturn.largeMessageBytes { sawLargeMessage.store(true, ordering: .releasing) }
        let request: RPCRequest
        switch Self.screen(d, maxRequestBytes: options.maxRequestBytes) {
        case .request(let r):
            request = r
        case .refused(let reply, let why):
            logger.warning("refusing RPC message", metadata: [
                "error": "\(why)", "size": "\(d.bodySize)", "routing_key": "\(d.routingKey)",
                "user": "\(d.properties.userID ?? "-")", "reply_queue": "\(reply?.queue ?? "(none found)")"])
            return reply
        }
        if let u = request.uniqueID, duplicates.withLock({ $0.isDuplicate(u) }) {
            logger.info("ignoring duplicate message", metadata: ["unique_id": "\(u)", "method": "\(request.method)"])
            return nil
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
            return nil
        }
        var heartbeat: Task<Void, Never>?
        if let msgID = request.msgID, let replyQ = request.replyQueue, let t = request.monitorTimeout {
            let interval = Int(t / 2)  // decode keeps `t` finite and bounded
            if interval >= 1 {
                heartbeat = Task {
                    while !Task.isCancelled {
                        try? await Task.sleep(for: .seconds(interval))
                        if Task.isCancelled { break }
                        await self.replies.send(.heartbeat(msgID: msgID, uniqueID: makeUUIDHex()), to: replyQ, retry: false)
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
        guard var reply, let replyQ = request.replyQueue, request.msgID != nil else { return nil }
        reply.uniqueID = makeUUIDHex()
        return OutgoingReply(reply: reply, queue: replyQ)
    }

    enum Screened {
        case request(RPCRequest)
        /// Not executed; the ValueError reply when a reply address was found.
        case refused(OutgoingReply?, reason: String)
    }

    /// Size check and decoding, before anything else looks at a delivery.
    static func screen(_ d: AMQPDelivery, maxRequestBytes: Int) -> Screened {
        if d.isTruncated || d.bodySize > maxRequestBytes || d.body.count > maxRequestBytes {
            let size = max(d.bodySize, d.body.count)
            let why = "request body of \(size) bytes exceeds the limit of \(maxRequestBytes) bytes"
            return .refused(malformedReply(d, message: why), reason: why)
        }
        do {
            return .request(try RPCRequest.decode(body: d.body, contentType: d.properties.contentType))
        } catch {
            let why = "malformed RPC request: \(error)"
            return .refused(malformedReply(d, message: why), reason: why)
        }
    }

    /// Bad input must still get a clear error when the caller can be identified: the
    /// reply address comes from a tolerant scan (the body did not parse, or was not kept).
    static func malformedReply(_ d: AMQPDelivery, message: String) -> OutgoingReply? {
        guard let address = RPCServer.replyAddress(of: d) else { return nil }
        let f = RPCFailure(className: "ValueError", module: "builtins", message: message)
        return OutgoingReply(reply: RPCReply(failure: f, msgID: address.msgID, uniqueID: makeUUIDHex()),
                             queue: address.replyQueue)
    }

    /// Where to answer a request that cannot be decoded: scanned in the kept bytes (both
    /// ends of a truncated body; oslo callers write `_msg_id` after the arguments).
    static func replyAddress(of d: AMQPDelivery) -> RPCReplyAddress? {
        if let a = RPCReplyAddress.scan(d.body) { return a }
        if !d.bodyTail.isEmpty, let a = RPCReplyAddress.scan(d.bodyTail) { return a }
        // A body not truncated but longer than the scan window: look at its end too.
        if d.bodyTail.isEmpty, d.body.count > 65_536 { return RPCReplyAddress.scan(d.body.suffix(65_536)) }
        return nil
    }
}

/// Sends replies outside work slots. A reply whose queue is missing is retried (as
/// oslo does, up to `replyRetryTimeout`) by a bounded number of background tasks; a
/// queue still missing then is remembered (`deadReplyQueueTTL`, at most
/// `deadReplyQueueCapacity`) and later replies to it are dropped at once.
final class ReplySender: Sendable {
    typealias Publish = @Sendable (_ body: [UInt8], _ queue: String) async throws -> Void

    private struct State {
        var retrying = 0
        var dead: DeadReplyQueues
        var idleWaiters: [CheckedContinuation<Void, Never>] = []
    }

    private let publish: Publish
    private let logger: Logger
    private let retryTimeout: Duration
    private let retryInterval: Duration
    private let maxRetrying: Int
    private let state: Mutex<State>

    init(options: RPCServer.Options, logger: Logger, retryInterval: Duration = .milliseconds(250),
         publish: @escaping Publish) {
        self.publish = publish
        self.logger = logger
        self.retryTimeout = options.replyRetryTimeout
        self.retryInterval = retryInterval
        self.maxRetrying = max(0, options.maxPendingReplyRetries)
        self.state = Mutex(State(dead: DeadReplyQueues(ttl: options.deadReplyQueueTTL,
                                                       capacity: options.deadReplyQueueCapacity)))
    }

    /// Replies being retried in the background right now.
    var pendingRetries: Int { state.withLock { $0.retrying } }

    func isDead(_ queue: String) -> Bool { state.withLock { $0.dead.contains(queue, now: .now) } }

    /// One attempt now; with `retry`, a missing queue hands the reply to a background
    /// retry (if fewer than `maxPendingReplyRetries` are running). Returns after the first
    /// attempt in every case.
    func send(_ reply: RPCReply, to queue: String, retry: Bool) async {
        if isDead(queue) {
            logger.info("dropping RPC reply: its reply queue was found missing recently",
                        metadata: ["reply_queue": "\(queue)", "msg_id": "\(reply.msgID)"])
            return
        }
        let body = reply.encodeBody()
        switch await attempt(body, queue) {
        case .sent, .failed:
            return
        case .missing:
            guard retry else { return }
        }
        let accepted = state.withLock { s -> Bool in
            guard s.retrying < maxRetrying else { return false }
            s.retrying += 1
            return true
        }
        guard accepted else {
            logger.warning("dropping RPC reply: its reply queue is missing and too many replies are already waiting",
                           metadata: ["reply_queue": "\(queue)", "msg_id": "\(reply.msgID)", "waiting": "\(maxRetrying)"])
            return
        }
        Task {
            defer { retryFinished() }
            let giveUp = ContinuousClock.now + retryTimeout
            while ContinuousClock.now < giveUp {
                try? await Task.sleep(for: retryInterval)
                if isDead(queue) {
                    logger.info("dropping RPC reply: its reply queue was found missing",
                                metadata: ["reply_queue": "\(queue)", "msg_id": "\(reply.msgID)"])
                    return
                }
                if await attempt(body, queue) != .missing { return }
            }
            state.withLock { $0.dead.insert(queue, now: .now) }
            logger.warning("abandoning RPC reply: its reply queue does not exist (later replies to it are dropped)",
                           metadata: ["reply_queue": "\(queue)", "msg_id": "\(reply.msgID)", "after": "\(retryTimeout)"])
        }
    }

    private func retryFinished() {
        let waiters = state.withLock { s -> [CheckedContinuation<Void, Never>] in
            s.retrying -= 1
            guard s.retrying == 0 else { return [] }
            defer { s.idleWaiters = [] }
            return s.idleWaiters
        }
        for w in waiters { w.resume() }
    }

    /// Returns once no reply is being retried (tests, shutdown).
    func waitForRetries() async {
        await withCheckedContinuation { cont in
            let idle = state.withLock { s -> Bool in
                if s.retrying == 0 { return true }
                s.idleWaiters.append(cont)
                return false
            }
            if idle { cont.resume() }
        }
    }

    private enum Attempt { case sent, missing, failed }

    private func attempt(_ body: [UInt8], _ queue: String) async -> Attempt {
        do {
            try await publish(body, queue)
            return .sent
        } catch AMQPError.unroutable {
            return .missing
        } catch AMQPError.connectionLost {
            return .missing  // may not have arrived: try again (a duplicate reply is ignored by the caller)
        } catch {
            logger.warning("could not send RPC reply", metadata: ["reply_queue": "\(queue)", "error": "\(error)"])
            return .failed
        }
    }
}

/// Reply queues found missing, remembered for `ttl` (oslo: 60 s, up to 200 queues).
struct DeadReplyQueues: Sendable {
    private var expiry: [String: ContinuousClock.Instant] = [:]
    private var order: [String] = []
    let ttl: Duration
    let capacity: Int

    init(ttl: Duration, capacity: Int) {
        self.ttl = ttl
        self.capacity = max(1, capacity)
    }

    var count: Int { expiry.count }

    mutating func insert(_ queue: String, now: ContinuousClock.Instant) {
        if expiry[queue] == nil {
            order.append(queue)
            if order.count > capacity {
                let oldest = order.removeFirst()
                expiry[oldest] = nil
            }
        }
        expiry[queue] = now + ttl
    }

    mutating func contains(_ queue: String, now: ContinuousClock.Instant) -> Bool {
        guard let until = expiry[queue] else { return false }
        if now < until { return true }
        expiry[queue] = nil
        order.removeAll { $0 == queue }
        return false
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
///
/// A task holds a slot while it runs its work; what the work returns (sending the reply)
/// runs after the slot is released. Replies being sent are bounded too (`replyLimit` of
/// them): a new request waits for a slot while that many are still going out.
final class InflightLimiter: Sendable {
    typealias After = @Sendable () async -> Void

    private struct State {
        /// Started and not finished (queued, running or replying): what shutdown waits for.
        var outstanding = 0
        var running = 0
        var replying = 0
        var queued: [CheckedContinuation<Void, Never>] = []
        var idleWaiters: [CheckedContinuation<Void, Never>] = []

        /// Hands free slots to waiting tasks; returns whom to resume.
        mutating func grant(limit: Int, replyLimit: Int) -> [CheckedContinuation<Void, Never>] {
            var out: [CheckedContinuation<Void, Never>] = []
            while !queued.isEmpty, running < limit, replying < replyLimit {
                running += 1
                out.append(queued.removeFirst())
            }
            return out
        }
    }

    private let limit: Int
    private let replyLimit: Int
    private let state = Mutex(State())
    private let onIdle: @Sendable () -> Void

    /// `replyLimit` defaults to `limit`, at least 16.
    init(limit: Int, replyLimit: Int? = nil, onIdle: @escaping @Sendable () -> Void = {}) {
        self.limit = max(1, limit)
        self.replyLimit = max(1, replyLimit ?? max(16, limit))
        self.onIdle = onIdle
    }

    /// Tasks waiting for a slot (their deliveries are bounded by the consumers' prefetch).
    var queuedCount: Int { state.withLock { $0.queued.count } }
    var runningCount: Int { state.withLock { $0.running } }

    /// Called from the I/O thread: never blocks, only creates a task.
    func start(_ work: @escaping @Sendable () async -> After?) {
        state.withLock { $0.outstanding += 1 }
        Task {
            await acquire()
            let after = await work()
            let wake = state.withLock { s -> [CheckedContinuation<Void, Never>] in
                s.running -= 1
                if after != nil { s.replying += 1 }
                return s.grant(limit: limit, replyLimit: replyLimit)
            }
            for w in wake { w.resume() }
            if let after {
                await after()
                let wake = state.withLock { s -> [CheckedContinuation<Void, Never>] in
                    s.replying -= 1
                    return s.grant(limit: limit, replyLimit: replyLimit)
                }
                for w in wake { w.resume() }
            }
            finish()
        }
    }

    private func acquire() async {
        await withCheckedContinuation { cont in
            let now = state.withLock { s -> Bool in
                if s.running < limit && s.replying < replyLimit && s.queued.isEmpty {
                    s.running += 1
                    return true
                }
                s.queued.append(cont)
                return false
            }
            if now { cont.resume() }
        }
    }

    private func finish() {
        let idle = state.withLock { s -> [CheckedContinuation<Void, Never>]? in
            s.outstanding -= 1
            guard s.outstanding == 0 else { return nil }
            defer { s.idleWaiters = [] }
            return s.idleWaiters
        }
        guard let idle else { return }
        onIdle()
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
