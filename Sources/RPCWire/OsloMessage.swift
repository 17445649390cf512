/// oslo.messaging's rabbit-driver message format, version 2.0 envelope.
/// See docs/amqp-rpc.md; facts from the wire capture in the reference notes.
public enum OsloEnvelope {
    public static let version = "2.0"
    public static let contentType = "application/json"
    public static let contentEncoding = "utf-8"

    /// Wraps an inner message the way oslo does: the inner JSON is itself a JSON string.
    public static func wrap(_ inner: JSONValue) -> [UInt8] { wrap(innerBytes: JSONWriter.bytes(inner)) }

    /// Whether `version` names the 2.0 envelope: its first dot-separated part is "2" and its
    /// second, if any, "0" (empty parts skipped, as `split` skips them: "2", "2.0", "2.0.1").
    /// A scan, not `split`: this runs for every message and `split` allocates its array. It
    /// splits on the byte ".", as Python's `str.split` does, where a Swift `split` of the
    /// String would not split at a "." that a combining mark follows.
    static func isSupported(version: String) -> Bool {
        let u = version.utf8
        var i = u.startIndex
        var parts = 0
        while parts < 2 {
            while i < u.endIndex && u[i] == UInt8(ascii: ".") { i = u.index(after: i) }
            if i == u.endIndex { break }
            let start = i
            while i < u.endIndex && u[i] != UInt8(ascii: ".") { i = u.index(after: i) }
            let expected = parts == 0 ? UInt8(ascii: "2") : UInt8(ascii: "0")
            guard u.index(after: start) == i, u[start] == expected else { return false }
            parts += 1
        }
        return parts >= 1
    }

    /// Accepts the 2.0 envelope and the un-enveloped 1.0 form, as oslo's receivers do.
    public static func unwrap(_ body: some Collection<UInt8>) throws(WireError) -> [String: JSONValue] {
        let outer: JSONValue
        do { outer = try JSONValue.parse(body) } catch { throw .malformed("body is not JSON (\(error))") }
        guard case .object(let o) = outer else { throw .malformed("body is not a JSON object") }
        guard let v = o["oslo.version"] else { return o }  // 1.0: the message itself
        guard case .string(let version) = v else { throw .malformed("oslo.version is not a string") }
        guard isSupported(version: version) else { throw .unsupportedEnvelope(version) }
        guard case .string(let innerText) = o["oslo.message"] ?? .null else {
            throw .malformed("oslo.message is missing or not a string")
        }
        let inner: JSONValue
        do { inner = try JSONValue.parse(innerText) } catch { throw .malformed("oslo.message is not JSON (\(error))") }
        guard case .object(let io) = inner else { throw .malformed("oslo.message is not a JSON object") }
        return io
    }
}

public enum WireError: Error, Sendable, Equatable, CustomStringConvertible {
    case malformed(String)
    case unsupportedEnvelope(String)
    case wrongContentType(String?)

    public var description: String {
        switch self {
        case .malformed(let m): return "malformed message: \(m)"
        case .unsupportedEnvelope(let v): return "unsupported oslo envelope version \(v)"
        case .wrongContentType(let t): return "content type \(t ?? "(none)") is not application/json"
        }
    }
}

/// A request as carried inside `oslo.message` (call, cast or fanout cast).
public struct RPCRequest: Sendable, Equatable {
    public var method: String
    public var args: [String: JSONValue]
    public var namespace: String?
    public var version: String?
    /// Present on calls only: correlates the reply.
    public var msgID: String?
    public var replyQueue: String?
    /// The caller's `call_monitor_timeout` (`_timeout`), in seconds.
    public var monitorTimeout: Double?
    public var uniqueID: String?
    /// The request context, flattened on the wire as `_context_<key>`.
    public var context: [String: JSONValue]

    public init(
        method: String, args: [String: JSONValue] = [:], namespace: String? = nil, version: String? = nil,
        msgID: String? = nil, replyQueue: String? = nil, monitorTimeout: Double? = nil,
        uniqueID: String? = nil, context: [String: JSONValue] = [:]
    ) {
        self.method = method
        self.args = args
        self.namespace = namespace
        self.version = version
        self.msgID = msgID
        self.replyQueue = replyQueue
        self.monitorTimeout = monitorTimeout
        self.uniqueID = uniqueID
        self.context = context
    }

    public var isCall: Bool { msgID != nil }

    /// The largest `_timeout` (call_monitor_timeout) accepted: one week.
    public static let maxMonitorTimeout: Double = 7 * 86_400

    public func innerMessage() -> JSONValue {
        var o: [String: JSONValue] = ["method": .string(method), "args": .object(args)]
        if let namespace { o["namespace"] = .string(namespace) }
        if let version { o["version"] = .string(version) }
        if let msgID {
            o["_msg_id"] = .string(msgID)
            o["_reply_q"] = replyQueue.map(JSONValue.string) ?? .null
            o["_timeout"] = monitorTimeout.map { $0.rounded() == $0 && abs($0) < 9e15 ? .int(Int64($0)) : .double($0) } ?? .null
        }
        if let uniqueID { o["_unique_id"] = .string(uniqueID) }
        for (k, v) in context { o["_context_" + k] = v }
        return .object(o)
    }

    /// `OsloEnvelope.wrap(innerMessage())`, byte for byte, written without the tree: the
    /// members in the order `JSONWriter` sorts them (`_context_*`, `_msg_id`, `_reply_q`,
    /// `_timeout`, `_unique_id`, `args`, `method`, `namespace`, `version`).
    public func encodeBody() -> [UInt8] {
        var w = InnerWriter(capacity: 256)
        for (k, v) in context.sorted(by: { $0.key < $1.key }) {
            w.contextKey(k)
            w.value(v)
        }
        if let msgID {
            w.key("_msg_id")
            w.string(msgID)
            w.key("_reply_q")
            if let replyQueue { w.string(replyQueue) } else { w.null() }
            w.key("_timeout")
            if let t = monitorTimeout {
                w.value(t.rounded() == t && abs(t) < 9e15 ? .int(Int64(t)) : .double(t))
            } else {
                w.null()
            }
        }
        if let uniqueID {
            w.key("_unique_id")
            w.string(uniqueID)
        }
        w.key("args")
        w.object(args)
        w.key("method")
        w.string(method)
        if let namespace {
            w.key("namespace")
            w.string(namespace)
        }
        if let version {
            w.key("version")
            w.string(version)
        }
        return OsloEnvelope.wrap(innerBytes: w.finish())
    }

    /// Decodes a delivered request; `contentType` is the AMQP property (oslo rejects others).
    public static func decode(body: some Collection<UInt8>, contentType: String?) throws(WireError) -> RPCRequest {
        guard contentType == OsloEnvelope.contentType else { throw .wrongContentType(contentType) }
        return try build(InnerFields.read(body, request: true))
    }

    /// `decode` through a parsed tree of the whole message: the reference the envelope walk
    /// is checked against (differential tests, `aos-bench wire`).
    public static func decodeTree(body: some Collection<UInt8>, contentType: String?) throws(WireError) -> RPCRequest {
        guard contentType == OsloEnvelope.contentType else { throw .wrongContentType(contentType) }
        return try build(InnerFields(OsloEnvelope.unwrap(body), request: true))
    }

    private static func build(_ o: InnerFields) throws(WireError) -> RPCRequest {
        guard case .string(let method) = o.method ?? .null, !method.isEmpty else {
            throw .malformed("'method' is missing or not a string")
        }
        var args: [String: JSONValue] = [:]
        switch o.args ?? .null {
        case .null: break
        case .object(let a): args = a
        default: throw .malformed("'args' is not a JSON object")
        }
        func optString(_ value: JSONValue?, _ key: String) throws(WireError) -> String? {
            switch value ?? .null {
            case .null: return nil
            case .string(let s): return s
            default: throw .malformed("'\(key)' is not a string")
            }
        }
        var timeout: Double?
        switch o.timeout ?? .null {
        case .null: timeout = nil
        case .int(let i): timeout = Double(i)
        case .double(let d): timeout = d
        case .string(let s):
            guard let d = Double(s) else { throw .malformed("'_timeout' is not a number") }
            timeout = d
        default: throw .malformed("'_timeout' is not a number")
        }
        // Total: a NaN, an infinity or an absurd value would trap a later integer conversion.
        if let t = timeout, !(t.isFinite && t >= 0 && t <= Self.maxMonitorTimeout) {
            throw .malformed("'_timeout' must be a number of seconds between 0 and \(Int(Self.maxMonitorTimeout))")
        }
        let msgID = try optString(o.msgID, "_msg_id")
        // A request without `_msg_id` is a cast: nobody waits for a reply, whatever `_reply_q` says.
        let replyQ = msgID == nil ? nil : try optString(o.replyQ, "_reply_q")
        if msgID != nil && replyQ == nil { throw .malformed("'_msg_id' without '_reply_q'") }
        // Bounded and printable: echoed in the reply and in logs.
        if let msgID, !RPCReplyAddress.isValidMsgID(msgID) {
            throw .malformed("'_msg_id' must be 1 to \(RPCReplyAddress.maxMsgIDBytes) printable ASCII characters")
        }
        // Only oslo-shaped reply queue names (see RPCReplyAddress: a reply can reach any queue).
        if let replyQ, !RPCReplyAddress.isValidReplyQueue(replyQ) {
            throw .malformed("'_reply_q' is not a reply queue name (reply_[A-Za-z0-9_.:-], at most 255 bytes)")
        }
        return RPCRequest(
            method: method, args: args, namespace: try optString(o.namespace, "namespace"),
            version: try optString(o.version, "version"), msgID: msgID, replyQueue: replyQ,
            monitorTimeout: timeout, uniqueID: try optString(o.uniqueID, "_unique_id"), context: o.context)
    }
}

/// One reply message: a final result/failure (`ending: true`) or a call-monitor heartbeat.
public struct RPCReply: Sendable, Equatable {
    public var result: JSONValue
    public var failure: RPCFailure?
    public var ending: Bool
    public var msgID: String
    public var uniqueID: String?

    public init(
        result: JSONValue = .null, failure: RPCFailure? = nil, ending: Bool = true, msgID: String,
        uniqueID: String? = nil
    ) {
        self.result = result
        self.failure = failure
        self.ending = ending
        self.msgID = msgID
        self.uniqueID = uniqueID
    }

    public static func heartbeat(msgID: String, uniqueID: String) -> RPCReply {
        RPCReply(result: .null, failure: nil, ending: false, msgID: msgID, uniqueID: uniqueID)
    }

    public var isHeartbeat: Bool { !ending && result.isNull && failure == nil }

    /// All five keys are always present: a Python caller raises KeyError without `failure`.
    public func innerMessage() -> JSONValue {
        var o: [String: JSONValue] = [
            "result": result,
            "failure": failure.map { .string($0.serialized()) } ?? .null,
            "ending": .bool(ending),
            "_msg_id": .string(msgID),
        ]
        if let uniqueID { o["_unique_id"] = .string(uniqueID) }
        return .object(o)
    }

    /// `OsloEnvelope.wrap(innerMessage())`, byte for byte, written without the tree.
    public func encodeBody() -> [UInt8] {
        var w = InnerWriter(capacity: 192)
        w.key("_msg_id")
        w.string(msgID)
        if let uniqueID {
            w.key("_unique_id")
            w.string(uniqueID)
        }
        w.key("ending")
        w.value(.bool(ending))
        w.key("failure")
        if let failure { w.string(failure.serialized()) } else { w.null() }
        w.key("result")
        w.value(result)
        return OsloEnvelope.wrap(innerBytes: w.finish())
    }

    public static func decode(body: some Collection<UInt8>, contentType: String?) throws(WireError) -> RPCReply {
        guard contentType == OsloEnvelope.contentType else { throw .wrongContentType(contentType) }
        return try build(InnerFields.read(body, request: false))
    }

    /// `decode` through a parsed tree of the whole message (the reference; see RPCRequest).
    public static func decodeTree(body: some Collection<UInt8>, contentType: String?) throws(WireError) -> RPCReply {
        guard contentType == OsloEnvelope.contentType else { throw .wrongContentType(contentType) }
        return try build(InnerFields(OsloEnvelope.unwrap(body), request: false))
    }

    private static func build(_ o: InnerFields) throws(WireError) -> RPCReply {
        guard case .string(let msgID) = o.msgID ?? .null else { throw .malformed("reply without '_msg_id'") }
        var failure: RPCFailure?
        switch o.failure ?? .null {
        case .null: failure = nil
        case .string(let s): failure = try RPCFailure.deserialize(s)
        default: throw .malformed("'failure' is not a JSON string")
        }
        let ending = o.ending?.boolValue ?? false
        return RPCReply(
            result: o.result ?? .null, failure: failure, ending: ending, msgID: msgID,
            uniqueID: o.uniqueID?.stringValue)
    }
}
