import Testing

@testable import SharedLVM

struct ValidationTests {
    @Test(arguments: [
        "volume-0d6c493f-697f-48d5-a2dd-8d7aa2c5542c", "a", "A.b+c_d-e", "x..y", "_x", "+x",
        "_mlo", "x_cme", "cdata", "x_tdat_a", "_",
        String(repeating: "v", count: 127),
    ])
    func validLVNames(_ name: String) throws {
        try LVName.validate(name)
    }

    @Test(arguments: [
        ("", "empty"), ("-x", "must not start with '-'"), (".", "invalid"), ("..", "invalid"),
        ("a b", "character ' '"), ("a/b", "character '/'"), ("vol;rm", "character ';'"), ("é", "U+E9"),
        ("snapshot0", "starting with \"snapshot\""), ("pvmove1", "starting with \"pvmove\""),
        ("x_tmeta", "\"_tmeta\""), ("x_rimage_1", "\"_rimage\""), ("data_cdata", "\"_cdata\""),
        ("y_vorigin", "\"_vorigin\""), ("z_mlog", "\"_mlog\""), ("q_pmspare", "\"_pmspare\""), ("w_vdata", "\"_vdata\""),
        ("lvmlock", "reserved"), (String(repeating: "v", count: 128), "limit is 127"), ("a\nb", "U+A"),
        // Where the byte search could slip: the whole name, a false start just before, the very end.
        ("_cvol", "\"_cvol\""), ("__cmeta", "\"_cmeta\""), ("_c_cpool", "\"_cpool\""),
        (String(repeating: "v", count: 121) + "_mlog", "\"_mlog\""),
    ])
    func invalidLVNames(_ name: String, _ reason: String) {
        do {
            try LVName.validate(name)
            Issue.record("\"\(name)\" accepted")
        } catch {
            #expect(error.code == .invalidArgument)
            #expect(error.message.contains(reason), "\(error.message)")
            #expect(!error.message.contains("\n"))
        }
    }

    @Test func vgNames() throws {
        try VGName.validate("vol")
        try VGName.validate("snapshot")  // LV-only restriction
        #expect(throws: LVMError.self) { try VGName.validate("-vol") }
        #expect(throws: LVMError.self) { try VGName.validate("vol/x") }
        #expect(throws: LVMError.self) { try VGName.validate("") }
    }

    @Test func sizes() throws {
        try LVSize.validate(1)
        try LVSize.validate(LVSize.maxBytes)
        #expect(throws: LVMError.self) { try LVSize.validate(0) }
        #expect(throws: LVMError.self) { try LVSize.validate(LVSize.maxBytes + 1) }
        #expect(throws: LVMError.self) { try LVSize.validate(UInt64.max) }
        #expect(LVSize.roundUp(5 << 20, extentSize: 4 << 20) == 8 << 20)
        #expect(LVSize.roundUp(8 << 20, extentSize: 4 << 20) == 8 << 20)
        #expect(LVSize.roundUp(1, extentSize: 4 << 20) == 4 << 20)
    }
}

/// The byte search for reserved substrings against a plain `String.contains`, over names built
/// from the allowed characters and pieces of the reserved words (so near misses are common).
struct ReservedSubstringSearchTests {
    @Test func byteSearchAgreesWithStringContains() {
        let pieces = ["_", "c", "data", "_cdat", "meta", "_t", "x", "image", "_rimage", "v", "_mlog", "log", "-", "."]
        var state: UInt64 = 0x1234_5678
        func next() -> Int {
            state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
            return Int(truncatingIfNeeded: state >> 33)
        }
        var withReserved = 0
        for _ in 0..<3000 {
            let name = (0..<(1 + next() % 6)).map { _ in pieces[next() % pieces.count] }.joined()
            let expected = LVName.reservedSubstrings.first { name.contains($0) }
            #expect(LVName.firstReservedSubstring(in: name) == expected, "\(name)")
            if expected != nil { withReserved += 1 }
        }
        // Both outcomes occur often enough for the comparison to mean something.
        #expect(withReserved > 300 && withReserved < 2700, "\(withReserved)")
    }
}
