import RPCWire

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

extension RPCCallContext {
    /// For servers' tests and other transports: what the RPC server builds from a delivery.
    public init(
        forMethod method: String, context: [String: JSONValue] = [:], deadline: ContinuousClock.Instant? = nil,
        uniqueID: String? = nil, isCall: Bool, userID: String? = nil, route: RPCRoute = .topic,
        routingKey: String = "", msgID: String? = nil, replyQueue: String? = nil,
        namespace: String? = nil, version: String? = nil
    ) {
        self.method = method
        self.context = context
        self.deadline = deadline
        self.uniqueID = uniqueID
        self.isCall = isCall
        self.userID = userID
        self.route = route
        self.routingKey = routingKey
        self.msgID = msgID
        self.replyQueue = replyQueue
        self.namespace = namespace
        self.version = version
    }
}
