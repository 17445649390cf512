/// Connection settings. Built from a transport URL plus oslo-style options;
/// see docs/amqp-rpc.md for what each one changes on the wire.
public struct AMQPConfiguration: Sendable {
    public struct TLS: Sendable, Equatable {
        /// librabbitmq 0.11 cannot use the system CA store: a CA file is required.
        public var caFile: String
        public var certFile: String?
        public var keyFile: String?
        public var verifyPeer = true
        /// DNS-name matching only in 0.11: connect by name, not by IP address.
        public var verifyHostname = true

        public init(caFile: String, certFile: String? = nil, keyFile: String? = nil) {
            self.caFile = caFile
            self.certFile = certFile
            self.keyFile = keyFile
        }
    }

    public var url: TransportURL
    /// AMQP heartbeat in seconds (oslo's heartbeat_timeout_threshold); 0 disables.
    /// A dead peer is detected after about two intervals.
    public var heartbeat: Int = 60
    public var connectTimeout: Duration = .seconds(5)
    /// Bound on synchronous AMQP methods (declare, bind, consume).
    public var methodTimeout: Duration = .seconds(30)
    /// A publish (socket write) that has not finished by then is aborted and the
    /// connection rebuilt: guards against librabbitmq 0.11's publish hang.
    public var publishWriteTimeout: Duration = .seconds(10)
    public var reconnectInitialDelay: Duration = .seconds(1)
    public var reconnectMaxDelay: Duration = .seconds(30)
    public var tls: TLS?
    public var prefetchCount: UInt16 = 0
    public var connectionName: String = "aos"

    /// Applies the oslo options that a transport URL's query may carry
    /// (`heartbeat_timeout_threshold`, `ssl_ca_file`, …). Unknown keys are ignored
    /// here: they belong to other layers (e.g. queue flavour options).
    public init(url: TransportURL, tlsDefaults: TLS? = nil) throws(TransportURLError) {
        self.url = url
        let q = url.query
        if let hb = q["heartbeat_timeout_threshold"] {
            guard let v = Int(hb), v >= 0 else { throw .malformed("heartbeat_timeout_threshold must be an integer >= 0") }
            heartbeat = v
        }
        if let p = q["rabbit_qos_prefetch_count"] {
            guard let v = UInt16(p) else { throw .malformed("rabbit_qos_prefetch_count must be an integer 0..65535") }
            prefetchCount = v
        }
        if url.usesTLS {
            var t = tlsDefaults
            if let ca = q["ssl_ca_file"] { t = TLS(caFile: ca, certFile: t?.certFile, keyFile: t?.keyFile) }
            if let c = q["ssl_cert_file"] { t?.certFile = c }
            if let k = q["ssl_key_file"] { t?.keyFile = k }
            guard let t else {
                throw .malformed("TLS requested but no CA file given (ssl_ca_file): librabbitmq 0.11 cannot use the system store")
            }
            tls = t
        }
    }
}

/// AMQP field-table values, the subset oslo.messaging uses.
public enum AMQPFieldValue: Sendable, Hashable {
    case bool(Bool)
    case int32(Int32)
    case int64(Int64)
    case string(String)

    /// py-amqp encodes Python ints that fit 32 bits as 'I'; matching that keeps
    /// queue-argument equivalence checks happy when both sides declare a queue.
    public static func int(_ v: Int) -> AMQPFieldValue {
        if let small = Int32(exactly: v) { return .int32(small) }
        return .int64(Int64(v))
    }
}

public typealias AMQPTable = [String: AMQPFieldValue]

public struct ExchangeDeclaration: Sendable, Hashable {
    public var name: String
    public var type: String
    public var durable: Bool
    public var autoDelete: Bool
    public var arguments: AMQPTable

    public init(name: String, type: String, durable: Bool = false, autoDelete: Bool = false, arguments: AMQPTable = [:]) {
        self.name = name
        self.type = type
        self.durable = durable
        self.autoDelete = autoDelete
        self.arguments = arguments
    }
}

public struct QueueDeclaration: Sendable, Hashable {
    public var name: String
    public var durable: Bool
    public var exclusive: Bool
    public var autoDelete: Bool
    public var arguments: AMQPTable

    public init(name: String, durable: Bool = false, exclusive: Bool = false, autoDelete: Bool = false,
                arguments: AMQPTable = [:]) {
        self.name = name
        self.durable = durable
        self.exclusive = exclusive
        self.autoDelete = autoDelete
        self.arguments = arguments
    }
}

public struct QueueBinding: Sendable, Hashable {
    public var queue: String
    public var exchange: String
    public var routingKey: String

    public init(queue: String, exchange: String, routingKey: String) {
        self.queue = queue
        self.exchange = exchange
        self.routingKey = routingKey
    }
}

public struct AMQPProperties: Sendable, Equatable {
    public var contentType: String?
    public var contentEncoding: String?
    public var headers: AMQPTable?
    public var deliveryMode: UInt8?
    public var priority: UInt8?
    public var correlationID: String?
    public var replyTo: String?
    /// Per-message TTL in milliseconds, as a decimal string (AMQP's format).
    public var expiration: String?
    public var messageID: String?
    public var timestamp: UInt64?
    /// The publisher's login user. RabbitMQ refuses a message whose `user_id` differs from the
    /// user that opened the connection, so on delivery it is a broker-checked identity (absent
    /// when the publisher did not set it). `AMQPConnection` sets it on every publish.
    public var userID: String?

    public init(contentType: String? = nil, contentEncoding: String? = nil, headers: AMQPTable? = nil,
                deliveryMode: UInt8? = nil, priority: UInt8? = nil, correlationID: String? = nil,
                replyTo: String? = nil, expiration: String? = nil, messageID: String? = nil, timestamp: UInt64? = nil,
                userID: String? = nil) {
        self.contentType = contentType
        self.contentEncoding = contentEncoding
        self.headers = headers
        self.deliveryMode = deliveryMode
        self.priority = priority
        self.correlationID = correlationID
        self.replyTo = replyTo
        self.expiration = expiration
        self.messageID = messageID
        self.timestamp = timestamp
        self.userID = userID
    }
}

public struct AMQPDelivery: Sendable {
    /// The body; for a body larger than the consumer's `maxBodyBytes`, only its first
    /// `ConsumeOptions.keptBytes` bytes (see `isTruncated`).
    public var body: [UInt8]
    public var properties: AMQPProperties
    public var exchange: String
    public var routingKey: String
    public var redelivered: Bool
    public var consumerTag: String
    /// When the I/O thread read it off the socket; with `expiration`, bounds how
    /// long the sender is still waiting.
    public var receivedAt: ContinuousClock.Instant
    /// The size of the body as published (larger than `body.count` when truncated).
    public var bodySize: Int = 0
    /// The last bytes of a truncated body (empty otherwise): oslo callers put `_msg_id`
    /// after the arguments, so a tolerant scan needs both ends.
    public var bodyTail: [UInt8] = []
    /// Set for consumers with `ConsumeOptions.manualAck`: the delivery must be passed to
    /// `AMQPConnection.ack(_:)`.
    public var needsAck = false
    var deliveryTag: UInt64 = 0
    var generation: UInt64 = 0

    public var isTruncated: Bool { bodySize > body.count }

    public init(body: [UInt8], properties: AMQPProperties = AMQPProperties(), exchange: String = "",
                routingKey: String = "", redelivered: Bool = false, consumerTag: String = "",
                receivedAt: ContinuousClock.Instant = .now, bodySize: Int? = nil, bodyTail: [UInt8] = []) {
        self.body = body
        self.properties = properties
        self.exchange = exchange
        self.routingKey = routingKey
        self.redelivered = redelivered
        self.consumerTag = consumerTag
        self.receivedAt = receivedAt
        self.bodySize = bodySize ?? body.count
        self.bodyTail = bodyTail
    }
}

/// How a consumer takes deliveries.
public struct ConsumeOptions: Sendable, Equatable {
    /// Ack with `AMQPConnection.ack(_:)` instead of on receipt; the broker then sends at
    /// most `prefetch` unacked deliveries to this consumer (bounded memory).
    public var manualAck = false
    /// basic.qos for this consumer (manual ack only; 0 = unlimited).
    public var prefetch: UInt16 = 0
    /// Bodies larger than this are not copied out of the library's buffer: the delivery
    /// carries only `keptBytes` from each end, and `isTruncated`. nil = no limit.
    public var maxBodyBytes: Int?
    public var keptBytes = 16_384

    public init(manualAck: Bool = false, prefetch: UInt16 = 0, maxBodyBytes: Int? = nil) {
        self.manualAck = manualAck
        self.prefetch = prefetch
        self.maxBodyBytes = maxBodyBytes
    }
}

public enum AMQPError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The connection is closed for good (close() was called).
    case closed
    /// No connection could be made before the operation's deadline.
    case notConnected(lastError: String)
    /// The connection broke while the operation was in flight; it may or may not have taken effect.
    case connectionLost(String)
    /// mandatory publish with no queue bound for the routing key (basic.return).
    case unroutable(exchange: String, routingKey: String, reply: String)
    /// The broker refused the message (basic.nack).
    case nacked
    /// The broker refused a method (channel or connection close), e.g. 404 or 406.
    case brokerRefused(code: Int, text: String)
    /// Publishing stayed blocked (connection.blocked, resource alarm) past the deadline.
    case blocked
    case timedOut(String)
    case library(String)

    public var description: String {
        switch self {
        case .closed: return "AMQP connection is closed"
        case .notConnected(let e): return "not connected to the broker (last error: \(e))"
        case .connectionLost(let e): return "connection to the broker lost: \(e)"
        case .unroutable(let ex, let rk, let reply):
            return "no queue for routing key '\(rk)' on exchange '\(ex.isEmpty ? "(default)" : ex)' (\(reply)): is the peer running?"
        case .nacked: return "the broker refused the message (basic.nack)"
        case .brokerRefused(let code, let text): return "the broker refused the request: \(code) \(text)"
        case .blocked: return "the broker is blocking publishers (resource alarm)"
        case .timedOut(let what): return "timed out: \(what)"
        case .library(let e): return "AMQP library error: \(e)"
        }
    }
}

public enum ConnectionState: Sendable, Equatable {
    case connecting
    case connected(host: String)
    case disconnected(reason: String)
    case closed
}
