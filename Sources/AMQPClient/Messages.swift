// What a message carries: properties, a delivery, how a consumer takes deliveries.

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

    public init(
        contentType: String? = nil, contentEncoding: String? = nil, headers: AMQPTable? = nil,
        deliveryMode: UInt8? = nil, priority: UInt8? = nil, correlationID: String? = nil,
        replyTo: String? = nil, expiration: String? = nil, messageID: String? = nil, timestamp: UInt64? = nil,
        userID: String? = nil
    ) {
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

    public init(
        body: [UInt8], properties: AMQPProperties = AMQPProperties(), exchange: String = "",
        routingKey: String = "", redelivered: Bool = false, consumerTag: String = "",
        receivedAt: ContinuousClock.Instant = .now, bodySize: Int? = nil, bodyTail: [UInt8] = []
    ) {
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
