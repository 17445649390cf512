import AOSAPI
import RPCWire
import Testing

@testable import ControllerCore

/// copy_volume's routing, and the job methods answered from the agents' jobs.
@Suite struct JobsTests {
    let agents = FakeAgents()
    let clock = FakeClock()

    func ready(preferred: [String] = []) async throws -> Controller {
        let c = makeController(agents, clock: clock, preferred: preferred)
        try await announce(c, agents, [("host-a", 1), ("host-b", 2), ("host-c", 3)])
        return c
    }

    func create(_ c: Controller, _ name: String) async throws {
        _ = try await c.dispatch("create_volume", ["vg": "vg0", "name": .string(name), "size_gb": 1])
    }

    func copyCalls() -> [String] { agents.calls.filter { $0.method == "copy_lv" }.map(\.host) }

    @Test func copyOfAnExclusivelyActiveSourceRunsOnItsHolder() async throws {
        let c = try await ready(preferred: ["host-a"])
        try await create(c, "src")
        _ = try await c.dispatch("activate_volume", ["vg": "vg0", "name": "src", "host": "host-c"])
        let r = try await c.dispatch("copy_volume", ["vg": "vg0", "source": "src", "target": "dst"])
        #expect(r["host"] == "host-c")
        #expect(r["job"]?["kind"] == "copy")
        #expect(r["job"]?["host"] == "host-c")
        #expect(r["changed"] == true)
        #expect(copyCalls() == ["host-c"])
    }

    @Test func copyOfAnInactiveSourceGoesToALiveAgent() async throws {
        let c = try await ready(preferred: ["host-b"])
        try await create(c, "src")
        clock.advance(.seconds(45))
        try await announce(c, agents, [("host-a", 1), ("host-c", 3)])  // host-b is stale now
        let r = try await c.dispatch("copy_volume", ["source": "src", "target": "dst", "size_gb": 2, "verify": true])
        #expect(r["host"] == "host-a")
        #expect(r["job"]?["total_bytes"] == .int(2 << 30))
        #expect(r["job"]?["verify"] == true)
        let sent = try #require(agents.state.withLock { $0.calls.last(where: { $0.method == "copy_lv" })?.args })
        #expect(sent == ["vg": "vg0", "source": "src", "target": "dst", "size_bytes": .int(2 << 30), "verify": true])
    }

    @Test func copyOfAnInactiveSourceOnANamedHost() async throws {
        let c = try await ready(preferred: ["host-a"])
        try await create(c, "src")
        let r = try await c.dispatch("copy_volume", ["source": "src", "target": "dst", "host": "host-b"])
        #expect(r["host"] == "host-b")
        clock.advance(.seconds(61))
        try await announce(c, agents, [("host-a", 1)])
        let e = await expectCode("agent_unavailable") {
            _ = try await c.dispatch("copy_volume", ["source": "src", "target": "dst2", "host": "host-b"])
        }
        #expect(e?.details["host"] == "host-b")
        #expect(copyCalls() == ["host-b"])
    }

    @Test func copyOfASharedSourceRunsOnAHolder() async throws {
        let c = try await ready(preferred: ["host-c", "host-b"])
        try await create(c, "src")
        _ = try await c.dispatch("activate_volume", ["name": "src", "host": "host-a", "mode": "shared"])
        _ = try await c.dispatch("activate_volume", ["name": "src", "host": "host-b", "mode": "shared"])
        let r = try await c.dispatch("copy_volume", ["source": "src", "target": "dst"])
        #expect(r["host"] == "host-b")  // a holder, preferred order among the holders
    }

    @Test func copyElsewhereThanTheExclusiveHolderIsRefusedWithoutACall() async throws {
        let c = try await ready()
        try await create(c, "src")
        _ = try await c.dispatch("activate_volume", ["name": "src", "host": "host-a"])
        let e = await expectCode("locked_by_other_host") {
            _ = try await c.dispatch("copy_volume", ["source": "src", "target": "dst", "host": "host-b"])
        }
        #expect(e?.details["holder_host"] == "host-a")
        #expect(e?.message.contains("host-a") == true)
        #expect(copyCalls().isEmpty)
    }

    @Test func copyWhoseExclusiveHolderIsDownFailsAtOnce() async throws {
        let c = try await ready()
        try await create(c, "src")
        _ = try await c.dispatch("activate_volume", ["name": "src", "host": "host-a"])
        clock.advance(.seconds(61))
        try await announce(c, agents, [("host-b", 2), ("host-c", 3)])
        let e = await expectCode("agent_unavailable") {
            _ = try await c.dispatch("copy_volume", ["source": "src", "target": "dst"])
        }
        #expect(e?.details["host"] == "host-a")
        #expect(copyCalls().isEmpty)
    }

    @Test func deleteVolumePassesTheWipeJobThrough() async throws {
        let c = try await ready()
        agents.state.withLock { $0.wipeOnDelete = true }
        try await create(c, "v")
        let r = try await c.dispatch("delete_volume", ["name": "v"])
        #expect(r["job"]?["kind"] == "wipe")
        #expect(r["job"]?["source"] == "v")
        let wipeLV = try #require(r["job"]?["target"]?.stringValue)
        #expect(wipeLV.hasPrefix("aos-wipe-"))
        try await create(c, "w")
        let plain = try await c.dispatch("delete_volume", ["name": "w", "volume_clear": "none"])
        #expect(plain["job"] == .null)
        // The wipe's LV is no volume: not listed, not found, but counted by pool_stats.
        let l = try await c.dispatch("list_volumes", [:])
        #expect(l["volumes"] == [])
        _ = await expectCode("not_found") { _ = try await c.dispatch("get_volume", ["name": .string(wipeLV)]) }
        let p = try await c.dispatch("pool_stats", [:])
        #expect(p["wiping_lv_count"] == 1)
        #expect(p["wiping_bytes"] == .int(1 << 30))
        #expect(p["warnings"] == [])
    }

    @Test func poolStatsWarnsWhenVolumeClearIsNone() async throws {
        let c = try await ready()
        agents.state.withLock { $0.volumeClear = .none }
        let p = try await c.dispatch("pool_stats", [:])
        let warnings = try #require(p["warnings"]?.arrayValue)
        #expect(warnings.count == 1)
        #expect(warnings.first?.stringValue?.hasPrefix("volume_clear = none: a new volume may expose") == true)
    }

    @Test func listJobsMergesNewestFirstAndNamesUnreachableHosts() async throws {
        let c = try await ready()
        try await create(c, "s1")
        try await create(c, "s2")
        try await create(c, "s3")
        _ = try await c.dispatch("copy_volume", ["source": "s1", "target": "t1", "host": "host-a"])
        _ = try await c.dispatch("copy_volume", ["source": "s2", "target": "t2", "host": "host-b"])
        _ = try await c.dispatch("copy_volume", ["source": "s3", "target": "t3", "host": "host-a"])
        agents.state.withLock { $0.jobMethodsFail = ["host-c"] }
        let r = try await c.dispatch("list_jobs", [:])
        #expect(r["jobs"]?.arrayValue?.map { $0["target"] } == ["t3", "t2", "t1"])
        #expect(r["hosts"]?["host-a"]?["queued"] == 2)
        #expect(r["hosts"]?["host-b"]?["queued"] == 1)
        #expect(r["hosts"]?["host-c"] == nil)
        #expect(r["unreachable"]?["host-c"]?["code"] == "internal")
        let one = try await c.dispatch("list_jobs", ["host": "host-b"])
        #expect(one["jobs"]?.arrayValue?.map { $0["target"] } == ["t2"])
        #expect(one["unreachable"] == [:])
        _ = await expectCode("internal") { _ = try await c.dispatch("list_jobs", ["host": "host-c"]) }
        // A down agent is not asked; its jobs are missing, and the result says so.
        clock.advance(.seconds(61))
        try await announce(c, agents, [("host-a", 1), ("host-c", 3)])
        agents.state.withLock { $0.jobMethodsFail = [] }
        let later = try await c.dispatch("list_jobs", [:])
        #expect(later["unreachable"]?["host-b"]?["code"] == "agent_unavailable")
        #expect(later["jobs"]?.arrayValue?.map { $0["target"] } == ["t3", "t1"])
    }

    @Test func jobInfoWithoutHostFindsTheAgentThatKnowsIt() async throws {
        let c = try await ready()
        try await create(c, "s")
        let r = try await c.dispatch("copy_volume", ["source": "s", "target": "t", "host": "host-b"])
        let id = try #require(r["job"]?["id"])
        let info = try await c.dispatch("job_info", ["id": id])
        #expect(info["host"] == "host-b")
        #expect(info["target"] == "t")
        _ = await expectCode("not_found") { _ = try await c.dispatch("job_info", ["id": "nope"]) }
        _ = await expectCode("not_found") { _ = try await c.dispatch("job_info", ["id": id, "host": "host-a"]) }
        // A host that cannot be asked may have it: its error, not not_found.
        agents.setUndeliverable("host-c")
        let e = await expectCode("agent_unavailable") { _ = try await c.dispatch("job_info", ["id": "nope"]) }
        #expect(e?.message.contains("host-c") == true)
        #expect(try await c.dispatch("job_info", ["id": id])["host"] == "host-b")
    }

    @Test func cancelJobGoesOnlyToTheJobsHost() async throws {
        let c = try await ready()
        try await create(c, "s")
        let r = try await c.dispatch("copy_volume", ["source": "s", "target": "t", "host": "host-c"])
        let id = try #require(r["job"]?["id"])
        let cancelled = try await c.dispatch("cancel_job", ["id": id])
        #expect(cancelled["cancel_requested"] == true)
        #expect(cancelled["state"] == "cancelled")
        #expect(agents.calls.filter { $0.method == "cancel_job" }.map(\.host) == ["host-c"])
        _ = await expectCode("not_found") { _ = try await c.dispatch("cancel_job", ["id": "nope"]) }
        #expect(agents.calls.filter { $0.method == "cancel_job" }.count == 1)
    }

    @Test func copyPlanIsPure() {
        let ex = [Activation(host: "h1", mode: .exclusive)]
        let sh = [Activation(host: "h2", mode: .shared), Activation(host: "h1", mode: .shared)]
        let none: (String) -> Bool = { _ in false }
        #expect(CopyPlan.plan(activations: [], requested: nil, preferred: [], isDown: none) == .anyHost)
        #expect(CopyPlan.plan(activations: [], requested: "h3", preferred: [], isDown: none) == .on("h3"))
        #expect(CopyPlan.plan(activations: ex, requested: nil, preferred: [], isDown: none) == .on("h1"))
        #expect(CopyPlan.plan(activations: ex, requested: "h2", preferred: [], isDown: none) == .heldElsewhere(holder: "h1"))
        #expect(CopyPlan.plan(activations: ex, requested: nil, preferred: [], isDown: { $0 == "h1" }) == .holderDown("h1"))
        #expect(CopyPlan.plan(activations: sh, requested: nil, preferred: [], isDown: none) == .on("h1"))
        #expect(CopyPlan.plan(activations: sh, requested: nil, preferred: ["h2"], isDown: none) == .on("h2"))
        #expect(CopyPlan.plan(activations: sh, requested: nil, preferred: [], isDown: { $0 == "h1" }) == .on("h2"))
        #expect(CopyPlan.plan(activations: sh, requested: "h3", preferred: [], isDown: none) == .on("h3"))
    }
}
