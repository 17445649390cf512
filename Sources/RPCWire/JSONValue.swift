import FoundationEssentials

/// A JSON document of unknown shape: oslo.messaging carries keyword arguments,
/// results and contexts as arbitrary JSON, so the wire layer works on this type.
public enum JSONValue: Sendable, Hashable {
    case null
    case bool(Bool)
    case int(Int64)
    case double(Double)
    case string(String)
    case array([JSONValue])
    case object([String: JSONValue])
}

extension JSONValue: Codable {
    public init(from decoder: any Decoder) throws {
        let c = try decoder.singleValueContainer()
        if c.decodeNil() { self = .null; return }
        if let b = try? c.decode(Bool.self) { self = .bool(b); return }
        if let i = try? c.decode(Int64.self) { self = .int(i); return }
        if let d = try? c.decode(Double.self) { self = .double(d); return }
        if let s = try? c.decode(String.self) { self = .string(s); return }
        if let a = try? c.decode([JSONValue].self) { self = .array(a); return }
        if let o = try? c.decode([String: JSONValue].self) { self = .object(o); return }
        throw DecodingError.dataCorruptedError(in: c, debugDescription: "not a JSON value")
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.singleValueContainer()
        switch self {
        case .null: try c.encodeNil()
        case .bool(let b): try c.encode(b)
        case .int(let i): try c.encode(i)
        case .double(let d): try c.encode(d)
        case .string(let s): try c.encode(s)
        case .array(let a): try c.encode(a)
        case .object(let o): try c.encode(o)
        }
    }
}

extension JSONValue: ExpressibleByNilLiteral, ExpressibleByBooleanLiteral, ExpressibleByIntegerLiteral,
    ExpressibleByFloatLiteral, ExpressibleByStringLiteral, ExpressibleByArrayLiteral,
    ExpressibleByDictionaryLiteral
{
    public init(nilLiteral: ()) { self = .null }
    public init(booleanLiteral value: Bool) { self = .bool(value) }
    public init(integerLiteral value: Int64) { self = .int(value) }
    public init(floatLiteral value: Double) { self = .double(value) }
    public init(stringLiteral value: String) { self = .string(value) }
    public init(arrayLiteral elements: JSONValue...) { self = .array(elements) }
    public init(dictionaryLiteral elements: (String, JSONValue)...) {
        self = .object(Dictionary(elements, uniquingKeysWith: { _, last in last }))
    }
}

extension JSONValue {
    public var isNull: Bool { if case .null = self { return true } else { return false } }
    public var stringValue: String? { if case .string(let s) = self { return s } else { return nil } }
    public var boolValue: Bool? { if case .bool(let b) = self { return b } else { return nil } }
    public var objectValue: [String: JSONValue]? { if case .object(let o) = self { return o } else { return nil } }
    public var arrayValue: [JSONValue]? { if case .array(let a) = self { return a } else { return nil } }
    /// Integers, and doubles that hold an exact integer (Python may send 2.0).
    public var int64Value: Int64? {
        switch self {
        case .int(let i): return i
        case .double(let d) where d.rounded() == d && abs(d) < 9.0e18: return Int64(d)
        default: return nil
        }
    }
    public var doubleValue: Double? {
        switch self {
        case .int(let i): return Double(i)
        case .double(let d): return d
        default: return nil
        }
    }
    public subscript(key: String) -> JSONValue? { objectValue?[key] }
}

// MARK: - Serialization

/// Compact, deterministic JSON writer (sorted keys, Python's ", " and ": "
/// separators, ASCII-only output like json.dumps(ensure_ascii=True)). Writes bytes
/// directly: it is on the hot path of every RPC.
public enum JSONWriter {
    public static func serialize(_ value: JSONValue) -> String {
        String(decoding: bytes(value), as: UTF8.self)
    }

    public static func bytes(_ value: JSONValue) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(256)
        write(value, into: &out)
        return out
    }

    public static func write(_ value: JSONValue, into out: inout [UInt8]) {
        switch value {
        case .null: out.append(contentsOf: "null".utf8)
        case .bool(let b): out.append(contentsOf: (b ? "true" : "false").utf8)
        case .int(let i): out.append(contentsOf: String(i).utf8)
        case .double(let d):
            if !d.isFinite {
                out.append(contentsOf: "null".utf8)  // JSON has no NaN/Infinity
            } else if d.rounded() == d && abs(d) < 1e15 {
                out.append(contentsOf: String(Int64(d)).utf8)
                out.append(contentsOf: ".0".utf8)
            } else {
                out.append(contentsOf: "\(d)".utf8)
            }
        case .string(let s): writeString(s, into: &out)
        case .array(let a):
            out.append(UInt8(ascii: "["))
            for (n, e) in a.enumerated() {
                if n > 0 { out.append(contentsOf: ", ".utf8) }
                write(e, into: &out)
            }
            out.append(UInt8(ascii: "]"))
        case .object(let o): writeObject(o, into: &out)
        }
    }

    /// Members in sorted key order; sorted once as pairs (no second lookup per key).
    static func writeObject(_ o: [String: JSONValue], into out: inout [UInt8]) {
        out.append(UInt8(ascii: "{"))
        var first = true
        for (k, v) in o.sorted(by: { $0.key < $1.key }) {
            if first {
                first = false
            } else {
                out.append(contentsOf: ", ".utf8)
            }
            writeString(k, into: &out)
            out.append(contentsOf: ": ".utf8)
            write(v, into: &out)
        }
        out.append(UInt8(ascii: "}"))
    }

    public static func writeString(_ s: String, into out: inout [UInt8]) {
        var s = s
        s.withUTF8 { writeString(utf8: $0, into: &out) }
    }

    /// `writeString` without the quotes.
    static func writeStringContents(_ s: String, into out: inout [UInt8]) {
        var s = s
        s.withUTF8 { writeContents(utf8: $0, into: &out) }
    }

    /// Escapes UTF-8 text as a JSON string literal with \u escapes for non-ASCII.
    public static func writeString(utf8: UnsafeBufferPointer<UInt8>, into out: inout [UInt8]) {
        out.append(UInt8(ascii: "\""))
        writeContents(utf8: utf8, into: &out)
        out.append(UInt8(ascii: "\""))
    }

    private static func writeContents(utf8: UnsafeBufferPointer<UInt8>, into out: inout [UInt8]) {
        var allPlain = true
        for b in utf8 where b < 0x20 || b >= 0x7F || b == 0x22 || b == 0x5C { allPlain = false; break }
        if allPlain {
            out.append(contentsOf: utf8)
        } else {
            for u in String(decoding: utf8, as: UTF8.self).unicodeScalars {
                switch u {
                case "\"": out.append(contentsOf: "\\\"".utf8)
                case "\\": out.append(contentsOf: "\\\\".utf8)
                case "\n": out.append(contentsOf: "\\n".utf8)
                case "\r": out.append(contentsOf: "\\r".utf8)
                case "\t": out.append(contentsOf: "\\t".utf8)
                case "\u{08}": out.append(contentsOf: "\\b".utf8)
                case "\u{0C}": out.append(contentsOf: "\\f".utf8)
                default:
                    if u.value < 0x20 || u.value > 0x7E {
                        if u.value > 0xFFFF {
                            let v = u.value - 0x10000
                            appendUnicodeEscape(UInt16(0xD800 + (v >> 10)), into: &out)
                            appendUnicodeEscape(UInt16(0xDC00 + (v & 0x3FF)), into: &out)
                        } else {
                            appendUnicodeEscape(UInt16(u.value), into: &out)
                        }
                    } else {
                        out.append(UInt8(u.value))
                    }
                }
            }
        }
    }

    private static let hexDigits: [UInt8] = Array("0123456789abcdef".utf8)

    private static func appendUnicodeEscape(_ v: UInt16, into out: inout [UInt8]) {
        out.append(UInt8(ascii: "\\"))
        out.append(UInt8(ascii: "u"))
        out.append(hexDigits[Int(v >> 12) & 0xF])
        out.append(hexDigits[Int(v >> 8) & 0xF])
        out.append(hexDigits[Int(v >> 4) & 0xF])
        out.append(hexDigits[Int(v) & 0xF])
    }
}

public enum JSONParseError: Error, Sendable, CustomStringConvertible {
    case invalid(String)
    public var description: String {
        switch self {
        case .invalid(let m): return "invalid JSON: \(m)"
        }
    }
}

extension JSONValue {
    /// Parses a JSON document. Errors never include the document (it may hold secrets).
    public static func parse(_ bytes: some Collection<UInt8>) throws(JSONParseError) -> JSONValue {
        // withContiguousStorageIfAvailable / withUTF8 rethrow untyped errors; carry
        // the result out as a Result to keep this function's typed throw.
        let r: Result<JSONValue, JSONParseError>? = bytes.withContiguousStorageIfAvailable { buf in
            Result { () throws(JSONParseError) in try JSONParser.parse(buf) }
        }
        if let r { return try r.get() }
        let copy = Array(bytes)
        return try copy.withUnsafeBufferPointer { buf in
            Result { () throws(JSONParseError) in try JSONParser.parse(buf) }
        }.get()
    }

    public static func parse(_ text: String) throws(JSONParseError) -> JSONValue {
        var t = text
        return try t.withUTF8 { buf in
            Result { () throws(JSONParseError) in try JSONParser.parse(buf) }
        }.get()
    }
}
