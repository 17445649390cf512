import AOSAPI
import RPCWire
import Testing

@testable import ControllerCore

/// The results keep exactly the keys and JSON types the Cinder driver and aosctl read
/// (docs/rpc-api.md): typed values must not add, drop or retype a key.
@Suite struct WireShapeTests {
    let agents = FakeAgents()
    let clock = FakeClock()

    func keys(_ v: JSONValue?) -> Set<String> { Set(v?.objectValue?.keys ?? [:].keys) }

    @Test func volumeResultsHaveTheDocumentedKeys() async throws {
        let c = makeController(agents, clock: clock)
        try await announce(c, agents, [("host-a", 1)])
        let created = try await c.dispatch("create_volume", ["name": "v", "size_gb": 1])
        #expect(keys(created) == ["vg", "name", "size_bytes", "changed", "host"])
        #expect(created["size_bytes"] == .int(1 << 30))
        let activated = try await c.dispatch("activate_volume", ["name": "v", "host": "host-a", "mode": "shared"])
        #expect(keys(activated) == ["vg", "name", "host", "mode", "changed", "active_on"])
        #expect(activated["active_on"] == [["host": "host-a", "mode": "shared"]])
        let extended = try await c.dispatch("extend_volume", ["name": "v", "size_gb": 2])
        #expect(keys(extended) == ["vg", "name", "size_bytes", "changed", "host", "refreshed_hosts", "active_on"])
        let got = try await c.dispatch("get_volume", ["name": "v"])
        #expect(keys(got) == ["vg", "name", "size_bytes", "uuid", "attr", "active_on", "source_host"])
        let list = try await c.dispatch("list_volumes", [:])
        #expect(keys(list) == ["vg", "volumes", "source_host"])
        #expect(keys(list["volumes"]?.arrayValue?.first) == ["vg", "name", "size_bytes", "uuid", "attr", "active_on"])
        let deactivated = try await c.dispatch("deactivate_volume", ["name": "v", "host": "host-a"])
        #expect(keys(deactivated) == ["vg", "name", "host", "changed", "active_on"])
        #expect(deactivated["active_on"] == [])
        let deleted = try await c.dispatch("delete_volume", ["name": "v"])
        #expect(keys(deleted) == ["vg", "name", "changed", "host", "job"])
        #expect(deleted["job"] == .null)
    }

    @Test func jobResultsHaveTheDocumentedKeys() async throws {
        let c = makeController(agents, clock: clock)
        try await announce(c, agents, [("host-a", 1)])
        _ = try await c.dispatch("create_volume", ["name": "v", "size_gb": 1])
        let copy = try await c.dispatch("copy_volume", ["source": "v", "target": "w"])
        #expect(keys(copy) == ["vg", "source", "target", "host", "changed", "job"])
        // Every field of a job is always there (null when unknown), as docs/agent.md lists them.
        #expect(
            keys(copy["job"]) == [
                "id", "kind", "host", "vg", "state", "source", "target", "total_bytes", "done_bytes",
                "rate_bytes_per_second", "eta_seconds", "method", "verify", "checksum", "attempts", "next_attempt_at",
                "cancel_requested", "created_at", "started_at", "finished_at", "error",
            ])
        let list = try await c.dispatch("list_jobs", [:])
        #expect(keys(list) == ["jobs", "hosts", "unreachable"])
        #expect(keys(list["hosts"]?["host-a"]) == ["queued", "running", "failed", "wiping_bytes"])
        let id = try #require(copy["job"]?["id"])
        #expect(keys(try await c.dispatch("job_info", ["id": id])) == keys(copy["job"]))
    }

    @Test func poolStatsHasTheSameKeysAvailableOrNot() async throws {
        let c = makeController(agents, clock: clock)
        try await announce(c, agents, [("host-a", 1)])
        let up = try await c.dispatch("pool_stats", [:])
        let common: Set<String> = [
            "vg", "total_bytes", "free_bytes", "total_capacity_gb", "free_capacity_gb", "lv_count",
            "active_lv_count", "available", "hosts", "wiping_bytes", "wiping_lv_count", "warnings",
        ]
        #expect(keys(up) == common.union(["source_host"]))
        #expect(up["total_capacity_gb"] == .double(100))
        clock.advance(.seconds(61))
        let down = try await c.dispatch("pool_stats", ["vg": "vg0"])
        #expect(keys(down) == common.union(["error"]))
        #expect(down["total_capacity_gb"] == .double(0) && down["lv_count"] == 0)
        #expect(down["error"]?["code"] == "agent_unavailable")
    }

    @Test func listAgentsKeepsUnknownValuesAsNull() throws {
        let c = makeController(agents, clock: clock)
        c.view.withLock { _ = $0.apply(AgentReport(host: "h", lockspaces: ["vg0": .lost]), sentAt: 1, receivedAt: clock.now) }
        let r = try c.listAgents().wireValue()
        let a = try #require(r["agents"]?.arrayValue?.first)
        #expect(
            keys(a) == [
                "host", "status", "last_seen_seconds_ago", "host_id", "version", "ready", "vgs", "active_lvs",
                "restore_failures", "host_id_conflict",
            ])
        #expect(a["host_id"] == .null && a["version"] == .null)
        #expect(a["vgs"] == ["vg0": ["lockspace": "lost"]])
        #expect(a["last_seen_seconds_ago"] == .double(0))
        #expect(r["host_id_conflicts"] == [])
    }

    @Test func lockStatusIsTheAgentsAnswer() async throws {
        let c = makeController(agents, clock: clock)
        try await announce(c, agents, [("host-a", 1)])
        let r = try await c.dispatch("lock_status", ["host": "host-a"])
        #expect(r == ["host": "host-a", "host_id": 1, "daemon": nil, "lockspaces": [], "locks": []])
    }

    @Test func anAgentResultOfTheWrongShapeIsAnInternalErrorNamingTheHost() throws {
        let c = makeController(agents, clock: clock)
        let e = #expect(throws: ServiceError.self) {
            _ = try c.agentResult(CreateLVResult.self, ["host": "h", "lvs": []], host: "h", method: .createLV)
        }
        #expect(e?.code == "internal" && e?.details["host"] == "h" && e?.message.contains("create_lv") == true)
    }
}
