import AMQPClient
import AOSConfig
import CoreMetrics
import Logging
import OsloRPC

/// The broker connection every long-running aos program opens the same way from
/// `[DEFAULT]` and `[oslo_messaging_rabbit]`: transport URL with TLS defaults, heartbeat,
/// prefetch, a connection name the broker's management UI shows, connection state in
/// the log, and the queue flavour the other OpenStack services use.
public struct BrokerConnection: Sendable {
    public let connection: AMQPConnection
    public let flavor: QueueFlavor
    /// The connection's ups and downs, in order. An agent announces itself at each `connected`
    /// instead of at its next interval (after a broker restart the controller knows it is back
    /// within moments, not up to `announce_interval` later); the controller does not count the
    /// agents' silence while it was cut off itself. Buffers the newest few.
    public let events: AsyncStream<BrokerEvent>

    /// - Parameter name: shown by the broker, e.g. "aos-agent:cmp-1".
    public init(_ m: CommonOptions.Messaging, name: String, reconnectMaxDelay: Duration, logger: Logger) throws {
        var amqp = try m.amqpConfiguration()
        amqp.heartbeat = m.heartbeatTimeoutThreshold
        amqp.prefetchCount = UInt16(clamping: m.rabbitQosPrefetchCount)
        amqp.connectionName = name
        amqp.reconnectMaxDelay = reconnectMaxDelay
        amqp.spreadLoad = true
        let (events, sink) = AsyncStream.makeStream(of: BrokerEvent.self, bufferingPolicy: .bufferingNewest(8))
        self.events = events
        // aos_broker_connected (1/0) and aos_broker_connections_lost_total (docs/operations.md).
        let connected = Gauge(label: "aos_broker_connected")
        let lost = Counter(label: "aos_broker_connections_lost_total")
        connected.record(0)
        lost.increment(by: 0)
        connection = AMQPConnection(configuration: amqp, logger: logger) { state in
            switch state {
            case .connected(let broker):
                connected.record(1)
                logger.info("connected to the broker", metadata: ["broker": "\(broker)"])
                sink.yield(.connected)
            case .disconnected(let reason):
                connected.record(0)
                lost.increment()
                logger.warning("lost the broker connection", metadata: ["reason": "\(reason)"])
                sink.yield(.lost)
            case .closed:
                connected.record(0)
                sink.finish()
            case .connecting: break
            }
        }
        var flavor = QueueFlavor(options: amqp.url.query)
        flavor.durableQueues = m.amqpDurableQueues
        flavor.quorumQueues = m.rabbitQuorumQueue
        self.flavor = flavor
    }
}

public enum BrokerEvent: Sendable, Equatable {
    case connected
    case lost
}

extension CommonOptions.Messaging {
    /// CA bundles of the common distributions, for `ssl = true` without `ssl_ca_file`
    /// ("the system's CAs" as in oslo): librabbitmq 0.11 cannot read the system store
    /// itself, so the first bundle that exists is handed to it as a CA file.
    public static let systemCABundles = [
        "/etc/ssl/certs/ca-certificates.crt",  // Debian, Ubuntu, Alpine
        "/etc/pki/tls/certs/ca-bundle.crt",  // RHEL, Fedora
        "/etc/ssl/ca-bundle.pem",  // SUSE
        "/etc/ssl/cert.pem",
    ]

    /// The AMQP settings of `transport_url` plus `[oslo_messaging_rabbit] ssl*`.
    ///
    /// TLS is on when `ssl = true` (as in oslo.messaging, whatever the URL's scheme, on the
    /// URL's port: oslo does not switch ports), or with `amqps://` / `?ssl=1` in the URL.
    /// The CA file is `ssl_ca_file` (the URL's `ssl_ca_file` query wins), else the system
    /// bundle; a client certificate needs both `ssl_cert_file` and `ssl_key_file`.
    public func amqpConfiguration(systemCABundles: [String] = Self.systemCABundles) throws(TransportURLError) -> AMQPConfiguration {
        let url = try TransportURL(parsing: transportURL)
        let wantsTLS = ssl || url.usesTLS
        var defaults: AMQPConfiguration.TLS?
        if wantsTLS {
            let ca = !sslCAFile.isEmpty ? sslCAFile : systemCABundles.first(where: HostEnvironment.fileExists)
            defaults = ca.map {
                AMQPConfiguration.TLS(
                    caFile: $0, certFile: sslCertFile.isEmpty ? nil : sslCertFile,
                    keyFile: sslKeyFile.isEmpty ? nil : sslKeyFile)
            }
        }
        var amqp = try AMQPConfiguration(url: url, tlsDefaults: defaults)
        if ssl && amqp.tls == nil {
            // A rabbit:// or amqp:// URL without ?ssl: AMQPConfiguration left TLS off.
            var t = defaults
            let q = url.query
            if let ca = q["ssl_ca_file"] { t = .init(caFile: ca, certFile: t?.certFile, keyFile: t?.keyFile) }
            if let c = q["ssl_cert_file"] { t?.certFile = c }
            if let k = q["ssl_key_file"] { t?.keyFile = k }
            guard let t else {
                throw .malformed(
                    "[oslo_messaging_rabbit] ssl = true but no CA file: set ssl_ca_file "
                        + "(none of the system bundles \(systemCABundles.joined(separator: ", ")) exists)")
            }
            amqp.tls = t
        }
        return amqp
    }
}
