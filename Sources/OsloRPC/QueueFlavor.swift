import AMQPClient

/// Where an RPC message goes: oslo's Target(exchange, topic, server).
public struct RPCTarget: Sendable, Hashable, CustomStringConvertible {
    public var exchange: String
    public var topic: String
    public var server: String?

    public init(exchange: String = "openstack", topic: String, server: String? = nil) {
        self.exchange = exchange
        self.topic = topic
        self.server = server
    }

    /// `T` for the pool, `T.S` for one server.
    public var routingKey: String { server.map { "\(topic).\($0)" } ?? topic }
    public var fanoutExchange: String { "\(topic)_fanout" }
    public var description: String { "\(exchange)/\(routingKey)" }
}

/// The queue and exchange flags every peer on a vhost must agree on; RabbitMQ
/// refuses (406) a redeclaration with other flags. Defaults are oslo.messaging's.
public struct QueueFlavor: Sendable, Equatable {
    /// `[oslo_messaging_rabbit] amqp_durable_queues`
    public var durableQueues = false
    /// `amqp_auto_delete`
    public var autoDelete = false
    /// `rabbit_quorum_queue`: topic queues become durable quorum queues.
    public var quorumQueues = false
    /// `rabbit_transient_quorum_queue`: reply and fanout queues become quorum queues.
    public var transientQuorumQueues = false
    /// `rabbit_transient_queues_ttl` in seconds; 0 = no x-expires.
    public var transientQueuesTTL = 1800
    public var quorumDeliveryLimit = 0
    public var quorumMaxMemoryLength = 0
    public var quorumMaxMemoryBytes = 0

    public init() {}

    public func topicExchange(_ name: String) -> ExchangeDeclaration {
        ExchangeDeclaration(name: name, type: "topic", durable: durableQueues || quorumQueues, autoDelete: autoDelete)
    }

    public func fanoutExchange(_ name: String) -> ExchangeDeclaration {
        ExchangeDeclaration(name: name, type: "fanout", durable: transientQuorumQueues, autoDelete: true)
    }

    public func topicQueue(_ name: String) -> QueueDeclaration {
        if quorumQueues {
            var args: AMQPTable = ["x-queue-type": .string("quorum")]
            if quorumDeliveryLimit > 0 { args["x-delivery-limit"] = .int(quorumDeliveryLimit) }
            if quorumMaxMemoryLength > 0 { args["x-max-in-memory-length"] = .int(quorumMaxMemoryLength) }
            if quorumMaxMemoryBytes > 0 { args["x-max-in-memory-bytes"] = .int(quorumMaxMemoryBytes) }
            return QueueDeclaration(name: name, durable: true, autoDelete: autoDelete, arguments: args)
        }
        return QueueDeclaration(name: name, durable: durableQueues, autoDelete: autoDelete)
    }

    /// Reply queues and per-process fanout queues: expire 30 min after last use.
    public func transientQueue(_ name: String) -> QueueDeclaration {
        var args: AMQPTable = [:]
        if transientQueuesTTL > 0 { args["x-expires"] = .int(transientQueuesTTL * 1000) }
        if transientQuorumQueues {
            args["x-queue-type"] = .string("quorum")
            return QueueDeclaration(name: name, durable: true, arguments: args)
        }
        return QueueDeclaration(name: name, arguments: args)
    }

    /// Reads the oslo option names from a transport URL query or config section.
    public init(options: [String: String]) {
        func flag(_ k: String) -> Bool { ["1", "true", "yes", "on"].contains(options[k]?.lowercased() ?? "") }
        durableQueues = flag("amqp_durable_queues")
        autoDelete = flag("amqp_auto_delete")
        quorumQueues = flag("rabbit_quorum_queue")
        transientQuorumQueues = flag("rabbit_transient_quorum_queue")
        if let t = options["rabbit_transient_queues_ttl"].flatMap(Int.init) { transientQueuesTTL = t }
        if let v = options["rabbit_quorum_delivery_limit"].flatMap(Int.init) { quorumDeliveryLimit = v }
        if let v = options["rabbit_quorum_max_memory_length"].flatMap(Int.init) { quorumMaxMemoryLength = v }
        if let v = options["rabbit_quorum_max_memory_bytes"].flatMap(Int.init) { quorumMaxMemoryBytes = v }
    }
}

extension AMQPProperties {
    /// The properties oslo puts on every request and reply.
    static func oslo(expiration: Duration? = nil) -> AMQPProperties {
        AMQPProperties(
            contentType: "application/json", contentEncoding: "utf-8", headers: [:], deliveryMode: 2,
            priority: 0, expiration: expiration.map { String(max(1, $0.wholeMilliseconds)) })
    }
}

extension Duration {
    var wholeMilliseconds: Int64 {
        let c = components
        return c.seconds * 1000 + c.attoseconds / 1_000_000_000_000_000
    }
    var seconds: Double {
        let c = components
        return Double(c.seconds) + Double(c.attoseconds) / 1e18
    }
}
