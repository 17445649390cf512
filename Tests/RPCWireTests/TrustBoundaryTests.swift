import Foundation
import Testing

@testable import RPCWire

private let msgID = "0123456789abcdef0123456789abcdef"
private let replyQ = "reply_0123456789abcdef0123456789abcdef"

/// A call body with `_timeout` written as given (raw JSON text inside oslo.message).
private func call(timeout raw: String) -> [UInt8] {
    let inner = "{\"method\": \"ping\", \"args\": {}, \"_msg_id\": \"\(msgID)\", \"_reply_q\": \"\(replyQ)\", \"_timeout\": \(raw)}"
    // Written as text: numbers such as 1e400 must reach the decoder as sent.
    return Array("{\"oslo.version\": \"2.0\", \"oslo.message\": \(JSONWriter.serialize(.string(inner)))}".utf8)
}

@Suite struct DecodeTotalityTests {
    @Test(arguments: [
        "\"nan\"", "\"NaN\"", "\"inf\"", "\"-inf\"", "1e300", "1e400", "-1", "\"2**63-1\"",
        "9223372036854775807", "18446744073709551616", "\"1e300\"", "604801",
    ])
    func outOfRangeTimeoutIsAWireError(raw: String) {
        #expect(throws: WireError.self) {
            _ = try RPCRequest.decode(body: call(timeout: raw), contentType: OsloEnvelope.contentType)
        }
    }

    @Test(arguments: ["60", "0", "0.5", "\"30\"", "604800", "null"])
    func inRangeTimeoutDecodes(raw: String) throws {
        let r = try RPCRequest.decode(body: call(timeout: raw), contentType: OsloEnvelope.contentType)
        #expect(r.monitorTimeout.map { $0.isFinite && $0 >= 0 } ?? true)
    }

    @Test func hugeNumbersInArgsDecodeWithoutTrapping() throws {
        let inner =
            "{\"method\": \"m\", \"args\": {\"a\": \(String(repeating: "9", count: 400)), \"b\": 1e400, \"c\": -1e400, \"d\": 9223372036854775808}}"
        let r = try RPCRequest.decode(body: OsloEnvelope.wrap(try JSONValue.parse(inner)), contentType: OsloEnvelope.contentType)
        #expect(r.args["a"]?.int64Value == nil)
        #expect(r.args["d"]?.int64Value == nil)
        // Infinity is written back as null: the reply stays valid JSON.
        #expect(JSONWriter.serialize(r.args["b"]!) == "null")
    }

    @Test func forgedReplyQueueAndBadMsgIDAreRefused() {
        for (k, v) in [
            ("_reply_q", "\"aos-agent.compute-2\""), ("_reply_q", "\"reply_a b\""),
            ("_reply_q", "\"reply_\(String(repeating: "x", count: 250))\""),
            ("_msg_id", "\"\(String(repeating: "x", count: 256))\""), ("_msg_id", "\"a\\nb\""),
            ("_msg_id", "\"\""),
        ] {
            var o: [String: JSONValue] = ["method": "ping", "_msg_id": .string(msgID), "_reply_q": .string(replyQ)]
            o[k] = try! JSONValue.parse(v)
            #expect(throws: WireError.self) {
                _ = try RPCRequest.decode(body: OsloEnvelope.wrap(.object(o)), contentType: OsloEnvelope.contentType)
            }
        }
    }
}

@Suite struct ReplyAddressTests {
    @Test(arguments: [
        ("reply_0123abcd", true), ("reply_a.b:c-d_E", true), ("reply_" + String(repeating: "a", count: 249), true),
        ("reply_" + String(repeating: "a", count: 250), false), ("reply_", false), ("reply", false),
        ("aos-agent.compute-2", false), ("aos-controller", false), ("Reply_abc", false), ("reply_a/b", false),
        ("reply_ab c", false), ("reply_é", false), ("", false), ("reply_a\u{0}", false),
    ])
    func replyQueueNames(name: String, valid: Bool) {
        #expect(RPCReplyAddress.isValidReplyQueue(name) == valid)
    }

    @Test func msgIDs() {
        #expect(RPCReplyAddress.isValidMsgID(msgID))
        #expect(RPCReplyAddress.isValidMsgID("req-1:2/3"))
        #expect(!RPCReplyAddress.isValidMsgID(""))
        #expect(!RPCReplyAddress.isValidMsgID(String(repeating: "a", count: 256)))
        #expect(!RPCReplyAddress.isValidMsgID("a b"))
        #expect(!RPCReplyAddress.isValidMsgID("a\"b"))
    }

    @Test func scanFindsPlainAndEscapedKeys() {
        let expected = RPCReplyAddress(msgID: msgID, replyQueue: replyQ)
        let plain = "{\"_msg_id\": \"\(msgID)\", \"x\": [[[, \"_reply_q\":\"\(replyQ)\""
        #expect(RPCReplyAddress.scan(Array(plain.utf8)) == expected)
        // Inside the oslo.message string, as oslo.messaging writes it (key order of Python).
        let escaped =
            "{\"oslo.version\": \"3.0\", \"oslo.message\": \"{\\\"method\\\": \\\"m\\\", \\\"args\\\": {}, \\\"_msg_id\\\": \\\"\(msgID)\\\", \\\"_reply_q\\\": \\\"\(replyQ)\\\"}\"}"
        #expect(RPCReplyAddress.scan(Array(escaped.utf8)) == expected)
    }

    @Test func scanRefusesWhatItCannotTrust() {
        // Forged queue name, missing key, unterminated value, value beyond the window.
        #expect(RPCReplyAddress.scan(Array("{\"_msg_id\": \"a\", \"_reply_q\": \"aos-agent.h2\"}".utf8)) == nil)
        #expect(RPCReplyAddress.scan(Array("{\"_msg_id\": \"a\"}".utf8)) == nil)
        #expect(RPCReplyAddress.scan(Array("{\"_msg_id\": \"a\", \"_reply_q\": \"reply_abc".utf8)) == nil)
        #expect(RPCReplyAddress.scan(Array("{\"_msg_id\": \"a\", \"_reply_q\": \"reply_a b\"}".utf8)) == nil)
        let far = "{\"pad\": \"\(String(repeating: "p", count: 100))\", \"_msg_id\": \"a\", \"_reply_q\": \"reply_x\"}"
        #expect(RPCReplyAddress.scan(Array(far.utf8), limit: 50) == nil)
        #expect(RPCReplyAddress.scan(Array(far.utf8)) == RPCReplyAddress(msgID: "a", replyQueue: "reply_x"))
        // A key that is only the suffix of another key does not count.
        #expect(RPCReplyAddress.scan(Array("{\"x_msg_id\": \"a\", \"_reply_q\": \"reply_x\"}".utf8)) == nil)
    }

    /// What a client scans an unusable reply for: the call it answers.
    @Test func scanMsgIDFindsTheReplysOwnIDFirst() {
        // Our servers write `_msg_id` first, even when the result nests one.
        let nested = RPCReply(result: ["_msg_id": "someone-else", "x": .string(String(repeating: "x", count: 100))], msgID: msgID)
        #expect(RPCReplyAddress.scanMsgID(nested.encodeBody()) == msgID)
        // oslo.messaging writes it last (Python's key order): found in the end a client keeps.
        let python = "{\"oslo.version\": \"2.0\", \"oslo.message\": \"{\\\"result\\\": 1, \\\"_msg_id\\\": \\\"\(msgID)\\\"}\"}"
        #expect(RPCReplyAddress.scanMsgID(Array(python.utf8).suffix(60)) == msgID)
        #expect(RPCReplyAddress.scanMsgID(Array("{\"_msg_id\": \"a b\"}".utf8)) == nil)
        #expect(RPCReplyAddress.scanMsgID(Array("{\"_msg_id\": 5}".utf8)) == nil)
        #expect(RPCReplyAddress.scanMsgID(Array("not json".utf8)) == nil)
    }

    @Test func scanSkipsAnInvalidFirstOccurrence() {
        let body = "{\"_reply_q\": 5, \"_msg_id\": \"m\", \"args\": {\"_reply_q\": \"reply_ok\"}}"
        #expect(RPCReplyAddress.scan(Array(body.utf8)) == RPCReplyAddress(msgID: "m", replyQueue: "reply_ok"))
    }
}

/// Replays the committed fuzz seeds (valid requests and replies, and the hostile classes)
/// through the fuzz target's entry point: nothing traps, and each body either decodes or
/// throws a WireError.
@Suite struct FuzzCorpusTests {
    static let corpus = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("FuzzCorpus")

    static func files() -> [URL] {
        ((try? FileManager.default.contentsOfDirectory(at: corpus, includingPropertiesForKeys: nil)) ?? [])
            .sorted { $0.lastPathComponent < $1.lastPathComponent }
    }

    @Test func corpusIsPresent() {
        #expect(Self.files().count >= 30)
    }

    @Test func everySeedDecodesOrThrowsWireError() throws {
        var requests = 0, replies = 0, addresses = 0
        for f in Self.files() {
            let bytes = [UInt8](try Data(contentsOf: f))
            let out = RPCWireDecoding.exercise(bytes)
            if case .success(let r) = out.request {
                requests += 1
                #expect(RPCWireDecoding.roundTrips(r), "\(f.lastPathComponent)")
            }
            if case .success = out.reply { replies += 1 }
            if out.address != nil { addresses += 1 }
        }
        print("fuzz corpus: \(Self.files().count) seeds, \(requests) requests, \(replies) replies, \(addresses) reply addresses")
        #expect(requests > 0 && replies > 0)
    }

    /// The hostile classes that used to leave callers without an answer: the full decode
    /// fails, and the tolerant scan still finds where to send the ValueError.
    @Test(arguments: [
        "wrong_envelope_version", "oslo_message_object", "nesting_too_deep", "nesting_too_deep_outer",
        "timeout_nan", "timeout_pow", "call_python_order",
    ])
    func hostileSeedsStillHaveAReplyAddress(name: String) throws {
        let bytes = [UInt8](try Data(contentsOf: Self.corpus.appendingPathComponent(name + ".json")))
        let out = RPCWireDecoding.exercise(bytes)
        if name != "call_python_order" {
            guard case .failure = out.request else { Issue.record("\(name) decoded"); return }
        }
        #expect(out.address?.replyQueue.hasPrefix("reply_") == true)
    }

    @Test func forgedReplyQueueSeedHasNoAddress() throws {
        let bytes = [UInt8](try Data(contentsOf: Self.corpus.appendingPathComponent("forged_reply_queue.json")))
        #expect(RPCWireDecoding.exercise(bytes).address == nil)
    }
}

@Suite struct FuzzFindingTests {
    /// Found by the fuzzer: a `_reply_q` without `_msg_id` decoded as a cast that still
    /// carried a reply queue (lost on re-encoding). A cast has no reply queue.
    @Test func castIgnoresReplyQueue() throws {
        let inner: JSONValue = .object(["method": "m", "_reply_q": .string("reply_x")])
        let r = try RPCRequest.decode(body: OsloEnvelope.wrap(inner), contentType: OsloEnvelope.contentType)
        #expect(!r.isCall)
        #expect(r.replyQueue == nil)
        let forged: JSONValue = .object(["method": "m", "_reply_q": .string("aos-agent.h2")])
        #expect(try RPCRequest.decode(body: OsloEnvelope.wrap(forged), contentType: OsloEnvelope.contentType).replyQueue == nil)
    }
}
