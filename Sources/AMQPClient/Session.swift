import CRabbitMQ

#if canImport(Glibc)
import Glibc
#endif

/// One open, logged-in librabbitmq connection with its channel: it exists only while
/// connected, so the code holding one never asks whether the handle is there. Used only on
/// the I/O thread (the library is not thread-safe); not Sendable on purpose.
///
/// The raw AMQP methods return nil on success or what failed, as text; after a failure the
/// broker has usually closed the channel, and `ConnectionCore` rebuilds the connection.
struct Session {
    static let channel: amqp_channel_t = 1

    let handle: amqp_connection_state_t
    let sockfd: Int32
    /// The user this connection logged in as: stamped as `user_id` on every publish.
    let loginUser: String
    /// "host:port", for logs and the connection state.
    let broker: String
    /// Over TLS, OpenSSL may hold decrypted input that a poll of the socket does not show: the
    /// pump then reads until the library reports nothing more (`ConnectionCore.pump`).
    let isTLS: Bool
    /// The broker said connection.blocked (resource alarm): publishes wait.
    var blocked = false

    /// Connects, logs in, opens the channel and turns on publisher confirms. On failure the
    /// handle is destroyed and the reason returned.
    static func open(_ config: AMQPConfiguration, host: TransportURL.Host) -> Result<Session, Failure> {
        let broker = "\(host.host):\(host.port)"
        guard let c = amqp_new_connection() else { return .failure(Failure("amqp_new_connection failed")) }
        func fail(_ why: String) -> Result<Session, Failure> {
            amqp_destroy_connection(c)
            return .failure(Failure(why))
        }
        let socket: OpaquePointer?
        if let tls = config.tls {
            socket = amqp_ssl_socket_new(c)
            if let socket {
                amqp_ssl_socket_set_verify_peer(socket, tls.verifyPeer ? 1 : 0)
                amqp_ssl_socket_set_verify_hostname(socket, tls.verifyHostname ? 1 : 0)
                if amqp_ssl_socket_set_cacert(socket, tls.caFile) != 0 {
                    return fail("TLS: cannot load CA file \(tls.caFile)")
                }
                if let cert = tls.certFile, let key = tls.keyFile, amqp_ssl_socket_set_key(socket, cert, key) != 0 {
                    return fail("TLS: cannot load client certificate \(cert) / key \(key)")
                }
            }
        } else {
            socket = amqp_tcp_socket_new(c)
        }
        guard let socket else { return fail("cannot create socket") }
        var tv = config.connectTimeout.timeval
        let rc = amqp_socket_open_noblock(socket, host.host, Int32(host.port), &tv)
        if rc != AMQP_STATUS_OK.rawValue {
            return fail("cannot connect to \(broker): \(String(cString: amqp_error_string2(rc)))")
        }
        var rpcTV = config.methodTimeout.timeval
        _ = amqp_set_rpc_timeout(c, &rpcTV)
        let arena = CArena()
        var props = clientProperties(config, arena)
        let login = aos_amqp_login_plain(
            c, config.url.virtualHost, 0, 131072, Int32(config.heartbeat), &props,
            host.username, host.password)
        if login.reply_type != AMQP_RESPONSE_NORMAL {
            let (code, text) = replyDescription(login)
            return fail(
                code == 403 || text.contains("ACCESS_REFUSED")
                    ? "login refused for user '\(host.username)' on vhost '\(config.url.virtualHost)' (\(text))"
                    : "login to \(broker) failed: \(code > 0 ? "\(code) " : "")\(text)")
        }
        _ = amqp_channel_open(c, channel)
        if let e = checkReply(c, "channel.open") { return fail(e) }
        _ = amqp_confirm_select(c, channel)
        if let e = checkReply(c, "confirm.select") { return fail(e) }
        return .success(
            Session(
                handle: c, sockfd: amqp_get_sockfd(c), loginUser: host.username, broker: broker, isTLS: config.tls != nil))
    }

    /// What failed, as text for logs and errors.
    struct Failure: Error {
        let reason: String
        init(_ reason: String) { self.reason = reason }
    }

    private static func clientProperties(_ config: AMQPConfiguration, _ arena: CArena) -> amqp_table_t {
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

    private static func checkReply(_ c: amqp_connection_state_t, _ what: String) -> String? {
        let r = amqp_get_rpc_reply(c)
        if r.reply_type == AMQP_RESPONSE_NORMAL { return nil }
        let (code, text) = replyDescription(r)
        return "\(what) failed: \(code > 0 ? "\(code) " : "")\(text)"
    }

    func checkReply(_ what: String) -> String? { Self.checkReply(handle, what) }

    // MARK: - Raw AMQP methods

    /// Sends one recorded step; `connectionPrefetch` is the qos to put back after a
    /// consumer with its own.
    func run(_ step: Topology.Step, connectionPrefetch: UInt16) -> String? {
        switch step {
        case .qos(let n): return qos(n)
        case .exchange(let e): return declare(e)
        case .queue(let q): return declare(q)
        case .binding(let b): return bind(b)
        case .consume(let tag, let queue, let options):
            return consume(queue: queue, tag: tag, options: options, connectionPrefetch: connectionPrefetch)
        }
    }

    /// Sends the steps in order; stops at the first failure.
    func replay(_ steps: [Topology.Step], connectionPrefetch: UInt16) -> String? {
        for step in steps {
            if let e = run(step, connectionPrefetch: connectionPrefetch) { return e }
        }
        return nil
    }

    func qos(_ n: UInt16) -> String? {
        _ = amqp_basic_qos(handle, Self.channel, 0, n, 0)
        return checkReply("basic.qos")
    }

    func declare(_ e: ExchangeDeclaration) -> String? {
        let a = CArena()
        _ = amqp_exchange_declare(
            handle, Self.channel, a.bytes(e.name), a.bytes(e.type), 0, e.durable ? 1 : 0,
            e.autoDelete ? 1 : 0, 0, a.table(e.arguments))
        return checkReply("exchange.declare '\(e.name)'")
    }

    func declare(_ q: QueueDeclaration) -> String? {
        let a = CArena()
        _ = amqp_queue_declare(
            handle, Self.channel, a.bytes(q.name), 0, q.durable ? 1 : 0, q.exclusive ? 1 : 0,
            q.autoDelete ? 1 : 0, a.table(q.arguments))
        return checkReply("queue.declare '\(q.name)'")
    }

    func bind(_ b: QueueBinding) -> String? {
        let a = CArena()
        _ = amqp_queue_bind(
            handle, Self.channel, a.bytes(b.queue), a.bytes(b.exchange), a.bytes(b.routingKey),
            amqp_empty_table)
        return checkReply("queue.bind '\(b.queue)' to '\(b.exchange)' key '\(b.routingKey)'")
    }

    func consume(queue: String, tag: String, options: ConsumeOptions, connectionPrefetch: UInt16) -> String? {
        let a = CArena()
        // basic.qos (not global) applies to the consumers started after it: set this
        // consumer's own limit, then put back the connection-wide one.
        let ownQos = options.manualAck && options.prefetch != connectionPrefetch
        if ownQos, let e = qos(options.prefetch) { return e }
        _ = amqp_basic_consume(
            handle, Self.channel, a.bytes(queue), a.bytes(tag), 0, options.manualAck ? 0 : 1, 0,
            amqp_empty_table)
        if let e = checkReply("basic.consume '\(queue)'") { return e }
        if ownQos, let e = qos(connectionPrefetch) { return e }
        return nil
    }

    /// queue.delete; nil on success.
    func deleteQueue(_ name: String) -> String? {
        let a = CArena()
        _ = amqp_queue_delete(handle, Self.channel, a.bytes(name), 0, 0)
        return checkReply("queue.delete '\(name)'")
    }

    /// queue.purge: how many messages were dropped, or what failed.
    func purgeQueue(_ name: String) -> Result<UInt32, Failure> {
        let a = CArena()
        let ok = amqp_queue_purge(handle, Self.channel, a.bytes(name))
        if let e = checkReply("queue.purge '\(name)'") { return .failure(Failure(e)) }
        return .success(ok?.pointee.message_count ?? 0)
    }

    func cancel(consumerTag: String) {
        let a = CArena()
        _ = amqp_basic_cancel(handle, Self.channel, a.bytes(consumerTag))
    }

    /// After a failed synchronous method: what the caller is told, and (when the broker or
    /// the socket closed something) the reason to rebuild the connection with. Answers the
    /// broker's close with close-ok. nil when the last reply was in fact normal.
    func methodFailure(_ what: String) -> (error: AMQPError, rebuild: String)? {
        let r = amqp_get_rpc_reply(handle)
        if r.reply_type == AMQP_RESPONSE_NORMAL { return nil }
        let (code, text) = replyDescription(r)
        if r.reply_type == AMQP_RESPONSE_SERVER_EXCEPTION {
            if r.reply.id == AOS_CHANNEL_CLOSE {
                sendChannelCloseOK()
            } else if r.reply.id == AOS_CONNECTION_CLOSE {
                sendConnectionCloseOK()
            }
            return (.brokerRefused(code: code, text: "\(what): \(text)"), "\(what): \(code) \(text)")
        }
        return (.connectionLost("\(what): \(text)"), "\(what): \(text)")
    }

    func sendChannelCloseOK() {
        var ok = amqp_channel_close_ok_t()
        _ = amqp_send_method(handle, Self.channel, AOS_CHANNEL_CLOSE_OK, &ok)
    }

    func sendConnectionCloseOK() {
        var ok = amqp_connection_close_ok_t()
        _ = amqp_send_method(handle, 0, AOS_CONNECTION_CLOSE_OK, &ok)
    }

    /// Frees the handle (and closes the socket) without talking to the broker.
    func destroy() { amqp_destroy_connection(handle) }

    /// Closes the channel and the connection politely, then frees the handle.
    func close() {
        _ = amqp_channel_close(handle, Self.channel, AMQP_REPLY_SUCCESS)
        _ = amqp_connection_close(handle, AMQP_REPLY_SUCCESS)
        amqp_destroy_connection(handle)
    }
}
