import RPCWire
import SharedLVM

/// The agent's error codes besides the LVM layer's (`LVMErrorCode` raw values pass through).
///
/// Every failure leaves the agent as a `ServiceError`: on the wire an oslo failure whose
/// class is the CamelCase code in module `aos.exceptions` (Python sees
/// `RemoteError(exc_type="LockedByOtherHost")`), with `kwargs` = `{code, host, vg, lv, …}`.
public enum AgentErrorCode: String, Sendable, CaseIterable {
    /// The VG is not one of this agent's `[agent] volume_groups`.
    case unknownVG = "unknown_vg"
    /// The caller's deadline passed while the request waited for its LV or a slot: not executed.
    case expired
    /// The agent has not finished its boot sequence (lock start, restore).
    case notReady = "not_ready"
    /// No such agent method (only reachable through `AgentService.handle` directly).
    case unknownMethod = "unknown_method"
    /// The LV's name matches no glob of `[agent] lv_name_pattern`: not ours to change.
    case lvNotManaged = "lv_not_managed"
}

extension ServiceError {
    /// An `LVMError` as the agent reports it: the LVM code, a message naming what was
    /// attempted on which LV/VG and host, and the command's stderr and argv.
    static func lvm(_ error: LVMError, operation: String, host: String, vg: String, lv: String?) -> ServiceError {
        let target = lv.map { "\(vg)/\($0)" } ?? vg
        var details: [String: JSONValue] = ["host": .string(host), "vg": .string(vg)]
        if let lv { details["lv"] = .string(lv) }
        details["stderr"] = .string(error.stderr)
        details["argv"] = .array(error.argv.map(JSONValue.string))
        details["operation"] = .string(operation)
        return ServiceError(code: error.code.rawValue,
                            message: "\(operation) \(target) on host \(host) failed: \(error.message)",
                            details: details)
    }

    static func agent(_ code: AgentErrorCode, _ message: String, host: String, vg: String? = nil, lv: String? = nil,
                      extra: [String: JSONValue] = [:]) -> ServiceError {
        var details = extra
        details["host"] = .string(host)
        if let vg { details["vg"] = .string(vg) }
        if let lv { details["lv"] = .string(lv) }
        return ServiceError(code: code.rawValue, message: message, details: details)
    }

    static func invalid(_ message: String, host: String, method: String, argument: String? = nil) -> ServiceError {
        var details: [String: JSONValue] = ["host": .string(host), "method": .string(method)]
        if let argument { details["argument"] = .string(argument) }
        return ServiceError(code: LVMErrorCode.invalidArgument.rawValue, message: message, details: details)
    }
}
