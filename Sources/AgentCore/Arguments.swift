import RPCWire
import SharedLVM

/// Decodes one request's keyword arguments strictly, before anything touches LVM:
/// exact JSON types (an integer is not a float or a string), required arguments present,
/// unknown arguments rejected by name. Every failure is `invalid_argument` with a message
/// that says which argument of which method is wrong and why.
///
/// A JSON `null` counts as absent (Python callers pass `None` for "use the default").
struct ArgumentReader {
    let method: String
    let host: String
    private let args: [String: JSONValue]
    private var consumed: Set<String> = []

    init(method: String, host: String, args: [String: JSONValue]) {
        self.method = method
        self.host = host
        self.args = args
    }

    func fail(_ argument: String?, _ message: String) -> ServiceError {
        .invalid("\(method): \(message)", host: host, method: method, argument: argument)
    }

    private mutating func value(_ key: String) -> JSONValue? {
        consumed.insert(key)
        guard let v = args[key], !v.isNull else { return nil }
        return v
    }

    func has(_ key: String) -> Bool { args[key].map { !$0.isNull } ?? false }

    mutating func string(_ key: String) throws(ServiceError) -> String {
        guard let s = try optionalString(key) else { throw fail(key, "argument '\(key)' is required") }
        return s
    }

    mutating func optionalString(_ key: String) throws(ServiceError) -> String? {
        guard let v = value(key) else { return nil }
        guard case .string(let s) = v else {
            throw fail(key, "argument '\(key)' must be a string, got \(Self.typeName(v))")
        }
        return s
    }

    mutating func optionalInteger(_ key: String) throws(ServiceError) -> Int64? {
        guard let v = value(key) else { return nil }
        guard case .int(let i) = v else {
            throw fail(key, "argument '\(key)' must be an integer, got \(Self.typeName(v))")
        }
        return i
    }

    mutating func optionalBool(_ key: String) throws(ServiceError) -> Bool? {
        guard let v = value(key) else { return nil }
        guard case .bool(let b) = v else {
            throw fail(key, "argument '\(key)' must be true or false, got \(Self.typeName(v))")
        }
        return b
    }

    /// One of `choices`, or nil when absent.
    mutating func optionalChoice(_ key: String, _ choices: [String]) throws(ServiceError) -> String? {
        guard let s = try optionalString(key) else { return nil }
        guard choices.contains(s) else {
            throw fail(key, "argument '\(key)' must be one of \(choices.joined(separator: ", ")), got \"\(Self.printable(s))\"")
        }
        return s
    }

    /// `size_bytes` (integer bytes) or `size_gb` (integer GiB): exactly one, positive, at most
    /// `LVSize.maxBytes`.
    mutating func size() throws(ServiceError) -> UInt64 {
        let bytes = try optionalInteger("size_bytes")
        let gib = try optionalInteger("size_gb")
        switch (bytes, gib) {
        case (nil, nil):
            throw fail("size_bytes", "a size is required: give 'size_bytes' (integer bytes) or 'size_gb' (integer GiB)")
        case (.some, .some):
            throw fail("size_bytes", "give either 'size_bytes' or 'size_gb', not both")
        case (let b?, nil):
            guard b > 0 else { throw fail("size_bytes", "argument 'size_bytes' must be positive, got \(b)") }
            guard UInt64(b) <= LVSize.maxBytes else {
                throw fail("size_bytes", "argument 'size_bytes' = \(b) exceeds the limit of \(LVSize.maxBytes) bytes (1 PiB)")
            }
            return UInt64(b)
        case (nil, let g?):
            guard g > 0 else { throw fail("size_gb", "argument 'size_gb' must be positive, got \(g)") }
            guard UInt64(g) <= LVSize.maxBytes >> 30 else {
                throw fail("size_gb", "argument 'size_gb' = \(g) exceeds the limit of \(LVSize.maxBytes >> 30) GiB (1 PiB)")
            }
            return UInt64(g) << 30
        }
    }

    /// Rejects arguments the method does not take (typos must not be silently ignored).
    func finish() throws(ServiceError) {
        let unknown = args.keys.filter { !consumed.contains($0) }.sorted()
        guard unknown.isEmpty else {
            let names = unknown.map { "'\(Self.printable(String($0.prefix(64))))'" }.joined(separator: ", ")
            let accepted = consumed.sorted().joined(separator: ", ")
            throw fail(unknown[0], "unknown argument\(unknown.count > 1 ? "s" : "") \(names) (accepted: \(accepted.isEmpty ? "none" : accepted))")
        }
    }

    static func typeName(_ v: JSONValue) -> String {
        switch v {
        case .null: return "null"
        case .bool: return "a boolean"
        case .int: return "an integer"
        case .double: return "a float"
        case .string: return "a string"
        case .array: return "a list"
        case .object: return "an object"
        }
    }

    /// Keeps control characters and overlong text out of messages and logs.
    static func printable(_ text: String) -> String {
        let cut = text.unicodeScalars.count > 80 ? String(String.UnicodeScalarView(text.unicodeScalars.prefix(80))) + "…" : text
        return String(String.UnicodeScalarView(cut.unicodeScalars.map { $0.value < 0x20 || $0.value == 0x7f ? "?" : $0 }))
    }
}
