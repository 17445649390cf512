// What a connection declares on the broker (and replays after a reconnect).

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

    public init(
        name: String, durable: Bool = false, exclusive: Bool = false, autoDelete: Bool = false,
        arguments: AMQPTable = [:]
    ) {
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
