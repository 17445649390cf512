/// Decodes `Decodable` values from a `JSONValue` tree, strictly: an integer field takes only a
/// JSON integer (not a float, not a string) in the field type's range, a boolean only
/// `true`/`false`, a string only a string; `null` counts as absent. Object keys that the decoded
/// type never asked for are reported (`unknownKeys`), so a request with a typo in an argument
/// name is refused instead of silently running with a default.
///
/// This is the edge where wire data becomes typed values: every failure is a
/// `JSONValueDecodingError` naming the path and the problem, never a trap.
public struct JSONValueDecoder: Sendable {
    public init() {}

    /// Decodes `T` from `value`. With `rejectUnknownKeys`, a top-level object key that `T` did
    /// not read fails with `.unknownKeys`.
    public func decode<T: Decodable>(_ type: T.Type, from value: JSONValue, rejectUnknownKeys: Bool = true) throws(JSONValueDecodingError)
        -> T
    {
        let tracker = KeyTracker()
        let decoder = ValueDecoder(value: value, parentPath: [], key: nil, tracker: rejectUnknownKeys ? tracker : nil)
        let result: T
        do {
            result = try decoder.decodeValue(T.self)
        } catch let error as JSONValueDecodingError {
            throw error
        } catch {
            // A type's own init(from:) threw something else (DecodingError from a standard
            // conformance, or its own error): keep its text.
            throw JSONValueDecodingError(path: [], problem: .invalid("\(error)"))
        }
        if rejectUnknownKeys, case .object(let object) = value {
            let unknown = object.keys.filter { !tracker.read.contains($0) }.sorted()
            if !unknown.isEmpty {
                throw JSONValueDecodingError(path: [], problem: .unknownKeys(unknown, accepted: tracker.read.sorted()))
            }
        }
        return result
    }
}

/// Why a `JSONValue` did not decode; `path` names the field (`["size_bytes"]`, `["report", "vgs"]`).
public struct JSONValueDecodingError: Error, Sendable, Equatable, CustomStringConvertible {
    public enum Problem: Sendable, Equatable {
        case missing
        /// Expected a kind of value ("an integer") and got another ("a string").
        case wrongType(expected: String, got: String)
        case outOfRange(String)
        /// A value the type refused (its own validation), with the reason.
        case invalid(String)
        case unknownKeys([String], accepted: [String])
        /// A string outside a fixed set of choices.
        case notOneOf([String], got: String)
    }

    public var path: [String]
    public var problem: Problem

    public init(path: [String], problem: Problem) {
        self.path = path
        self.problem = problem
    }

    /// The field, dotted (`report.vgs`), or "" at the top.
    public var field: String { path.joined(separator: ".") }

    public var description: String {
        let name = path.isEmpty ? "the value" : "argument '\(field)'"
        switch problem {
        case .missing: return "\(name) is required"
        case .wrongType(let expected, let got): return "\(name) must be \(expected), got \(got)"
        case .outOfRange(let why): return "\(name) \(why)"
        case .invalid(let why): return path.isEmpty ? why : "\(name): \(why)"
        case .notOneOf(let choices, let got):
            return "\(name) must be one of \(choices.joined(separator: ", ")), got \"\(JSONValue.printable(got))\""
        case .unknownKeys(let keys, let accepted):
            let names = keys.prefix(5).map { "'\(JSONValue.printable(String($0.prefix(64))))'" }.joined(separator: ", ")
            let more = keys.count > 5 ? ", …" : ""
            let list = accepted.joined(separator: ", ")
            return "unknown argument\(keys.count > 1 ? "s" : "") \(names)\(more) (accepted: \(list.isEmpty ? "none" : list))"
        }
    }
}

/// A string-valued enum on the wire: decoding names the choices when the text is none of them.
public protocol WireEnum: RawRepresentable, CaseIterable, Codable, Sendable where RawValue == String {}

extension WireEnum {
    public init(from decoder: any Decoder) throws {
        let text = try decoder.singleValueContainer().decode(String.self)
        guard let value = Self(rawValue: text) else {
            throw JSONValueDecodingError(
                path: decoder.codingPath.map(\.stringValue),
                problem: .notOneOf(Self.allCases.map(\.rawValue), got: text))
        }
        self = value
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.singleValueContainer()
        try c.encode(rawValue)
    }
}

extension JSONValue {
    /// "an integer", "a string"… for messages.
    public var kindName: String {
        switch self {
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
    public static func printable(_ text: String, limit: Int = 80) -> String {
        let scalars = text.unicodeScalars
        let cut = scalars.count > limit ? String(String.UnicodeScalarView(scalars.prefix(limit))) + "…" : text
        return String(String.UnicodeScalarView(cut.unicodeScalars.map { $0.value < 0x20 || $0.value == 0x7f ? "?" : $0 }))
    }
}

/// The keys the decoded type read at the top level.
private final class KeyTracker {
    var read: Set<String> = []
}

/// The coding key of a list element (its index), in the paths of both coders. Only the index
/// is stored, so the key fits an existential's inline buffer (no box per element).
struct ListIndexKey: CodingKey {
    let index: Int
    var stringValue: String { String(index) }
    var intValue: Int? { index }
    init?(stringValue: String) {
        guard let i = Int(stringValue) else { return nil }
        index = i
    }
    init(intValue: Int) { index = intValue }
}

/// Decodes one value. Its path is kept as the parent's path and its own key, and joined only
/// when asked (an error, a nested container, a type reading `codingPath`): a path array per
/// field was two allocations per field decoded.
private struct ValueDecoder: Decoder {
    let value: JSONValue
    let parentPath: [any CodingKey]
    let key: (any CodingKey)?
    /// Only for the top-level object.
    let tracker: KeyTracker?
    var userInfo: [CodingUserInfoKey: Any] { [:] }

    init(value: JSONValue, parentPath: [any CodingKey], key: (any CodingKey)?, tracker: KeyTracker?) {
        self.value = value
        self.parentPath = parentPath
        self.key = key
        self.tracker = tracker
    }

    var codingPath: [any CodingKey] {
        guard let key else { return parentPath }
        return parentPath + [key]
    }

    func fail(_ problem: JSONValueDecodingError.Problem, at path: [any CodingKey]? = nil) -> JSONValueDecodingError {
        JSONValueDecodingError(path: (path ?? codingPath).map(\.stringValue), problem: problem)
    }

    func container<Key: CodingKey>(keyedBy type: Key.Type) throws -> KeyedDecodingContainer<Key> {
        guard case .object(let object) = value else { throw fail(.wrongType(expected: "an object", got: value.kindName)) }
        return KeyedDecodingContainer(KeyedContainer<Key>(object: object, decoder: self, codingPath: codingPath))
    }

    func unkeyedContainer() throws -> any UnkeyedDecodingContainer {
        guard case .array(let array) = value else { throw fail(.wrongType(expected: "a list", got: value.kindName)) }
        return UnkeyedContainer(array: array, decoder: self, codingPath: codingPath)
    }

    func singleValueContainer() throws -> any SingleValueDecodingContainer { SingleContainer(decoder: self) }

    /// A child at `key` under `path` (this decoder's `codingPath`, which the container joined once).
    func child(_ value: JSONValue, key: any CodingKey, under path: [any CodingKey]) -> ValueDecoder {
        ValueDecoder(value: value, parentPath: path, key: key, tracker: nil)
    }

    // MARK: Scalars

    func decodeValue<T: Decodable>(_ type: T.Type) throws -> T {
        if T.self == JSONValue.self, let v = value as? T { return v }
        if T.self == String.self, let v = try string() as? T { return v }
        if T.self == Bool.self, let v = try bool() as? T { return v }
        if T.self == Double.self, let v = try double() as? T { return v }
        if T.self == Int.self, let v = try integer(Int.self) as? T { return v }
        if T.self == Int64.self, let v = try integer(Int64.self) as? T { return v }
        if T.self == UInt64.self, let v = try integer(UInt64.self) as? T { return v }
        if T.self == Int32.self, let v = try integer(Int32.self) as? T { return v }
        if T.self == UInt32.self, let v = try integer(UInt32.self) as? T { return v }
        return try T(from: self)
    }

    func isNull() -> Bool { if case .null = value { return true } else { return false } }

    func string() throws -> String {
        guard case .string(let s) = value else { throw fail(.wrongType(expected: "a string", got: value.kindName)) }
        return s
    }

    func bool() throws -> Bool {
        guard case .bool(let b) = value else { throw fail(.wrongType(expected: "true or false", got: value.kindName)) }
        return b
    }

    func double() throws -> Double {
        switch value {
        case .int(let i): return Double(i)
        case .double(let d): return d
        default: throw fail(.wrongType(expected: "a number", got: value.kindName))
        }
    }

    func integer<I: FixedWidthInteger>(_ type: I.Type) throws -> I {
        guard case .int(let i) = value else { throw fail(.wrongType(expected: "an integer", got: value.kindName)) }
        guard let v = I(exactly: i) else { throw fail(.outOfRange("must be between \(I.min) and \(I.max), got \(i)")) }
        return v
    }
}

private struct KeyedContainer<Key: CodingKey>: KeyedDecodingContainerProtocol {
    let object: [String: JSONValue]
    let decoder: ValueDecoder
    /// The decoder's path, joined once for all the fields.
    let codingPath: [any CodingKey]
    var allKeys: [Key] { object.keys.compactMap { Key(stringValue: $0) } }

    private func note(_ key: Key) { decoder.tracker?.read.insert(key.stringValue) }

    func contains(_ key: Key) -> Bool {
        note(key)
        return object[key.stringValue] != nil
    }

    /// The value at `key`; absent and null both throw `.missing`.
    private func child(_ key: Key) throws -> ValueDecoder {
        note(key)
        guard let v = object[key.stringValue], v != .null else {
            throw decoder.fail(.missing, at: codingPath + [key])
        }
        return decoder.child(v, key: key, under: codingPath)
    }

    func decodeNil(forKey key: Key) throws -> Bool {
        note(key)
        return object[key.stringValue].map { $0 == .null } ?? true
    }

    func decode<T: Decodable>(_ type: T.Type, forKey key: Key) throws -> T { try child(key).decodeValue(T.self) }

    // The synthesized init(from:) calls decodeIfPresent for optionals: null is absent.
    func decodeIfPresent<T: Decodable>(_ type: T.Type, forKey key: Key) throws -> T? {
        note(key)
        guard let v = object[key.stringValue], v != .null else { return nil }
        return try decoder.child(v, key: key, under: codingPath).decodeValue(T.self)
    }

    func nestedContainer<NestedKey: CodingKey>(keyedBy type: NestedKey.Type, forKey key: Key) throws -> KeyedDecodingContainer<NestedKey> {
        try child(key).container(keyedBy: type)
    }

    func nestedUnkeyedContainer(forKey key: Key) throws -> any UnkeyedDecodingContainer { try child(key).unkeyedContainer() }

    func superDecoder() throws -> any Decoder { decoder }
    func superDecoder(forKey key: Key) throws -> any Decoder { try child(key) }
}

private struct UnkeyedContainer: UnkeyedDecodingContainer {
    let array: [JSONValue]
    let decoder: ValueDecoder
    /// The decoder's path, joined once for all the elements.
    let codingPath: [any CodingKey]
    var currentIndex = 0

    init(array: [JSONValue], decoder: ValueDecoder, codingPath: [any CodingKey]) {
        self.array = array
        self.decoder = decoder
        self.codingPath = codingPath
    }
    var count: Int? { array.count }
    var isAtEnd: Bool { currentIndex >= array.count }

    private mutating func next() throws -> ValueDecoder {
        let key = ListIndexKey(intValue: currentIndex)
        guard !isAtEnd else { throw decoder.fail(.missing, at: codingPath + [key]) }
        defer { currentIndex += 1 }
        return decoder.child(array[currentIndex], key: key, under: codingPath)
    }

    mutating func decodeNil() throws -> Bool {
        guard !isAtEnd, array[currentIndex] == .null else { return false }
        currentIndex += 1
        return true
    }

    mutating func decode<T: Decodable>(_ type: T.Type) throws -> T { try next().decodeValue(T.self) }

    mutating func nestedContainer<NestedKey: CodingKey>(keyedBy type: NestedKey.Type) throws -> KeyedDecodingContainer<NestedKey> {
        try next().container(keyedBy: type)
    }

    mutating func nestedUnkeyedContainer() throws -> any UnkeyedDecodingContainer { try next().unkeyedContainer() }
    mutating func superDecoder() throws -> any Decoder { try next() }
}

private struct SingleContainer: SingleValueDecodingContainer {
    let decoder: ValueDecoder
    var codingPath: [any CodingKey] { decoder.codingPath }

    func decodeNil() -> Bool { decoder.isNull() }
    func decode(_ type: Bool.Type) throws -> Bool { try decoder.bool() }
    func decode(_ type: String.Type) throws -> String { try decoder.string() }
    func decode(_ type: Double.Type) throws -> Double { try decoder.double() }
    func decode(_ type: Float.Type) throws -> Float { Float(try decoder.double()) }
    func decode(_ type: Int.Type) throws -> Int { try decoder.integer(Int.self) }
    func decode(_ type: Int8.Type) throws -> Int8 { try decoder.integer(Int8.self) }
    func decode(_ type: Int16.Type) throws -> Int16 { try decoder.integer(Int16.self) }
    func decode(_ type: Int32.Type) throws -> Int32 { try decoder.integer(Int32.self) }
    func decode(_ type: Int64.Type) throws -> Int64 { try decoder.integer(Int64.self) }
    func decode(_ type: UInt.Type) throws -> UInt { try decoder.integer(UInt.self) }
    func decode(_ type: UInt8.Type) throws -> UInt8 { try decoder.integer(UInt8.self) }
    func decode(_ type: UInt16.Type) throws -> UInt16 { try decoder.integer(UInt16.self) }
    func decode(_ type: UInt32.Type) throws -> UInt32 { try decoder.integer(UInt32.self) }
    func decode(_ type: UInt64.Type) throws -> UInt64 { try decoder.integer(UInt64.self) }
    func decode<T: Decodable>(_ type: T.Type) throws -> T { try decoder.decodeValue(T.self) }
}
