// aos-controller: the peer behind the Cinder driver's agent_transport_url. It serves the
// driver-facing RPC API (docs/rpc-api.md) and routes each request to the right node's agent.
import AOSConfig
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
            """)

    @Option(help: "Configuration file (default: /etc/aos/aos.conf when it exists).")
    var config: String?

    @Option(name: .customLong("set"), help: ArgumentHelp("Override one option, e.g. controller.agent_response_timeout=60 (repeatable).",
                                                          valueName: "section.key=value"))
    var overrides: [String] = []

    @Flag(help: "Print the effective configuration (secrets masked) and exit.")
    var printConfig = false

    func run() async throws {
        let loaded: Configuration
        do {
            loaded = try loadConfiguration()
        } catch {
            printErr("aos-controller: configuration error:\n\(error)")
            throw ExitCode(2)
        }
        let settings = ControllerOptions.Settings(loaded)
        if printConfig {
            writeOut(loaded.dump())
            return
        }
        let level = Logger.Level(rawValue: settings.logLevel) ?? .info
        LoggingSystem.bootstrap { label in
            var h = StreamLogHandler.standardError(label: label)
            h.logLevel = level
            return h
        }
        let logger = Logger(label: "aos-controller")
        let service: ControllerService
        do {
            service = try ControllerService(settings: settings, logger: logger)
        } catch {
            printErr("aos-controller: \(error)")
            throw ExitCode(2)
        }
        logger.info("starting", metadata: [
            "topic": "\(settings.topic)", "server": "\(settings.messaging.host)",
            "agent_response_timeout": "\(settings.agentResponseTimeout)",
            "agent_stale_after": "\(settings.agentStaleAfter)", "agent_down_after": "\(settings.agentDownAfter)",
            "preferred_hosts": "\(settings.preferredHosts.joined(separator: ","))"])
        let topic = settings.topic, host = settings.messaging.host
        let group = ServiceGroup(
            services: [ClosureService {
                try await cancelWhenGracefulShutdown {
                    try await service.run(onReady: { writeOut("READY topic=\(topic) server=\(host)\n") })
                }
            }],
            gracefulShutdownSignals: [.sigterm, .sigint], logger: logger)
        try await group.run()
        logger.info("stopped")
    }
}

extension AOSController {
    func loadConfiguration() throws(ConfigError) -> Configuration {
        let path = config ?? (SystemInfo.fileExists("/etc/aos/aos.conf") ? "/etc/aos/aos.conf" : nil)
        var text: String?
        if let path { text = try SystemInfo.readTextFile(path) }
        var parsed: [ConfigOverride] = []
        for o in overrides { parsed.append(try ConfigOverride.parse(o)) }
        return try ControllerOptions.schema.load(iniText: text, fileName: path ?? "aos.conf",
                                                 env: SystemInfo.environment(), overrides: parsed)
    }
}

/// One write(2) per line: unbuffered, so whoever reads our stdout sees it at once.
func writeOut(_ text: String) {
    let bytes = Array(text.utf8)
    bytes.withUnsafeBytes { _ = write(1, $0.baseAddress, $0.count) }
}

func printErr(_ text: String) {
    let bytes = Array((text + "\n").utf8)
    bytes.withUnsafeBytes { _ = write(2, $0.baseAddress, $0.count) }
}

/// Adapts a closure to swift-service-lifecycle's Service.
struct ClosureService: Service {
    let body: @Sendable () async throws -> Void
    init(_ body: @escaping @Sendable () async throws -> Void) { self.body = body }
    func run() async throws { try await body() }
}
