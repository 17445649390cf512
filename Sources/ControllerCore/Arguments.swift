import RPCWire

/// Typed access to a request's keyword arguments; every problem is `invalid_argument`
/// naming the argument, so bad input never reaches an agent.
struct Arguments {
    let raw: [String: JSONValue]
    let method: String

    init(_ raw: [String: JSONValue], method: String) {
        self.raw = raw
        self.method = method
    }

    private func bad(_ text: String, _ key: String) -> ServiceError {
        .invalidArgument("\(method): \(text)", details: ["argument": .string(key)])
    }

    /// Refuses arguments the method does not take, naming them (printable, cut to 64 characters).
    func rejectUnknown(_ accepted: Set<String>) throws(ServiceError) {
        let unknown = raw.keys.filter { !accepted.contains($0) }.sorted()
        guard let first = unknown.first else { return }
        let names = unknown.prefix(5).map { name -> String in
            let cut = String(name.unicodeScalars.prefix(64).map { $0.value < 0x20 || $0.value == 0x7f ? "?" : Character($0) })
            return "'\(cut)'"
        }.joined(separator: ", ")
        let list = accepted.sorted().joined(separator: ", ")
        throw bad("unknown argument\(unknown.count > 1 ? "s" : "") \(names)\(unknown.count > 5 ? ", …" : "") (accepted: \(list.isEmpty ? "none" : list))",
                  String(first.prefix(64)))
    }

    func optionalString(_ key: String) throws(ServiceError) -> String? {
        guard let v = raw[key], !v.isNull else { return nil }
        guard let s = v.stringValue else { throw bad("'\(key)' must be a string", key) }
        return s
    }

    func string(_ key: String) throws(ServiceError) -> String {
        guard let s = try optionalString(key) else { throw bad("missing argument '\(key)'", key) }
        guard !s.isEmpty else { throw bad("'\(key)' must not be empty", key) }
        return s
    }

    func optionalInt(_ key: String) throws(ServiceError) -> Int64? {
        guard let v = raw[key], !v.isNull else { return nil }
        if case .bool = v { throw bad("'\(key)' must be an integer", key) }
        guard let i = v.int64Value else { throw bad("'\(key)' must be an integer", key) }
        return i
    }

    func optionalBool(_ key: String) throws(ServiceError) -> Bool? {
        guard let v = raw[key], !v.isNull else { return nil }
        guard let b = v.boolValue else { throw bad("'\(key)' must be true or false", key) }
        return b
    }

    /// An LV name: the characters and length rules of lvm2 (the agent checks the rest).
    func lvName(_ key: String = "name") throws(ServiceError) -> String {
        let s = try string(key)
        try Self.checkName(s, kind: "volume name", key: key, method: method)
        return s
    }

    func host(_ key: String = "host") throws(ServiceError) -> String {
        let s = try string(key)
        guard s.utf8.count <= 255, s.unicodeScalars.allSatisfy({ $0.value > 0x20 && $0.value < 0x7f }) else {
            throw bad("'\(key)' is not a valid host name", key)
        }
        return s
    }

    /// `size_bytes`, or `size_gb` (GiB, as Cinder counts); exactly one of them, positive, ≤ 1 PiB.
    func size() throws(ServiceError) -> Int64 {
        let bytes = try optionalInt("size_bytes")
        let gb = try optionalInt("size_gb")
        switch (bytes, gb) {
        case (nil, nil): throw bad("missing argument 'size_bytes' (or 'size_gb')", "size_bytes")
        case (.some, .some): throw bad("give 'size_bytes' or 'size_gb', not both", "size_bytes")
        case (let b?, nil):
            guard b > 0, b <= Self.maxBytes else { throw bad("'size_bytes' must be between 1 and \(Self.maxBytes)", "size_bytes") }
            return b
        case (nil, let g?):
            guard g > 0, g <= Self.maxBytes >> 30 else { throw bad("'size_gb' must be between 1 and \(Self.maxBytes >> 30)", "size_gb") }
            return g << 30
        }
    }

    static let maxBytes: Int64 = 1 << 50

    static func checkName(_ s: String, kind: String, key: String, method: String) throws(ServiceError) {
        func fail(_ why: String) -> ServiceError {
            .invalidArgument("\(method): \(kind) \(why)", details: ["argument": .string(key)])
        }
        if s.utf8.count > 127 { throw fail("is longer than 127 characters") }
        if s.hasPrefix("-") { throw fail("must not start with '-'") }
        if s == "." || s == ".." { throw fail("must not be '.' or '..'") }
        for u in s.unicodeScalars {
            switch u {
            case "a"..."z", "A"..."Z", "0"..."9", "+", "_", ".", "-": continue
            default: throw fail("may contain only A-Z a-z 0-9 + _ . - characters")
            }
        }
    }
}
