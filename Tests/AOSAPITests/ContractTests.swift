import AOSAPI
import Foundation
import RPCWire
import SharedLVM
import Testing

/// The API table is the one source of truth for method names and error codes: the docs and the
/// Cinder driver's exception map are checked against it, so a code added to the Swift enum and
/// forgotten in docs/agent.md, docs/rpc-api.md or `CODE_TO_EXCEPTION` fails here.
@Suite struct ContractTests {
    /// The repository root, from this file's path (Tests/AOSAPITests/ContractTests.swift).
    static let root: String = {
        var parts = #filePath.split(separator: "/", omittingEmptySubsequences: false)
        parts.removeLast(3)
        return parts.joined(separator: "/")
    }()

    static func read(_ relative: String) throws -> String {
        let path = root + "/" + relative
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else { throw ContractError.unreadable(path) }
        return text
    }

    enum ContractError: Error { case unreadable(String) }

    /// The keys of the driver's `CODE_TO_EXCEPTION = { "code": Class, … }`.
    static func pythonExceptionMap() throws -> [String: String] {
        let text = try read("deploy/cinder/cinder_sharedlvm_driver/exception.py")
        guard let start = text.range(of: "CODE_TO_EXCEPTION = {") else { return [:] }
        let body = text[start.upperBound...].prefix { $0 != "}" }
        var map: [String: String] = [:]
        for line in body.split(separator: "\n") {
            let t = line.trimmingCharacters(in: .whitespaces)
            guard t.hasPrefix("\""), let close = t.dropFirst().firstIndex(of: "\"") else { continue }
            let code = String(t[t.index(after: t.startIndex)..<close])
            let cls = t[t.index(after: close)...].drop { $0 == ":" || $0 == " " }.prefix { $0 != "," }
            map[code] = String(cls)
        }
        return map
    }

    @Test func everyWireCodeHasADriverException() throws {
        let map = try Self.pythonExceptionMap()
        #expect(!map.isEmpty, "CODE_TO_EXCEPTION not found in exception.py")
        for code in WireErrorCode.allCases {
            #expect(map[code.rawValue] != nil, "CODE_TO_EXCEPTION lacks \(code.rawValue)")
        }
        for key in map.keys {
            #expect(WireErrorCode(rawValue: key) != nil, "CODE_TO_EXCEPTION maps \(key), which the API does not have")
        }
    }

    /// Expects `doc` to contain `mark(name)` for every name.
    static func expectNamed(_ names: [String], in doc: String, _ what: String, _ mark: (String) -> String) throws {
        let text = try read(doc)
        for name in names {
            #expect(text.contains(mark(name)), "\(doc) has no \(what) for \(name)")
        }
    }

    @Test func everyWireCodeIsDocumented() throws {
        let docs = try Self.read("docs/agent.md") + Self.read("docs/rpc-api.md")
        for code in WireErrorCode.allCases {
            #expect(docs.contains("`\(code.rawValue)`"), "docs/agent.md and docs/rpc-api.md do not name `\(code.rawValue)`")
        }
    }

    @Test func everyMethodIsDocumented() throws {
        try Self.expectNamed(AgentMethod.allCases.map(\.rawValue), in: "docs/agent.md", "method table row") { "| `\($0)` |" }
        try Self.expectNamed(ControllerMethod.allCases.map(\.rawValue), in: "docs/rpc-api.md", "section") { "### \($0)" }
    }

    /// The documented exit statuses (docs/cli.md's table) are the enum's.
    @Test func exitStatusesAreDocumented() throws {
        try Self.expectNamed(CLIExitStatus.allCases.map { String($0.rawValue) }, in: "docs/cli.md", "exit table row") { "| \($0) |" }
    }

    /// The LVM layer's codes travel unchanged: each is a code of the API.
    @Test func lvmCodesAreWireCodes() {
        for code in LVMErrorCode.allCases {
            #expect(WireErrorCode(rawValue: code.rawValue) != nil, "\(code.rawValue)")
        }
    }

    @Test func exceptionClassesAreCamelCase() {
        #expect(WireErrorCode.lockedByOtherHost.exceptionClass == "LockedByOtherHost")
        #expect(WireErrorCode.unknownVG.exceptionClass == "UnknownVg")
        for code in WireErrorCode.allCases {
            #expect(ServiceError.code(forClassName: code.exceptionClass) == code.rawValue, "\(code.rawValue)")
        }
    }

    @Test func methodTraitsMatchTheTrustModel() {
        for m in AgentMethod.allCases {
            // release_lv speaks for another host on the controller's liveness view; the drift
            // audit's methods are the operator's (aosctl audit).
            let expected: Set<Role> =
                m == .releaseLV ? [.controller] : (m == .auditReport || m == .auditFix) ? [.admin] : [.controller, .admin]
            #expect(m.traits.callers == expected, "\(m.rawValue)")
            #expect(m.traits.directedOnly == m.isMutating)
            #expect(m.traits.castAllowed == !m.isMutating)
        }
        #expect(ControllerMethod.agentAnnounce.traits.callers == [.agent])
        #expect(ControllerMethod.agentAnnounce.traits.castAllowed)
        #expect(!ControllerMethod.createVolume.traits.castAllowed)
        #expect(ControllerMethod.listAgents.traits.callers == [.driver, .admin])
    }
}
