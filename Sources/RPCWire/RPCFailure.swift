/// An exception as oslo.messaging serializes it into a reply's `failure` string.
/// A Python caller rebuilds builtins (module "builtins") as real exceptions and
/// anything else as `oslo_messaging.RemoteError(exc_type=className, value=message)`.
public struct RPCFailure: Error, Sendable, Equatable, CustomStringConvertible {
    public var className: String
    public var module: String
    public var message: String
    public var traceback: [String]
    public var args: [JSONValue]
    public var kwargs: [String: JSONValue]

    public init(
        className: String, module: String, message: String, traceback: [String] = [],
        args: [JSONValue]? = nil, kwargs: [String: JSONValue] = [:]
    ) {
        self.className = className
        self.module = module
        self.message = message
        self.traceback = traceback
        self.args = args ?? [.string(message)]
        self.kwargs = kwargs
    }

    public var description: String { "\(module).\(className): \(message)" }

    /// oslo strips the `_Remote` suffixes when re-raising a rebuilt remote exception.
    public func serialized() -> String {
        let cls = className.hasSuffix("_Remote") ? String(className.dropLast(7)) : className
        let mod = module.hasSuffix("_Remote") ? String(module.dropLast(7)) : module
        let tb = traceback.isEmpty ? ["Traceback (most recent call last):\n", "\(mod).\(cls): \(message)\n"] : traceback
        return JSONWriter.serialize(
            .object([
                "class": .string(cls), "module": .string(mod), "message": .string(message),
                "tb": .array(tb.map(JSONValue.string)), "args": .array(args),
                // Python rebuilds builtins as cls(*args, **kwargs); builtins take no kwargs.
                "kwargs": .object(mod == "builtins" ? [:] : kwargs),
            ]))
    }

    public static func deserialize(_ text: String) throws(WireError) -> RPCFailure {
        let v: JSONValue
        do { v = try JSONValue.parse(text) } catch { throw .malformed("failure is not JSON") }
        guard case .object(let o) = v else { throw .malformed("failure is not a JSON object") }
        let tb: [String] = (o["tb"]?.arrayValue ?? []).compactMap(\.stringValue)
        return RPCFailure(
            className: o["class"]?.stringValue ?? "Exception",
            module: o["module"]?.stringValue ?? "builtins",
            message: o["message"]?.stringValue ?? "",
            traceback: tb,
            args: o["args"]?.arrayValue ?? [],
            kwargs: o["kwargs"]?.objectValue ?? [:])
    }

    // The failures oslo's dispatcher itself produces, so Python callers see the same classes.
    public static func noSuchMethod(_ method: String) -> RPCFailure {
        RPCFailure(
            className: "NoSuchMethod", module: "oslo_messaging.rpc.dispatcher",
            message: "Endpoint does not support RPC method \(method)",
            kwargs: ["method": .string(method)])
    }

    public static func unsupportedVersion(_ version: String, method: String) -> RPCFailure {
        RPCFailure(
            className: "UnsupportedVersion", module: "oslo_messaging.rpc.dispatcher",
            message: "Endpoint does not support RPC version \(version). Attempted method: \(method)",
            kwargs: ["version": .string(version), "method": .string(method)])
    }
}

/// Errors that know how they look on the wire (e.g. the agent's stable error codes).
public protocol RPCFailureConvertible: Error {
    var rpcFailure: RPCFailure { get }
}

extension RPCFailure: RPCFailureConvertible {
    public var rpcFailure: RPCFailure { self }
}
