import SharedLVM

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// Adoption of activations this agent did not make (docs/agent.md, "Adoption";
/// docs/migration.md): a host switched from the AccentOS agent has LVs active, with VMs on
/// them, that no activation record names; without a record the first reboot would not bring
/// them back and the controller's map would not show them.
///
/// - First start (no activation record file yet, and none moved aside as unreadable): every
///   LV of the served VGs active here under a lock sanlock shows is recorded in that lock's
///   mode, in one durable write (the file is written even when nothing is active, so the
///   next start is not a first start).
/// - Later starts: LVs active here that the record does not name are only reported (log,
///   `health().state_problems`); `aos-agent adopt` records them. An agent that has run here
///   before knows what it activated: an LV it does not know was activated by someone else,
///   and taking it over silently would hide that.
/// - Never recorded: LVs whose lock mode cannot be read (reported as problems), and LVs
///   outside `lv_name_pattern` (logged: they are not the agent's).
extension AgentService {
    /// At boot, after the restore (which has nothing to do at a first start), before ready.
    func adoptAtBoot(firstStart: Bool) async {
        let survey = await AdoptionSurvey.run(
            backend: backend,
            volumeGroups: configuration.volumeGroups,
            lvNames: configuration.lvNames, records: store.all)
        var problems: [String: String] = [:]
        if firstStart {
            let records = survey.recordsToWrite
            do {
                try store.setAll(records)
            } catch {
                reportStoreProblem(error, vg: records.first?.vg ?? "-", name: "(adoption)")
                return
            }
            for record in records {
                logger.notice(
                    "adopted an activation found at the first start",
                    metadata: ["vg": "\(record.vg)", "lv": "\(record.name)", "mode": "\(record.mode.rawValue)", "source": "sanlock"])
            }
            logger.notice(
                "first start: adoption done",
                metadata: ["adopted": "\(records.count)", "unclassified": "\(survey.unclassified.count)"])
        } else {
            for f in survey.findings {
                switch f.kind {
                case .adopt(let mode):
                    problems[f.key] =
                        "\(f.key) is active on this host (\(mode.rawValue) lock) but not in the activation record:"
                        + " run `aos-agent adopt` to record it, or deactivate it (docs/migration.md)"
                case .modeDiffers(let recorded, let lock):
                    problems[f.key] =
                        "\(f.key) is recorded as \(recorded.rawValue) but sanlock shows a \(lock.rawValue) lock:"
                        + " `aos-agent adopt` records the lock's mode"
                case .notManaged:
                    logger.info("LV active here outside lv_name_pattern; left alone", metadata: ["vg": "\(f.vg)", "lv": "\(f.name)"])
                case .recorded, .unclassified:
                    break
                }
                if problems[f.key] != nil {
                    logger.warning(
                        "LV active here but not as recorded", metadata: ["vg": "\(f.vg)", "lv": "\(f.name)", "detail": "\(f.detail)"])
                }
            }
        }
        for vg in survey.problems.keys.sorted() {
            let why = survey.problems[vg] ?? ""
            problems[vg] = "adoption could not survey VG \(vg): \(why)" + (firstStart ? " (run `aos-agent adopt` once it can)" : "")
            logger.warning("adoption could not survey a VG", metadata: ["vg": "\(vg)", "problem": "\(why)"])
        }
        for f in survey.unclassified {
            problems[f.key] = "\(f.key) is active on this host but was not adopted: \(f.detail)"
            logger.warning(
                "LV active here could not be classified; not recorded",
                metadata: ["vg": "\(f.vg)", "lv": "\(f.name)", "detail": "\(f.detail)"])
        }
        state.update { $0.adoption = problems }
    }
}

/// What `aos-agent adopt` needs besides the survey: the records as they are on disk (read
/// without changing anything, for `--dry-run`), and whether an agent serves this state
/// directory (two writers of one activation store would lose each other's changes).
public enum Adoption {
    /// The records in `<directory>/activations.json`; nil when there is no such file.
    public static func readRecords(directory: String) throws(StoreError) -> [ActivationRecord]? {
        let path = directory + "/" + ActivationStore.fileName
        guard let bytes = try FileIO.read(path) else { return nil }
        return Array(try ActivationStore.decode(bytes, path: path).0.values).sorted()
    }

    /// True when a process listens on the agent's notification socket (`agent.sock`, bound by
    /// every running agent): connecting a datagram socket to it fails when nobody is bound.
    public static func agentRunning(stateDirectory: String) -> Bool {
        guard var addr = FenceNotification.unixAddress(FenceNotification.socketPath(stateDirectory: stateDirectory)) else {
            return false
        }
        let fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        let r = withUnsafePointer(to: &addr) { p in
            p.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        return r == 0
    }
}
