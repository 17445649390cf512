import AOSConfig
import AOSRuntime
import AgentCore
import ArgumentParser
import Logging
import SharedLVM

#if canImport(Glibc)
import Glibc
#endif

/// `aos-agent fence VG`: lvm.conf's `lvmlockctl_kill_command`. sanlock could not renew the
/// VG's lease, so within about a minute another host may activate this host's LVs; every
/// write this host still has queued or will issue to them must fail instead of landing
/// later over the other host's data. Needs no network and no running agent.
struct AgentFence: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "fence",
        abstract: "Kill command for lvmlockd: fail this host's I/O to a VG whose sanlock lease was lost.",
        discussion: """
            Run by `lvmlockctl --kill VG` (sanlock, on lease loss) when lvm.conf has
              global { lvmlockctl_kill_command = "/usr/bin/aos-agent fence" }
            lvmlockctl appends the VG name. Steps, all through dmsetup (LVM hangs or fails now):
            the VG's path devices first (dm-multipath: fail_if_no_path; any other
            device-mapper device: an error table), so queued writes fail instead of landing
            after another host took over; then an error table on every LV of the VG except
            lvmlock. Writes <state_dir>/lockspace-lost-VG.json and tells the running agent.
            Exit 0 when all of the VG's I/O is failed: lvmlockctl then drops the VG's locks
            itself. Exit 1 otherwise: the locks stay, and sanlock's watchdog (if any) resets
            the host, which is the other safe outcome. Exit 2: bad arguments.
            Of the configuration only state_dir, host and lvm_backend are used.
            """)

    @OptionGroup var configurationSource: ConfigurationArguments

    @Option(help: "Seconds the whole fence may take (sanlock allows about 40).")
    var budget: Int = 25

    @Argument(help: "The volume group whose lease was lost (lvmlockctl passes it).")
    var vg: String

    func run() async throws {
        do { try VGName.validate(vg) } catch {
            Console.err("aos-agent fence: \(error.message)")
            throw ExitCode(2)
        }
        let loaded: Configuration
        do {
            loaded = try configurationSource.load(AgentSimulationOptions.agentSchema)
        } catch {
            // Fencing must not depend on a readable configuration: use the defaults.
            Console.err("aos-agent fence: configuration error (continuing with defaults):\n\(error)")
            do {
                loaded = try AgentSimulationOptions.agentSchema.load(iniText: nil, fileName: "(defaults)", env: [:], overrides: [])
            } catch {
                throw ExitCode(2)
            }
        }
        let settings = AgentOptions.Settings(loaded)
        let logger = bootstrapLogging(label: "aos-agent-fence", level: .info)
        if !settings.volumeGroups.contains(vg) {
            logger.warning("fencing a VG this agent does not serve", metadata: ["vg": "\(vg)", "served": "\(settings.volumeGroups)"])
        }
        let host = settings.messaging.host
        var modes: [String: LVActivationMode] = [:]
        if let store = try? ActivationStore(directory: settings.stateDir, host: host) {
            for r in store.all where r.vg == vg { modes[r.name] = r.mode }
        }
        let fencer = Fencer(dm: HostLVMChoice.deviceMapper(settings.lvmBackend), logger: logger, budget: .seconds(max(1, budget)))
        let record = await fencer.fence(vg: vg, host: host, modes: modes, source: "kill_command")
        do { try record.save(stateDirectory: settings.stateDir) } catch {
            logger.error("cannot write the fence record", metadata: ["error": "\(error)"])
        }
        let told = FenceNotification.send(stateDirectory: settings.stateDir, vg: vg)
        // Our stderr belongs to whoever started lvmlockctl (sanlock) and may go nowhere: the
        // outcome also goes to syslog (journald), where an operator looks first.
        let failed = (record.paths + record.lvs).filter { !$0.ok }.map(\.device)
        toSyslog(
            record.complete ? LOG_CRIT : LOG_ALERT,
            "lockspace of VG \(vg) lost: I/O of \(record.lvs.count) LV(s) and \(record.paths.count) path device(s) "
                + (record.complete ? "fenced" : "NOT fully fenced (failed: \(failed.joined(separator: ", ")))")
                + " in \(record.durationMS) ms; record \(FenceRecord.path(stateDirectory: settings.stateDir, vg: vg)); "
                + "run: aosctl recover --host \(host) --vg \(vg)")
        logger.notice(
            "fence done",
            metadata: [
                "vg": "\(vg)", "complete": "\(record.complete)", "agent_notified": "\(told)",
                "took_ms": "\(record.durationMS)",
            ])
        if !record.complete { throw ExitCode(1) }
    }
}

/// One line to syslog (facility daemon), as the program's name with its pid.
private func toSyslog(_ priority: Int32, _ message: String) {
    openlog(nil, LOG_PID, LOG_DAEMON)
    message.withCString { text in
        withVaList([text]) { vsyslog(priority, "%s", $0) }
    }
    closelog()
}
