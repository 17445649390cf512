import AOSAPI
import RPCWire
import SharedLVM
import Testing

@testable import AgentCore

/// `[agent] lv_name_pattern`: mutating methods touch only LVs whose names match; other LVs of
/// the shared VG (an admin's own) are refused before any LVM command, and read-only methods
/// still see them.
struct LVNamePolicyTests {
    static let mutating: [(String, [String: JSONValue])] = [
        ("create_lv", ["size_gb": 1]),
        ("extend_lv", ["size_gb": 2]),
        ("refresh_lv", [:]),
        ("delete_lv", [:]),
        ("activate_lv", ["mode": "exclusive"]),
        ("deactivate_lv", [:]),
    ]

    @Test func policyMatchesGlobs() {
        let p = LVNamePolicy.cinderDefault
        #expect(p.manages("volume-0b0c6c5e-4f1d-4d3b-9d59-3f2a8e2c1a11"))
        #expect(p.manages("volume-"))
        #expect(!p.manages("lvmlock"))
        #expect(!p.manages("my-volume-1"))
        #expect(!p.manages("Volume-1"))
        #expect(p.manages("_snapshot-0b0c6c5e") && !p.manages("snapshot-0b0c6c5e"), "Cinder's snapshots, escaped")
        let list = LVNamePolicy(["volume-*", "tmp-[0-9]?"])
        #expect(list.manages("tmp-1x") && !list.manages("tmp-x1") && !list.manages("tmp-1"))
        #expect(LVNamePolicy.all.manages("anything"))
    }

    @Test(arguments: mutating)
    func otherLVsAreRefusedBeforeAnyLVMCommand(_ method: String, _ extra: [String: JSONValue]) async throws {
        let c = Cluster()
        let admin = try await c.agent("host-b", hostId: 2)  // manages everything: the admin's own tools
        try await admin.call("create_lv", ["vg": "vg1", "name": "scratch", "size_gb": 1])
        let a = try await c.agent("host-a", hostId: 1, lvNames: .cinderDefault)
        c.sim.clearCalls()
        var args = extra
        args["vg"] = "vg1"
        args["name"] = "scratch"
        let e = await expectError("lv_not_managed") { try await a.call(method, args) }
        #expect(e?.message.contains("vg1/scratch") == true, "\(String(describing: e))")
        #expect(e?.message.contains("[agent] lv_name_pattern (volume-*, _snapshot-*)") == true, "\(String(describing: e))")
        #expect(e?.details["method"] == .string(method))
        #expect(e?.details["patterns"] == ["volume-*", "_snapshot-*"])
        #expect(e?.details["option"] == "[agent] lv_name_pattern")
        #expect(e?.rpcFailure.className == "LvNotManaged")
        #expect(c.sim.calls(host: "host-a").isEmpty, "\(c.sim.calls(host: "host-a"))")
        // The LV is as it was, and read-only methods still see it.
        let info = try await a.call("lv_info", ["vg": "vg1", "name": "scratch"])
        #expect(info["size_bytes"] == .int(GiB))
        #expect(info["active"] == false)
        let listed = try await a.call("list_lvs", ["vg": "vg1"])
        #expect(listed["lvs"]?.arrayValue?.contains { $0["name"] == "scratch" } == true)
    }

    @Test func invalidNamesStayInvalidArgument() async throws {
        let c = Cluster()
        let a = try await c.agent("host-a", hostId: 1, lvNames: .cinderDefault)
        await expectError("invalid_argument") { try await a.call("create_lv", ["vg": "vg1", "name": "a;b", "size_gb": 1]) }
        await expectError("invalid_argument") { try await a.call("activate_lv", ["vg": "vg1", "name": "lvmlock"]) }
    }

    @Test func matchingNamesGoThroughEveryMethod() async throws {
        let c = Cluster()
        let a = try await c.agent("host-a", hostId: 1, lvNames: .cinderDefault)
        let name = JSONValue.string("volume-0b0c6c5e-4f1d-4d3b-9d59-3f2a8e2c1a11")
        #expect(try await a.call("create_lv", ["vg": "vg1", "name": name, "size_gb": 1])["changed"] == true)
        #expect(try await a.call("extend_lv", ["vg": "vg1", "name": name, "size_gb": 2])["size_bytes"] == .int(2 * GiB))
        #expect(try await a.call("activate_lv", ["vg": "vg1", "name": name, "mode": "exclusive"])["changed"] == true)
        #expect(try await a.call("refresh_lv", ["vg": "vg1", "name": name])["refreshed"] == true)
        #expect(try await a.call("deactivate_lv", ["vg": "vg1", "name": name])["changed"] == true)
        #expect(try await a.call("delete_lv", ["vg": "vg1", "name": name])["changed"] == true)
    }

    @Test func restoreLeavesUnmanagedLVsAlone() async throws {
        let c = Cluster()
        let stateDir = "\(c.root)/host-a"
        // Recorded while the agent managed every LV; then the pattern narrows and the host reboots.
        let before = try await c.agent("host-a", hostId: 1, stateDir: stateDir)
        try await before.createLVs(["volume-1", "scratch"], activate: "exclusive")
        c.sim.rebootHost("host-a")
        c.sim.clearCalls()
        let a = try await c.agent("host-a", hostId: 1, stateDir: stateDir, lvNames: .cinderDefault)
        let activations = c.sim.calls(host: "host-a").filter { $0.method == "activate" }.map { $0.arguments.joined(separator: " ") }
        #expect(activations == ["vg1 volume-1 exclusive"])
        let failures = a.health()["restore_failures"]?.arrayValue ?? []
        #expect(failures.map { $0["name"] } == ["scratch"])
        #expect(failures.map { $0["code"] } == ["lv_not_managed"])
    }

    @Test func recoveryReactivatesOnlyManagedLVs() async throws {
        let c = Cluster()
        let stateDir = "\(c.root)/host-a"
        let before = try await c.agent("host-a", hostId: 1, stateDir: stateDir)
        try await before.createLVs(["volume-1", "scratch"], activate: "exclusive")
        let a = try await c.agent("host-a", hostId: 1, stateDir: stateDir, lvNames: .cinderDefault)
        // The lockspace is lost; recovery deactivates every LV (safety), then re-activates ours.
        c.sim.failLockspace(vg: "vg1", host: "host-a")
        await expectError("lock_storage_failed") { try await a.call("create_lv", ["vg": "vg1", "name": "volume-2", "size_gb": 1]) }
        var reactivate: [String: JSONValue] = [:]
        for step in RecoveryStep.execution {
            if step == .reactivate { c.sim.clearCalls() }
            let r = try await a.call("recover", ["vg": "vg1", "step": .string(step.rawValue)])
            if step == .reactivate { reactivate = r }
        }
        let activations = c.sim.calls(host: "host-a").filter { $0.method == "activate" }.map { $0.arguments.joined(separator: " ") }
        #expect(activations == ["vg1 volume-1 exclusive"])
        #expect(reactivate["reactivated"] == [["name": "volume-1", "mode": "exclusive"]], "\(reactivate)")
        #expect(reactivate["left_alone"]?.arrayValue?.first { $0["name"] == "scratch" }?["code"] == "lv_not_managed", "\(reactivate)")
    }
}
