import AOSAPI
import RPCWire
import Testing

private struct Sample: APIRequest, Equatable {
    var name: String
    var size_bytes: UInt64?
    var shared_update: Bool?
    var mode: Mode?
    var ratio: Double?

    enum Mode: String, WireEnum { case exclusive, shared }
}

private struct Nested: Codable, Equatable {
    var items: [Int64]
    var inner: [String: String]
    var any: JSONValue?
}

/// The edge decoder refuses what the hand-written readers refused (exact JSON types, unknown
/// arguments by name, negative sizes) with `invalid_argument` naming the argument.
@Suite struct RequestDecodingTests {
    func refusal(_ args: [String: JSONValue]) -> ServiceError? {
        do { _ = try Sample.decode(args, method: "m"); return nil } catch { return error }
    }

    @Test func decodesExactTypes() throws {
        let s = try Sample.decode(
            ["name": "v", "size_bytes": 10, "shared_update": true, "mode": "shared", "ratio": 1],
            method: "m")
        #expect(s == Sample(name: "v", size_bytes: 10, shared_update: true, mode: .shared, ratio: 1))
    }

    @Test func nullIsAbsent() throws {
        let s = try Sample.decode(["name": "v", "size_bytes": nil, "mode": nil], method: "m")
        #expect(s.size_bytes == nil && s.mode == nil)
    }

    @Test func wrongTypesAreRefusedByArgument() {
        let cases: [([String: JSONValue], String, String)] = [
            (["name": 1], "name", "must be a string, got an integer"),
            (["name": "v", "size_bytes": 1.5], "size_bytes", "must be an integer, got a float"),
            (["name": "v", "size_bytes": "10"], "size_bytes", "must be an integer, got a string"),
            (["name": "v", "size_bytes": -1], "size_bytes", "must be between 0 and"),
            (["name": "v", "shared_update": 1], "shared_update", "must be true or false"),
            (["name": "v", "mode": "both"], "mode", "must be one of exclusive, shared, got \"both\""),
            ([:], "name", "is required"),
            (["name": nil], "name", "is required"),
        ]
        for (args, argument, text) in cases {
            let e = refusal(args)
            #expect(e?.code == "invalid_argument", "\(args)")
            #expect(e?.details["argument"] == .string(argument), "\(args): \(e?.details ?? [:])")
            #expect(e?.message.contains(text) == true, "\(args): \(e?.message ?? "-")")
            #expect(e?.message.hasPrefix("m: ") == true)
        }
    }

    @Test func unknownArgumentsAreRefusedByName() {
        let e = refusal(["name": "v", "sise_bytes": 1, "x\u{1}": 2])
        #expect(e?.code == "invalid_argument")
        #expect(e?.message.contains("'sise_bytes'") == true)
        #expect(e?.message.contains("'x?'") == true)
        #expect(e?.message.contains("accepted: mode, name, ratio, shared_update, size_bytes") == true, "\(e?.message ?? "")")
        #expect(e?.details["argument"] == "sise_bytes")
    }

    @Test func nestedValuesDecodeAndFailWithTheirPath() throws {
        let decoder = JSONValueDecoder()
        let v = try decoder.decode(Nested.self, from: ["items": [1, 2], "inner": ["a": "b"], "any": ["x": [1, nil]]])
        #expect(v == Nested(items: [1, 2], inner: ["a": "b"], any: ["x": [1, nil]]))
        #expect(throws: JSONValueDecodingError(path: ["items", "1"], problem: .wrongType(expected: "an integer", got: "a string"))) {
            _ = try decoder.decode(Nested.self, from: ["items": [1, "2"], "inner": [:]])
        }
        // Nested objects may carry keys the type does not read (only the top level is strict).
        _ = try decoder.decode(Nested.self, from: ["items": [], "inner": [:]], rejectUnknownKeys: true)
    }

    @Test func encoderRoundTripsAndLeavesNilOut() throws {
        let s = Sample(name: "v", size_bytes: 1 << 40, shared_update: nil, mode: .exclusive, ratio: 0.5)
        let json = try s.wireValue()
        #expect(json == ["name": "v", "size_bytes": .int(1 << 40), "mode": "exclusive", "ratio": 0.5])
        #expect(try Sample.decode(json.objectValue ?? [:], method: "m") == s)
        let n = Nested(items: [3], inner: ["k": "v"], any: .null)
        #expect(try JSONValueDecoder().decode(Nested.self, from: n.wireValue()) == Nested(items: [3], inner: ["k": "v"], any: nil))
    }

    @Test func oversizedUnsignedIsAnErrorNotATrap() {
        struct Big: Encodable { var n: UInt64 }
        #expect(throws: ServiceError.self) { _ = try Big(n: .max).wireValue() }
    }
}
