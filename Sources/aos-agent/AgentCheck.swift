import AOSConfig
import AOSRuntime
import AgentCore
import ArgumentParser

/// `aos-agent check`: the host's preparation for the shared VGs, item by item
/// (docs/operations.md, "Preflight"). Runs no LVM command that changes anything.
struct AgentCheck: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "check",
        abstract: "Check this host's preparation (lvm.conf, host_id, lvmlockd, sanlock, PVs, multipath, fencing).",
        discussion: """
            Every item is PASS, WARN or FAIL with the evidence (file:line, or the command and its
            output) and the fix; docs/operations.md ("Preflight") explains each. The same check
            runs when the agent starts with lvm_backend = real: a FAIL marked blocking stops it.
            Reads lvm.conf and lvmlocal.conf in --lvm-dir (default: $LVM_SYSTEM_DIR, else
            /etc/lvm) and runs pvs, lvmlockctl --info, sanlock client status, dmsetup table,
            iscsiadm -m session (argv only). Of the configuration: volume_groups, lvmlocal_conf.
            Exit status: 0 when nothing FAILs (PASS and WARN), 1 when an item FAILs, 2 on a
            configuration error. --json prints {"status", "items": [{id, status, finding,
            evidence, fix, blocking}]} on stdout; messages go to stderr.
            """)

    @OptionGroup var configurationSource: ConfigurationArguments

    @Flag(help: "Print the report as JSON.")
    var json = false

    @Option(help: "LVM's configuration directory (default: $LVM_SYSTEM_DIR, else /etc/lvm).")
    var lvmDir: String?

    @Option(help: "The host_id this host must have (FAIL when lvmlocal.conf says otherwise).")
    var hostId: Int?

    func run() async throws {
        let loaded = try configurationSource.loadOrExit(AgentSimulationOptions.agentSchema, program: "aos-agent check")
        let settings = AgentOptions.Settings(loaded)
        if settings.lvmBackend == .simulated {
            Console.err("aos-agent check: note: [agent] lvm_backend = simulated; checking this host's real LVM anyway")
        }
        let dir = lvmDir ?? Preflight.lvmDirectory(environment: HostEnvironment.environment())
        let expect = Preflight.expectations(settings, hostIdOverride: hostId, lvmDirectory: dir)
        let report = await Preflight.run(host: PreflightSystemHost(), expect: expect)
        if json {
            Console.out(report.jsonText + "\n")
        } else {
            Console.out(report.table)
        }
        if report.worst == .fail { throw ExitCode(1) }
    }
}
