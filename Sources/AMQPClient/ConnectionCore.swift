import CRabbitMQ
import Logging
#if canImport(Glibc)
import Glibc
#endif

/// Everything that touches the librabbitmq handle. Confined to one OS thread
/// (the library is not thread-safe); other threads reach it only through `Mailbox`.
/// Not Sendable on purpose.
final class ConnectionCore {
    struct Consumer {
        let queue: String
        let options: ConsumeOptions
        let handler: @Sendable (AMQPDelivery) -> Void
    }

    struct PendingPublish {
        let exchange: String
        let routingKey: String
        let mandatory: Bool
        var returned: String?
        let deadline: ContinuousClock.Instant
        let completion: @Sendable (Result<Void, AMQPError>) -> Void
    }

    struct Waiting {
        let deadline: ContinuousClock.Instant
        let needsUnblocked: Bool
        let run: (ConnectionCore) -> Void
        let fail: (AMQPError) -> Void
    }

    let config: AMQPConfiguration
    var logger: Logger
    let mailbox: Mailbox
    let status: StatusBox

    private var conn: amqp_connection_state_t?
    private var sockfd: Int32 = -1
    private var hostIndex = 0
    private var failedAttempts = 0
    private var nextAttemptAt = ContinuousClock.now
    private var lastError = "not connected yet"
    private var blocked = false

    // Topology, replayed in this order after every reconnect.
    private var exchanges: [ExchangeDeclaration] = []
    private var queues: [QueueDeclaration] = []
    private var bindings: [QueueBinding] = []
    private var consumerOrder: [String] = []
    private var consumers: [String: Consumer] = [:]
    private var nextConsumerTag = 1
    /// Tags of cancelled manual-ack consumers (one per cancel: small).
    private var cancelledManualAck: Set<String> = []
    private var prefetch: UInt16
    /// The user the current connection logged in as: stamped as `user_id` on every publish.
    private var loginUser = ""

    private var nextSeq: UInt64 = 1
    private var pending: [UInt64: PendingPublish] = [:]
    private var waiting: [Waiting] = []

    static let channel: amqp_channel_t = 1

    init(config: AMQPConfiguration, logger: Logger, mailbox: Mailbox, status: StatusBox) {
        self.config = config
        self.logger = logger
        self.mailbox = mailbox
        self.status = status
        self.prefetch = config.prefetchCount
    }

    var isConnected: Bool { conn != nil }

    // MARK: - Thread main loop

    func runLoop() {
        while true {
            mailbox.drainWakeups()
            for job in mailbox.take() { job.run(self) }
            if mailbox.isClosing { break }
            if conn == nil && ContinuousClock.now >= nextAttemptAt { connect() }
            if conn != nil { pump() }
            expireDeadlines()
            pollOnce()
        }
        shutdown()
    }

    private func pollOnce() {
        var timeoutMs: Int
        let now = ContinuousClock.now
        if let c = conn {
            if amqp_frames_enqueued(c) != 0 || amqp_data_in_buffer(c) != 0 { return }
            // Wake often enough to send heartbeats (the library only does it inside calls).
            timeoutMs = config.heartbeat > 0 ? max(250, config.heartbeat * 1000 / 4) : 60_000
        } else {
            timeoutMs = max(0, (nextAttemptAt - now).milliseconds)
        }
        // Runs on every loop turn (every publish): find the soonest deadline without
        // building arrays.
        var soonest: ContinuousClock.Instant?
        for w in waiting where soonest.map({ w.deadline < $0 }) ?? true { soonest = w.deadline }
        for p in pending.values where soonest.map({ p.deadline < $0 }) ?? true { soonest = p.deadline }
        if let soonest {
            timeoutMs = min(timeoutMs, max(0, (soonest - now).milliseconds + 1))
        }
        var fds = [pollfd(fd: mailbox.eventFD, events: Int16(POLLIN), revents: 0)]
        if conn != nil { fds.append(pollfd(fd: sockfd, events: Int16(POLLIN), revents: 0)) }
        _ = poll(&fds, nfds_t(fds.count), Int32(timeoutMs))
    }

    // MARK: - Connecting

    private func connect() {
        let hosts = config.url.hosts
        let host = hosts[hostIndex % hosts.count]
        let where_ = "\(host.host):\(host.port)"
        status.set(.connecting)
        guard let c = amqp_new_connection() else { return scheduleRetry("amqp_new_connection failed") }
        let arena = CArena()
        let socket: OpaquePointer?
        if let tls = config.tls {
            socket = amqp_ssl_socket_new(c)
            if let socket {
                amqp_ssl_socket_set_verify_peer(socket, tls.verifyPeer ? 1 : 0)
                amqp_ssl_socket_set_verify_hostname(socket, tls.verifyHostname ? 1 : 0)
                if amqp_ssl_socket_set_cacert(socket, tls.caFile) != 0 {
                    amqp_destroy_connection(c)
                    return scheduleRetry("TLS: cannot load CA file \(tls.caFile)")
                }
                if let cert = tls.certFile, let key = tls.keyFile, amqp_ssl_socket_set_key(socket, cert, key) != 0 {
                    amqp_destroy_connection(c)
                    return scheduleRetry("TLS: cannot load client certificate \(cert) / key \(key)")
                }
            }
        } else {
            socket = amqp_tcp_socket_new(c)
        }
        guard let socket else {
            amqp_destroy_connection(c)
            return scheduleRetry("cannot create socket")
        }
        var tv = config.connectTimeout.timeval
        let rc = amqp_socket_open_noblock(socket, host.host, Int32(host.port), &tv)
        if rc != AMQP_STATUS_OK.rawValue {
            amqp_destroy_connection(c)
            return scheduleRetry("cannot connect to \(where_): \(String(cString: amqp_error_string2(rc)))")
        }
        var rpcTV = config.methodTimeout.timeval
        _ = amqp_set_rpc_timeout(c, &rpcTV)
        var props = clientProperties(arena)
        let login = aos_amqp_login_plain(c, config.url.virtualHost, 0, 131072, Int32(config.heartbeat), &props,
                                         host.username, host.password)
        if login.reply_type != AMQP_RESPONSE_NORMAL {
            let (code, text) = replyDescription(login)
            amqp_destroy_connection(c)
            let why = code == 403 || text.contains("ACCESS_REFUSED")
                ? "login refused for user '\(host.username)' on vhost '\(config.url.virtualHost)' (\(text))"
                : "login to \(where_) failed: \(code > 0 ? "\(code) " : "")\(text)"
            return scheduleRetry(why)
        }
        _ = amqp_channel_open(c, Self.channel)
        if let e = checkReply(c, "channel.open") { amqp_destroy_connection(c); return scheduleRetry(e) }
        _ = amqp_confirm_select(c, Self.channel)
        if let e = checkReply(c, "confirm.select") { amqp_destroy_connection(c); return scheduleRetry(e) }
        conn = c
        loginUser = host.username
        sockfd = amqp_get_sockfd(c)
        nextSeq = 1
        blocked = false
        if let e = replayTopology() {
            teardown(reason: e)
            return scheduleRetry(e)
        }
        failedAttempts = 0
        logger.info("AMQP connected", metadata: ["broker": "\(where_)", "vhost": "\(config.url.virtualHost)"])
        status.set(.connected(host: where_))
        flushWaiting()
    }

    private func clientProperties(_ arena: CArena) -> amqp_table_t {
        // capabilities is a nested table, built by hand.
        let caps = arena.table([
            "consumer_cancel_notify": .bool(true),
            "connection.blocked": .bool(true),
            "authentication_failure_close": .bool(true),
            "publisher_confirms": .bool(true),
        ])
        let top = arena.table([
            "product": .string("aos-agent"),
            "version": .string(AMQPConnection.libraryVersion),
            "connection_name": .string(config.connectionName),
            "capabilities": .bool(true),  // placeholder, replaced below
        ])
        for i in 0..<Int(top.num_entries) where top.entries[i].key.string == "capabilities" {
            top.entries[i].value.kind = UInt8(AMQP_FIELD_KIND_TABLE.rawValue)
            top.entries[i].value.value.table = caps
        }
        return top
    }

    private func scheduleRetry(_ reason: String) {
        failedAttempts += 1
        hostIndex += 1
        lastError = reason
        let hostCount = config.url.hosts.count
        // Try every host of a multi-host URL once before backing off.
        let rounds = (failedAttempts - 1) / max(1, hostCount)
        var delay = Duration.zero
        if failedAttempts % max(1, hostCount) == 0 || hostCount == 1 {
            delay = config.reconnectInitialDelay * (1 << min(rounds, 10))
            if delay > config.reconnectMaxDelay { delay = config.reconnectMaxDelay }
        }
        nextAttemptAt = .now + delay
        status.set(.disconnected(reason: reason))
        logger.warning("AMQP connect failed; retrying", metadata: ["error": "\(reason)", "retry_in": "\(delay)"])
    }

    private func checkReply(_ c: amqp_connection_state_t, _ what: String) -> String? {
        let r = amqp_get_rpc_reply(c)
        if r.reply_type == AMQP_RESPONSE_NORMAL { return nil }
        let (code, text) = replyDescription(r)
        return "\(what) failed: \(code > 0 ? "\(code) " : "")\(text)"
    }

    private func replayTopology() -> String? {
        guard let c = conn else { return "not connected" }
        if prefetch > 0 {
            _ = amqp_basic_qos(c, Self.channel, 0, prefetch, 0)
            if let e = checkReply(c, "basic.qos") { return e }
        }
        for e in exchanges { if let err = rawDeclare(e) { return err } }
        for q in queues { if let err = rawDeclare(q) { return err } }
        for b in bindings { if let err = rawBind(b) { return err } }
        for tag in consumerOrder {
            if let con = consumers[tag], let err = rawConsume(queue: con.queue, tag: tag, options: con.options) { return err }
        }
        return nil
    }

    // MARK: - Raw AMQP methods (I/O thread, connection present)

    private func rawDeclare(_ e: ExchangeDeclaration) -> String? {
        let a = CArena()
        _ = amqp_exchange_declare(conn!, Self.channel, a.bytes(e.name), a.bytes(e.type), 0, e.durable ? 1 : 0,
                                  e.autoDelete ? 1 : 0, 0, a.table(e.arguments))
        return checkReply(conn!, "exchange.declare '\(e.name)'")
    }

    private func rawDeclare(_ q: QueueDeclaration) -> String? {
        let a = CArena()
        _ = amqp_queue_declare(conn!, Self.channel, a.bytes(q.name), 0, q.durable ? 1 : 0, q.exclusive ? 1 : 0,
                               q.autoDelete ? 1 : 0, a.table(q.arguments))
        return checkReply(conn!, "queue.declare '\(q.name)'")
    }

    private func rawBind(_ b: QueueBinding) -> String? {
        let a = CArena()
        _ = amqp_queue_bind(conn!, Self.channel, a.bytes(b.queue), a.bytes(b.exchange), a.bytes(b.routingKey),
                            amqp_empty_table)
        return checkReply(conn!, "queue.bind '\(b.queue)' to '\(b.exchange)' key '\(b.routingKey)'")
    }

    private func rawConsume(queue: String, tag: String, options: ConsumeOptions) -> String? {
        let a = CArena()
        // basic.qos (not global) applies to the consumers started after it: set this
        // consumer's own limit, then put back the connection-wide one.
        let ownQos = options.manualAck && options.prefetch != prefetch
        if ownQos {
            _ = amqp_basic_qos(conn!, Self.channel, 0, options.prefetch, 0)
            if let e = checkReply(conn!, "basic.qos") { return e }
        }
        _ = amqp_basic_consume(conn!, Self.channel, a.bytes(queue), a.bytes(tag), 0, options.manualAck ? 0 : 1, 0,
                               amqp_empty_table)
        if let e = checkReply(conn!, "basic.consume '\(queue)'") { return e }
        if ownQos {
            _ = amqp_basic_qos(conn!, Self.channel, 0, prefetch, 0)
            if let e = checkReply(conn!, "basic.qos") { return e }
        }
        return nil
    }

    /// After a failed synchronous method the channel (or connection) is closed by
    /// the broker; rebuild at once and replay what was recorded.
    private func afterMethodFailure(_ error: String) {
        teardown(reason: error)
        nextAttemptAt = .now
    }

    private func methodError(_ c: amqp_connection_state_t, _ what: String) -> AMQPError? {
        let r = amqp_get_rpc_reply(c)
        if r.reply_type == AMQP_RESPONSE_NORMAL { return nil }
        let (code, text) = replyDescription(r)
        if r.reply_type == AMQP_RESPONSE_SERVER_EXCEPTION {
            if r.reply.id == AOS_CHANNEL_CLOSE {
                var ok = amqp_channel_close_ok_t()
                _ = amqp_send_method(c, Self.channel, AOS_CHANNEL_CLOSE_OK, &ok)
            } else if r.reply.id == AOS_CONNECTION_CLOSE {
                var ok = amqp_connection_close_ok_t()
                _ = amqp_send_method(c, 0, AOS_CONNECTION_CLOSE_OK, &ok)
            }
            afterMethodFailure("\(what): \(code) \(text)")
            return .brokerRefused(code: code, text: "\(what): \(text)")
        }
        afterMethodFailure("\(what): \(text)")
        return .connectionLost("\(what): \(text)")
    }

    // MARK: - Operations (called from jobs)

    func whenConnected(deadline: ContinuousClock.Instant, needsUnblocked: Bool = false,
                       _ run: @escaping (ConnectionCore) -> Void, fail: @escaping (AMQPError) -> Void) {
        if conn != nil && !(needsUnblocked && blocked) {
            run(self)
        } else {
            waiting.append(Waiting(deadline: deadline, needsUnblocked: needsUnblocked, run: run, fail: fail))
        }
    }

    private func flushWaiting() {
        let ready = waiting
        waiting = []
        for w in ready { whenConnected(deadline: w.deadline, needsUnblocked: w.needsUnblocked, w.run, fail: w.fail) }
    }

    func declare(_ e: ExchangeDeclaration) -> Result<Void, AMQPError> {
        if let err = rawDeclare(e) { return .failure(methodError(conn!, err) ?? .library(err)) }
        exchanges.removeAll { $0.name == e.name }
        exchanges.append(e)
        return .success(())
    }

    func declare(_ q: QueueDeclaration) -> Result<Void, AMQPError> {
        if let err = rawDeclare(q) { return .failure(methodError(conn!, err) ?? .library(err)) }
        queues.removeAll { $0.name == q.name }
        queues.append(q)
        return .success(())
    }

    func bind(_ b: QueueBinding) -> Result<Void, AMQPError> {
        if let err = rawBind(b) { return .failure(methodError(conn!, err) ?? .library(err)) }
        if !bindings.contains(b) { bindings.append(b) }
        return .success(())
    }

    func deleteQueue(_ name: String) -> Result<Void, AMQPError> {
        queues.removeAll { $0.name == name }
        bindings.removeAll { $0.queue == name }
        for (tag, c) in consumers where c.queue == name {
            consumers[tag] = nil
            consumerOrder.removeAll { $0 == tag }
        }
        let a = CArena()
        _ = amqp_queue_delete(conn!, Self.channel, a.bytes(name), 0, 0)
        if let err = checkReply(conn!, "queue.delete '\(name)'") { return .failure(methodError(conn!, err) ?? .library(err)) }
        return .success(())
    }

    func purgeQueue(_ name: String) -> Result<UInt32, AMQPError> {
        let a = CArena()
        let ok = amqp_queue_purge(conn!, Self.channel, a.bytes(name))
        if let err = checkReply(conn!, "queue.purge '\(name)'") { return .failure(methodError(conn!, err) ?? .library(err)) }
        return .success(ok?.pointee.message_count ?? 0)
    }

    func setPrefetch(_ n: UInt16) -> Result<Void, AMQPError> {
        prefetch = n
        _ = amqp_basic_qos(conn!, Self.channel, 0, n, 0)
        if let err = checkReply(conn!, "basic.qos") { return .failure(methodError(conn!, err) ?? .library(err)) }
        return .success(())
    }

    func consume(queue: String, options: ConsumeOptions,
                 handler: @escaping @Sendable (AMQPDelivery) -> Void) -> Result<String, AMQPError> {
        let tag = String(nextConsumerTag)
        nextConsumerTag += 1
        if let err = rawConsume(queue: queue, tag: tag, options: options) {
            return .failure(methodError(conn!, err) ?? .library(err))
        }
        consumers[tag] = Consumer(queue: queue, options: options, handler: handler)
        consumerOrder.append(tag)
        return .success(tag)
    }

    func cancel(consumerTag: String) {
        guard let removed = consumers.removeValue(forKey: consumerTag) else { return }
        if removed.options.manualAck { cancelledManualAck.insert(consumerTag) }
        consumerOrder.removeAll { $0 == consumerTag }
        guard let c = conn else { return }
        let a = CArena()
        _ = amqp_basic_cancel(c, Self.channel, a.bytes(consumerTag))
        _ = methodError(c, "basic.cancel")
    }

    func publish(body: [UInt8], exchange: String, routingKey: String, properties: AMQPProperties, mandatory: Bool,
                 deadline: ContinuousClock.Instant, completion: @escaping @Sendable (Result<Void, AMQPError>) -> Void) {
        guard let c = conn else { return completion(.failure(.notConnected(lastError: lastError))) }
        let a = CArena()
        var stamped = properties
        if stamped.userID == nil { stamped.userID = loginUser }  // the receiver's broker-checked sender identity
        var props = a.properties(stamped)
        let ex = a.bytes(exchange), rk = a.bytes(routingKey)
        let token = PublishWatchdog.shared.arm(fd: sockfd, timeout: config.publishWriteTimeout)
        let rc = body.withUnsafeBytes { raw -> Int32 in
            let b = amqp_bytes_t(len: raw.count, bytes: raw.count > 0 ? UnsafeMutableRawPointer(mutating: raw.baseAddress) : nil)
            return amqp_basic_publish(c, Self.channel, ex, rk, mandatory ? 1 : 0, 0, &props, b)
        }
        PublishWatchdog.shared.disarm(token)
        if rc != AMQP_STATUS_OK.rawValue {
            let why = "publish failed: \(String(cString: amqp_error_string2(rc)))"
            completion(.failure(.connectionLost(why)))
            teardown(reason: why)
            scheduleRetryAfterLoss()
            return
        }
        pending[nextSeq] = PendingPublish(exchange: exchange, routingKey: routingKey, mandatory: mandatory,
                                          returned: nil, deadline: deadline, completion: completion)
        nextSeq += 1
    }

    // MARK: - Reading

    private func pump() {
        var budget = 512  // let queued jobs (replies) run between bursts
        while let c = conn, budget > 0 {
            budget -= 1
            amqp_maybe_release_buffers(c)
            var env = amqp_envelope_t()
            var tv = timeval(tv_sec: 0, tv_usec: 0)
            let r = amqp_consume_message(c, &env, &tv, 0)
            if r.reply_type == AMQP_RESPONSE_NORMAL {
                deliver(env)
                amqp_destroy_envelope(&env)
                continue
            }
            if r.reply_type == AMQP_RESPONSE_LIBRARY_EXCEPTION {
                if r.library_error == AMQP_STATUS_TIMEOUT.rawValue { return }
                if r.library_error == AMQP_STATUS_UNEXPECTED_STATE.rawValue {
                    var frame = amqp_frame_t()
                    let s = amqp_simple_wait_frame(c, &frame)
                    if s != AMQP_STATUS_OK.rawValue { return lost("read failed: \(String(cString: amqp_error_string2(s)))") }
                    handle(frame)
                    continue
                }
                let why = r.library_error == AMQP_STATUS_HEARTBEAT_TIMEOUT.rawValue
                    ? "missed heartbeats from the broker (no data for 2 x \(config.heartbeat) s)"
                    : String(cString: amqp_error_string2(r.library_error))
                return lost(why)
            }
            let (code, text) = replyDescription(r)
            return lost("\(code) \(text)")
        }
    }

    private func deliver(_ env: amqp_envelope_t) {
        guard let c = conn else { return }
        let tag = env.consumer_tag.string
        guard let consumer = consumers[tag] else {
            // A manual-ack consumer cancelled meanwhile: give the message back to its queue
            // (an auto-ack delivery has no tag to reject).
            if cancelledManualAck.contains(tag) { _ = amqp_basic_reject(c, Self.channel, env.delivery_tag, 1) }
            return
        }
        // Auto-ack consumers were acked by the broker on sending (at-most-once, like
        // oslo.messaging); manual-ack ones are acked through `ack(tag:generation:)`.
        let size = env.message.body.len
        var body: [UInt8], tail: [UInt8] = []
        if let limit = consumer.options.maxBodyBytes, size > max(0, limit) {
            // Never copied whole: both ends are kept for a tolerant scan of the reply address.
            let keep = min(size, max(0, consumer.options.keptBytes))
            body = env.message.body.slice(from: 0, count: keep)
            tail = env.message.body.slice(from: size - keep, count: keep)
        } else {
            body = env.message.body.array
        }
        var d = AMQPDelivery(body: body, properties: decodeProperties(env.message.properties),
                             exchange: env.exchange.string, routingKey: env.routing_key.string,
                             redelivered: env.redelivered != 0, consumerTag: tag, receivedAt: .now,
                             bodySize: size, bodyTail: tail)
        if consumer.options.manualAck {
            d.needsAck = true
            d.deliveryTag = env.delivery_tag
            d.generation = status.generation.load(ordering: .acquiring)
        }
        consumer.handler(d)
    }

    /// Acks a manual-ack delivery, unless the connection it came on is gone (the broker
    /// has requeued it then, and a tag is only valid on its own connection).
    func ack(tag: UInt64, generation: UInt64) {
        guard let c = conn, generation == status.generation.load(ordering: .acquiring) else { return }
        _ = amqp_basic_ack(c, Self.channel, tag, 0)
    }

    private func handle(_ frame: amqp_frame_t) {
        guard frame.frame_type == UInt8(AMQP_FRAME_METHOD), let c = conn else { return }
        let m = frame.payload.method
        switch m.id {
        case AOS_BASIC_ACK:
            let a = m.decoded.assumingMemoryBound(to: amqp_basic_ack_t.self).pointee
            confirm(upTo: a.delivery_tag, multiple: a.multiple != 0, ok: true)
        case AOS_BASIC_NACK:
            let a = m.decoded.assumingMemoryBound(to: amqp_basic_nack_t.self).pointee
            confirm(upTo: a.delivery_tag, multiple: a.multiple != 0, ok: false)
        case AOS_BASIC_RETURN:
            let r = m.decoded.assumingMemoryBound(to: amqp_basic_return_t.self).pointee
            let ex = r.exchange.string, rk = r.routing_key.string
            let text = "\(r.reply_code) \(r.reply_text.string)"
            var msg = amqp_message_t()
            let rr = amqp_read_message(c, frame.channel, &msg, 0)
            if rr.reply_type == AMQP_RESPONSE_NORMAL { amqp_destroy_message(&msg) }
            if let seq = pending.filter({ $0.value.mandatory && $0.value.returned == nil && $0.value.exchange == ex
                && $0.value.routingKey == rk }).keys.min() {
                pending[seq]?.returned = text
            }
        case AOS_BASIC_CANCEL:
            let cancel = m.decoded.assumingMemoryBound(to: amqp_basic_cancel_t.self).pointee
            resubscribe(tag: cancel.consumer_tag.string)
        case AOS_CONNECTION_BLOCKED:
            blocked = true
            logger.warning("broker blocked publishing (resource alarm); holding publishes")
        case AOS_CONNECTION_UNBLOCKED:
            blocked = false
            logger.info("broker unblocked publishing")
            flushWaiting()
        case AOS_CHANNEL_CLOSE:
            let close = m.decoded.assumingMemoryBound(to: amqp_channel_close_t.self).pointee
            var ok = amqp_channel_close_ok_t()
            _ = amqp_send_method(c, Self.channel, AOS_CHANNEL_CLOSE_OK, &ok)
            lost("broker closed the channel: \(close.reply_code) \(close.reply_text.string)", immediate: true)
        case AOS_CONNECTION_CLOSE:
            let close = m.decoded.assumingMemoryBound(to: amqp_connection_close_t.self).pointee
            var ok = amqp_connection_close_ok_t()
            _ = amqp_send_method(c, 0, AOS_CONNECTION_CLOSE_OK, &ok)
            lost("broker closed the connection: \(close.reply_code) \(close.reply_text.string)")
        default:
            break
        }
    }

    private func confirm(upTo tag: UInt64, multiple: Bool, ok: Bool) {
        let seqs = multiple ? pending.keys.filter { $0 <= tag }.sorted() : [tag]
        for s in seqs {
            guard let p = pending.removeValue(forKey: s) else { continue }
            if !ok {
                p.completion(.failure(.nacked))
            } else if let r = p.returned {
                p.completion(.failure(.unroutable(exchange: p.exchange, routingKey: p.routingKey, reply: r)))
            } else {
                p.completion(.success(()))
            }
        }
    }

    /// The broker cancelled a consumer (its queue was deleted): declare the queue
    /// again from the recorded topology and consume it under the same tag.
    private func resubscribe(tag: String) {
        guard let con = consumers[tag] else { return }
        logger.warning("broker cancelled consumer; re-declaring its queue", metadata: ["queue": "\(con.queue)"])
        if let q = queues.first(where: { $0.name == con.queue }), let e = rawDeclare(q) { return lost(e, immediate: false) }
        for b in bindings where b.queue == con.queue { if let e = rawBind(b) { return lost(e, immediate: false) } }
        if let e = rawConsume(queue: con.queue, tag: tag, options: con.options) { return lost(e, immediate: false) }
    }

    // MARK: - Failure handling

    private func lost(_ reason: String, immediate: Bool = false) {
        teardown(reason: reason)
        if immediate { nextAttemptAt = .now } else { scheduleRetryAfterLoss() }
    }

    private func scheduleRetryAfterLoss() {
        failedAttempts = 0
        nextAttemptAt = .now + config.reconnectInitialDelay
    }

    private func teardown(reason: String) {
        if let c = conn { amqp_destroy_connection(c) }
        status.generation.add(1, ordering: .releasing)
        conn = nil
        sockfd = -1
        blocked = false
        lastError = reason
        let failed = pending
        pending = [:]
        for s in failed.keys.sorted() { failed[s]!.completion(.failure(.connectionLost(reason))) }
        status.set(.disconnected(reason: reason))
        logger.warning("AMQP connection lost", metadata: ["error": "\(reason)"])
    }

    private func expireDeadlines() {
        let now = ContinuousClock.now
        if waiting.contains(where: { $0.deadline <= now }) {
            let expired = waiting.filter { $0.deadline <= now }
            waiting.removeAll { $0.deadline <= now }
            for w in expired { w.fail(conn != nil && blocked ? .blocked : .notConnected(lastError: lastError)) }
        }
        if pending.values.contains(where: { $0.deadline <= now }) {
            for (s, p) in pending where p.deadline <= now {
                pending[s] = nil
                p.completion(.failure(.timedOut("no publisher confirm from the broker")))
            }
        }
    }

    private func shutdown() {
        for job in mailbox.take() { job.fail(.closed) }
        for w in waiting { w.fail(.closed) }
        waiting = []
        if let c = conn {
            _ = amqp_channel_close(c, Self.channel, AMQP_REPLY_SUCCESS)
            _ = amqp_connection_close(c, AMQP_REPLY_SUCCESS)
            amqp_destroy_connection(c)
            conn = nil
        }
        status.generation.add(1, ordering: .releasing)
        for p in pending.values { p.completion(.failure(.closed)) }
        pending = [:]
        status.set(.closed)
    }
}
