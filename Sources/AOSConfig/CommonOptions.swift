/// Options every program (agent, controller, aosctl) reads: messaging and identity.
/// `[DEFAULT]` and `[oslo_messaging_rabbit]` keep oslo.messaging's names and defaults.
public enum CommonOptions {
    public static let transportURL = OptionSpec(
        "DEFAULT", "transport_url", type: .url(schemes: ["rabbit", "amqp", "amqps"]),
        default: .string("rabbit://guest:guest@localhost:5672/"), secret: true,
        help:
            "The RabbitMQ broker(s) to use, as an oslo.messaging transport URL: rabbit://user:password@host:5672[,user:password@host2:5672]/vhost. amqp:// means the same (AMQP 0-9-1). It holds the broker password: keep this file mode 600 (or 640 root:aos), or set it in the environment; never on a command line."
    )
    public static let host = OptionSpec(
        "DEFAULT", "host", type: .string, default: .string(HostEnvironment.hostName()),
        help: "This node's name: the agent's RPC server name, the same name nova and cinder use as 'host'.",
        defaultText: "the system host name")
    public static let controlExchange = OptionSpec(
        "DEFAULT", "control_exchange", type: .string, default: .string("openstack"),
        help: "The AMQP exchange the RPC topics live in (oslo.messaging's control_exchange).")

    public static let heartbeatTimeoutThreshold = OptionSpec(
        "oslo_messaging_rabbit", "heartbeat_timeout_threshold", type: .integer(min: 0), default: .int(60),
        help: "Seconds without AMQP heartbeat after which the connection counts as dead (0 disables heartbeats).")
    public static let amqpDurableQueues = OptionSpec(
        "oslo_messaging_rabbit", "amqp_durable_queues", type: .boolean, default: .bool(false),
        help: "Declare durable queues and exchanges (must match the other OpenStack services on the broker).")
    public static let rabbitQuorumQueue = OptionSpec(
        "oslo_messaging_rabbit", "rabbit_quorum_queue", type: .boolean, default: .bool(false),
        help: "Declare quorum queues instead of classic queues (must match the other services).")
    public static let rabbitQosPrefetchCount = OptionSpec(
        "oslo_messaging_rabbit", "rabbit_qos_prefetch_count", type: .integer(min: 0), default: .int(0),
        help: "Unacknowledged messages a consumer may hold (basic.qos prefetch); 0 means unlimited.")
    public static let ssl = OptionSpec(
        "oslo_messaging_rabbit", "ssl", type: .boolean, default: .bool(false),
        help:
            "Connect to the broker over TLS, as oslo.messaging does: also with a rabbit:// or amqp:// URL, on the URL's port (RabbitMQ's TLS listener is usually 5671)."
    )
    public static let sslCAFile = OptionSpec(
        "oslo_messaging_rabbit", "ssl_ca_file", type: .string, default: .string(""),
        help: "CA bundle to verify the broker's certificate (empty: the system's bundle, e.g. /etc/ssl/certs/ca-certificates.crt).")
    public static let sslCertFile = OptionSpec(
        "oslo_messaging_rabbit", "ssl_cert_file", type: .string, default: .string(""),
        help: "Client certificate for TLS (empty: none).")
    public static let sslKeyFile = OptionSpec(
        "oslo_messaging_rabbit", "ssl_key_file", type: .string, default: .string(""),
        help: "Private key of the client certificate (empty: none).")

    public static let all: [OptionSpec] = [
        transportURL, host, controlExchange,
        heartbeatTimeoutThreshold, amqpDurableQueues, rabbitQuorumQueue, rabbitQosPrefetchCount,
        ssl, sslCAFile, sslCertFile, sslKeyFile,
    ]

    static let sslFilesNeedSSL: @Sendable (Configuration) -> String? = { config in
        guard !config.bool(ssl) else { return nil }
        let set = [sslCAFile, sslCertFile, sslKeyFile].filter { !config.string($0).isEmpty }.map(\.name)
        guard !set.isEmpty else { return nil }
        return "[oslo_messaging_rabbit] \(set.joined(separator: ", ")) given but ssl = false"
    }

    /// The messaging settings, typed.
    public struct Messaging: Sendable, Equatable {
        public var transportURL: String
        public var host: String
        public var controlExchange: String
        public var heartbeatTimeoutThreshold: Int
        public var amqpDurableQueues: Bool
        public var rabbitQuorumQueue: Bool
        public var rabbitQosPrefetchCount: Int
        public var ssl: Bool
        public var sslCAFile: String
        public var sslCertFile: String
        public var sslKeyFile: String

        public init(_ c: Configuration) {
            transportURL = c.string(CommonOptions.transportURL)
            host = c.string(CommonOptions.host)
            controlExchange = c.string(CommonOptions.controlExchange)
            heartbeatTimeoutThreshold = c.int(CommonOptions.heartbeatTimeoutThreshold)
            amqpDurableQueues = c.bool(CommonOptions.amqpDurableQueues)
            rabbitQuorumQueue = c.bool(CommonOptions.rabbitQuorumQueue)
            rabbitQosPrefetchCount = c.int(CommonOptions.rabbitQosPrefetchCount)
            ssl = c.bool(CommonOptions.ssl)
            sslCAFile = c.string(CommonOptions.sslCAFile)
            sslCertFile = c.string(CommonOptions.sslCertFile)
            sslKeyFile = c.string(CommonOptions.sslKeyFile)
        }
    }
}

/// Log levels shared by the programs (swift-log's names).
let logLevels = ["trace", "debug", "info", "notice", "warning", "error", "critical"]
