/// Where the answer to a call goes: its `_msg_id` and `_reply_q`.
///
/// Replies are published through the default exchange, which routes to *any* queue by
/// name. A server that replied to whatever `_reply_q` a request names could be made to
/// publish into another server's request queue (e.g. `aos-agent.host2`) on the sender's
/// behalf, with the server's broker identity. So a server only replies to names shaped
/// like oslo's reply queues (`reply_` + [A-Za-z0-9_.:-], at most 255 bytes): a forged
/// name is refused, and the request is not answered at all.
public struct RPCReplyAddress: Sendable, Equatable {
    public var msgID: String
    public var replyQueue: String

    public init(msgID: String, replyQueue: String) {
        self.msgID = msgID
        self.replyQueue = replyQueue
    }

    /// AMQP short strings (queue names) are at most 255 bytes.
    public static let maxQueueNameBytes = 255
    public static let maxMsgIDBytes = 255
    public static let replyQueuePrefix = "reply_"

    /// A name the server may publish a reply to (see the type's comment for why).
    public static func isValidReplyQueue(_ name: String) -> Bool {
        let u = name.utf8
        guard u.count > replyQueuePrefix.utf8.count, u.count <= maxQueueNameBytes,
            name.hasPrefix(replyQueuePrefix)
        else { return false }
        return u.allSatisfy(isQueueNameByte)
    }

    /// A message id echoed back in a reply: 1 to 255 printable ASCII characters.
    public static func isValidMsgID(_ id: String) -> Bool {
        let u = id.utf8
        return !u.isEmpty && u.count <= maxMsgIDBytes && u.allSatisfy(isMsgIDByte)
    }

    static func isQueueNameByte(_ c: UInt8) -> Bool {
        switch c {
        case UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "a")...UInt8(ascii: "z"),
            UInt8(ascii: "0")...UInt8(ascii: "9"),
            UInt8(ascii: "_"), UInt8(ascii: "."), UInt8(ascii: ":"), UInt8(ascii: "-"):
            return true
        default: return false
        }
    }

    /// Printable ASCII, without the quote and backslash (they cannot end a scanned value).
    static func isMsgIDByte(_ c: UInt8) -> Bool {
        c >= 0x21 && c <= 0x7E && c != UInt8(ascii: "\"") && c != UInt8(ascii: "\\")
    }

    /// The reply address of a whole oslo message: its top-level `_msg_id` and `_reply_q`, both
    /// valid, or nil. For a body that parses but is not a valid request (no method, bad
    /// arguments…): `scan` would take the first `"_msg_id"` anywhere, and a request may carry
    /// one inside its `args` — the reply then went to an id nobody waits for (found by the
    /// hostile-traffic test: a caller left silent).
    public static func topLevel(of message: [String: JSONValue]) -> RPCReplyAddress? {
        guard case .string(let msgID)? = message["_msg_id"], case .string(let replyQ)? = message["_reply_q"],
            isValidMsgID(msgID), isValidReplyQueue(replyQ)
        else { return nil }
        return RPCReplyAddress(msgID: msgID, replyQueue: replyQ)
    }

    /// Finds `_msg_id` and `_reply_q` in a body that does not parse (or was too large to
    /// parse) without parsing it: looks for `"_msg_id": "…"`, also escaped as it appears
    /// inside the `oslo.message` string (`\"_msg_id\": \"…\"`), in the first `limit` bytes.
    /// Both must be found and valid (see `isValidMsgID`, `isValidReplyQueue`). Total and
    /// linear in `limit`.
    public static func scan(_ body: some Collection<UInt8>, limit: Int = 65_536) -> RPCReplyAddress? {
        let bytes: [UInt8] = Array(body.prefix(max(0, limit)))
        guard let msgID = scanValue(bytes, key: Array("_msg_id".utf8), valid: isMsgIDByte, maxBytes: maxMsgIDBytes),
            let replyQ = scanValue(
                bytes, key: Array("_reply_q".utf8), valid: isQueueNameByte,
                maxBytes: maxQueueNameBytes),
            isValidMsgID(msgID), isValidReplyQueue(replyQ)
        else { return nil }
        return RPCReplyAddress(msgID: msgID, replyQueue: replyQ)
    }

    /// The `_msg_id` of a reply that cannot be decoded or was too large to keep whole: the first
    /// `"_msg_id": "…"` (or its escaped form) in the first `limit` bytes, valid (see
    /// `isValidMsgID`), or nil. Lets a client fail the one call such a reply answers at once
    /// instead of leaving it to its timeout. Our servers write `_msg_id` first. Total and linear
    /// in `limit`.
    public static func scanMsgID(_ body: some Collection<UInt8>, limit: Int = 65_536) -> String? {
        let bytes: [UInt8] = Array(body.prefix(max(0, limit)))
        guard let id = scanValue(bytes, key: Array("_msg_id".utf8), valid: isMsgIDByte, maxBytes: maxMsgIDBytes),
            isValidMsgID(id)
        else { return nil }
        return id
    }

    /// The first occurrence of `"key"` (or `\"key\"`), then `:`, then a string value made of
    /// `valid` bytes closed by a quote (or escaped quote).
    static func scanValue(_ b: [UInt8], key: [UInt8], valid: (UInt8) -> Bool, maxBytes: Int) -> String? {
        let quote = UInt8(ascii: "\""), backslash = UInt8(ascii: "\\")
        guard !key.isEmpty, b.count > key.count + 2 else { return nil }
        var start = 1
        while start + key.count < b.count {
            defer { start += 1 }
            guard b[start - 1] == quote, b[start] == key[0] else { continue }
            var k = 0
            while k < key.count, start + k < b.count, b[start + k] == key[k] { k += 1 }
            guard k == key.count else { continue }
            var i = start + key.count
            // Closing quote of the key, escaped or not.
            if i < b.count, b[i] == backslash { i += 1 }
            guard i < b.count, b[i] == quote else { continue }
            i += 1
            func skipSpace() {
                while i < b.count, b[i] == 0x20 || b[i] == 0x09 || b[i] == 0x0A || b[i] == 0x0D { i += 1 }
            }
            skipSpace()
            guard i < b.count, b[i] == UInt8(ascii: ":") else { continue }
            i += 1
            skipSpace()
            if i < b.count, b[i] == backslash { i += 1 }
            guard i < b.count, b[i] == quote else { continue }
            i += 1
            let valueStart = i
            while i < b.count, i - valueStart <= maxBytes, valid(b[i]) { i += 1 }
            let valueEnd = i
            guard valueEnd > valueStart, valueEnd - valueStart <= maxBytes else { continue }
            // Closed by a quote, or by an escaped quote inside oslo.message.
            guard i < b.count, b[i] == quote || (b[i] == backslash && i + 1 < b.count && b[i + 1] == quote) else {
                continue
            }
            return String(decoding: b[valueStart..<valueEnd], as: UTF8.self)
        }
        return nil
    }
}

/// The one decode entry point over untrusted bytes that the fuzz target and the corpus
/// test share: every way a server or client reads a body (request, reply, tolerant scan).
public enum RPCWireDecoding {
    public struct Outcome: Sendable {
        public var request: Result<RPCRequest, WireError>
        public var reply: Result<RPCReply, WireError>
        public var address: RPCReplyAddress?
        /// What a client scans an unusable reply for (`RPCReplyAddress.scanMsgID`).
        public var replyMsgID: String?
    }

    /// Decodes `data` as a request and as a reply (never traps; each either decodes or throws
    /// `WireError`), scans it for a reply address and a reply's message id, and checks that what decodes encodes back
    /// to the same value.
    public static func exercise(_ data: [UInt8]) -> Outcome {
        let request = Result { () throws(WireError) in
            try RPCRequest.decode(body: data, contentType: OsloEnvelope.contentType)
        }
        let reply = Result { () throws(WireError) in
            try RPCReply.decode(body: data, contentType: OsloEnvelope.contentType)
        }
        let address = RPCReplyAddress.scan(data)
        return Outcome(request: request, reply: reply, address: address, replyMsgID: RPCReplyAddress.scanMsgID(data))
    }

    /// Round-trip property: a decoded request re-encodes and decodes to an equal request
    /// (numbers aside: NaN is not equal to itself, so only the shape is compared for them).
    public static func roundTrips(_ r: RPCRequest) -> Bool {
        guard let again = try? RPCRequest.decode(body: r.encodeBody(), contentType: OsloEnvelope.contentType) else {
            return false
        }
        return again.method == r.method && again.msgID == r.msgID && again.replyQueue == r.replyQueue
            && again.args.count == r.args.count && again.context.count == r.context.count
    }
}
