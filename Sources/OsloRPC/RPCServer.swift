import AMQPClient
import Logging
import RPCWire
import Synchronization

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
        /// Run each request's task (screening, handler, reply) on the connection's I/O
        /// thread (`AMQPConnection.executor`) instead of the global executor: no thread
        /// hand-off between a delivery, its handler and its reply. Only for handlers that are
        /// short and never block the thread (they suspend on `await` freely): while one runs,
        /// the connection reads nothing and sends no heartbeat.
        public var dispatchOnConnectionThread = false
        public init() {}

        var effectivePrefetch: UInt16 {
            if let prefetch { return prefetch }
            let n = max(1, maxConcurrency)
            return UInt16(clamping: n + max(4, n / 4))
        }
    }

    public let target: RPCTarget
    let connection: AMQPConnection
    let dispatcher: RPCDispatcher
    let options: Options
    let logger: Logger
    let duplicates: Mutex<DuplicateFilter>
    private let fanoutQueue: String
    let replies: ReplySender
    /// Set when a large message went through; the next idle moment trims the heap.
    let sawLargeMessage = Atomic<Bool>(false)

    public init(
        connection: AMQPConnection, target: RPCTarget, dispatcher: RPCDispatcher,
        options: Options = Options(), logger: Logger
    ) {
        precondition(target.server != nil, "an RPC server needs a server name")
        self.connection = connection
        self.target = target
        self.dispatcher = dispatcher
        self.options = options
        self.logger = logger
        self.duplicates = Mutex(DuplicateFilter(capacity: options.duplicateWindow))
        self.fanoutQueue = "\(target.topic)_fanout_\(makeUUIDHex())"
        // The callback publish: the broker's confirm (or basic.return for a missing reply
        // queue) is handled on the I/O thread, and no task waits for it.
        self.replies = ReplySender(options: options, logger: logger) { [connection] body, queue, done in
            connection.publish(
                body, exchange: "", routingKey: queue, properties: .oslo(), mandatory: true,
                timeout: .seconds(30), completion: done)
        }
    }

    /// Declares the topology (same flags and order as oslo) and serves until the
    /// task is cancelled; then stops consuming, lets in-flight requests finish and
    /// deletes its fanout queue. `onReady` runs once consumers are in place.
    public func run(onReady: (@Sendable () -> Void)? = nil) async throws {
        let f = options.flavor
        let topic = target.topic, server = target.server ?? ""  // set: checked in init
        if options.returnMemoryToSystem { MemoryReturn.configure() }
        try await connection.declare(exchange: f.topicExchange(target.exchange))
        try await connection.declare(queue: f.topicQueue(topic))
        try await connection.bind(QueueBinding(queue: topic, exchange: target.exchange, routingKey: topic))
        try await connection.declare(queue: f.topicQueue("\(topic).\(server)"))
        try await connection.bind(
            QueueBinding(
                queue: "\(topic).\(server)", exchange: target.exchange,
                routingKey: "\(topic).\(server)"))
        if options.purgeDirectedQueueOnStart {
            let dropped = try await connection.purgeQueue("\(topic).\(server)")
            if dropped > 0 {
                logger.warning(
                    "dropped requests queued while this server was down (their callers were told it was unavailable)",
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
        let inflight = InflightLimiter(
            limit: options.maxConcurrency,
            executor: options.dispatchOnConnectionThread ? connection.executor : nil
        ) { [weak self] in
            guard trim, let self, self.sawLargeMessage.exchange(false, ordering: .acquiringAndReleasing) else { return }
            // Not on the thread that went idle: that may be the connection's I/O thread.
            Task.detached { MemoryReturn.trim() }
        }
        let consume = ConsumeOptions(
            manualAck: true, prefetch: options.effectivePrefetch,
            maxBodyBytes: options.maxRequestBytes)
        var tags: [String] = []
        for (q, route) in [(topic, RPCRoute.topic), ("\(topic).\(server)", .directed), (fanoutQueue, .fanout)] {
            tags.append(
                try await connection.consume(queue: q, options: consume) { delivery in
                    // On the I/O thread. Acked once a slot is free, before execution (at-most-once).
                    // A slot is usually free now: then the ack is queued here, on this thread, and
                    // leaves in this loop turn, before the task exists (no hand-off back to this
                    // thread for it).
                    let ackedHere: Bool? = inflight.tryAcquire() ? self.connection.ack(delivery) : nil
                    inflight.startReplying(holdingSlot: ackedHere != nil) {
                        // A copy whose connection is gone was requeued by the broker: not ours to run.
                        guard ackedHere ?? self.connection.ack(delivery) else {
                            self.logger.debug("dropping a delivery from a lost connection (the broker redelivers it)")
                            return nil
                        }
                        guard let out = await self.process(delivery, route: route) else { return nil }
                        return { done in self.replies.send(out.reply, to: out.queue, retry: true, done: done) }
                    }
                })
        }
        logger.info(
            "RPC server ready",
            metadata: [
                "target": "\(target)", "fanout_queue": "\(fanoutQueue)", "prefetch": "\(options.effectivePrefetch)",
                "max_request_bytes": "\(options.maxRequestBytes)",
            ])
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
