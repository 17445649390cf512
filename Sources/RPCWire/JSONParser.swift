/// A small, strict JSON parser (RFC 8259) over bytes. Hand-written because every
/// RPC parses two levels of JSON (the envelope, then `oslo.message`) and the
/// generic Decodable path costs several times more on this hot path.
struct JSONParser {
    let bytes: UnsafeBufferPointer<UInt8>
    var i = 0
    private var depth = 0
    static let maxDepth = 512

    static func parse(_ buffer: UnsafeBufferPointer<UInt8>) throws(JSONParseError) -> JSONValue {
        var p = JSONParser(bytes: buffer)
        p.skipWhitespace()
        let v = try p.value()
        p.skipWhitespace()
        guard p.i == buffer.count else { throw p.fail("trailing characters") }
        return v
    }

    init(bytes: UnsafeBufferPointer<UInt8>) { self.bytes = bytes }

    func fail(_ what: String) -> JSONParseError { .invalid("\(what) at byte \(i)") }

    mutating func skipWhitespace() {
        while i < bytes.count {
            switch bytes[i] {
            case 0x20, 0x09, 0x0A, 0x0D: i += 1
            default: return
            }
        }
    }

    mutating func value() throws(JSONParseError) -> JSONValue {
        guard i < bytes.count else { throw fail("unexpected end") }
        switch bytes[i] {
        case UInt8(ascii: "{"): return try object()
        case UInt8(ascii: "["): return try array()
        case UInt8(ascii: "\""): return .string(try string())
        case UInt8(ascii: "t"): try literal("true"); return .bool(true)
        case UInt8(ascii: "f"): try literal("false"); return .bool(false)
        case UInt8(ascii: "n"): try literal("null"); return .null
        case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"): return try number()
        default: throw fail("unexpected character")
        }
    }

    private mutating func literal(_ word: StaticString) throws(JSONParseError) {
        let n = word.utf8CodeUnitCount
        guard i + n <= bytes.count else { throw fail("unexpected end") }
        for k in 0..<n where bytes[i + k] != word.utf8Start[k] { throw fail("invalid literal") }
        i += n
    }

    private mutating func object() throws(JSONParseError) -> JSONValue {
        depth += 1
        guard depth <= Self.maxDepth else { throw fail("nesting too deep") }
        defer { depth -= 1 }
        i += 1
        var out: [String: JSONValue] = [:]
        skipWhitespace()
        if i < bytes.count && bytes[i] == UInt8(ascii: "}") { i += 1; return .object(out) }
        while true {
            skipWhitespace()
            guard i < bytes.count, bytes[i] == UInt8(ascii: "\"") else { throw fail("expected a string key") }
            let key = try string()
            skipWhitespace()
            guard i < bytes.count, bytes[i] == UInt8(ascii: ":") else { throw fail("expected ':'") }
            i += 1
            skipWhitespace()
            out[key] = try value()
            skipWhitespace()
            guard i < bytes.count else { throw fail("unexpected end") }
            if bytes[i] == UInt8(ascii: ",") { i += 1; continue }
            if bytes[i] == UInt8(ascii: "}") { i += 1; return .object(out) }
            throw fail("expected ',' or '}'")
        }
    }

    // MARK: Walking an object's members without building it (the oslo envelope's hot path)
    // The same steps, checks and errors as `object()`, driven by the caller member by member.

    /// At `{`: enters the object; false when it is empty (and already left).
    mutating func enterObject() throws(JSONParseError) -> Bool {
        depth += 1
        guard depth <= Self.maxDepth else { throw fail("nesting too deep") }
        i += 1
        skipWhitespace()
        if i < bytes.count && bytes[i] == UInt8(ascii: "}") {
            i += 1
            depth -= 1
            return false
        }
        return true
    }

    /// Before a member's key: the key's bytes when it holds no escape or control character
    /// (the parser then stands after its closing quote), or nil with the parser at its opening
    /// quote, to be read with `string()`.
    mutating func plainKey() throws(JSONParseError) -> UnsafeBufferPointer<UInt8>? {
        skipWhitespace()
        guard i < bytes.count, bytes[i] == UInt8(ascii: "\"") else { throw fail("expected a string key") }
        var k = i + 1
        while k < bytes.count {
            let c = bytes[k]
            if c == UInt8(ascii: "\"") {
                let key = UnsafeBufferPointer(rebasing: bytes[(i + 1)..<k])
                i = k + 1
                return key
            }
            if c == UInt8(ascii: "\\") || c < 0x20 { return nil }
            k += 1
        }
        return nil
    }

    /// Between a key and its value.
    mutating func colon() throws(JSONParseError) {
        skipWhitespace()
        guard i < bytes.count, bytes[i] == UInt8(ascii: ":") else { throw fail("expected ':'") }
        i += 1
        skipWhitespace()
    }

    /// After a member's value: true when another member follows, false at the object's end (left).
    mutating func nextMember() throws(JSONParseError) -> Bool {
        skipWhitespace()
        guard i < bytes.count else { throw fail("unexpected end") }
        if bytes[i] == UInt8(ascii: ",") {
            i += 1
            return true
        }
        if bytes[i] == UInt8(ascii: "}") {
            i += 1
            depth -= 1
            return false
        }
        throw fail("expected ',' or '}'")
    }

    /// After the top-level value: nothing but whitespace may follow.
    mutating func end() throws(JSONParseError) {
        skipWhitespace()
        guard i == bytes.count else { throw fail("trailing characters") }
    }

    private mutating func array() throws(JSONParseError) -> JSONValue {
        depth += 1
        guard depth <= Self.maxDepth else { throw fail("nesting too deep") }
        defer { depth -= 1 }
        i += 1
        var out: [JSONValue] = []
        skipWhitespace()
        if i < bytes.count && bytes[i] == UInt8(ascii: "]") { i += 1; return .array(out) }
        while true {
            skipWhitespace()
            out.append(try value())
            skipWhitespace()
            guard i < bytes.count else { throw fail("unexpected end") }
            if bytes[i] == UInt8(ascii: ",") { i += 1; continue }
            if bytes[i] == UInt8(ascii: "]") { i += 1; return .array(out) }
            throw fail("expected ',' or ']'")
        }
    }

    mutating func string() throws(JSONParseError) -> String {
        i += 1  // opening quote
        let start = i
        // Fast path: no escapes.
        while i < bytes.count {
            let c = bytes[i]
            if c == UInt8(ascii: "\"") {
                let s = Self.makeString(UnsafeBufferPointer(rebasing: bytes[start..<i]))
                i += 1
                guard let s else { throw fail("invalid UTF-8 in string") }
                return s
            }
            if c == UInt8(ascii: "\\") || c < 0x20 { break }
            i += 1
        }
        var out: [UInt8] = Array(bytes[start..<i])
        try unescapeRest(into: &out)
        guard let s = out.withUnsafeBufferPointer({ Self.makeString($0) }) else { throw fail("invalid UTF-8 in string") }
        return s
    }

    /// `String(validating:as:)` with a fast path for ASCII (most of this traffic): the generic
    /// validator looked its metadata up on every call.
    static func makeString(_ b: UnsafeBufferPointer<UInt8>) -> String? {
        for c in b where c >= 0x80 { return String(validating: b, as: UTF8.self) }
        return String(decoding: b, as: UTF8.self)
    }

    /// `string()` without the String: the decoded bytes are appended to `out` (UTF-8 checked,
    /// the same errors at the same positions). The envelope's `oslo.message` is read this way
    /// and parsed in place.
    mutating func stringBytes(into out: inout [UInt8]) throws(JSONParseError) {
        i += 1  // opening quote
        let start = i
        while i < bytes.count {
            let c = bytes[i]
            if c == UInt8(ascii: "\"") || c == UInt8(ascii: "\\") || c < 0x20 { break }
            i += 1
        }
        let base = out.count
        out.append(contentsOf: UnsafeBufferPointer(rebasing: bytes[start..<i]))
        if i < bytes.count, bytes[i] == UInt8(ascii: "\"") {
            i += 1
        } else {
            try unescapeRest(into: &out)
        }
        guard Self.isValidUTF8(out, from: base) else { throw fail("invalid UTF-8 in string") }
    }

    /// Mostly ASCII on this path (oslo writes with ensure_ascii): checked a word's worth at a time.
    private static func isValidUTF8(_ b: [UInt8], from start: Int) -> Bool {
        b.withUnsafeBufferPointer { buf -> Bool in
            var k = start
            while k < buf.count, buf[k] < 0x80 { k += 1 }
            if k == buf.count { return true }
            return String(validating: UnsafeBufferPointer(rebasing: buf[start...]), as: UTF8.self) != nil
        }
    }

    /// The rest of a string after its plain prefix, up to and past the closing quote.
    private mutating func unescapeRest(into out: inout [UInt8]) throws(JSONParseError) {
        while i < bytes.count {
            let c = bytes[i]
            switch c {
            case UInt8(ascii: "\""):
                i += 1
                return
            case UInt8(ascii: "\\"):
                i += 1
                guard i < bytes.count else { throw fail("unexpected end") }
                let e = bytes[i]
                i += 1
                switch e {
                case UInt8(ascii: "\""): out.append(0x22)
                case UInt8(ascii: "\\"): out.append(0x5C)
                case UInt8(ascii: "/"): out.append(0x2F)
                case UInt8(ascii: "b"): out.append(0x08)
                case UInt8(ascii: "f"): out.append(0x0C)
                case UInt8(ascii: "n"): out.append(0x0A)
                case UInt8(ascii: "r"): out.append(0x0D)
                case UInt8(ascii: "t"): out.append(0x09)
                case UInt8(ascii: "u"):
                    var scalar = try hex4()
                    if (0xD800...0xDBFF).contains(scalar) {
                        guard i + 1 < bytes.count, bytes[i] == UInt8(ascii: "\\"), bytes[i + 1] == UInt8(ascii: "u") else {
                            throw fail("unpaired surrogate")
                        }
                        i += 2
                        let low = try hex4()
                        guard (0xDC00...0xDFFF).contains(low) else { throw fail("invalid surrogate pair") }
                        scalar = 0x10000 + ((scalar - 0xD800) << 10) + (low - 0xDC00)
                    } else if (0xDC00...0xDFFF).contains(scalar) {
                        throw fail("unpaired surrogate")
                    }
                    guard let u = Unicode.Scalar(scalar), let encoded = UTF8.encode(u) else { throw fail("invalid \\u escape") }
                    out.append(contentsOf: encoded)
                default: throw fail("invalid escape")
                }
            default:
                guard c >= 0x20 else { throw fail("control character in string") }
                // The plain run up to the next quote, escape or control character, at once.
                let run = i
                i += 1
                while i < bytes.count {
                    let d = bytes[i]
                    if d == UInt8(ascii: "\"") || d == UInt8(ascii: "\\") || d < 0x20 { break }
                    i += 1
                }
                out.append(contentsOf: UnsafeBufferPointer(rebasing: bytes[run..<i]))
            }
        }
        throw fail("unterminated string")
    }

    private mutating func hex4() throws(JSONParseError) -> UInt32 {
        guard i + 4 <= bytes.count else { throw fail("unexpected end") }
        var v: UInt32 = 0
        for _ in 0..<4 {
            let c = bytes[i]
            let d: UInt32
            switch c {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): d = UInt32(c - UInt8(ascii: "0"))
            case UInt8(ascii: "a")...UInt8(ascii: "f"): d = UInt32(c - UInt8(ascii: "a") + 10)
            case UInt8(ascii: "A")...UInt8(ascii: "F"): d = UInt32(c - UInt8(ascii: "A") + 10)
            default: throw fail("invalid hex digit")
            }
            v = v << 4 | d
            i += 1
        }
        return v
    }

    private mutating func number() throws(JSONParseError) -> JSONValue {
        let start = i
        if bytes[i] == UInt8(ascii: "-") { i += 1 }
        guard i < bytes.count, (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(bytes[i]) else { throw fail("invalid number") }
        if bytes[i] == UInt8(ascii: "0") {
            i += 1
        } else {
            while i < bytes.count, (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(bytes[i]) { i += 1 }
        }
        var isInteger = true
        if i < bytes.count, bytes[i] == UInt8(ascii: ".") {
            isInteger = false
            i += 1
            guard i < bytes.count, (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(bytes[i]) else { throw fail("invalid number") }
            while i < bytes.count, (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(bytes[i]) { i += 1 }
        }
        if i < bytes.count, bytes[i] == UInt8(ascii: "e") || bytes[i] == UInt8(ascii: "E") {
            isInteger = false
            i += 1
            if i < bytes.count, bytes[i] == UInt8(ascii: "+") || bytes[i] == UInt8(ascii: "-") { i += 1 }
            guard i < bytes.count, (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(bytes[i]) else { throw fail("invalid number") }
            while i < bytes.count, (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(bytes[i]) { i += 1 }
        }
        let text = String(decoding: UnsafeBufferPointer(rebasing: bytes[start..<i]), as: UTF8.self)
        if isInteger, let v = Int64(text) { return .int(v) }
        // Integers beyond Int64 degrade to Double, as in Python's json for floats.
        guard let d = Double(text) else { throw fail("invalid number") }
        return .double(d)
    }
}
