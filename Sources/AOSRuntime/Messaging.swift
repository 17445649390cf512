import AMQPClient
import AOSConfig
import Logging
import OsloRPC

/// The broker connection every long-running aos program opens the same way from
/// `[DEFAULT]` and `[oslo_messaging_rabbit]`: transport URL with TLS defaults, heartbeat,
/// prefetch, a connection name the broker's management UI shows, connection state in
/// the log, and the queue flavour the other OpenStack services use.
public struct BrokerConnection: Sendable {
    public let connection: AMQPConnection
    public let flavor: QueueFlavor

    /// - Parameter name: shown by the broker, e.g. "aos-agent:cmp-1".
    public init(_ m: CommonOptions.Messaging, name: String, reconnectMaxDelay: Duration, logger: Logger) throws {
        let url = try TransportURL(parsing: m.transportURL)
        var amqp = try AMQPConfiguration(url: url, tlsDefaults: m.ssl && !m.sslCAFile.isEmpty
            ? AMQPConfiguration.TLS(caFile: m.sslCAFile, certFile: m.sslCertFile.isEmpty ? nil : m.sslCertFile,
                                    keyFile: m.sslKeyFile.isEmpty ? nil : m.sslKeyFile) : nil)
        amqp.heartbeat = m.heartbeatTimeoutThreshold
        amqp.prefetchCount = UInt16(clamping: m.rabbitQosPrefetchCount)
        amqp.connectionName = name
        amqp.reconnectMaxDelay = reconnectMaxDelay
        connection = AMQPConnection(configuration: amqp, logger: logger) { state in
            switch state {
            case .connected(let broker): logger.info("connected to the broker", metadata: ["broker": "\(broker)"])
            case .disconnected(let reason): logger.warning("lost the broker connection", metadata: ["reason": "\(reason)"])
            case .connecting, .closed: break
            }
        }
        var flavor = QueueFlavor(options: url.query)
        flavor.durableQueues = m.amqpDurableQueues
        flavor.quorumQueues = m.rabbitQuorumQueue
        self.flavor = flavor
    }
}
