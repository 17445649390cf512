import AOSConfig
// aos-agent: the node agent. Runs LVM on this host's shared (lvmlockd + sanlock) VGs on
// request over oslo RPC (topic aos-agent, server = host name), starts the lockspaces at boot
// and restores the activations it held before a reboot. See docs/agent.md.
import AOSRuntime
import AgentCore
import ArgumentParser
import Logging
import ServiceLifecycle

#if canImport(Glibc)
import Glibc
#endif

@main
struct AOSAgent: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "aos-agent",
        abstract: "Node agent for shared-LVM (lvmlockd + sanlock) volumes: LVM operations over oslo RPC.",
        discussion: """
            Without a subcommand: serve (the daemon). `aos-agent fence VG` is lvm.conf's
            lvmlockctl_kill_command (docs/operations.md). `aos-agent check` checks this host's
            preparation (docs/operations.md, "Preflight"). `aos-agent adopt` records the LVs
            active on this host, e.g. by the AccentOS agent (docs/migration.md).
            """,
        subcommands: [AgentServe.self, AgentFence.self, AgentCheck.self, AgentAdopt.self],
        defaultSubcommand: AgentServe.self)
}

struct AgentServe: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "serve",
        abstract: "Run the agent: boot sequence, then serve LVM operations over oslo RPC.",
        discussion: """
            Configuration: --set > environment (AOS_<SECTION>_<KEY>) > --config file > defaults.
            Boot (real LVM): the preflight check (`aos-agent check`; a blocking FAIL stops the
            agent with exit status 1, the report on stderr), then wait for the VGs' PVs,
            vgchange --lock-start, re-activate the LVs recorded in state_dir (at the first start: record the LVs
            active here, `aos-agent adopt`), then sd_notify READY=1 and serve. Prints 'READY host=<host>' on stdout once
            it serves; logs go to stderr (journald).
            Exit status: 0 after a graceful stop, 1 startup error, 2 configuration error.
            """)

    @OptionGroup var configurationSource: ConfigurationArguments

    @Flag(help: "Print the effective configuration (secrets masked) and exit.")
    var printConfig = false

    @Flag(help: "Print the version and exit.")
    var version = false

    @Option(help: "sanlock host_id for the simulated backend (real LVM: only from lvmlocal.conf).")
    var hostId: Int?

    @Flag(help: "Skip the preflight check at start (real LVM backend; for emergencies only).")
    var noPreflight = false

    @Flag(
        help: ArgumentHelp(
            "Simulated backend: drop this host's devices and locks first, as a reboot would.",
            visibility: .hidden))
    var simulateReboot = false

    func run() async throws {
        if version {
            Console.out("aos-agent \(AgentVersion.current)\n")
            return
        }
        let loaded = try configurationSource.loadOrExit(AgentSimulationOptions.agentSchema, program: "aos-agent")
        if printConfig {
            Console.out(loaded.dump())
            return
        }
        let settings = AgentOptions.Settings(loaded)
        let logger = bootstrapLogging(label: "aos-agent", level: Logger.Level(rawValue: settings.logLevel) ?? .info)
        let daemon: AgentDaemon
        do {
            daemon = try AgentDaemon(
                configuration: loaded, hostIdOverride: hostId,
                hostLVM: { (id) throws(AgentStartupError) in
                    try HostLVMChoice.make(configuration: loaded, hostId: id, simulateReboot: simulateReboot, logger: logger)
                },
                environment: HostEnvironment.environment(), logger: logger)
        } catch {
            logger.critical("cannot start: \(error.message)")
            Console.err("aos-agent: \(error.message)")
            throw ExitCode(1)
        }
        // After the configuration and host_id checks of the daemon's construction (which does no
        // LVM work): a bad option or host_id is reported as such, not as a failed host check.
        var preflight: PreflightReport?
        if settings.lvmBackend == .real && !noPreflight {
            // lvmlockd and sanlock may still be starting: wait for them as long as for the PVs (at most 2 min).
            let report = await Preflight.atStart(
                host: PreflightSystemHost(),
                expect: Preflight.expectations(
                    settings, hostIdOverride: nil, lvmDirectory: Preflight.lvmDirectory(environment: HostEnvironment.environment())),
                wait: .seconds(min(settings.pvWaitTimeout, 120)), logger: logger)
            guard report.blocking.isEmpty else {
                logger.critical("cannot start: preflight check failed (aos-agent check shows the same report)")
                Console.err("aos-agent: preflight check failed; not serving:\n" + report.table)
                throw ExitCode(1)
            }
            preflight = report
        }
        if let preflight { daemon.service.notePreflight(preflight) }
        let host = settings.messaging.host
        let group = ServiceGroup(
            services: [
                ClosureService {
                    await cancelWhenGracefulShutdown {
                        await daemon.run(onServing: { Console.out("READY host=\(host)\n") })
                    }
                }
            ],
            gracefulShutdownSignals: [.sigterm, .sigint], logger: logger)
        try await group.run()
        await daemon.close()
    }
}
