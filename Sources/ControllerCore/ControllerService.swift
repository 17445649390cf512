import AMQPClient
import AOSAuth
import AOSConfig
import AOSRuntime
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
    let brokerEvents: AsyncStream<BrokerEvent>
    /// `[controller] metrics_*`: exposition and the periodic samples (off by default).
    let metrics: MetricsExport
    /// The largest agent reply the controller accepts (see `init`).
    public static let maxAgentReplyBytes = 16 << 20

    public init(
        settings: ControllerOptions.Settings, metrics: MetricsOptions.Settings = MetricsOptions.Settings(), logger: Logger
    ) throws {
        self.settings = settings
        self.logger = logger
        self.metrics = MetricsExport(settings: metrics, program: "aos-controller")
        let m = settings.messaging
        let broker = try BrokerConnection(m, name: "aos-controller:\(m.host)", reconnectMaxDelay: .seconds(2), logger: logger)
        connection = broker.connection
        brokerEvents = broker.events
        let flavor = broker.flavor
        // An agent's largest reply (`list_lvs` of a VG near LVM's practical limit of a few
        // thousand LVs) is a few MiB: a reply far above that is refused, not decoded on the
        // connection's thread (docs/security.md, "Every byte is hostile").
        let client = RPCClient(
            connection: connection, flavor: flavor, logger: logger, maxReplyBytes: Self.maxAgentReplyBytes)
        let caller = RPCAgentCaller(client: client, exchange: m.controlExchange)
        var controllerSettings = ControllerSettings(
            agentResponseTimeout: .seconds(settings.agentResponseTimeout),
            liveness: LivenessPolicy(
                staleAfter: .seconds(settings.agentStaleAfter),
                downAfter: .seconds(settings.agentDownAfter)),
            preferredHosts: settings.preferredHosts)
        controllerSettings.maxClockSkew = .seconds(settings.auth.maxClockSkew)
        controllerSettings.selfCheck = ClusterCheck.controllerItems(settings)
        // `dispatch_on_connection_thread` (off by default; docs/performance.md, "The controller's
        // hop after the watcher and pinning"): request tasks, and the agent calls they make, run
        // on the connection's I/O thread. Safe, as no handler blocks a thread (they read and
        // change the in-memory view under short locks and wait for agents with `await`; no file,
        // no database, no synchronous wait) and cheaper by the counters, but the Cinder driver's
        // calls measured no faster pinned, their p99 higher.
        let pinned = settings.dispatchOnConnectionThread
        controller = Controller(
            caller: caller, settings: controllerSettings, logger: logger,
            agentCallExecutor: pinned ? connection.executor : nil)
        var options = RPCServer.Options()
        options.dispatchOnConnectionThread = pinned
        options.flavor = flavor
        options.maxRequestBytes = settings.maxRequestBytes
        options.admit =
            Admission(
                policy: Policies.controller(), configuration: try AuthConfiguration(settings.auth),
                onEvent: { event in
                    if case .wouldRefuse(let method, let message) = event {
                        logger.warning(
                            "[auth] enforce = false: this request would be refused",
                            metadata: ["method": "\(method)", "reason": "\(message)"])
                    }
                }
            ).hook
        server = RPCServer(
            connection: connection,
            target: RPCTarget(exchange: m.controlExchange, topic: settings.topic, server: m.host),
            dispatcher: RPCDispatcher(endpoints: [controller.endpoint]), options: options, logger: logger)
    }

    /// Serves until cancelled; `onReady` runs once the queues are consumed.
    public func run(onReady: @escaping @Sendable () -> Void) async throws {
        let controller = self.controller
        let monitor = Task {
            // Ends when cancelled (the sleep throws then).
            while (try? await Task.sleep(for: .seconds(1))) != nil {
                controller.checkLiveness()
            }
        }
        let outages = Task { [brokerEvents] in
            var lostAt: ContinuousClock.Instant?
            for await event in brokerEvents {
                switch event {
                case .lost: lostAt = lostAt ?? controller.now()
                case .connected:
                    if let l = lostAt { controller.brokerOutage(from: l, to: controller.now()) }
                    lostAt = nil
                }
            }
        }
        defer {
            monitor.cancel()
            outages.cancel()
        }
        let exporter = Task { [metrics, logger] in await metrics.run(logger: logger) { controller.sampleMetrics() } }
        defer { exporter.cancel() }
        try await server.run(onReady: onReady)
        await connection.close()
    }
}
