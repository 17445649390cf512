import CRabbitMQ
import HostSupport
import Logging

#if canImport(Glibc)
import Glibc
#endif

/// One AMQP 0-9-1 connection (one channel) owned by a dedicated OS thread.
///
/// Every librabbitmq call happens on that thread; async callers post jobs and
/// await their results. The connection reconnects by itself (capped exponential
/// backoff, failing over across the URL's hosts) and replays everything declared
/// through it: exchanges, queues, bindings, qos and consumers. Operations wait for
/// a connection until their deadline and then fail with a clear `AMQPError`;
/// publishes in flight when the connection breaks fail with `.connectionLost`.
public final class AMQPConnection: Sendable {
    public static let libraryVersion = String(cString: amqp_version())

    public let configuration: AMQPConfiguration
    private let mailbox: Mailbox
    private let status: StatusBox
    /// Runs tasks on this connection's I/O thread (see `ConnectionExecutor`): a caller or
    /// server task that prefers it makes its round trips without a thread hand-off.
    public let executor: ConnectionExecutor

    public init(
        configuration: AMQPConfiguration, logger: Logger,
        onStateChange: (@Sendable (ConnectionState) -> Void)? = nil
    ) {
        self.configuration = configuration
        self.mailbox = Mailbox()
        self.status = StatusBox(observer: onStateChange)
        self.executor = ConnectionExecutor(mailbox: mailbox)
        let core = ConnectionCore(
            config: configuration, logger: logger, mailbox: mailbox, status: status, executor: executor)
        Self.startThread(core)
    }

    deinit { mailbox.beginClosing() }

    private static func startThread(_ core: ConnectionCore) {
        final class Handover: @unchecked Sendable {  // handed over once, then used only by the new thread
            let core: ConnectionCore
            init(_ c: ConnectionCore) { core = c }
        }
        let handover = Handover(core)
        let started = DetachedThread.start(name: "amqp-io") { handover.core.runLoop() }
        precondition(started, "cannot start the AMQP I/O thread")
    }

    public var state: ConnectionState { status.current }

    /// Closes the connection: queued and waiting operations fail with `.closed`.
    public func close() async {
        await withCheckedContinuation { (cont: CheckedContinuation<Void, Never>) in
            let posted = mailbox.post(Job(run: { _ in cont.resume() }, fail: { _ in cont.resume() }))
            mailbox.beginClosing()
            if !posted { cont.resume() }
        }
    }

    // MARK: - Plumbing

    /// Runs `body` on the I/O thread once connected (or fails at the deadline).
    private func onConnection<T: Sendable>(
        timeout: Duration, needsUnblocked: Bool = false,
        _ body: @escaping @Sendable (ConnectionCore, @escaping @Sendable (Result<T, AMQPError>) -> Void) -> Void
    ) async throws -> T {
        let deadline = ContinuousClock.now + timeout
        return try await withCheckedThrowingContinuation { (cont: CheckedContinuation<T, any Error>) in
            let job = Job(
                run: { core in
                    core.whenConnected(
                        deadline: deadline, needsUnblocked: needsUnblocked,
                        { core in body(core) { cont.resume(with: $0.mapError { $0 as any Error }) } },
                        fail: { cont.resume(throwing: $0) })
                },
                fail: { cont.resume(throwing: $0) })
            if !mailbox.post(job) { cont.resume(throwing: AMQPError.closed) }
        }
    }

    // MARK: - Public operations

    /// Waits until the connection is up (useful at startup and in tests).
    public func waitUntilConnected(timeout: Duration) async throws {
        try await onConnection(timeout: timeout) { _, done in done(.success(())) }
    }

    public func declare(exchange: ExchangeDeclaration, timeout: Duration = .seconds(30)) async throws {
        try await onConnection(timeout: timeout) { core, done in done(core.declare(exchange)) }
    }

    public func declare(queue: QueueDeclaration, timeout: Duration = .seconds(30)) async throws {
        try await onConnection(timeout: timeout) { core, done in done(core.declare(queue)) }
    }

    public func bind(_ binding: QueueBinding, timeout: Duration = .seconds(30)) async throws {
        try await onConnection(timeout: timeout) { core, done in done(core.bind(binding)) }
    }

    public func deleteQueue(_ name: String, timeout: Duration = .seconds(30)) async throws {
        try await onConnection(timeout: timeout) { core, done in done(core.deleteQueue(name)) }
    }

    /// Drops every message in `queue`; returns how many there were.
    @discardableResult
    public func purgeQueue(_ name: String, timeout: Duration = .seconds(30)) async throws -> UInt32 {
        try await onConnection(timeout: timeout) { core, done in done(core.purgeQueue(name)) }
    }

    public func setPrefetch(_ count: UInt16, timeout: Duration = .seconds(30)) async throws {
        try await onConnection(timeout: timeout) { core, done in done(core.setPrefetch(count)) }
    }

    /// Consumes `queue`; `handler` runs on the I/O thread for each delivery and
    /// must return quickly (hand work to a task or stream). Deliveries are acked
    /// on receipt unless `options.manualAck`. The consumer survives reconnects and
    /// queue deletion. Returns the consumer tag.
    @discardableResult
    public func consume(
        queue: String, options: ConsumeOptions = ConsumeOptions(), timeout: Duration = .seconds(30),
        handler: @escaping @Sendable (AMQPDelivery) -> Void
    ) async throws -> String {
        try await onConnection(timeout: timeout) { core, done in
            done(core.consume(queue: queue, options: options, handler: handler))
        }
    }

    /// Acks a delivery of a manual-ack consumer (on the I/O thread, without waiting).
    /// Returns false when the connection that delivered it is gone: the broker has put
    /// the message back in its queue and will deliver it again, so the caller must not
    /// act on this copy. Returns true at once for deliveries that need no ack.
    @discardableResult
    public func ack(_ delivery: AMQPDelivery) -> Bool {
        guard delivery.needsAck else { return true }
        let tag = delivery.deliveryTag, gen = delivery.generation
        guard gen == status.generation.load(ordering: .acquiring) else { return false }
        return mailbox.post(Job(run: { core in core.ack(tag: tag, generation: gen) }, fail: { _ in }))
    }

    /// Consumes `queue` as an AsyncSequence; cancelling iteration cancels the consumer.
    public func deliveries(queue: String, timeout: Duration = .seconds(30)) async throws -> AsyncStream<AMQPDelivery> {
        let (stream, continuation) = AsyncStream<AMQPDelivery>.makeStream(bufferingPolicy: .unbounded)
        let tag = try await consume(queue: queue, timeout: timeout) { continuation.yield($0) }
        continuation.onTermination = { [mailbox] _ in
            _ = mailbox.post(Job(run: { core in core.cancel(consumerTag: tag) }, fail: { _ in }))
        }
        return stream
    }

    public func cancel(consumerTag: String) {
        _ = mailbox.post(Job(run: { core in core.cancel(consumerTag: consumerTag) }, fail: { _ in }))
    }

    /// Publishes and waits for the broker's confirm. With `mandatory`, a message no
    /// queue takes fails fast with `.unroutable`. Waits for a connection (and for
    /// the broker to unblock publishers) until `timeout`.
    /// Callback form of `publish` for hot paths: no task or continuation is
    /// created; `completion` runs once, on the I/O thread, and must be quick.
    public func publish(
        _ body: [UInt8], exchange: String, routingKey: String,
        properties: AMQPProperties = AMQPProperties(), mandatory: Bool = false,
        timeout: Duration = .seconds(30),
        completion: @escaping @Sendable (Result<Void, AMQPError>) -> Void
    ) {
        let deadline = ContinuousClock.now + timeout
        let job = Job(
            run: { core in
                core.whenConnected(
                    deadline: deadline, needsUnblocked: true,
                    { core in
                        core.publish(
                            body: body, exchange: exchange, routingKey: routingKey, properties: properties,
                            mandatory: mandatory, deadline: deadline, completion: completion)
                    }, fail: { completion(.failure($0)) })
            },
            fail: { completion(.failure($0)) })
        if !mailbox.post(job) { completion(.failure(.closed)) }
    }

    public func publish(
        _ body: [UInt8], exchange: String, routingKey: String,
        properties: AMQPProperties = AMQPProperties(), mandatory: Bool = false,
        timeout: Duration = .seconds(30)
    ) async throws {
        let deadline = ContinuousClock.now + timeout
        try await onConnection(timeout: timeout, needsUnblocked: true) { core, done in
            core.publish(
                body: body, exchange: exchange, routingKey: routingKey, properties: properties,
                mandatory: mandatory, deadline: deadline, completion: done)
        }
    }
}

/// What `AMQPConnection.state` reports (and `onStateChange` is told).
public enum ConnectionState: Sendable, Equatable {
    case connecting
    case connected(host: String)
    case disconnected(reason: String)
    case closed
}
