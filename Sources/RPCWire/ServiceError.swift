/// The error convention shared by the agent, the controller and their callers.
///
/// On the wire it is an oslo failure whose class is the code in CamelCase
/// (`locked_by_other_host` → `LockedByOtherHost`) in module `aos.exceptions`, so a
/// Python caller sees `RemoteError(exc_type="LockedByOtherHost", value=message)`
/// without configuration; `kwargs` carry the code and structured details for
/// callers that list `aos.exceptions` in allowed_remote_exmods or read them raw.
public struct ServiceError: Error, Sendable, Equatable, CustomStringConvertible, RPCFailureConvertible {
    public static let module = "aos.exceptions"

    /// Stable snake_case code (see docs/agent.md and docs/rpc-api.md).
    public var code: String
    /// One line an operator can act on; names the LV/VG/host involved.
    public var message: String
    /// Structured context: host, vg, lv, holder_host, stderr, argv, hint…
    public var details: [String: JSONValue]

    public init(code: String, message: String, details: [String: JSONValue] = [:]) {
        self.code = code
        self.message = message
        self.details = details
    }

    public var description: String { "\(code): \(message)" }

    public static func className(forCode code: String) -> String {
        code.split(separator: "_").map { $0.prefix(1).uppercased() + $0.dropFirst() }.joined()
    }

    public static func code(forClassName name: String) -> String {
        var out = ""
        for (i, ch) in name.enumerated() {
            if ch.isUppercase && i > 0 { out.append("_") }
            out += ch.lowercased()
        }
        return out
    }

    public var rpcFailure: RPCFailure {
        var kwargs = details
        kwargs["code"] = .string(code)
        return RPCFailure(
            className: Self.className(forCode: code), module: Self.module, message: message,
            args: [.string(message)], kwargs: kwargs)
    }

    /// Rebuilds a ServiceError from a remote failure (any module: a foreign
    /// exception becomes code `remote_error` with its class in details).
    public init(failure: RPCFailure) {
        if failure.module == Self.module {
            let code = failure.kwargs["code"]?.stringValue ?? Self.code(forClassName: failure.className)
            var details = failure.kwargs
            details["code"] = nil
            self.init(code: code, message: failure.message, details: details)
        } else {
            self.init(
                code: "remote_error", message: failure.message,
                details: ["class": .string(failure.className), "module": .string(failure.module)])
        }
    }

    public static func invalidArgument(_ message: String, details: [String: JSONValue] = [:]) -> ServiceError {
        ServiceError(code: "invalid_argument", message: message, details: details)
    }
}
