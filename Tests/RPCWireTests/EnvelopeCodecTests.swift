import Foundation
import Testing

@testable import RPCWire

/// The envelope walk (`decode`) against the tree path (`decodeTree`), and the direct writers
/// against `OsloEnvelope.wrap(innerMessage())` with the general string writer.
@Suite struct EnvelopeCodecTests {
    static let json = OsloEnvelope.contentType

    /// The envelope as the tree path wrote it: the inner text through `JSONWriter.writeString`.
    static func referenceBody(_ inner: JSONValue) -> [UInt8] {
        var out = Array("{\"oslo.version\": \"2.0\", \"oslo.message\": ".utf8)
        JSONWriter.bytes(inner).withUnsafeBufferPointer { JSONWriter.writeString(utf8: $0, into: &out) }
        out.append(UInt8(ascii: "}"))
        return out
    }

    static func requestResult(_ b: [UInt8]) -> Result<RPCRequest, WireError> {
        Result { () throws(WireError) in try RPCRequest.decode(body: b, contentType: json) }
    }
    static func requestTree(_ b: [UInt8]) -> Result<RPCRequest, WireError> {
        Result { () throws(WireError) in try RPCRequest.decodeTree(body: b, contentType: json) }
    }
    static func replyResult(_ b: [UInt8]) -> Result<RPCReply, WireError> {
        Result { () throws(WireError) in try RPCReply.decode(body: b, contentType: json) }
    }
    static func replyTree(_ b: [UInt8]) -> Result<RPCReply, WireError> {
        Result { () throws(WireError) in try RPCReply.decodeTree(body: b, contentType: json) }
    }

    /// Both paths agree: the same value, or the same error (text included: it goes back to the caller).
    static func expectAgreement(_ b: [UInt8], sourceLocation: SourceLocation = #_sourceLocation) {
        let text = String(decoding: b, as: UTF8.self)
        #expect(requestResult(b) == requestTree(b), "request: \(text)", sourceLocation: sourceLocation)
        #expect(replyResult(b) == replyTree(b), "reply: \(text)", sourceLocation: sourceLocation)
    }

    static func envelope(_ innerText: String) -> [UInt8] {
        var out = Array("{\"oslo.version\": \"2.0\", \"oslo.message\": ".utf8)
        JSONWriter.writeString(innerText, into: &out)
        out.append(UInt8(ascii: "}"))
        return out
    }

    @Test func requestEncodingIsByteForByteTheTreeWriters() {
        let requests = [
            RPCRequest(method: "cast_me"),
            RPCRequest(
                method: "activate_lv", args: ["vg": "vol", "n": 1, "l": [1.5, nil, true], "o": ["k": "\u{e9}\"\\\n"]],
                namespace: "ns", version: "1.3", msgID: "m1", replyQueue: "reply_x", monitorTimeout: 60,
                uniqueID: "u1", context: ["request_id": "req-1", "user_id": "u1", "": "empty", "z\u{1F600}": ["deep": [1]]]),
            RPCRequest(method: "m", msgID: "m2", replyQueue: nil, monitorTimeout: 2.5, context: ["b": 1, "a": 2, "B": 3]),
            RPCRequest(method: "m", msgID: "m3", replyQueue: "reply_y", monitorTimeout: 1e16),
        ]
        for r in requests {
            #expect(r.encodeBody() == Self.referenceBody(r.innerMessage()))
            // Both paths: the same value or the same error (a call without a reply queue is refused).
            #expect(Self.requestResult(r.encodeBody()) == Self.requestTree(r.encodeBody()))
        }
    }

    @Test func replyEncodingIsByteForByteTheTreeWriters() {
        let replies = [
            RPCReply(result: ["a": 1, "b": [1.5, "x\u{e9}\""]], msgID: "m1", uniqueID: "u"),
            RPCReply(failure: RPCFailure(className: "ValueError", module: "builtins", message: "bad \"q\"\n"), msgID: "m2"),
            RPCReply.heartbeat(msgID: "m3", uniqueID: "u3"),
            RPCReply(result: .string("\u{0}\u{7f}\u{10FFFF}"), ending: false, msgID: "m4"),
        ]
        for r in replies {
            #expect(r.encodeBody() == Self.referenceBody(r.innerMessage()))
            // Both paths: the same value or the same error (a call without a reply queue is refused).
            #expect(Self.replyResult(r.encodeBody()) == Self.replyTree(r.encodeBody()))
        }
    }

    /// Inner text that is not printable ASCII (never from our writers) takes the general escaper.
    @Test func wrappingNonASCIIInnerTextEscapesLikeTheStringWriter() throws {
        for text in ["{\"a\": \"\u{e9}\"}", "{\"t\": \"\t\u{7f}\"}", "", "\"\\"] {
            var expected = Array("{\"oslo.version\": \"2.0\", \"oslo.message\": ".utf8)
            JSONWriter.writeString(text, into: &expected)
            expected.append(UInt8(ascii: "}"))
            #expect(OsloEnvelope.wrap(innerBytes: Array(text.utf8)) == expected)
        }
        // And decodes back to the same inner text.
        let body = OsloEnvelope.wrap(innerBytes: Array("{\"method\": \"caf\u{e9}\"}".utf8))
        #expect(try RPCRequest.decode(body: body, contentType: Self.json).method == "caf\u{e9}")
    }

    @Test func duplicateKeysTheLastWinsInBothLevels() throws {
        let outer = Array(
            #"{"oslo.message": "{\"method\": \"a\"}", "oslo.version": "2.0", "oslo.message": "{\"method\": \"b\", \"method\": \"c\", \"_context_x\": 1, \"_context_x\": 2}"}"#
                .utf8)
        let r = try RPCRequest.decode(body: outer, contentType: Self.json)
        #expect(r.method == "c")
        #expect(r.context == ["x": 2])
        Self.expectAgreement(outer)
        // A later non-string oslo.message replaces an earlier string one.
        let replaced = Array(#"{"oslo.version": "2.0", "oslo.message": "{\"method\": \"a\"}", "oslo.message": 1}"#.utf8)
        #expect(Self.requestResult(replaced) == .failure(.malformed("oslo.message is missing or not a string")))
        Self.expectAgreement(replaced)
    }

    @Test func escapedKeysAreTheSameKeys() throws {
        let b = Self.envelope(#"{"meth\u006fd": "m", "_context_\u0075ser": "u", "\u005fmsg_id": "x", "_reply_q": "reply_a"}"#)
        let r = try RPCRequest.decode(body: b, contentType: Self.json)
        #expect(r.method == "m" && r.context == ["user": "u"] && r.msgID == "x")
        Self.expectAgreement(b)
        let escapedOuter = Array(#"{"oslo\u002eversion": "2.0", "oslo.m\u0065ssage": "{\"method\": \"e\"}"}"#.utf8)
        #expect(try RPCRequest.decode(body: escapedOuter, contentType: Self.json).method == "e")
        Self.expectAgreement(escapedOuter)
    }

    @Test(arguments: [
        "", "{", "[]", "\"x\"", "{\"oslo.version\": \"2.0\"}", "{\"oslo.version\": 2}", "{\"oslo.version\": \"3.0\"}",
        "{\"oslo.version\": \"2.0\", \"oslo.message\": \"[1]\"}", "{\"oslo.version\": \"2.0\", \"oslo.message\": \"{\"}",
        "{\"oslo.version\": \"2.0\", \"oslo.message\": \"{\\\"method\\\": 1}\"}",
        "{\"oslo.version\": \"2.0\", \"oslo.message\": \"{\\\"method\\\": \\\"m\\\"} x\"}",
        "{\"oslo.version\": \"2.0\", \"oslo.message\": \"{}\"} trailing", "{\"oslo.version\": \"2.0\",}",
        "{\"method\": \"one_oh\", \"_msg_id\": \"m\", \"_reply_q\": \"reply_q\"}", "{\"method\": \"\"}",
        "{\"oslo.version\": \"2.0\", \"oslo.message\": \"{\\\"_msg_id\\\": \\\"m\\\", \\\"result\\\": 1e999999}\"}",
        "{\"oslo.version\": \"2.0\", \"oslo.message\": \"{\\\"method\\\": \\\"m\\\", \\\"args\\\": {\\\"n\\\": 123456789012345678901234567890}}\"}",
        "{\"oslo.version\": \"2.0\", \"oslo.message\": \"{\\\"method\\\": \\\"m\\\", \\\"_timeout\\\": -1}\"}",
        "{\"oslo.version\": \"2.0\", \"oslo.message\": \"{\\\"method\\\": \\\"\\\\ud800\\\"}\"}",
    ])
    func malformedAndEdgeBodiesGetTheTreePathsAnswer(text: String) {
        Self.expectAgreement(Array(text.utf8))
    }

    /// The version check scans instead of splitting; it must accept exactly what the rule
    /// written with `split` accepts (first non-empty dot-separated part "2", second, if any, "0").
    @Test func versionCheckAcceptsWhatTheSplitRuleAccepts() {
        func rule(_ v: String) -> Bool {
            let parts = v.split(separator: ".")
            return parts.count >= 1 && parts[0] == "2" && (parts.count < 2 || parts[1] == "0")
        }
        var versions = [
            "", ".", "..", "2", "2.", ".2", "2.0", "2.0.", "2.0.1", "2.0.x", "..2..0..", "2.1", "2.00", "20", "02",
            "3.0", "2 .0", "2.0 ", "١.٠", "2.0\u{0}", "2\u{0}",
        ]
        var rng = SplitMix(seed: 42)
        let alphabet: [Character] = ["2", "0", ".", "1", "x", " "]
        for _ in 0..<2000 {
            versions.append(String((0..<rng.below(7)).map { _ in alphabet[rng.below(alphabet.count)] }))
        }
        for v in versions {
            #expect(OsloEnvelope.isSupported(version: v) == rule(v), "version \(v.debugDescription)")
        }
        #expect(versions.contains { rule($0) } && versions.contains { !rule($0) })
    }

    @Test func invalidUTF8TruncationAndDepthAgree() {
        let good = RPCRequest(method: "m", args: ["a": "b"], msgID: "m1", replyQueue: "reply_q", context: ["k": "v"]).encodeBody()
        // Invalid UTF-8 in each place: an outer key, an inner key (raw, in oslo.message's bytes), a value.
        for at in [2, 20, 45, good.count - 10] {
            var b = good
            b[at] = 0xFF
            Self.expectAgreement(b)
        }
        Self.expectAgreement(Array(#"{"oslo.version": "2.0", "x"#.utf8) + [0xC3] + Array(#"": 1, "oslo.message": "{}"}"#.utf8))
        Self.expectAgreement(Self.envelope("{\"method\": \"m\", \"\u{e9}\": 1}"))
        // Every truncation of a valid body.
        for n in 0..<good.count { Self.expectAgreement(Array(good[..<n])) }
        // Nesting at and past the limit, inside the inner message.
        for depth in [510, 511, 512, 513, 2_000] {
            let nested = String(repeating: "[", count: depth) + String(repeating: "]", count: depth)
            Self.expectAgreement(Self.envelope("{\"method\": \"m\", \"args\": {\"a\": \(nested)}}"))
            Self.expectAgreement(Self.envelope("{\"method\": \"m\", \"_context_a\": \(nested)}"))
        }
        let deepOuter =
            "{\"oslo.version\": \"2.0\", \"x\": " + String(repeating: "[", count: 600) + String(repeating: "]", count: 600) + "}"
        Self.expectAgreement(Array(deepOuter.utf8))
    }

    /// Seeded mutations of the fuzz corpus and of written messages: both paths agree on each.
    @Test func differentialOverMutatedCorpus() throws {
        let dir = FuzzCorpusTests.corpus
        var corpus: [[UInt8]] = try FileManager.default.contentsOfDirectory(atPath: dir.path).sorted().map {
            Array(try Data(contentsOf: dir.appendingPathComponent($0)))
        }
        corpus.append(RPCReply(result: ["a": [1, 2]], msgID: "m", uniqueID: "u").encodeBody())
        corpus.append(RPCReply(failure: RPCFailure(className: "E", module: "m", message: "x"), msgID: "m").encodeBody())
        corpus.append(RPCRequest(method: "m", args: ["a": 1], msgID: "m", replyQueue: "reply_q", context: ["c": 1]).encodeBody())
        let alphabet = Array("{}[]\":,\\u0123456789.eE-+ tfnaslo_xmsgidrplyqcntextv".utf8) + [0x7F, 0xC3, 0xA9, 0xFF, 0x80, 0, 0x0A]
        var rng = SplitMix(seed: 17)
        for round in 0..<20_000 {
            var b = corpus[rng.below(corpus.count)]
            if round >= corpus.count {
                for _ in 0..<(1 + rng.below(4)) {
                    switch rng.below(4) {
                    case 0 where !b.isEmpty: b[rng.below(b.count)] = alphabet[rng.below(alphabet.count)]
                    case 1: b.insert(alphabet[rng.below(alphabet.count)], at: rng.below(b.count + 1))
                    case 2 where !b.isEmpty: b.remove(at: rng.below(b.count))
                    case 3 where !b.isEmpty: b = Array(b[..<rng.below(b.count)])
                    default: break
                    }
                }
            }
            let request = Self.requestResult(b)
            let reply = Self.replyResult(b)
            #expect(request == Self.requestTree(b), "request: \(String(decoding: b, as: UTF8.self))")
            #expect(reply == Self.replyTree(b), "reply: \(String(decoding: b, as: UTF8.self))")
            if case .success(let r) = request { #expect(r.encodeBody() == Self.referenceBody(r.innerMessage())) }
            if case .success(let r) = reply { #expect(r.encodeBody() == Self.referenceBody(r.innerMessage())) }
        }
    }
}

/// A small deterministic generator: the mutated corpus is the same on every run.
struct SplitMix {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
    mutating func below(_ n: Int) -> Int { n <= 0 ? 0 : Int(next() % UInt64(n)) }
}
