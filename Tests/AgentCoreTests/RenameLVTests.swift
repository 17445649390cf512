import AOSAPI
import RPCWire
import SharedLVM
import Testing

@testable import AgentCore

/// `rename_lv` (Cinder's manage_existing): only an LV active on no host is renamed, and only
/// between names of `[agent] lv_name_pattern`.
struct RenameLVTests {
    static let managed = LVNamePolicy(["volume-*", "_snapshot-*", "lv-*"])
    static let target = "volume-0b0c6c5e-4f1d-4d3b-9d59-3f2a8e2c1a11"

    /// Agent A (patterns above) and B (manages everything), `lv-legacy` of 1 GiB made by B.
    static func setUp() async throws -> (Cluster, AgentService, AgentService) {
        let c = Cluster()
        let b = try await c.agent("host-b", hostId: 2)
        try await b.call("create_lv", ["vg": "vg1", "name": "lv-legacy", "size_gb": 1])
        let a = try await c.agent("host-a", hostId: 1, lvNames: managed)
        return (c, a, b)
    }

    static func args(_ name: String = "lv-legacy", to newName: String = target) -> [String: JSONValue] {
        ["vg": "vg1", "name": .string(name), "new_name": .string(newName)]
    }

    @Test func renamesAnInactiveLVAndARetryChangesNothing() async throws {
        let (c, a, _) = try await Self.setUp()
        let r = try await a.call("rename_lv", Self.args())
        #expect(r["changed"] == true && r["size_bytes"] == .int(GiB) && r["host"] == "host-a")
        #expect(c.lvs().contains(Self.target) && !c.lvs().contains("lv-legacy"))
        let again = try await a.call("rename_lv", Self.args())
        #expect(again["changed"] == false && again["size_bytes"] == .int(GiB))
        // The renamed LV is an ordinary volume now.
        #expect(try await a.call("activate_lv", ["vg": "vg1", "name": .string(Self.target)])["changed"] == true)
    }

    @Test func activeOnThisHostIsBusy() async throws {
        let (c, a, _) = try await Self.setUp()
        try await a.call("activate_lv", ["vg": "vg1", "name": "lv-legacy", "mode": "exclusive"])
        let e = await expectError("busy") { try await a.call("rename_lv", Self.args()) }
        #expect(e?.message.contains("active on host host-a") == true, "\(String(describing: e))")
        #expect(e?.details["active_here"] == true)
        #expect(c.lvs().contains("lv-legacy") && !c.lvs().contains(Self.target))
    }

    @Test func activeOnAnotherHostIsLockedByOtherHost() async throws {
        let (c, a, b) = try await Self.setUp()
        for mode in ["exclusive", "shared"] {
            try await b.call("activate_lv", ["vg": "vg1", "name": "lv-legacy", "mode": .string(mode)])
            let e = await expectError("locked_by_other_host") { try await a.call("rename_lv", Self.args()) }
            #expect(e?.message.contains("active on another host") == true, "\(String(describing: e))")
            #expect(c.lvs().contains("lv-legacy") && !c.lvs().contains(Self.target), "\(mode)")
            try await b.call("deactivate_lv", ["vg": "vg1", "name": "lv-legacy"])
        }
        #expect(try await a.call("rename_lv", Self.args())["changed"] == true)
    }

    @Test func namesOutsideThePatternOrOfJobsAreRefusedBeforeLVM() async throws {
        let (c, a, b) = try await Self.setUp()
        try await b.call("create_lv", ["vg": "vg1", "name": "scratch", "size_gb": 1])
        c.sim.clearCalls()
        let e = await expectError("lv_not_managed") { try await a.call("rename_lv", Self.args("scratch")) }
        #expect(e?.message.contains("lv_name_pattern") == true && e?.message.contains("Add a glob") == true)
        await expectError("lv_not_managed") { try await a.call("rename_lv", Self.args(to: "other-name")) }
        await expectError("lv_not_managed") { try await a.call("rename_lv", Self.args(to: "aos-copy-1234")) }
        await expectError("lv_not_managed") { try await a.call("rename_lv", Self.args("aos-wipe-1234")) }
        await expectError("invalid_argument") { try await a.call("rename_lv", Self.args(to: "lv-legacy")) }
        await expectError("invalid_argument") { try await a.call("rename_lv", Self.args(to: "a;b")) }
        await expectError("invalid_argument") { try await a.call("rename_lv", ["vg": "vg1", "name": "lv-legacy"]) }
        #expect(c.sim.calls(host: "host-a").isEmpty, "\(c.sim.calls(host: "host-a"))")
    }

    @Test func takenOrMissingNames() async throws {
        let (_, a, _) = try await Self.setUp()
        try await a.call("create_lv", ["vg": "vg1", "name": .string(Self.target), "size_gb": 2])
        let e = await expectError("already_exists") { try await a.call("rename_lv", Self.args()) }
        #expect(e?.message.contains("exists already") == true)
        await expectError("not_found") { try await a.call("rename_lv", Self.args("lv-missing", to: "volume-x")) }
    }
}

extension Cluster {
    fileprivate func lvs() -> Set<String> { Set(sim.lvNames(vg: "vg1")) }
}
