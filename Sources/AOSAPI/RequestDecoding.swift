import RPCWire

/// A method's request: its keyword arguments as a typed value, decoded once at the edge.
public protocol APIRequest: Codable, Sendable {}

/// A method's result, encoded once at the edge.
public protocol APIResponse: Codable, Sendable {}

extension APIRequest {
    /// Decodes a request's keyword arguments strictly (exact JSON types, unknown arguments
    /// refused by name, `null` = absent). Every failure is `invalid_argument` naming the
    /// method and the argument; `details` adds context (the host, for the agent).
    public static func decode(
        _ args: [String: JSONValue], method: String,
        details: [String: JSONValue] = [:]
    ) throws(ServiceError) -> Self {
        do {
            return try JSONValueDecoder().decode(Self.self, from: .object(args))
        } catch {
            var d = details
            d["method"] = .string(method)
            let argument: String?
            switch error.problem {
            case .unknownKeys(let keys, _): argument = keys.first.map { String($0.prefix(64)) }
            default: argument = error.path.first
            }
            if let argument { d["argument"] = .string(JSONValue.printable(argument, limit: 64)) }
            throw ServiceError(.invalidArgument, "\(method): \(error)", details: d)
        }
    }
}

extension Encodable {
    /// This value as JSON for the wire. An encoding failure is a bug of ours, reported as
    /// `internal` (never a trap).
    public func wireValue() throws(ServiceError) -> JSONValue {
        do { return try JSONValueEncoder().encode(self) } catch {
            throw ServiceError(.internal, "cannot encode \(Self.self): \(error)")
        }
    }
}
