import RPCWire

extension RPCCallContext {
    /// For servers' tests and other transports: what the RPC server builds from a delivery.
    public init(forMethod method: String, context: [String: JSONValue] = [:], deadline: ContinuousClock.Instant? = nil,
                uniqueID: String? = nil, isCall: Bool, userID: String? = nil, route: RPCRoute = .topic,
                routingKey: String = "", msgID: String? = nil, replyQueue: String? = nil,
                namespace: String? = nil, version: String? = nil) {
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
