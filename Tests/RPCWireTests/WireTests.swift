import Testing

@testable import RPCWire

@Suite struct EnvelopeTests {
    // Captured from oslo.messaging 18.3.1 on the wire (reference notes, 8.1).
    static let capturedCall =
        #"{"oslo.version": "2.0", "oslo.message": "{\"method\": \"echo\", \"args\": {\"x\": 1, \"s\": \"hi\", \"l\": [1, 2], \"d\": {\"k\": null}}, \"_msg_id\": \"5475938c054440379c6287f47b4cdffe\", \"_reply_q\": \"reply_d56b02da836146b1aca5f70e115eb03b\", \"_timeout\": null, \"_unique_id\": \"5944e42e8bfa43e4b1c2a8a29194942d\", \"_context_user_id\": \"u1\", \"_context_project_id\": \"p1\", \"_context_request_id\": \"req-abc\"}"}"#

    @Test func decodesCapturedOsloCall() throws {
        let r = try RPCRequest.decode(body: Array(Self.capturedCall.utf8), contentType: "application/json")
        #expect(r.method == "echo")
        #expect(r.args == ["x": 1, "s": "hi", "l": [1, 2], "d": ["k": nil]])
        #expect(r.msgID == "5475938c054440379c6287f47b4cdffe")
        #expect(r.replyQueue == "reply_d56b02da836146b1aca5f70e115eb03b")
        #expect(r.monitorTimeout == nil)
        #expect(r.context == ["user_id": "u1", "project_id": "p1", "request_id": "req-abc"])
        #expect(r.isCall)
    }

    @Test func roundTripsThroughTheEnvelope() throws {
        let args: [String: JSONValue] = ["name": "volume-1", "size": .int(1 << 40), "ü": "ñ\n\"x\""]
        let r = RPCRequest(
            method: "create_lv", args: args,
            version: "1.2", msgID: makeUUIDHex(), replyQueue: "reply_x", monitorTimeout: 4,
            uniqueID: makeUUIDHex(), context: ["request_id": "req-1"])
        let back = try RPCRequest.decode(body: r.encodeBody(), contentType: "application/json")
        #expect(back == r)
    }

    @Test func bodyIsAsciiLikePython() {
        let body = RPCRequest(method: "m", args: ["s": "ü😀"]).encodeBody()
        #expect(body.allSatisfy { $0 < 0x80 })
        #expect(String(decoding: body, as: UTF8.self).contains(#"\\u00fc\\ud83d\\ude00"#))
    }

    @Test func acceptsUnenvelopedAndStringTimeout() throws {
        let body = #"{"method": "m", "_msg_id": "a", "_reply_q": "reply_q", "_timeout": "4"}"#
        let r = try RPCRequest.decode(body: Array(body.utf8), contentType: "application/json")
        #expect(r.monitorTimeout == 4)
        #expect(r.args == [:])
    }

    @Test(arguments: [
        (#"{"oslo.version": "3.0", "oslo.message": "{}"}"#, "unsupported"),
        (#"{"oslo.version": "2.1", "oslo.message": "{}"}"#, "unsupported"),
        (#"{"oslo.version": "2.0", "oslo.message": "{\"args\": {}}"}"#, "'method'"),
        (#"{"oslo.version": "2.0", "oslo.message": "{\"method\": \"m\", \"args\": [1]}"}"#, "'args'"),
        (#"{"oslo.version": "2.0", "oslo.message": "not json"}"#, "not JSON"),
        (#"[1, 2]"#, "not a JSON object"),
        (#"{"method": 5}"#, "'method'"),
        ("\u{FF}\u{FE}", "not JSON"),
    ])
    func rejectsMalformed(body: String, fragment: String) {
        do {
            _ = try RPCRequest.decode(body: Array(body.utf8), contentType: "application/json")
            Issue.record("decoded \(body)")
        } catch {
            #expect(error.description.contains(fragment), "\(error)")
        }
    }

    @Test func rejectsNonJSONContentType() {
        #expect(throws: WireError.wrongContentType("text/plain")) {
            _ = try RPCRequest.decode(body: Array("{}".utf8), contentType: "text/plain")
        }
    }

    @Test func replyAlwaysHasAllFiveKeys() throws {
        let reply = RPCReply(result: ["ok": true], msgID: "m1", uniqueID: "u1")
        let inner = try OsloEnvelope.unwrap(reply.encodeBody())
        #expect(Set(inner.keys) == ["result", "failure", "ending", "_msg_id", "_unique_id"])
        #expect(inner["failure"] == .null)
        #expect(inner["ending"] == true)
    }

    @Test func failureIsAJSONStringAndRoundTrips() throws {
        let f = RPCFailure(
            className: "LockedByOtherHost", module: "aos.exceptions", message: "LV locked by other host",
            kwargs: ["code": "locked_by_other_host"])
        let reply = RPCReply(failure: f, msgID: "m1")
        let inner = try OsloEnvelope.unwrap(reply.encodeBody())
        guard case .string(let text) = inner["failure"] else { Issue.record("failure is not a string"); return }
        let back = try RPCFailure.deserialize(text)
        #expect(back.className == "LockedByOtherHost")
        #expect(back.kwargs == ["code": "locked_by_other_host"])
        #expect(back.args == ["LV locked by other host"])
        let decoded = try RPCReply.decode(body: reply.encodeBody(), contentType: "application/json")
        #expect(decoded.failure?.message == "LV locked by other host")
    }

    @Test func builtinFailuresCarryNoKwargs() throws {
        // Python rebuilds builtins as cls(*args, **kwargs): ValueError takes no kwargs.
        let f = RPCFailure(className: "ValueError", module: "builtins", message: "x", kwargs: ["code": "y"])
        #expect(try RPCFailure.deserialize(f.serialized()).kwargs == [:])
    }

    @Test func heartbeatShape() throws {
        let hb = RPCReply.heartbeat(msgID: "m", uniqueID: "u")
        #expect(hb.isHeartbeat)
        let inner = try OsloEnvelope.unwrap(hb.encodeBody())
        #expect(inner["ending"] == false && inner["result"] == .null && inner["failure"] == .null)
    }
}

@Suite struct DispatchRuleTests {
    @Test func versionCompatibility() {
        let e = RPCVersion(major: 1, minor: 3)
        #expect(e.canServe(RPCVersion("1.0")!))
        #expect(e.canServe(RPCVersion("1.3")!))
        #expect(!e.canServe(RPCVersion("1.4")!))
        #expect(!e.canServe(RPCVersion("2.0")!))
        #expect(RPCVersion("x.1") == nil)
        #expect(RPCVersion("1.2.3") == RPCVersion(major: 1, minor: 2))
    }

    @Test func duplicateWindowForgetsOldest() {
        var f = DuplicateFilter(capacity: 16)
        var seen: [Bool] = [f.isDuplicate("a")]
        for i in 0..<15 { seen.append(f.isDuplicate("x\(i)")) }
        let aAfter15 = f.isDuplicate("a")  // 15 later: still remembered, like oslo
        let y = f.isDuplicate("y")  // pushes "a" out
        let aAfter16 = f.isDuplicate("a")
        #expect(seen.allSatisfy { !$0 })
        #expect(aAfter15)
        #expect(!y)
        #expect(!aAfter16)
    }

    @Test func uuidHexLooksLikePython() {
        let u = makeUUIDHex()
        #expect(u.count == 32)
        #expect(u.allSatisfy { "0123456789abcdef".contains($0) })
        #expect(makeUUIDHex() != u)
        // uuid4: version nibble 4, variant 10xx, whatever the random bytes were.
        for _ in 0..<64 {
            let v = Array(makeUUIDHex().utf8)
            #expect(v[12] == UInt8(ascii: "4"))
            #expect("89ab".utf8.contains(v[16]))
        }
    }

    /// The identifiers come from a pool refilled from the kernel: across several refills they
    /// stay distinct, and no byte value is stuck (a pool handing out its zeroed bytes again, or
    /// the same block twice, would fail here).
    @Test func randomBytesAcrossRefillsAreFreshAndDistinct() {
        let pool = RandomBytes(blockSize: 64)  // a refill every 4 identifiers
        var seen = Set<[UInt8]>()
        var counts = [Int](repeating: 0, count: 256)
        for _ in 0..<4_000 {
            var id = [UInt8](repeating: 0, count: 16)
            id.withUnsafeMutableBytes { pool.fill($0) }
            seen.insert(id)
            for b in id { counts[Int(b)] += 1 }
        }
        #expect(seen.count == 4_000)
        // 64,000 bytes: each value expected 250 times; a byte that never varies would put
        // thousands in one bin (the chance of a fair bin above 400 is far below 1e-12).
        #expect(counts.allSatisfy { $0 > 120 && $0 < 400 })
        var ids = Set<String>()
        for _ in 0..<2_000 { ids.insert(makeUUIDHex()) }
        #expect(ids.count == 2_000)
    }

    @Test func randomBytesFillsAnySize() {
        let pool = RandomBytes(blockSize: 64)
        var none = [UInt8]()
        none.withUnsafeMutableBytes { pool.fill($0) }  // nothing to fill: no trap
        var big = [UInt8](repeating: 0, count: 10_000)  // larger than a block: straight from the kernel
        big.withUnsafeMutableBytes { pool.fill($0) }
        #expect(big.filter { $0 == 0 }.count < 200)  // ~39 zero bytes expected
        var odd = [UInt8](repeating: 0, count: 13)
        for _ in 0..<20 { odd.withUnsafeMutableBytes { pool.fill($0) } }  // sizes that do not divide the block
        #expect(odd != [UInt8](repeating: 0, count: 13))
    }

    @Test func jsonWriterOutputParsesBack() throws {
        let v: JSONValue = ["a": [1, 2.5, "x\u{1}", nil, true], "b": ["c": -7]]
        #expect(try JSONValue.parse(JSONWriter.serialize(v)) == v)
    }
}

@Suite struct JSONParserTests {
    @Test(arguments: [
        #"{"a": [1, -2, 3.5, 1e3, -0.25E-2, true, false, null, "x\"\\\/\b\f\n\r\t\u00fc\ud83d\ude00"]}"#,
        #"  [ ]  "#, #"{}"#, #""""#, #"9223372036854775807"#, #"-9223372036854775808"#,
    ])
    func acceptsValidJSON(text: String) throws {
        let v = try JSONValue.parse(text)
        #expect(try JSONValue.parse(JSONWriter.serialize(v)) == v)
    }

    @Test func decodesEscapesAndBigNumbers() throws {
        #expect(try JSONValue.parse(#""\u00fc\ud83d\ude00\n""#) == .string("ü😀\n"))
        #expect(try JSONValue.parse("18446744073709551616") == .double(18_446_744_073_709_551_616))
        #expect(try JSONValue.parse("1e3") == .double(1000))
        #expect(try JSONValue.parse("-0") == .int(0))
    }

    @Test(arguments: [
        "", "{", "[1,]", "{\"a\" 1}", "{\"a\":1,}", "01", "1.", ".5", "-", "+1", "tru", "nul", "\"abc",
        "\"\\x\"", "\"\\ud800\"", "\"\\udc00\"", "\"a\u{01}b\"", "[1] 2", "{'a': 1}", "NaN", "[\"\\u12\"]",
    ])
    func rejectsInvalidJSON(text: String) {
        #expect(throws: JSONParseError.self) { _ = try JSONValue.parse(text) }
    }

    @Test func rejectsInvalidUTF8AndHugeNesting() {
        #expect(throws: JSONParseError.self) { _ = try JSONValue.parse([0x22, 0xFF, 0x22]) }
        let deep = String(repeating: "[", count: 10_000) + String(repeating: "]", count: 10_000)
        #expect(throws: JSONParseError.self) { _ = try JSONValue.parse(deep) }
    }
}
