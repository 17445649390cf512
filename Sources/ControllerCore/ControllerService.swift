import AMQPClient
import AOSConfig
import Logging
import OsloRPC
import RPCWire

/// The running controller: one AMQP connection, an RPC client to the agents and an RPC
/// server on `[controller] topic` (requests shared by every controller; each gets its own
/// fanout copy of the agents' announcements).
public struct ControllerService: Sendable {
    public let settings: ControllerOptions.Settings
    public let controller: Controller
    public let connection: AMQPConnection
    let server: RPCServer
    let logger: Logger

    public init(settings: ControllerOptions.Settings, logger: Logger) throws {
        self.settings = settings
        self.logger = logger
        let m = settings.messaging
        let url = try TransportURL(parsing: m.transportURL)
        var amqp = try AMQPConfiguration(url: url, tlsDefaults: m.ssl && !m.sslCAFile.isEmpty
            ? AMQPConfiguration.TLS(caFile: m.sslCAFile, certFile: m.sslCertFile.isEmpty ? nil : m.sslCertFile,
                                    keyFile: m.sslKeyFile.isEmpty ? nil : m.sslKeyFile) : nil)
        amqp.heartbeat = m.heartbeatTimeoutThreshold
        amqp.prefetchCount = UInt16(clamping: m.rabbitQosPrefetchCount)
        amqp.connectionName = "aos-controller:\(m.host)"
        amqp.reconnectMaxDelay = .seconds(5)
        let connLogger = logger
        connection = AMQPConnection(configuration: amqp, logger: logger) { state in
            switch state {
            case .connected(let host): connLogger.info("connected to the broker", metadata: ["broker": "\(host)"])
            case .disconnected(let reason): connLogger.warning("lost the broker connection", metadata: ["reason": "\(reason)"])
            case .connecting, .closed: break
            }
        }
        var flavor = QueueFlavor(options: url.query)
        flavor.durableQueues = m.amqpDurableQueues
        flavor.quorumQueues = m.rabbitQuorumQueue
        let client = RPCClient(connection: connection, flavor: flavor, logger: logger)
        let caller = RPCAgentCaller(client: client, exchange: m.controlExchange)
        controller = Controller(
            caller: caller,
            settings: ControllerSettings(
                agentResponseTimeout: .seconds(settings.agentResponseTimeout),
                liveness: LivenessPolicy(staleAfter: .seconds(settings.agentStaleAfter),
                                         downAfter: .seconds(settings.agentDownAfter)),
                preferredHosts: settings.preferredHosts),
            logger: logger)
        var options = RPCServer.Options()
        options.flavor = flavor
        server = RPCServer(connection: connection,
                           target: RPCTarget(exchange: m.controlExchange, topic: settings.topic, server: m.host),
                           dispatcher: RPCDispatcher(endpoints: [controller.endpoint]), options: options, logger: logger)
    }

    /// Serves until cancelled; `onReady` runs once the queues are consumed.
    public func run(onReady: @escaping @Sendable () -> Void) async throws {
        let controller = self.controller
        let monitor = Task {
            while !Task.isCancelled {
                try? await Task.sleep(for: .seconds(1))
                controller.checkLiveness()
            }
        }
        defer { monitor.cancel() }
        try await server.run(onReady: onReady)
        await connection.close()
    }
}
