import AOSAPI
import RPCWire
import Testing

@testable import ControllerCore

/// `agent_heartbeat` (issue 17): a heartbeat naming the full report the controller holds keeps
/// its host alive and costs no call; one it cannot place makes the controller fetch `health()`.
@Suite struct HeartbeatTests {
    let agents = FakeAgents()
    let clock = FakeClock()

    func heartbeat(_ c: Controller, _ host: String, reportSentAt: Double, instance: String? = nil) async throws {
        _ = try await c.dispatch(
            "agent_heartbeat",
            [
                "host": .string(host), "instance_id": .string(instance ?? "run-\(host)"),
                "report_sent_at": .double(reportSentAt), "sent_at": 1.0,
            ])
    }

    var healthCalls: Int { agents.calls.filter { $0.method == "health" }.count }

    func activeOn(_ c: Controller, _ name: String) -> [Activation] {
        c.snapshot.activations(of: LVKey(vg: "vg0", name: name))
    }

    @Test func aHeartbeatNamingTheHeldReportKeepsItsHostAliveWithoutACall() async throws {
        let c = makeController(agents, clock: clock)
        try await announce(c, agents, [("host-a", 1)])  // a full report sent at 1.0
        clock.advance(.seconds(50))
        try await heartbeat(c, "host-a", reportSentAt: 1.0)
        #expect(c.snapshot.liveness(of: "host-a", now: clock.now) == .alive)
        #expect(healthCalls == 0)
        clock.advance(.seconds(61))
        #expect(c.snapshot.liveness(of: "host-a", now: clock.now) == .down)
    }

    @Test func aControllerThatMissedTheFullReportFetchesItOnce() async throws {
        agents.state.withLock { $0.lvs["volume-1"] = FakeAgents.LV(size: 1 << 30, holders: ["host-a": "exclusive"]) }
        agents.state.withLock { $0.healthIdentity["host-a"] = (hostID: 7, instance: "run-host-a") }
        let c = makeController(agents, clock: clock)  // just (re)started: has heard nothing
        try await heartbeat(c, "host-a", reportSentAt: 4.0)
        #expect(healthCalls == 1)
        #expect(activeOn(c, "volume-1") == [Activation(host: "host-a", mode: .exclusive)])
        #expect(c.snapshot.agents["host-a"]?.report.hostID == 7)
        #expect(c.snapshot.agents["host-a"]?.sentAt == 4.0)
        // The fetched report now stands for that full announcement: later heartbeats cost nothing.
        try await heartbeat(c, "host-a", reportSentAt: 4.0)
        try await heartbeat(c, "host-a", reportSentAt: 4.0)
        #expect(healthCalls == 1)
    }

    @Test func aNewRunOrANewerReportIsFetchedAnOlderOneIsNot() async throws {
        let c = makeController(agents, clock: clock)
        try await announce(c, agents, [("host-a", 1)])  // run-host-a, sent at 1.0
        // A heartbeat composed before that full report, received after it: nothing to fetch.
        try await heartbeat(c, "host-a", reportSentAt: 0.5)
        #expect(healthCalls == 0)
        // The agent sent a full report this controller missed.
        try await heartbeat(c, "host-a", reportSentAt: 2.0)
        #expect(healthCalls == 1)
        // The agent restarted (another run) and its first full report was lost.
        agents.state.withLock { $0.healthIdentity["host-a"] = (hostID: 1, instance: "run-2") }
        try await heartbeat(c, "host-a", reportSentAt: 3.0, instance: "run-2")
        #expect(healthCalls == 2)
        #expect(c.snapshot.agents["host-a"]?.report.instanceID == "run-2")
    }

    @Test func aFetchedReportOfAnotherRunIsNotTaken() async throws {
        // The agent restarted again between its heartbeat and the fetch: the reply is of a run
        // the heartbeat did not name, so the controller keeps what it had.
        agents.state.withLock { $0.healthIdentity["host-a"] = (hostID: 1, instance: "run-3") }
        let c = makeController(agents, clock: clock)
        try await heartbeat(c, "host-a", reportSentAt: 3.0, instance: "run-2")
        #expect(healthCalls == 1)
        #expect(c.snapshot.agents["host-a"] == nil)
    }

    @Test func heartbeatsCountAsReportsForTheControllersOwnChanges() async throws {
        let c = makeController(agents, clock: clock)
        try await announce(c, agents, [("host-a", 1)])
        let lv = LVKey(vg: "vg0", name: "volume-9")
        // The controller activated it; the agent's reports never show it (say the agent
        // undid it): after `pendingAnnouncements` reports the view believes the agent.
        c.view.withLock { $0.recordActivation(lv, host: "host-a", mode: .exclusive) }
        #expect(activeOn(c, "volume-9").count == 1)
        for _ in 0..<ClusterView.pendingAnnouncements {
            try await heartbeat(c, "host-a", reportSentAt: 1.0)
        }
        #expect(activeOn(c, "volume-9").isEmpty)
    }

    @Test func aMalformedHeartbeatIsRefusedByName() async throws {
        let c = makeController(agents, clock: clock)
        let e = await expectCode("invalid_argument") {
            _ = try await c.dispatch(
                "agent_heartbeat", ["host": "host-a", "instance_id": "r", "report_sent_at": "1", "sent_at": 1.0])
        }
        #expect(e?.details["argument"] == "report_sent_at")
        _ = await expectCode("invalid_argument") {
            _ = try await c.dispatch(
                "agent_heartbeat", ["host": "host-a", "instance_id": "r", "report_sent_at": 1.0, "sent_at": 1e12])
        }
        for bad in [Double.infinity, -Double.infinity, Double.nan] {
            let e = await expectCode("invalid_argument") {
                _ = try await c.dispatch(
                    "agent_heartbeat", ["host": "host-a", "instance_id": "r", "report_sent_at": .double(bad), "sent_at": 1.0])
            }
            #expect(e?.details["argument"] == "report_sent_at")
        }
        #expect(healthCalls == 0)
    }
}
