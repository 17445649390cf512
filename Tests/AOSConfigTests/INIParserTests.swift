import Testing

@testable import AOSConfig

@Suite struct INIParserTests {
    @Test func parsesSectionsKeysAndSeparators() throws {
        let doc = try INIParser.parse(
            """
            # comment
            ; another comment
            [DEFAULT]
            transport_url = rabbit://u:p@h:5672/
            host: node-1

            [Agent]
            volume_groups=vg1, vg2
            empty =
            quoted = "  spaced  "
            single = 'x'
            mixed = a: b
            colon: a = b
            Key = Case
            """, fileName: "aos.conf")
        #expect(doc.sections == ["DEFAULT", "agent"])
        #expect(doc.value(section: "DEFAULT", key: "transport_url") == "rabbit://u:p@h:5672/")
        #expect(doc.value(section: "DEFAULT", key: "host") == "node-1")
        #expect(doc.value(section: "agent", key: "volume_groups") == "vg1, vg2")
        #expect(doc.value(section: "agent", key: "empty") == "")
        #expect(doc.value(section: "agent", key: "quoted") == "  spaced  ")
        #expect(doc.value(section: "agent", key: "single") == "x")
        #expect(doc.value(section: "agent", key: "mixed") == "a: b")
        #expect(doc.value(section: "agent", key: "colon") == "a = b")
        #expect(doc.value(section: "agent", key: "Key") == "Case")
        #expect(doc.value(section: "agent", key: "key") == nil)  // keys are case-sensitive
        #expect(doc.entry(section: "agent", key: "volume_groups")?.line == 8)
    }

    @Test func noInlineComments() throws {
        let doc = try INIParser.parse("[a]\nx = 1 # not a comment\n", fileName: "f")
        #expect(doc.value(section: "a", key: "x") == "1 # not a comment")
    }

    @Test func continuationLinesJoinWithNewlines() throws {
        let doc = try INIParser.parse(
            """
            [a]
            multi = first
                second
            \tthird

            after = x
            """, fileName: "f")
        #expect(doc.value(section: "a", key: "multi") == "first\nsecond\nthird")
        #expect(doc.value(section: "a", key: "after") == "x")
    }

    @Test func duplicateSectionsMergeAndLastKeyWins() throws {
        let doc = try INIParser.parse(
            """
            [a]
            x = 1
            y = 1
            [b]
            z = 0
            [a]
            x = 2
            """, fileName: "f")
        #expect(doc.sections == ["a", "b"])
        #expect(doc.value(section: "a", key: "x") == "2")
        #expect(doc.entry(section: "a", key: "x")?.line == 7)
        #expect(doc.value(section: "a", key: "y") == "1")
    }

    @Test func crlfAndBOMAndTrailingWhitespace() throws {
        let doc = try INIParser.parse("\u{FEFF}[a]\r\nx = 1  \r\ny=2\r\n", fileName: "f")
        #expect(doc.value(section: "a", key: "x") == "1")
        #expect(doc.value(section: "a", key: "y") == "2")
        #expect(doc.entry(section: "a", key: "y")?.line == 3)
    }

    @Test(arguments: [
        ("[a]\nx = 1\njunk line\n", "aos.conf:3: line is not 'key = value'"),
        ("x = 1\n", "aos.conf:1: 'x = …' comes before any [section] header"),
        ("[a\nx = 1\n", "aos.conf:1: section header '[a' does not end with ']'"),
        ("[]\n", "aos.conf:1: empty section name '[]'"),
        ("  indented = 1\n", "aos.conf:1: indented line continues nothing (no 'key = value' before it)"),
        ("[a]\n = 1\n", "aos.conf:2: indented line continues nothing (no 'key = value' before it)"),
        ("[a]\n= 1\n", "aos.conf:2: empty key before '='"),
    ])
    func syntaxErrorsCarryFileAndLine(text: String, expected: String) {
        #expect(throws: ConfigError.self) { try INIParser.parse(text, fileName: "aos.conf") }
        do {
            _ = try INIParser.parse(text, fileName: "aos.conf")
        } catch {
            #expect(error.description == expected)
        }
    }

    @Test func allSyntaxErrorsAreReported() {
        do {
            _ = try INIParser.parse("[a]\nbad1\nok = 1\nbad2\n", fileName: "x.conf")
            Issue.record("expected an error")
        } catch {
            #expect(error.problems.map(\.line) == [2, 4])
        }
    }
}
