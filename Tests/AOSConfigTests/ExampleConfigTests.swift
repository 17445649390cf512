import Foundation
import Testing

@testable import AOSConfig

@Suite struct ExampleConfigTests {
    static let examplePath = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("config/aos.conf.example").path

    /// config/aos.conf.example must be what the schemas generate. To regenerate:
    /// AOS_WRITE_EXAMPLE_CONFIG=1 swift test --filter AOSConfigTests.ExampleConfigTests
    @Test func exampleFileMatchesSchemas() throws {
        let generated = AOSSchemas.all.exampleINI()
        if ProcessInfo.processInfo.environment["AOS_WRITE_EXAMPLE_CONFIG"] == "1" {
            try generated.write(toFile: Self.examplePath, atomically: true, encoding: .utf8)
        }
        let onDisk = try String(contentsOfFile: Self.examplePath, encoding: .utf8)
        #expect(
            onDisk == generated,
            "config/aos.conf.example is stale: run AOS_WRITE_EXAMPLE_CONFIG=1 swift test --filter AOSConfigTests.ExampleConfigTests")
    }

    @Test func exampleMentionsEveryOptionAndLoads() throws {
        let text = AOSSchemas.all.exampleINI()
        for option in AOSSchemas.all.options {
            #expect(text.contains("\n#\(option.name) ="), "\(option.key) missing from the example")
            #expect(text.contains(option.key.environmentName))
        }
        // Everything is commented out: the example loads as pure defaults, with every schema.
        for schema in [AgentOptions.schema, ControllerOptions.schema, CLIOptions.schema, AOSSchemas.all] {
            let c = try schema.load(iniText: text, fileName: "aos.conf.example")
            #expect(c.values.values.allSatisfy { $0.source == .defaultValue })
        }
        // Uncommenting every option that has a plain default gives the defaults again.
        let uncommented = text.split(separator: "\n", omittingEmptySubsequences: false).map { line -> Substring in
            line.hasPrefix("#") && !line.hasPrefix("# ") && line.contains(" =") && !line.contains("<") ? line.dropFirst() : line
        }.joined(separator: "\n")
        let c = try AOSSchemas.all.load(iniText: uncommented, fileName: "uncommented")
        for option in AOSSchemas.all.options where option.defaultText == nil {
            #expect(c[option] == option.defaultValue, "\(option.key)")
        }
    }
}
