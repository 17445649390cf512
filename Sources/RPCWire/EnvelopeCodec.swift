/// The oslo envelope read and written without `JSONValue` trees for the parts that are only
/// copied or checked (issue 17: the two levels of JSON into dictionaries and back were the
/// largest item of the program's own CPU per call).
///
/// Decoding walks the outer object member by member with `JSONParser`'s own steps (the same
/// checks, limits and error texts at the same byte positions as parsing it whole), reads
/// `oslo.message` into one byte buffer (no `String` of the inner text), and walks the inner
/// object straight into the fields of a request or a reply: only the values a caller keeps
/// (`args`, `result`, context values, the strings) become `JSONValue`s. Duplicate keys: the
/// last one wins, as in the tree. A body without `oslo.version` (the 1.0 form) takes the tree
/// path. `RPCRequest.decodeTree` / `RPCReply.decodeTree` keep that path whole: the
/// differential tests and `aos-bench wire` compare against it.
extension OsloEnvelope {
    /// The bytes of `oslo.message` of a 2.0 envelope, or nil for a body without `oslo.version`.
    static func innerBytes(_ buf: UnsafeBufferPointer<UInt8>) throws(WireError) -> [UInt8]? {
        var p = JSONParser(bytes: buf)
        var version: JSONValue?
        var message = MessageMember.absent
        do {
            p.skipWhitespace()
            guard p.i < buf.count, buf[p.i] == UInt8(ascii: "{") else {
                _ = try JSONParser.parse(buf)  // not JSON: that error; JSON: not an object
                throw WireError.malformed("body is not a JSON object")
            }
            if try p.enterObject() {
                repeat {
                    let isVersion: Bool
                    let isMessage: Bool
                    if let k = try p.plainKey() {
                        isVersion = equal(k, "oslo.version")
                        isMessage = !isVersion && equal(k, "oslo.message")
                        if !isVersion && !isMessage && !isValidUTF8(k) { throw p.fail("invalid UTF-8 in string") }
                    } else {
                        let key = try p.string()
                        isVersion = key == "oslo.version"
                        isMessage = key == "oslo.message"
                    }
                    try p.colon()
                    if isVersion {
                        version = try p.value()
                    } else if isMessage, p.i < buf.count, buf[p.i] == UInt8(ascii: "\"") {
                        var out: [UInt8] = []
                        out.reserveCapacity(buf.count)
                        try p.stringBytes(into: &out)
                        message = .string(out)
                    } else if isMessage {
                        _ = try p.value()
                        message = .other
                    } else {
                        _ = try p.value()
                    }
                } while try p.nextMember()
            }
            try p.end()
        } catch let e as WireError {
            throw e
        } catch {
            throw .malformed("body is not JSON (\(error))")
        }
        guard let version else { return nil }
        try checkVersion(version)
        guard case .string(let inner) = message else { throw .malformed("oslo.message is missing or not a string") }
        return inner
    }

    private enum MessageMember {
        case absent
        case other
        case string([UInt8])
    }

    static func checkVersion(_ v: JSONValue) throws(WireError) {
        guard case .string(let version) = v else { throw .malformed("oslo.version is not a string") }
        guard isSupported(version: version) else { throw .unsupportedEnvelope(version) }
    }

    /// Walks the inner message (an object), handing each member's key to `member`, which
    /// reads the value with the parser it is given.
    static func walkInner(
        _ buf: UnsafeBufferPointer<UInt8>,
        _ member: (_ key: InnerKey, _ p: inout JSONParser) throws(JSONParseError) -> Void
    ) throws(WireError) {
        var p = JSONParser(bytes: buf)
        do {
            p.skipWhitespace()
            guard p.i < buf.count, buf[p.i] == UInt8(ascii: "{") else {
                _ = try JSONParser.parse(buf)
                throw WireError.malformed("oslo.message is not a JSON object")
            }
            if try p.enterObject() {
                repeat {
                    let key: InnerKey
                    if let k = try p.plainKey() {
                        if let f = InnerKey.Known(bytes: k) {
                            key = .known(f)
                        } else {
                            guard let s = JSONParser.makeString(k) else { throw p.fail("invalid UTF-8 in string") }
                            key = .other(s)
                        }
                    } else {
                        let s = try p.string()
                        key = InnerKey.Known(rawValue: s).map(InnerKey.known) ?? .other(s)
                    }
                    try p.colon()
                    try member(key, &p)
                } while try p.nextMember()
            }
            try p.end()
        } catch let e as WireError {
            throw e
        } catch {
            throw .malformed("oslo.message is not JSON (\(error))")
        }
    }

    /// Runs `f` over the body's bytes, contiguous (a copy only for a collection that is not).
    static func withContiguous<R>(
        _ body: some Collection<UInt8>, _ f: (UnsafeBufferPointer<UInt8>) throws(WireError) -> R
    ) throws(WireError) -> R {
        let r: Result<R, WireError>? = body.withContiguousStorageIfAvailable { buf in
            Result { () throws(WireError) in try f(buf) }
        }
        if let r { return try r.get() }
        let copy = Array(body)
        return try copy.withUnsafeBufferPointer { buf in Result { () throws(WireError) in try f(buf) } }.get()
    }

    /// A key that is not one of ours is still checked as `string()` checks it (ASCII first).
    static func isValidUTF8(_ k: UnsafeBufferPointer<UInt8>) -> Bool {
        for b in k where b >= 0x80 { return String(validating: k, as: UTF8.self) != nil }
        return true
    }

    static func equal(_ k: UnsafeBufferPointer<UInt8>, _ s: StaticString) -> Bool {
        guard k.count == s.utf8CodeUnitCount else { return false }
        let p = s.utf8Start
        for n in 0..<k.count where k[n] != p[n] { return false }
        return true
    }

    /// The envelope around an inner message already written as JSON bytes: `oslo.message` is
    /// that text as a JSON string. The writer's output is printable ASCII, so only `"` and `\`
    /// need escaping; anything else goes through the general string writer.
    static func wrap(innerBytes inner: [UInt8]) -> [UInt8] {
        let head: StaticString = "{\"oslo.version\": \"2.0\", \"oslo.message\": \""
        return inner.withUnsafeBufferPointer { src -> [UInt8] in
            var escapes = 0
            for b in src {
                if b < 0x20 || b > 0x7E {
                    var out: [UInt8] = []
                    out.reserveCapacity(inner.count + inner.count / 4 + 48)
                    out.append(contentsOf: UnsafeBufferPointer(start: head.utf8Start, count: head.utf8CodeUnitCount - 1))
                    JSONWriter.writeString(utf8: src, into: &out)
                    out.append(UInt8(ascii: "}"))
                    return out
                }
                if b == 0x22 || b == 0x5C { escapes += 1 }
            }
            let total = head.utf8CodeUnitCount + src.count + escapes + 2
            return [UInt8](unsafeUninitializedCapacity: total) { out, count in
                var n = head.utf8CodeUnitCount
                _ = out.initialize(from: UnsafeBufferPointer(start: head.utf8Start, count: n))
                // Runs between the characters to escape are copied whole.
                var run = 0
                for (k, b) in src.enumerated() where b == 0x22 || b == 0x5C {
                    _ = UnsafeMutableBufferPointer(rebasing: out[n...]).initialize(from: UnsafeBufferPointer(rebasing: src[run..<k]))
                    n += k - run
                    out[n] = 0x5C
                    out[n + 1] = b
                    n += 2
                    run = k + 1
                }
                _ = UnsafeMutableBufferPointer(rebasing: out[n...]).initialize(from: UnsafeBufferPointer(rebasing: src[run...]))
                n += src.count - run
                out[n] = UInt8(ascii: "\"")
                out[n + 1] = UInt8(ascii: "}")
                count = n + 2
            }
        }
    }
}

/// A key of the inner message as the walk sees it.
enum InnerKey {
    case known(Known)
    case other(String)

    enum Known: String {
        case method, args, namespace, version
        case msgID = "_msg_id"
        case replyQ = "_reply_q"
        case timeout = "_timeout"
        case uniqueID = "_unique_id"
        case result, failure, ending

        /// Matches the raw bytes of an unescaped key (ASCII, so byte equality is string equality).
        init?(bytes k: UnsafeBufferPointer<UInt8>) {
            switch k.count {
            case 4 where OsloEnvelope.equal(k, "args"): self = .args
            case 6 where OsloEnvelope.equal(k, "method"): self = .method
            case 6 where OsloEnvelope.equal(k, "result"): self = .result
            case 6 where OsloEnvelope.equal(k, "ending"): self = .ending
            case 7 where OsloEnvelope.equal(k, "version"): self = .version
            case 7 where OsloEnvelope.equal(k, "_msg_id"): self = .msgID
            case 7 where OsloEnvelope.equal(k, "failure"): self = .failure
            case 8 where OsloEnvelope.equal(k, "_reply_q"): self = .replyQ
            case 8 where OsloEnvelope.equal(k, "_timeout"): self = .timeout
            case 9 where OsloEnvelope.equal(k, "namespace"): self = .namespace
            case 10 where OsloEnvelope.equal(k, "_unique_id"): self = .uniqueID
            default: return nil
            }
        }
    }
}

/// The members of an inner message a request or a reply is built from (the last of duplicates).
struct InnerFields {
    var method: JSONValue?
    var args: JSONValue?
    var namespace: JSONValue?
    var version: JSONValue?
    var msgID: JSONValue?
    var replyQ: JSONValue?
    var timeout: JSONValue?
    var uniqueID: JSONValue?
    var result: JSONValue?
    var failure: JSONValue?
    var ending: JSONValue?
    /// `_context_<key>` members, by `<key>` (requests only).
    var context: [String: JSONValue] = [:]

    init() {}

    /// From a parsed tree (the 1.0 form and the reference path).
    init(_ o: [String: JSONValue], request: Bool) {
        method = o["method"]
        args = o["args"]
        namespace = o["namespace"]
        version = o["version"]
        msgID = o["_msg_id"]
        replyQ = o["_reply_q"]
        timeout = o["_timeout"]
        uniqueID = o["_unique_id"]
        result = o["result"]
        failure = o["failure"]
        ending = o["ending"]
        if request {
            for (k, v) in o where k.hasPrefix("_context_") { context[String(k.dropFirst(9))] = v }
        }
    }

    /// Reads the body's envelope and inner message.
    static func read(_ body: some Collection<UInt8>, request: Bool) throws(WireError) -> InnerFields {
        try OsloEnvelope.withContiguous(body) { (buf) throws(WireError) -> InnerFields in
            guard let inner = try OsloEnvelope.innerBytes(buf) else {
                return InnerFields(try OsloEnvelope.unwrap(buf), request: request)
            }
            return try inner.withUnsafeBufferPointer { ib in
                Result { () throws(WireError) in try walk(ib, request: request) }
            }.get()
        }
    }

    private static func walk(_ buf: UnsafeBufferPointer<UInt8>, request: Bool) throws(WireError) -> InnerFields {
        var f = InnerFields()
        try OsloEnvelope.walkInner(buf) { (key, p) throws(JSONParseError) in
            switch key {
            case .known(let k):
                let v = try p.value()
                switch k {
                case .method: f.method = v
                case .args: f.args = v
                case .namespace: f.namespace = v
                case .version: f.version = v
                case .msgID: f.msgID = v
                case .replyQ: f.replyQ = v
                case .timeout: f.timeout = v
                case .uniqueID: f.uniqueID = v
                case .result: f.result = v
                case .failure: f.failure = v
                case .ending: f.ending = v
                }
            case .other(let s):
                let v = try p.value()
                if request, s.hasPrefix("_context_") { f.context[String(s.dropFirst(9))] = v }
            }
        }
        return f
    }
}

/// Writes an inner message's members in sorted key order (as `JSONWriter` orders a tree's),
/// with Python's separators.
struct InnerWriter {
    var out: [UInt8] = []
    private var first = true

    init(capacity: Int) {
        out.reserveCapacity(capacity)
        out.append(UInt8(ascii: "{"))
    }

    private mutating func separator() {
        if first {
            first = false
        } else {
            out.append(UInt8(ascii: ","))
            out.append(UInt8(ascii: " "))
        }
    }

    /// A key known to need no escaping.
    mutating func key(_ k: StaticString) {
        separator()
        out.append(UInt8(ascii: "\""))
        out.append(contentsOf: UnsafeBufferPointer(start: k.utf8Start, count: k.utf8CodeUnitCount))
        out.append(contentsOf: "\": ".utf8)
    }

    /// `_context_<k>`.
    mutating func contextKey(_ k: String) {
        separator()
        out.append(contentsOf: "\"_context_".utf8)
        JSONWriter.writeStringContents(k, into: &out)
        out.append(contentsOf: "\": ".utf8)
    }

    mutating func string(_ s: String) { JSONWriter.writeString(s, into: &out) }
    mutating func value(_ v: JSONValue) { JSONWriter.write(v, into: &out) }
    mutating func object(_ o: [String: JSONValue]) { JSONWriter.writeObject(o, into: &out) }
    mutating func null() { out.append(contentsOf: "null".utf8) }

    mutating func finish() -> [UInt8] {
        out.append(UInt8(ascii: "}"))
        return out
    }
}
