import AMQPClient
import Logging
import RPCWire
import Synchronization

/// Sends replies outside work slots. A reply whose queue is missing is retried (as
/// oslo does, up to `replyRetryTimeout`) by a bounded number of background tasks; a
/// queue still missing then is remembered (`deadReplyQueueTTL`, at most
/// `deadReplyQueueCapacity`) and later replies to it are dropped at once.
final class ReplySender: Sendable {
    typealias Publish = @Sendable (_ body: [UInt8], _ queue: String) async throws -> Void
    /// A publish that reports its outcome (the broker's confirm, or why not) to `done`, on
    /// whatever thread learns it: no task waits for the confirm.
    typealias PublishCallback =
        @Sendable (_ body: [UInt8], _ queue: String, _ done: @escaping @Sendable (Result<Void, AMQPError>) -> Void) -> Void

    private struct State {
        var dead: DeadReplyQueues
    }

    private let publish: PublishCallback
    private let logger: Logger
    private let retryTimeout: Duration
    private let retryInterval: Duration
    private let maxRetrying: Int
    private let state: Mutex<State>
    private let retries = IdleGate()

    /// With an awaiting publish (tests): each attempt runs in a task of its own.
    convenience init(
        options: RPCServer.Options, logger: Logger, retryInterval: Duration = .milliseconds(250),
        publish: @escaping Publish
    ) {
        self.init(options: options, logger: logger, retryInterval: retryInterval) { body, queue, done in
            Task {
                do {
                    try await publish(body, queue)
                    done(.success(()))
                } catch let e as AMQPError {
                    done(.failure(e))
                } catch {
                    done(.failure(.library("\(error)")))
                }
            }
        }
    }

    init(
        options: RPCServer.Options, logger: Logger, retryInterval: Duration = .milliseconds(250),
        publishCallback: @escaping PublishCallback
    ) {
        self.publish = publishCallback
        self.logger = logger
        self.retryTimeout = options.replyRetryTimeout
        self.retryInterval = retryInterval
        self.maxRetrying = max(0, options.maxPendingReplyRetries)
        self.state = Mutex(
            State(
                dead: DeadReplyQueues(
                    ttl: options.deadReplyQueueTTL,
                    capacity: options.deadReplyQueueCapacity)))
    }

    /// Replies being retried in the background right now.
    var pendingRetries: Int { retries.count }

    func isDead(_ queue: String) -> Bool { state.withLock { $0.dead.contains(queue, now: .now) } }

    /// One attempt now; with `retry`, a missing queue hands the reply to a background
    /// retry (if fewer than `maxPendingReplyRetries` are running). Returns after the first
    /// attempt in every case.
    func send(_ reply: RPCReply, to queue: String, retry: Bool) async {
        await withCheckedContinuation { (cont: CheckedContinuation<Void, Never>) in
            send(reply, to: queue, retry: retry) { cont.resume() }
        }
    }

    /// `send` without a task: `done` runs once the first attempt has its outcome (on the
    /// thread that learns it: the connection's I/O thread for a real publish).
    func send(_ reply: RPCReply, to queue: String, retry: Bool, done: @escaping @Sendable () -> Void) {
        if isDead(queue) {
            logger.info(
                "dropping RPC reply: its reply queue was found missing recently",
                metadata: ["reply_queue": "\(queue)", "msg_id": "\(reply.msgID)"])
            return done()
        }
        let body = reply.encodeBody()
        let msgID = reply.msgID
        attempt(body, queue) { [self] outcome in
            defer { done() }
            guard outcome == .missing, retry else { return }
            guard retries.enter(limit: maxRetrying) else {
                logger.warning(
                    "dropping RPC reply: its reply queue is missing and too many replies are already waiting",
                    metadata: ["reply_queue": "\(queue)", "msg_id": "\(msgID)", "waiting": "\(maxRetrying)"])
                return
            }
            Task { await retryMissing(body, queue: queue, msgID: msgID) }
        }
    }

    /// Retries a reply whose queue was missing until it goes out or `retryTimeout` passes.
    private func retryMissing(_ body: [UInt8], queue: String, msgID: String) async {
        defer { retries.leave() }
        let giveUp = ContinuousClock.now + retryTimeout
        while ContinuousClock.now < giveUp {
            try? await Task.sleep(for: retryInterval)
            if isDead(queue) {
                logger.info(
                    "dropping RPC reply: its reply queue was found missing",
                    metadata: ["reply_queue": "\(queue)", "msg_id": "\(msgID)"])
                return
            }
            let outcome = await withCheckedContinuation { (c: CheckedContinuation<Attempt, Never>) in
                attempt(body, queue) { c.resume(returning: $0) }
            }
            if outcome != .missing { return }
        }
        state.withLock { $0.dead.insert(queue, now: .now) }
        logger.warning(
            "abandoning RPC reply: its reply queue does not exist (later replies to it are dropped)",
            metadata: ["reply_queue": "\(queue)", "msg_id": "\(msgID)", "after": "\(retryTimeout)"])
    }

    /// Returns once no reply is being retried (tests, shutdown).
    func waitForRetries() async { await retries.waitUntilIdle() }

    private enum Attempt { case sent, missing, failed }

    private func attempt(_ body: [UInt8], _ queue: String, _ outcome: @escaping @Sendable (Attempt) -> Void) {
        publish(body, queue) { [logger] result in
            switch result {
            case .success: outcome(.sent)
            case .failure(.unroutable): outcome(.missing)
            // May not have arrived: try again (a duplicate reply is ignored by the caller).
            case .failure(.connectionLost): outcome(.missing)
            case .failure(let error):
                logger.warning("could not send RPC reply", metadata: ["reply_queue": "\(queue)", "error": "\(error)"])
                outcome(.failed)
            }
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
