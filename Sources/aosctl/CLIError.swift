import AOSAPI
import OsloRPC
import RPCWire

/// An error aosctl reports: code, message, details, exit status (docs/cli.md).
struct CLIError: Error {
    var code: String
    var message: String
    var details: [String: JSONValue] = [:]
    var status: CLIExitStatus
    /// The command already printed its JSON document (which carries this error).
    var documentPrinted = false

    /// A failure with a code of the API: the exit status is the code's.
    init(_ code: WireErrorCode, _ message: String, details: [String: JSONValue] = [:], status: CLIExitStatus? = nil) {
        self.init(code: code.rawValue, message: message, details: details, status: status ?? code.exitStatus)
    }

    /// A code from a server, which may be one this build does not know (exit status 1 then).
    init(code: String, message: String, details: [String: JSONValue] = [:], status: CLIExitStatus? = nil) {
        self.code = code
        self.message = message
        self.details = details
        self.status = status ?? WireErrorCode(rawValue: code)?.exitStatus ?? .failure
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
            self.init(.timedOut, "no reply from \(what) within \(after) (raise --timeout, or check that it is running)")
        case .undeliverable:
            self.init(.unreachable, "nothing is listening: \(what) is not running")
        case .transport(let a):
            self.init(.messagingError, "cannot reach the message broker: \(a)")
        case .badReply(_, _, let reason):
            self.init(.messagingError, "the reply from \(what) was not accepted: \(reason)")
        }
    }

    var json: JSONValue {
        ["error": ["code": .string(code), "message": .string(message), "details": .object(details)]]
    }
}
