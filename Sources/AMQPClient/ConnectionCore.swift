import CRabbitMQ
import Logging

#if canImport(Glibc)
import Glibc
#endif

/// Everything that touches the librabbitmq handle. Confined to one OS thread
/// (the library is not thread-safe); other threads reach it only through `Mailbox`.
/// Not Sendable on purpose.
///
/// Its policies are pure values (`ReconnectPolicy`, `Topology`, `PublishConfirms`); the
/// handle lives in `Session`, present only in `Link.connected`. The frame pump is in
/// ConnectionCore+Frames.swift.
final class ConnectionCore {
    /// Whether a connection is up; the handle exists only inside `.connected`.
    enum Link {
        case disconnected
        case connected(Session)
    }

    struct Waiting {
        let deadline: ContinuousClock.Instant
        let needsUnblocked: Bool
        let run: (ConnectionCore) -> Void
        let fail: (AMQPError) -> Void
    }

    typealias Completion = @Sendable (Result<Void, AMQPError>) -> Void

    let config: AMQPConfiguration
    var logger: Logger
    let mailbox: Mailbox
    let status: StatusBox
    /// Runs the tasks that prefer this connection, between polls.
    let executor: ConnectionExecutor

    private(set) var link = Link.disconnected
    private var reconnect: ReconnectPolicy
    private var nextAttemptAt = ContinuousClock.now
    private var lastError = "not connected yet"
    /// Replayed after every reconnect.
    var topology: Topology
    var confirms = PublishConfirms<Completion>()
    private var waiting: [Waiting] = []
    /// The last poll found the mailbox's eventfd readable.
    private var eventFDSignalled = false
    /// The socket may hold bytes the library has not read: the last poll said so (or timed
    /// out: the library sends and checks heartbeats only inside its calls), or the pump stopped
    /// before draining it. Cleared once the pump has read what there was, so that a loop turn
    /// woken for queued work does not ask the socket again (each ask is a `recv` that fails with
    /// EAGAIN and the library's `poll` with a zero timeout; docs/performance.md, "The frame pump
    /// reads the socket only when poll says so").
    var socketMayBeReadable = true
    /// When the pump last ran: it runs at least once per heartbeat tick whatever the socket said.
    var lastPumpAt = ContinuousClock.now
    /// Loop turns that skipped the poll because work was queued: after a few, the socket is
    /// looked at (without waiting) so that a steady stream of work cannot starve reading.
    private var pollsSkipped = 0
    /// The delivery whose frames the pump is reading (basic.deliver seen, header and body
    /// frames still coming); nil between messages and after a teardown.
    var inbound: InboundDelivery?

    init(config: AMQPConfiguration, logger: Logger, mailbox: Mailbox, status: StatusBox, executor: ConnectionExecutor) {
        self.config = config
        self.logger = logger
        self.mailbox = mailbox
        self.status = status
        self.executor = executor
        self.topology = Topology(prefetch: config.prefetchCount)
        let hostCount = max(1, config.url.hosts.count)
        var jitter: ReconnectPolicy.Jitter = { $0 }
        if config.spreadLoad { jitter = ReconnectPolicy.halfToFull }
        self.reconnect = ReconnectPolicy(
            initialDelay: config.reconnectInitialDelay, maxDelay: config.reconnectMaxDelay, hostCount: hostCount,
            firstHost: config.spreadLoad ? Int.random(in: 0..<hostCount) : 0, jitter: jitter)
    }

    var session: Session? {
        if case .connected(let s) = link { return s }
        return nil
    }

    var isConnected: Bool { session != nil }

    // MARK: - Thread main loop

    func runLoop() {
        mailbox.registerIOThread()
        let taskExecutor = executor.asUnownedTaskExecutor()
        var batch: [Work] = []
        while true {
            mailbox.drainWakeups(signalled: eventFDSignalled)
            eventFDSignalled = false
            // Work queued by the work itself (a pinned task's publish, the task a reply
            // resumes) runs in the same turn, without a poll in between; bounded so that
            // frames are still read under a flood of posts.
            for _ in 0..<64 {
                mailbox.take(into: &batch)
                if batch.isEmpty { break }
                for work in batch {
                    switch work {
                    case .job(let job): job.run(self)
                    case .task(let task): task.runSynchronously(on: taskExecutor)
                    }
                }
                batch.removeAll(keepingCapacity: true)  // what the jobs held (bodies) goes now
            }
            if mailbox.isClosing { break }
            if !isConnected && ContinuousClock.now >= nextAttemptAt { connect() }
            if let s = session, socketMayBeReadable || libraryHasInput(s) || ContinuousClock.now - lastPumpAt >= heartbeatTick {
                pump()
            }
            expireDeadlines()
            pollOnce()
        }
        shutdown()
    }

    /// Frames or bytes the library has already read off the socket.
    func libraryHasInput(_ s: Session) -> Bool {
        amqp_frames_enqueued(s.handle) != 0 || amqp_data_in_buffer(s.handle) != 0
    }

    /// How long the loop may wait without running the pump: often enough to send heartbeats
    /// (the library only does it inside calls).
    private var heartbeatTickMs: Int { config.heartbeat > 0 ? max(250, config.heartbeat * 1000 / 4) : 60_000 }
    private var heartbeatTick: Duration { .milliseconds(heartbeatTickMs) }

    private func pollOnce() {
        var timeoutMs: Int
        let now = ContinuousClock.now
        var sockfd: Int32 = -1
        switch link {
        case .connected(let s):
            if libraryHasInput(s) { return }
            if mailbox.hasWork {  // posted on this thread (no eventfd write)
                pollsSkipped += 1
                if socketMayBeReadable || pollsSkipped < 8 { return }
                timeoutMs = 0
            } else {
                timeoutMs = heartbeatTickMs
            }
            sockfd = s.sockfd
        case .disconnected:
            if mailbox.hasWork { return }
            timeoutMs = max(0, (nextAttemptAt - now).milliseconds)
        }
        // Runs on every loop turn (every publish): find the soonest deadline without
        // building arrays.
        var soonest = confirms.soonestDeadline
        for w in waiting where soonest.map({ w.deadline < $0 }) ?? true { soonest = w.deadline }
        if let soonest {
            timeoutMs = min(timeoutMs, max(0, (soonest - now).milliseconds + 1))
        }
        // On the stack: this runs once per loop turn.
        var fds = (
            pollfd(fd: mailbox.eventFD, events: Int16(POLLIN), revents: 0),
            pollfd(fd: sockfd, events: Int16(POLLIN), revents: 0)
        )
        let count: nfds_t = sockfd >= 0 ? 2 : 1
        let ready = withUnsafeMutableBytes(of: &fds) { raw in
            poll(raw.baseAddress?.assumingMemoryBound(to: pollfd.self), count, Int32(timeoutMs))
        }
        pollsSkipped = 0
        eventFDSignalled = fds.0.revents != 0
        // Readable, closed or in error: the pump finds out which. A poll that waited its whole
        // timeout lets the pump run too (heartbeats; a deadline may have been the reason).
        if sockfd >= 0 && (fds.1.revents != 0 || (ready == 0 && timeoutMs > 0)) { socketMayBeReadable = true }
    }

    // MARK: - Connecting

    private func connect() {
        let hosts = config.url.hosts
        guard !hosts.isEmpty else { return scheduleRetry("the transport URL names no broker host") }
        status.set(.connecting)
        let s: Session
        switch Session.open(config, host: hosts[reconnect.hostIndex % hosts.count]) {
        case .success(let opened): s = opened
        case .failure(let f): return scheduleRetry(f.reason)
        }
        link = .connected(s)
        socketMayBeReadable = true
        if let e = s.replay(topology.replaySteps, connectionPrefetch: topology.prefetch) {
            teardown(reason: e)
            return scheduleRetry(e)
        }
        reconnect.connected()
        logger.info("AMQP connected", metadata: ["broker": "\(s.broker)", "vhost": "\(config.url.virtualHost)"])
        status.set(.connected(host: s.broker))
        flushWaiting()
    }

    private func scheduleRetry(_ reason: String) {
        let delay = reconnect.attemptFailed()
        lastError = reason
        nextAttemptAt = .now + delay
        status.set(.disconnected(reason: reason))
        logger.warning("AMQP connect failed; retrying", metadata: ["error": "\(reason)", "retry_in": "\(delay)"])
    }

    // MARK: - Operations (called from jobs)

    func whenConnected(
        deadline: ContinuousClock.Instant, needsUnblocked: Bool = false,
        _ run: @escaping (ConnectionCore) -> Void, fail: @escaping (AMQPError) -> Void
    ) {
        if let s = session, !(needsUnblocked && s.blocked) {
            run(self)
        } else {
            waiting.append(Waiting(deadline: deadline, needsUnblocked: needsUnblocked, run: run, fail: fail))
        }
    }

    func flushWaiting() {
        let ready = waiting
        waiting = []
        for w in ready { whenConnected(deadline: w.deadline, needsUnblocked: w.needsUnblocked, w.run, fail: w.fail) }
    }

    /// Runs a synchronous AMQP method on the current connection.
    private func method<T>(_ body: (Session) -> Result<T, Session.Failure>) -> Result<T, AMQPError> {
        guard let s = session else { return .failure(.notConnected(lastError: lastError)) }
        return body(s).mapError { methodError(s, $0.reason) ?? .library($0.reason) }
    }

    private func voidMethod(_ body: (Session) -> String?) -> Result<Void, AMQPError> {
        method { (s: Session) -> Result<Void, Session.Failure> in
            if let e = body(s) { return .failure(Session.Failure(e)) }
            return .success(())
        }
    }

    /// After a synchronous method (`what` failed, or may have): the error for its caller.
    /// The broker has then closed the channel (or the connection): rebuild at once and
    /// replay what was recorded. nil when the method in fact succeeded.
    private func methodError(_ s: Session, _ what: String) -> AMQPError? {
        guard let failure = s.methodFailure(what) else { return nil }
        teardown(reason: failure.rebuild)
        nextAttemptAt = .now
        return failure.error
    }

    func declare(_ e: ExchangeDeclaration) -> Result<Void, AMQPError> {
        voidMethod { $0.declare(e) }.map { topology.record(e) }
    }

    func declare(_ q: QueueDeclaration) -> Result<Void, AMQPError> {
        voidMethod { $0.declare(q) }.map { topology.record(q) }
    }

    func bind(_ b: QueueBinding) -> Result<Void, AMQPError> {
        voidMethod { $0.bind(b) }.map { topology.record(b) }
    }

    func deleteQueue(_ name: String) -> Result<Void, AMQPError> {
        topology.removeQueue(name)
        return voidMethod { $0.deleteQueue(name) }
    }

    func purgeQueue(_ name: String) -> Result<UInt32, AMQPError> {
        method { $0.purgeQueue(name) }
    }

    func setPrefetch(_ n: UInt16) -> Result<Void, AMQPError> {
        topology.prefetch = n
        return voidMethod { $0.qos(n) }
    }

    func consume(
        queue: String, options: ConsumeOptions,
        handler: @escaping @Sendable (AMQPDelivery) -> Void
    ) -> Result<String, AMQPError> {
        let tag = topology.makeConsumerTag()
        let prefetch = topology.prefetch
        return voidMethod { $0.consume(queue: queue, tag: tag, options: options, connectionPrefetch: prefetch) }.map {
            topology.record(Topology.Consumer(queue: queue, options: options, handler: handler), tag: tag)
            return tag
        }
    }

    func cancel(consumerTag: String) {
        guard topology.removeConsumer(tag: consumerTag) != nil, let s = session else { return }
        s.cancel(consumerTag: consumerTag)
        _ = methodError(s, "basic.cancel")
    }

    func publish(
        body: [UInt8], exchange: String, routingKey: String, properties: AMQPProperties, mandatory: Bool,
        deadline: ContinuousClock.Instant, completion: @escaping Completion
    ) {
        guard let s = session else { return completion(.failure(.notConnected(lastError: lastError))) }
        let a = CArena()
        var stamped = properties
        if stamped.userID == nil { stamped.userID = s.loginUser }  // the receiver's broker-checked sender identity
        var props = a.properties(stamped)
        let ex = a.bytes(exchange), rk = a.bytes(routingKey)
        let token = PublishWatchdog.shared.arm(fd: s.sockfd, timeout: config.publishWriteTimeout)
        let rc = body.withUnsafeBytes { raw -> Int32 in
            let b = amqp_bytes_t(len: raw.count, bytes: raw.count > 0 ? UnsafeMutableRawPointer(mutating: raw.baseAddress) : nil)
            return amqp_basic_publish(s.handle, Session.channel, ex, rk, mandatory ? 1 : 0, 0, &props, b)
        }
        PublishWatchdog.shared.disarm(token)
        if rc != AMQP_STATUS_OK.rawValue {
            let why = "publish failed: \(String(cString: amqp_error_string2(rc)))"
            completion(.failure(.connectionLost(why)))
            lost(why)
            return
        }
        confirms.published(
            exchange: exchange, routingKey: routingKey, mandatory: mandatory, deadline: deadline,
            waiter: completion)
    }

    /// Acks a manual-ack delivery, unless the connection it came on is gone (the broker
    /// has requeued it then, and a tag is only valid on its own connection).
    func ack(tag: UInt64, generation: UInt64) {
        guard let s = session, generation == status.generation.load(ordering: .acquiring) else { return }
        _ = amqp_basic_ack(s.handle, Session.channel, tag, 0)
    }

    func setBlocked(_ blocked: Bool) {
        guard case .connected(var s) = link else { return }
        s.blocked = blocked
        link = .connected(s)
    }

    // MARK: - Failure handling

    /// The connection broke: rebuild it at once (`immediate`: the broker closed only the
    /// channel) or after the reconnect policy's delay.
    func lost(_ reason: String, immediate: Bool = false) {
        teardown(reason: reason)
        nextAttemptAt = .now + (immediate ? .zero : reconnect.connectionLost())
    }

    private func teardown(reason: String) {
        inbound = nil  // its remaining frames died with the connection; the broker redelivers it
        if let s = session { s.destroy() }
        status.generation.add(1, ordering: .releasing)
        link = .disconnected
        lastError = reason
        for (completion, result) in confirms.channelClosed(.connectionLost(reason)) { completion(result) }
        status.set(.disconnected(reason: reason))
        logger.warning("AMQP connection lost", metadata: ["error": "\(reason)"])
    }

    private func expireDeadlines() {
        let now = ContinuousClock.now
        if waiting.contains(where: { $0.deadline <= now }) {
            let expired = waiting.filter { $0.deadline <= now }
            waiting.removeAll { $0.deadline <= now }
            let why: AMQPError = session?.blocked == true ? .blocked : .notConnected(lastError: lastError)
            for w in expired { w.fail(why) }
        }
        let unconfirmed = confirms.expire(now: now)
        for (completion, result) in unconfirmed { completion(result) }
        // A publish the broker has not confirmed by its deadline, on a link that is not
        // blocked (a blocked broker stops reading on purpose): the broker or the path to it has
        // gone silent. Heartbeats would tell only after 2 x heartbeat (two minutes with oslo's
        // default of 60 s; a partitioned agent took 131 s); rebuilding now makes a cut-off
        // process notice within one publish deadline (an agent announces every interval).
        if !unconfirmed.isEmpty, case .connected(let s) = link, !s.blocked {
            lost("the broker confirmed no publish within its deadline (\(unconfirmed.count) unconfirmed): the link looks dead")
        }
    }

    private func shutdown() {
        failQueuedWork()
        for w in waiting { w.fail(.closed) }
        waiting = []
        if let s = session {
            s.close()
            link = .disconnected
        }
        status.generation.add(1, ordering: .releasing)
        for (completion, result) in confirms.channelClosed(.closed) { completion(result) }
        status.set(.closed)
        failQueuedWork()  // posted by the completions above
        mailbox.unregisterIOThread()
    }

    /// After closing: jobs fail with `.closed`, task slices move to the global executor.
    private func failQueuedWork() {
        for work in mailbox.take() {
            switch work {
            case .job(let job): job.fail(.closed)
            case .task(let task): ConnectionExecutor.runElsewhere(task)
            }
        }
    }
}
