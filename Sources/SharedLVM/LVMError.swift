import HostCommands

/// Stable error codes for everything the LVM layer can report.
///
/// The raw values travel on the wire (RPC replies, `--json` output of the admin CLI),
/// so they never change once published. Keep the list short: a code exists only when
/// a caller would act differently on it.
///
/// | code | meaning | typical LVM text |
/// |---|---|---|
/// | `not_found` | the LV or VG does not exist | `Failed to find logical volume "vol/x"`, `Volume group "vol" not found` |
/// | `already_exists` | an LV with that name exists | `Logical Volume "dup" already exists in volume group "vol"` |
/// | `insufficient_space` | not enough free extents | `Volume group "vol" has insufficient free space (447 extents): 2560 required.` |
/// | `size_conflict` | a resize would shrink the LV (never done: data loss) | `New size given (…) not larger than existing size (…)` |
/// | `locked_by_other_host` | another host holds the LV lock (ex or sh) | `LV locked by other host: vol/lv1` |
/// | `incompatible_lock_mode` | this host holds the LV lock in a mode the command cannot use (e.g. plain `lvextend` while shared) | `LV is already locked with incompatible mode: vol/lv1` |
/// | `lockspace_not_started` | the VG lockspace (or global lock) is not started on this host | `Cannot access VG vol due to failed lock.` |
/// | `lock_storage_failed` | sanlock cannot read/write its leases (storage blip) | `VG vol lock failed: storage failed for sanlock leases` |
/// | `lockspace_lost` | reserved: the agent concluded the lockspace was killed (set by recovery logic, not by the classifier) | — |
/// | `busy` | the LV device is open on this host, or LVs block a lockspace stop | `Logical volume vol/X in use.` |
/// | `not_active` | the operation needs the LV active on this host (zeroing its device) | `dd: failed to open '/dev/vol/x': No such file or directory` |
/// | `timed_out` | the command did not finish in time and was killed | — |
/// | `invalid_argument` | bad name/size/option (caught before LVM runs, or LVM exit 3) | — |
/// | `internal` | anything else: unexpected text, missing tool, unparsable output | — |
public enum LVMErrorCode: String, Sendable, Hashable, Codable, CaseIterable {
    case notFound = "not_found"
    case alreadyExists = "already_exists"
    case insufficientSpace = "insufficient_space"
    case sizeConflict = "size_conflict"
    case lockedByOtherHost = "locked_by_other_host"
    case incompatibleLockMode = "incompatible_lock_mode"
    case lockspaceNotStarted = "lockspace_not_started"
    case lockStorageFailed = "lock_storage_failed"
    case lockspaceLost = "lockspace_lost"
    case busy = "busy"
    case notActive = "not_active"
    case timedOut = "timed_out"
    case invalidArgument = "invalid_argument"
    case `internal` = "internal"
}

/// The one error type of the LVM layer, thrown by both backends (a command that could not
/// run at all, `CommandLaunchError`, becomes `.internal`).
///
/// `argv` is the command that ran (or, for the simulator and for validation failures,
/// the command the real backend would have run; empty when no command applies).
/// `termination` is nil when no process ran (validation, parsing, simulator-internal).
public struct LVMError: Error, Sendable, Hashable, CustomStringConvertible {
    public var code: LVMErrorCode
    /// One line for humans and logs: the most relevant stderr line, or our own text.
    public var message: String
    public var stderr: String
    public var argv: [String]
    public var termination: CommandTermination?

    public init(
        code: LVMErrorCode,
        message: String,
        stderr: String = "",
        argv: [String] = [],
        termination: CommandTermination? = nil
    ) {
        self.code = code
        self.message = message
        self.stderr = stderr
        self.argv = argv
        self.termination = termination
    }

    public var description: String {
        var text = "\(code.rawValue): \(message)"
        if !argv.isEmpty { text += " [\(argv.joined(separator: " "))" + (termination.map { ", \($0)" } ?? "") + "]" }
        return text
    }

    static func invalid(_ message: String) -> LVMError {
        LVMError(code: .invalidArgument, message: message)
    }

    /// A command that did not run at all (missing executable, spawn failure, output limit).
    public init(_ launch: CommandLaunchError) {
        self.init(code: .internal, message: launch.message, argv: launch.argv)
    }
}

/// The brief's name for a failed command; it is the same type on purpose, so callers
/// handle exactly one error type whether a command, the parser or the simulator failed.
public typealias LVMCommandError = LVMError
