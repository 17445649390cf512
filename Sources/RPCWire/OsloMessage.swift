/// oslo.messaging's rabbit-driver message format, version 2.0 envelope.
/// See docs/amqp-rpc.md; facts from the wire capture in the reference notes.
public enum OsloEnvelope {
    public static let version = "2.0"
    public static let contentType = "application/json"
    public static let contentEncoding = "utf-8"

    /// Wraps an inner message the way oslo does: the inner JSON is itself a JSON string.
    public static func wrap(_ inner: JSONValue) -> [UInt8] {
        let innerBytes = JSONWriter.bytes(inner)
        var out: [UInt8] = []
        out.reserveCapacity(innerBytes.count + innerBytes.count / 4 + 48)
        out.append(contentsOf: "{\"oslo.version\": \"2.0\", \"oslo.message\": ".utf8)
        innerBytes.withUnsafeBufferPointer { JSONWriter.writeString(utf8: $0, into: &out) }
        out.append(UInt8(ascii: "}"))
        return out
    }

    /// Accepts the 2.0 envelope and the un-enveloped 1.0 form, as oslo's receivers do.
    public static func unwrap(_ body: some Collection<UInt8>) throws(WireError) -> [String: JSONValue] {
        let outer: JSONValue
        do { outer = try JSONValue.parse(body) } catch { throw .malformed("body is not JSON (\(error))") }
        guard case .object(let o) = outer else { throw .malformed("body is not a JSON object") }
        guard let v = o["oslo.version"] else { return o }  // 1.0: the message itself
        guard case .string(let version) = v else { throw .malformed("oslo.version is not a string") }
        let parts = version.split(separator: ".")
        guard parts.count >= 1, parts[0] == "2", parts.count < 2 || parts[1] == "0" else {
            throw .unsupportedEnvelope(version)
        }
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

    public func encodeBody() -> [UInt8] { OsloEnvelope.wrap(innerMessage()) }

    /// Decodes a delivered request; `contentType` is the AMQP property (oslo rejects others).
    public static func decode(body: some Collection<UInt8>, contentType: String?) throws(WireError) -> RPCRequest {
        guard contentType == OsloEnvelope.contentType else { throw .wrongContentType(contentType) }
        let o = try OsloEnvelope.unwrap(body)
        guard case .string(let method) = o["method"] ?? .null, !method.isEmpty else {
            throw .malformed("'method' is missing or not a string")
        }
        var args: [String: JSONValue] = [:]
        switch o["args"] ?? .null {
        case .null: break
        case .object(let a): args = a
        default: throw .malformed("'args' is not a JSON object")
        }
        func optString(_ key: String) throws(WireError) -> String? {
            switch o[key] ?? .null {
            case .null: return nil
            case .string(let s): return s
            default: throw .malformed("'\(key)' is not a string")
            }
        }
        var timeout: Double?
        switch o["_timeout"] ?? .null {
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
        var context: [String: JSONValue] = [:]
        for (k, v) in o where k.hasPrefix("_context_") { context[String(k.dropFirst(9))] = v }
        let msgID = try optString("_msg_id")
        // A request without `_msg_id` is a cast: nobody waits for a reply, whatever `_reply_q` says.
        let replyQ = msgID == nil ? nil : try optString("_reply_q")
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
            method: method, args: args, namespace: try optString("namespace"),
            version: try optString("version"), msgID: msgID, replyQueue: replyQ,
            monitorTimeout: timeout, uniqueID: try optString("_unique_id"), context: context)
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

    public func encodeBody() -> [UInt8] { OsloEnvelope.wrap(innerMessage()) }

    public static func decode(body: some Collection<UInt8>, contentType: String?) throws(WireError) -> RPCReply {
        guard contentType == OsloEnvelope.contentType else { throw .wrongContentType(contentType) }
        let o = try OsloEnvelope.unwrap(body)
        guard case .string(let msgID) = o["_msg_id"] ?? .null else { throw .malformed("reply without '_msg_id'") }
        var failure: RPCFailure?
        switch o["failure"] ?? .null {
        case .null: failure = nil
        case .string(let s): failure = try RPCFailure.deserialize(s)
        default: throw .malformed("'failure' is not a JSON string")
        }
        let ending = o["ending"]?.boolValue ?? false
        return RPCReply(
            result: o["result"] ?? .null, failure: failure, ending: ending, msgID: msgID,
            uniqueID: o["_unique_id"]?.stringValue)
    }
}
