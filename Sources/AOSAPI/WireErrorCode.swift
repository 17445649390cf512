import RPCWire

/// Every error code that crosses the wire, in one place: the agent's, the controller's, the
/// LVM layer's (whose `LVMErrorCode` raw values pass through unchanged) and the ones callers make
/// for themselves (`unreachable`, `remote_error`).
///
/// On the wire a code travels as an oslo failure whose class is `exceptionClass` in module
/// `aos.exceptions`, with `kwargs.code` = the raw value. Raw values never change once published:
/// the Cinder driver's `CODE_TO_EXCEPTION`, docs/agent.md and docs/rpc-api.md name each of them,
/// and `AOSAPITests.ContractTests` fails when one of those misses a code.
public enum WireErrorCode: String, Sendable, Hashable, CaseIterable, Codable {
    // The LVM layer (`LVMErrorCode`, SharedLVM/LVMError.swift has the LVM texts behind each).
    case notFound = "not_found"
    case alreadyExists = "already_exists"
    case insufficientSpace = "insufficient_space"
    case sizeConflict = "size_conflict"
    case lockedByOtherHost = "locked_by_other_host"
    case incompatibleLockMode = "incompatible_lock_mode"
    case lockspaceNotStarted = "lockspace_not_started"
    case lockStorageFailed = "lock_storage_failed"
    case lockspaceLost = "lockspace_lost"
    case busy
    case notActive = "not_active"
    case timedOut = "timed_out"
    case invalidArgument = "invalid_argument"
    case `internal`

    // The agent.
    /// The VG is not one of this agent's `[agent] volume_groups`.
    case unknownVG = "unknown_vg"
    /// The caller's deadline passed while the request waited for its LV or a slot: not executed.
    case expired
    /// The agent has not finished its boot sequence (lock start, restore).
    case notReady = "not_ready"
    /// No such method.
    case unknownMethod = "unknown_method"
    /// The LV's name matches no glob of `[agent] lv_name_pattern`: not ours to change.
    case lvNotManaged = "lv_not_managed"
    /// The request named an earlier run of the agent (`aos_agent_instance`): not executed.
    case agentRestarted = "agent_restarted"
    /// A recovery step was refused: the server-side checks found the host healthy or the step out of order.
    case recoveryRefused = "recovery_refused"
    /// A recovery step ran and failed.
    case recoveryFailed = "recovery_failed"
    /// A restore failure (in `health().restore_failures`): a deactivate was in flight when the agent stopped.
    case deactivatePending = "deactivate_pending"
    /// A recovery step result: the VM named by libvirt is gone.
    case domainNotFound = "domain_not_found"

    // The controller.
    /// The agent of the host that must act is down, or no live agent serves the VG.
    case agentUnavailable = "agent_unavailable"
    /// The controller (or aosctl) cannot reach the broker, or got a reply it does not accept
    /// (over its size limit, or not an oslo reply).
    case messagingError = "messaging_error"
    /// Extended, but a host that has the LV active could not refresh it.
    case refreshFailed = "refresh_failed"

    // Admission (AOSAuth), either server.
    /// The sender has no role for this method, or a state change came as a cast/fanout.
    case notAuthorized = "not_authorized"

    // Made by callers, never sent by a server.
    /// Nothing is listening on the topic (the message was returned unroutable).
    case unreachable
    /// A failure from a module other than `aos.exceptions` (its class is in the details).
    case remoteError = "remote_error"
    /// aosctl's own failure that fits no other code (a file it cannot write…).
    case other

    /// The oslo failure's class name (Python's `RemoteError.exc_type`): the code in CamelCase.
    public var exceptionClass: String { ServiceError.className(forCode: rawValue) }

    /// aosctl's exit status for a failure with this code (docs/cli.md).
    public var exitStatus: CLIExitStatus {
        switch self {
        case .invalidArgument, .lvNotManaged, .unknownMethod: return .usage
        case .notFound, .unknownVG: return .notFound
        case .lockedByOtherHost, .incompatibleLockMode, .sizeConflict, .alreadyExists, .busy: return .conflict
        case .agentUnavailable, .messagingError, .notReady, .unreachable: return .unreachable
        case .timedOut, .expired: return .timeout
        case .notAuthorized: return .notAuthorized
        case .insufficientSpace, .lockspaceNotStarted, .lockStorageFailed, .lockspaceLost, .notActive, .internal,
            .agentRestarted, .recoveryRefused, .recoveryFailed, .deactivatePending, .domainNotFound, .refreshFailed,
            .remoteError, .other:
            return .failure
        }
    }
}

/// aosctl's exit statuses (docs/cli.md).
public enum CLIExitStatus: Int32, Sendable, CaseIterable {
    case ok = 0
    /// Any failure without a more precise status.
    case failure = 1
    /// Bad arguments (aosctl's own, or a server refused them).
    case usage = 2
    case notFound = 3
    /// A lock, a size or an activation stands in the way.
    case conflict = 4
    /// The broker, the controller or the agent cannot be reached or is not ready.
    case unreachable = 5
    case timeout = 6
    case notAuthorized = 7
    /// `aosctl doctor`: some item is WARN, none FAILs.
    case warnings = 8
    /// `aosctl doctor`: some item FAILs.
    case failures = 9
    /// `aosctl audit` found drift (after `--fix`: drift is left).
    case drift = 10
}

extension ServiceError {
    /// A failure with a code of the API.
    public init(_ code: WireErrorCode, _ message: String, details: [String: JSONValue] = [:]) {
        self.init(code: code.rawValue, message: message, details: details)
    }

    /// The code as a case of the API; nil for a code this build does not know (a newer peer).
    public var wireCode: WireErrorCode? { WireErrorCode(rawValue: code) }

    /// aosctl's exit status for this failure (`failure` for an unknown code).
    public var exitStatus: CLIExitStatus { wireCode?.exitStatus ?? .failure }
}
