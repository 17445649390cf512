import OsloRPC
import RPCWire

/// aosctl's exit codes (docs/cli.md).
enum ExitStatus {
    static let ok: Int32 = 0
    static let other: Int32 = 1
    static let usage: Int32 = 2
    static let notFound: Int32 = 3
    static let conflict: Int32 = 4
    static let unreachable: Int32 = 5
    static let timeout: Int32 = 6
    static let notAuthorized: Int32 = 7

    /// The exit code for an error code of the API (agent or controller).
    static func forCode(_ code: String) -> Int32 {
        switch code {
        case "invalid_argument", "lv_not_managed": return usage
        case "not_found", "unknown_vg": return notFound
        case "locked_by_other_host", "incompatible_lock_mode", "size_conflict", "already_exists", "busy":
            return conflict
        case "agent_unavailable", "messaging_error", "not_ready": return unreachable
        case "timed_out", "expired": return timeout
        case "not_authorized": return notAuthorized
        default: return other
        }
    }
}

/// An error aosctl reports: code, message, details, exit status.
struct CLIError: Error {
    var code: String
    var message: String
    var details: [String: JSONValue] = [:]
    var status: Int32
    /// The command already printed its JSON document (which carries this error).
    var documentPrinted = false

    init(code: String, message: String, details: [String: JSONValue] = [:], status: Int32? = nil) {
        self.code = code
        self.message = message
        self.details = details
        self.status = status ?? ExitStatus.forCode(code)
    }

    init(_ e: ServiceError) {
        self.init(code: e.code, message: e.message, details: e.details)
    }

    /// A failed call to `what` ("the controller on topic aos-controller", "the agent on host-a").
    init(_ e: RPCCallError, calling what: String) {
        switch e {
        case .remote(let f):
            self.init(ServiceError(failure: f))
        case .timedOut(_, _, let after, _):
            self.init(code: "timed_out", message: "no reply from \(what) within \(after) (raise --timeout, or check that it is running)",
                      status: ExitStatus.timeout)
        case .undeliverable:
            self.init(code: "unreachable", message: "nothing is listening: \(what) is not running", status: ExitStatus.unreachable)
        case .transport(let a):
            self.init(code: "messaging_error", message: "cannot reach the message broker: \(a)", status: ExitStatus.unreachable)
        }
    }

    var json: JSONValue {
        ["error": ["code": .string(code), "message": .string(message), "details": .object(details)]]
    }
}
