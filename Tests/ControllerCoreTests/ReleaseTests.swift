import AOSAPI
import RPCWire
import Testing

@testable import ControllerCore

/// `deactivate_volume` on a host whose agent is down (nova's evacuate): a live agent records
/// the release (`release_lv`), nothing is sent to the dead host.
@Suite struct ReleaseTests {
    let agents = FakeAgents()
    let clock = FakeClock()

    /// host-a holds volume-1 exclusively; then only host-b keeps announcing.
    func aDown() async throws -> Controller {
        let c = makeController(agents, clock: clock)
        try await announce(c, agents, [("host-a", 1), ("host-b", 2)])
        _ = try await c.dispatch("create_volume", ["vg": "vg0", "name": "volume-1", "size_gb": 1])
        _ = try await c.dispatch("activate_volume", ["vg": "vg0", "name": "volume-1", "host": "host-a"])
        clock.advance(.seconds(61))
        try await announce(c, agents, [("host-b", 2)])
        agents.state.withLock { $0.calls = [] }
        return c
    }

    @Test func aDownHostsActivationIsReleasedThroughALiveAgent() async throws {
        let c = try await aDown()
        let r = try await c.dispatch("deactivate_volume", ["vg": "vg0", "name": "volume-1", "host": "host-a"])
        #expect(r["released"] == true && r["released_by"] == "host-b" && r["changed"] == true, "\(r)")
        #expect(r["host"] == "host-a" && r["active_on"] == [])
        #expect(agents.calls.map { "\($0.host) \($0.method)" } == ["host-b release_lv"], "nothing sent to the dead host")
        #expect(agents.state.withLock { $0.calls.first?.args["host"] } == "host-a")
        #expect(agents.state.withLock { $0.released["volume-1"] } == ["host-a"])
        // Retried (Cinder retries a detach): the same answer, nothing new.
        let again = try await c.dispatch("deactivate_volume", ["vg": "vg0", "name": "volume-1", "host": "host-a"])
        #expect(again["released"] == true && again["changed"] == false)
        // The volume is free in the map: the evacuation target may take it (sanlock decides).
        let g = try await c.dispatch("get_volume", ["vg": "vg0", "name": "volume-1"])
        #expect(g["active_on"] == [])
    }

    @Test func withoutALiveAgentNothingIsRecorded() async throws {
        let c = try await aDown()
        clock.advance(.seconds(61))
        let e = await expectCode("agent_unavailable") {
            _ = try await c.dispatch("deactivate_volume", ["vg": "vg0", "name": "volume-1", "host": "host-a"])
        }
        #expect(
            e?.message.contains("host-a is down") == true && e?.message.contains("could record the release") == true, "\(e?.message ?? "")")
        #expect(e?.details["host"] == "host-a")
        #expect(agents.calls.isEmpty)
    }

    @Test func aLiveHostIsDeactivatedAsBefore() async throws {
        let c = makeController(agents, clock: clock)
        try await announce(c, agents, [("host-a", 1), ("host-b", 2)])
        _ = try await c.dispatch("create_volume", ["vg": "vg0", "name": "volume-1", "size_gb": 1])
        _ = try await c.dispatch("activate_volume", ["vg": "vg0", "name": "volume-1", "host": "host-a"])
        agents.state.withLock { $0.calls = [] }
        let r = try await c.dispatch("deactivate_volume", ["vg": "vg0", "name": "volume-1", "host": "host-a"])
        #expect(r["released"] == nil && r["released_by"] == nil && r["changed"] == true)
        #expect(agents.calls.map { "\($0.host) \($0.method)" } == ["host-a deactivate_lv"])
        // Unreachable but not yet down: still agent_unavailable (no release on a guess).
        _ = try await c.dispatch("activate_volume", ["vg": "vg0", "name": "volume-1", "host": "host-a"])
        agents.setUndeliverable("host-a")
        _ = await expectCode("agent_unavailable") {
            _ = try await c.dispatch("deactivate_volume", ["vg": "vg0", "name": "volume-1", "host": "host-a"])
        }
        #expect(agents.state.withLock { $0.released.isEmpty })
    }

    @Test func anAgentGoingDownDuringTheCallIsReleased() async throws {
        let c = makeController(agents, clock: clock)
        try await announce(c, agents, [("host-a", 1), ("host-b", 2)])
        _ = try await c.dispatch("create_volume", ["vg": "vg0", "name": "volume-1", "size_gb": 1])
        agents.setHanging("host-a")
        let advancer = Task {
            while !agents.calls.contains(where: { $0.method == "deactivate_lv" }) { try await Task.sleep(for: .milliseconds(5)) }
            // Both stale, host-b announces, then host-a (silent for 61 s) is down, host-b is not.
            clock.advance(.seconds(31))
            try await announce(c, agents, [("host-b", 2)])
            clock.advance(.seconds(30))
        }
        let r = try await c.dispatch("deactivate_volume", ["vg": "vg0", "name": "volume-1", "host": "host-a"])
        try await advancer.value
        #expect(r["released"] == true && r["released_by"] == "host-b", "\(r)")
    }
}
