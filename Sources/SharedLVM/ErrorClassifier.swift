/// The one place where LVM's error texts become `LVMErrorCode`s.
///
/// Built from texts observed with lvm2 2.03.16 + lvmlockd + sanlock (see
/// docs/reference lvm-lab-notes): every failure exits 5, a bad option exits 3. Rules are
/// ordered: the more specific lock texts win over generic ones, because LVM often prints
/// several lines ("LV locked by other host: vol/lv1" then "Failed to lock logical volume").
/// Commands run with LC_ALL=C so the texts are English.
import HostCommands

public enum LVMErrorClassifier {
    struct Rule: Sendable {
        let code: LVMErrorCode
        let needles: [String]
    }

    static let rules: [Rule] = [
        Rule(code: .lockedByOtherHost, needles: ["LV locked by other host"]),
        Rule(code: .incompatibleLockMode, needles: ["already locked with incompatible mode"]),
        // Lease storage failed, and only that. From lvm2 (lib/locking/lvmlockd.c: lockd_vg,
        // lockd_gl, _lockd_lv; codes in daemons/lvmlockd/lvmlockd-client.h):
        // - EVGKILLED (217), "storage failed for sanlock leases": lvmlockd refuses every op of
        //   a lockspace after `lvmlockctl --kill` (lvmlockd-core.c, the kill_vg check of the
        //   lockspace thread), i.e. after sanlock could not renew the lease;
        // - ELOCKIO (218), "storage errors for sanlock leases": sanlock got I/O errors
        //   reading/writing the leases (lm_lock_sanlock in lvmlockd-sanlock.c maps -EIO,
        //   SANLK_LEADER_READ/WRITE, SANLK_DBLOCK_READ/WRITE and -ENOSPC, "the sanlock
        //   lockspace can disappear if the lease storage fails", to it);
        // - the same two codes printed by number ("lock failed: error -217"), as the generic
        //   branches of those functions (and older lvm2 versions) do.
        Rule(
            code: .lockStorageFailed,
            needles: [
                "storage failed for sanlock leases", "storage errors for sanlock leases",
                "error -217", "error -218",
            ]),
        Rule(
            code: .lockspaceNotStarted,
            needles: [
                "due to failed lock", "Global lock failed: check that global lockspace is started",
                "lockspace not found or started",
            ]),
        // Lock failures that do NOT mean the lease storage failed, so the lockspace must not be
        // marked lost for them: ELMERR (221, "lock manager error": any sanlock error the
        // functions above do not map, e.g. "VG vol lock skipped: error -221"), EIOTIMEOUT (225,
        // "io timeout": LVM retries it), ELOCKREPAIR (226), EORPHAN (222), EADOPT_*, a VG or
        // global lock held by another host (-EAGAIN = -11, "held by other host"; by number
        // "error -11"), and every other "lock failed: error N". Classified before `not_found`:
        // LVM follows them with "Volume group … not found", which must not read as a missing VG.
        Rule(
            code: .internal,
            needles: [
                "lock failed: error", "lock skipped: error", "lock manager error",
                "lock failed: io timeout", "lock skipped: io timeout", "lease needs repair", "orphan lock needs to be adopted",
                "adopt found", "held by other host",
            ]),
        Rule(
            code: .busy,
            needles: [
                "stop failed: LVs must first be deactivated", " in use.", "Can't remove open logical volume",
                "is used by another device",
                // lvremove of an LV active on this host: its prompt reads EOF from /dev/null,
                // which lvm2 takes as "no" (removeInactiveLV relies on it).
                "Do you really want to remove active logical volume",
            ]),
        Rule(
            code: .insufficientSpace,
            needles: [
                "insufficient free space", "Insufficient free space", "Insufficient suitable allocatable extents",
            ]),
        Rule(code: .alreadyExists, needles: ["already exists in volume group"]),
        Rule(
            code: .sizeConflict,
            needles: [
                "not larger than existing size", "matches existing size", "not smaller than existing size",
            ]),
        Rule(
            code: .notFound,
            needles: [
                "Failed to find logical volume", "not found", "Cannot process volume group",
            ]),
    ]

    /// A VG or global lock another host held for longer than lvm2's own retries ("VG vol lock
    /// failed: held by other host", "Global lock failed: held by other host", lvmlockd.c
    /// lockd_vg / lockd_global): the command changed nothing and may simply run again. Not an
    /// LV lock ("LV locked by other host": that host uses the LV) and not "lock skipped" (a
    /// read-only command that went on without the lock).
    public static func lockHeldByOtherHost(_ stderr: String) -> Bool {
        stderr.split(separator: "\n").contains { line in
            line.contains("held by other host") && (line.contains("lock failed:") || line.contains("Global lock failed"))
        }
    }

    /// Classifies a failed command from its exit status and stderr.
    /// Exit 0 is not a failure; it maps to `internal` (a caller bug).
    public static func classify(exitStatus: Int32, stderr: String) -> LVMErrorCode {
        diagnose(exitStatus: exitStatus, stderr: stderr).code
    }

    /// The code plus the stderr line that decided it (or the last meaningful line),
    /// trimmed, for `LVMError.message`.
    public static func diagnose(exitStatus: Int32, stderr: String) -> (code: LVMErrorCode, line: String) {
        let lines = stderr.split(whereSeparator: \.isNewline).map { $0.trimmingWhitespace() }.filter { !$0.isEmpty }
        if exitStatus != 0 {
            for rule in rules {
                for line in lines where rule.needles.contains(where: { line.contains($0) }) {
                    return (rule.code, line)
                }
            }
        }
        let summary = lines.last(where: { !$0.hasPrefix("WARNING") }) ?? lines.last ?? ""
        switch exitStatus {
        // lvm2 EINVALID_CMD_LINE: a bad option or value. Input is validated before a
        // command runs, so this is usually a value LVM rejects for its own reasons.
        case 3: return (.invalidArgument, summary)
        default: return (.internal, summary)
        }
    }

    /// Builds the error for a finished command that did not succeed.
    public static func error(for result: CommandResult) -> LVMError {
        switch result.termination {
        case .timedOut:
            return LVMError(
                code: .timedOut, message: "\(result.argv.first ?? "command") did not finish in time and was killed",
                stderr: result.stderr, argv: result.argv, termination: .timedOut)
        case .signaled(let signal):
            return LVMError(
                code: .internal, message: "\(result.argv.first ?? "command") was killed by signal \(signal)",
                stderr: result.stderr, argv: result.argv, termination: result.termination)
        case .exited(let status):
            let (code, line) = diagnose(exitStatus: status, stderr: result.stderr)
            let message = line.isEmpty ? "\(result.argv.first ?? "command") failed with exit status \(status)" : line
            return LVMError(
                code: code, message: message, stderr: result.stderr, argv: result.argv,
                termination: result.termination)
        }
    }
}
