import AOSConfig
import AOSRuntime
import AgentCore
import ArgumentParser
import Logging

/// `aos-agent adopt`: records the LVs of the served VGs that are active on this host, in the
/// mode of the lock sanlock shows, in the activation record (docs/agent.md, "Adoption";
/// docs/migration.md). Changes no LV.
struct AgentAdopt: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "adopt",
        abstract: "Record the LVs active on this host (e.g. by the AccentOS agent) in the activation record.",
        discussion: """
            Lists the LVs of [agent] volume_groups active on this host (lvs) and reads each one's
            lock mode from sanlock (sanlock client status: SH = shared, a lease version =
            exclusive). LVs with a lock are recorded in the lock's mode (a recorded mode that
            differs is corrected); LVs without a readable lock, and LVs outside
            lv_name_pattern, are listed and not recorded. No LV is activated or deactivated.
            Run it with the agent stopped (it refuses while an agent serves this state_dir);
            the agent, started afterwards, re-activates and announces the records.
            --dry-run prints what it would record and writes nothing (also while the agent runs).
            Exit status: 0 when every active LV is recorded (or not the agent's), 1 when an LV
            could not be classified, a VG could not be read or the record could not be written,
            2 on a configuration error. --json prints {"dry_run", "findings": [{vg, name, uuid,
            open, mode, action, detail}], "problems": {vg: text}, "recorded": n} on stdout.
            """)

    @OptionGroup var configurationSource: ConfigurationArguments

    @Flag(help: "Print what would be recorded; write nothing.")
    var dryRun = false

    @Flag(help: "Print the result as JSON.")
    var json = false

    @Option(help: "sanlock host_id for the simulated backend (real LVM: only from lvmlocal.conf).")
    var hostId: Int?

    func run() async throws {
        let loaded = try configurationSource.loadOrExit(AgentSimulationOptions.agentSchema, program: "aos-agent adopt")
        let settings = AgentOptions.Settings(loaded)
        let logger = bootstrapLogging(label: "aos-agent", level: Logger.Level(rawValue: settings.logLevel) ?? .info)
        func fail(_ message: String, status: Int32 = 1) -> ExitCode {
            Console.err("aos-agent adopt: \(message)")
            return ExitCode(status)
        }
        guard !settings.volumeGroups.isEmpty else { throw fail("[agent] volume_groups is empty", status: 2) }
        if !dryRun && Adoption.agentRunning(stateDirectory: settings.stateDir) {
            throw fail(
                "an agent is serving \(settings.stateDir) (its agent.sock answers): stop it first (systemctl stop aos-agent), or use --dry-run"
            )
        }
        let id: Int
        if let hostId, settings.lvmBackend == .simulated {
            id = hostId
        } else {
            guard hostId == nil else { throw fail("--host-id is only for the simulated backend", status: 2) }
            let read: Int?
            do { read = try LVMLocalConf.hostID(path: settings.lvmlocalConf) } catch {
                throw fail("cannot read the sanlock host_id: \(error)", status: 2)
            }
            guard let read else { throw fail("no sanlock host_id in \(settings.lvmlocalConf)", status: 2) }
            id = read
        }
        let lvm: AgentHostLVM
        do { lvm = try HostLVMChoice.make(configuration: loaded, hostId: id, simulateReboot: false, logger: logger) } catch {
            throw fail(error.message)
        }
        let existing: [ActivationRecord]
        do { existing = try Adoption.readRecords(directory: settings.stateDir) ?? [] } catch {
            throw fail("the activation record is unreadable (\(error.message)); move it aside first")
        }
        let survey = await AdoptionSurvey.run(
            backend: lvm.backend, volumeGroups: settings.volumeGroups, lvNames: LVNamePolicy(settings.lvNamePatterns),
            records: existing)
        let records = survey.recordsToWrite
        var writeProblem: String?
        if !dryRun {
            do {
                let store = try ActivationStore(directory: settings.stateDir, host: settings.messaging.host)
                try store.setAll(records)
                for r in records {
                    logger.notice("adopted an activation", metadata: ["vg": "\(r.vg)", "lv": "\(r.name)", "mode": "\(r.mode.rawValue)"])
                }
            } catch {
                writeProblem = error.message
            }
        }
        if json {
            Console.out(survey.jsonText(dryRun: dryRun, recorded: dryRun || writeProblem != nil ? 0 : records.count) + "\n")
        } else {
            Console.out(survey.table(dryRun: dryRun))
            if dryRun {
                Console.out("dry run: would record \(records.count) activation(s) in \(settings.stateDir); nothing written\n")
            } else if writeProblem == nil {
                Console.out("recorded \(records.count) activation(s) in \(settings.stateDir)\n")
            }
        }
        if let writeProblem { throw fail("cannot write the activation record: \(writeProblem)") }
        if !survey.unclassified.isEmpty || !survey.problems.isEmpty { throw ExitCode(1) }
    }
}
