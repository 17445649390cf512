// aos-controller: the peer behind the Cinder driver's agent_transport_url. It serves the
// driver-facing RPC API (docs/rpc-api.md) and routes each request to the right node's agent.
import AOSConfig
import AOSRuntime
import ArgumentParser
import ControllerCore
import Logging
import ServiceLifecycle

#if canImport(Glibc)
import Glibc
#endif

@main
struct AOSController: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "aos-controller",
        abstract: "Serves the shared-LVM controller API and routes requests to the node agents.",
        discussion: """
            Configuration: --set > environment (AOS_<SECTION>_<KEY>) > --config file > defaults.
            Prints 'READY topic=<topic> server=<host>' on stdout once it serves; logs go to stderr.
            """,
        version: "aos-controller \(ProductVersion.current)")

    @OptionGroup var configurationSource: ConfigurationArguments

    @Flag(help: "Print the effective configuration (secrets masked) and exit.")
    var printConfig = false

    func run() async throws {
        let loaded = try configurationSource.loadOrExit(ControllerOptions.schema, program: "aos-controller")
        let settings = ControllerOptions.Settings(loaded)
        if printConfig {
            Console.out(loaded.dump())
            return
        }
        let logger = bootstrapLogging(label: "aos-controller", level: Logger.Level(rawValue: settings.logLevel) ?? .info)
        let service: ControllerService
        do {
            service = try ControllerService(settings: settings, metrics: MetricsOptions.Settings(controller: loaded), logger: logger)
        } catch {
            Console.err("aos-controller: \(error)")
            throw ExitCode(2)
        }
        logger.info(
            "starting",
            metadata: [
                "topic": "\(settings.topic)", "server": "\(settings.messaging.host)",
                "agent_response_timeout": "\(settings.agentResponseTimeout)",
                "agent_stale_after": "\(settings.agentStaleAfter)", "agent_down_after": "\(settings.agentDownAfter)",
                "preferred_hosts": "\(settings.preferredHosts.joined(separator: ","))",
            ])
        let topic = settings.topic, host = settings.messaging.host
        let group = ServiceGroup(
            services: [
                ClosureService {
                    try await cancelWhenGracefulShutdown {
                        try await service.run(onReady: { Console.out("READY topic=\(topic) server=\(host)\n") })
                    }
                }
            ],
            gracefulShutdownSignals: [.sigterm, .sigint], logger: logger)
        try await group.run()
        logger.info("stopped")
    }
}
