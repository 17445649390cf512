import AOSAPI
import AOSConfig
import Logging
import RPCWire
import Synchronization
import Testing

@testable import ControllerCore

/// Agents answering `check_host` as the test stages them: healthy, skewed, slow, gone, old.
final class FakeCheckAgents: AgentCaller {
    enum Behaviour: Sendable {
        /// Answers with these items; its clock is `skew` s off the (fake) wall clock; the
        /// request takes `transit` each way and the check `elapsed` (the fake clock moves).
        case answer(hostID: Int, skew: Double, items: [CheckItem] = [], transit: Duration = .zero, elapsed: Duration = .zero)
        /// The RPC client gave up (the controller's timeout passed).
        case slow
        /// No queue for the host.
        case gone
        /// An agent without check_host.
        case old
        /// The agent refuses the controller (its [auth] does not know the controller's user).
        case refusing
        /// A reply that is not a check_host result.
        case garbage
    }
    let behaviours: [String: Behaviour]
    let clock: FakeClock
    let wall: @Sendable () -> Double
    /// How many calls to wait for before answering any (nil: answer at once).
    let barrier: Int?
    struct State {
        var calls: [(host: String, method: String, timeout: Duration)] = []
        var waiters: [CheckedContinuation<Void, Never>] = []
        /// Calls in flight together when the barrier opened.
        var inFlightAtOnce = 0
    }
    let state = Mutex(State())

    init(_ behaviours: [String: Behaviour], clock: FakeClock, wall: @escaping @Sendable () -> Double, barrier: Int? = nil) {
        self.behaviours = behaviours
        self.clock = clock
        self.wall = wall
        self.barrier = barrier
    }

    var calls: [(host: String, method: String, timeout: Duration)] { state.withLock { $0.calls } }

    func call(host: String, method: String, args: [String: JSONValue], timeout: Duration) async throws -> JSONValue {
        let arrived = state.withLock { s in
            s.calls.append((host, method, timeout))
            return s.calls.count
        }
        if let barrier {
            // Every call waits until `barrier` calls are in flight: a fan-out one by one never gets there.
            await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in
                let open: [CheckedContinuation<Void, Never>] = state.withLock { s in
                    s.waiters.append(c)
                    guard arrived >= barrier || s.waiters.count >= barrier else { return [] }
                    s.inFlightAtOnce = s.waiters.count
                    defer { s.waiters = [] }
                    return s.waiters
                }
                for w in open { w.resume() }
            }
        }
        switch behaviours[host] {
        case .answer(let id, let skew, let items, let transit, let elapsed)?:
            clock.advance(transit + elapsed)
            let agentClock = wall() + skew
            clock.advance(transit)
            let worst = items.map(\.status).max() ?? .pass
            let elapsedS = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
            return try CheckHostResult(
                host: host, host_id: id, backend: "simulated", status: worst, items: items, clock: agentClock, elapsed_s: elapsedS
            ).wireValue()
        case .slow?:
            throw ServiceError(
                .timedOut, "the agent on \(host) did not answer check_host within \(timeout)", details: ["host": .string(host)])
        case .old?:
            throw ServiceError(.unknownMethod, "the agent has no method 'check_host'", details: ["host": .string(host)])
        case .refusing?:
            throw ServiceError(.notAuthorized, "controller may not call check_host", details: ["host": .string(host)])
        case .garbage?:
            return ["host": .string(host), "host_id": "seven", "items": .null]
        case .gone?, nil:
            throw ServiceError(.agentUnavailable, "no agent is listening for host \(host)", details: ["host": .string(host)])
        }
    }
}

@Suite struct DoctorTests {
    let clock = FakeClock()
    let origin: ContinuousClock.Instant

    init() { origin = clock.now }

    /// The fake wall clock: 1000 s at the start, moving with the fake clock.
    var wall: @Sendable () -> Double {
        let (clock, origin) = (clock, origin)
        return { 1000 + (clock.now - origin).secondsValue }
    }

    func controller(
        _ agents: FakeCheckAgents, responseTimeout: Duration = .seconds(2888), selfCheck: [CheckItem] = []
    ) -> Controller {
        var settings = ControllerSettings(
            agentResponseTimeout: responseTimeout, liveness: LivenessPolicy(staleAfter: .seconds(30), downAfter: .seconds(60)))
        settings.maxClockSkew = .seconds(60)
        settings.selfCheck = selfCheck
        var logger = Logger(label: "test")
        logger.logLevel = .critical
        let clock = self.clock
        return Controller(caller: agents, settings: settings, logger: logger, now: { clock.now }, wallClock: wall)
    }

    func announce(_ c: Controller, _ hosts: [(String, Int)]) async throws {
        for (h, id) in hosts {
            let report = AgentHealth(
                host: h, host_id: id, version: "test", instance_id: "run-\(h)", ready: true, phase: "ready",
                vgs: ["vg0": VGHealth(lockspace: .started)], active_lvs: [], restore_failures: [])
            _ = try await c.dispatch("agent_announce", ["report": try report.wireValue(), "sent_at": .double(wall())])
        }
    }

    func check(_ c: Controller, _ args: [String: JSONValue] = [:], deadline: ContinuousClock.Instant? = nil) async throws
        -> CheckClusterResult
    {
        let raw = try await c.dispatch("check_cluster", args, deadline: deadline)
        return try JSONValueDecoder().decode(CheckClusterResult.self, from: raw)
    }

    /// (status, source, host, id) of every non-PASS finding, in the report's order.
    func problems(_ r: CheckClusterResult) -> [String] {
        r.items.filter { $0.status != .pass }.map { "\($0.status.rawValue) \($0.source) \($0.host ?? "-") \($0.id)" }
    }

    static let lockdFail = CheckItem(
        id: "use_lvmlockd", status: .fail, finding: "use_lvmlockd is not set", evidence: "/etc/lvm/lvm.conf: no global/use_lvmlockd",
        fix: "set use_lvmlockd = 1", blocking: true)
    static let passItem = CheckItem(id: "lvm_conf", status: .pass, finding: "read 3 settings", evidence: "/etc/lvm/lvm.conf")

    @Test func aStagedClusterGivesTheExactFindingsWorstFirst() async throws {
        let agents = FakeCheckAgents(
            [
                "host-a": .answer(hostID: 1, skew: 0.25, items: [Self.passItem]),
                "host-b": .answer(hostID: 2, skew: 5, items: [Self.passItem]),
                "host-d": .answer(hostID: 2, skew: -0.5, items: [Self.lockdFail, Self.passItem]),
                "host-e": .slow,
                "host-f": .old,
                "host-g": .gone,
            ], clock: clock, wall: wall)
        let selfCheck = [
            CheckItem(id: "auth_enforce", status: .warn, finding: "only logged", evidence: "[auth] enforce = false", fix: "enforce"),
            CheckItem(id: "transport_tls", status: .pass, finding: "local", evidence: "localhost"),
        ]
        let c = controller(agents, selfCheck: selfCheck)
        try await announce(c, [("host-a", 1), ("host-b", 2), ("host-c", 3), ("host-d", 2), ("host-e", 5), ("host-f", 6), ("host-g", 7)])
        clock.advance(.seconds(61))
        try await announce(c, [("host-a", 1), ("host-b", 2), ("host-d", 2), ("host-e", 5), ("host-f", 6), ("host-g", 7)])
        let r = try await check(c)
        #expect(r.status == .fail)
        #expect(
            problems(r) == [
                "FAIL cluster host-b host_id_collision",
                "FAIL cluster host-c agent_down",
                "FAIL cluster host-d host_id_collision",
                "FAIL cluster host-e agent_not_answering",
                "FAIL cluster host-g agent_not_answering",
                "FAIL agent host-d use_lvmlockd",
                "WARN controller - auth_enforce",
                "WARN cluster host-b clock_skew",
                "WARN cluster host-f check_unsupported",
            ])
        // The down agent is not asked; every other one is, once.
        #expect(agents.calls.map(\.host).sorted() == ["host-a", "host-b", "host-d", "host-e", "host-f", "host-g"])
        #expect(agents.calls.allSatisfy { $0.method == "check_host" })
        let down = try #require(r.items.first { $0.id == "agent_down" })
        #expect(down.finding == "agent down: last announcement 1 min 1 s ago")
        let collision = try #require(r.items.first { $0.id == "host_id_collision" && $0.host == "host-b" })
        #expect(collision.finding.hasPrefix("sanlock host_id 2 is also used by host-d:"))
        let skew = try #require(r.items.first { $0.id == "clock_skew" && $0.host == "host-b" })
        #expect(skew.finding.hasPrefix("clock +5.0 s ± 0.0 s off the controller's"))
        #expect(r.items.filter { $0.id == "clock_skew" && $0.status == .pass }.compactMap(\.host) == ["host-a", "host-d"])
        let byHost = Dictionary(uniqueKeysWithValues: r.agents.map { ($0.host, $0) })
        #expect(r.agents.map(\.host) == ["host-a", "host-b", "host-c", "host-d", "host-e", "host-f", "host-g"])
        #expect(byHost["host-c"]?.liveness == .down && byHost["host-c"]?.answered == false)
        #expect(byHost["host-c"]?.last_seen_seconds_ago == 61)
        #expect(byHost["host-b"]?.clock_skew_s == 5 && byHost["host-b"]?.status == .fail)
        #expect(byHost["host-a"]?.clock_skew_s == 0.25 && byHost["host-a"]?.status == .pass && byHost["host-a"]?.answered == true)
        #expect(byHost["host-e"]?.answered == false && byHost["host-e"]?.clock_skew_s == nil)
    }

    @Test func skewIsCorrectedForTheNetworkShareOfTheRoundTrip() async throws {
        // 0.5 s there, a 1 s check, 0.5 s back; the agent's clock is 3 s ahead.
        let agents = FakeCheckAgents(
            ["host-a": .answer(hostID: 1, skew: 3, transit: .milliseconds(500), elapsed: .seconds(1))], clock: clock, wall: wall)
        let c = controller(agents)
        try await announce(c, [("host-a", 1)])
        let r = try await check(c)
        let a = try #require(r.agents.first)
        #expect(a.clock_skew_s == 3)
        #expect(a.clock_uncertainty_s == 0.5)
        #expect(a.round_trip_s == 2)
        #expect(problems(r) == ["WARN cluster host-a clock_skew"])
    }

    @Test func skewBeyondMaxClockSkewFails() async throws {
        let agents = FakeCheckAgents(["host-a": .answer(hostID: 1, skew: -90)], clock: clock, wall: wall)
        let c = controller(agents)
        try await announce(c, [("host-a", 1)])
        let r = try await check(c)
        #expect(problems(r) == ["FAIL cluster host-a clock_skew"])
        #expect(r.items.first?.finding.contains("beyond [auth] max_clock_skew (60 s)") == true)
    }

    @Test func hostLimitsTheCheckButStillSeesCollisionsWithOthers() async throws {
        let agents = FakeCheckAgents(
            ["host-a": .answer(hostID: 4, skew: 0), "host-b": .answer(hostID: 4, skew: 0)], clock: clock, wall: wall)
        let c = controller(agents, selfCheck: [CheckItem(id: "auth_enforce", status: .warn, finding: "x")])
        try await announce(c, [("host-a", 4), ("host-b", 4)])
        let r = try await check(c, ["host": "host-a"])
        #expect(agents.calls.map(\.host) == ["host-a"])
        #expect(problems(r) == ["FAIL cluster host-a host_id_collision"])
        #expect(r.agents.map(\.host) == ["host-a"])
    }

    @Test func aHostNeverHeardOfIsAskedAndFlagged() async throws {
        let agents = FakeCheckAgents(["host-x": .answer(hostID: 9, skew: 0)], clock: clock, wall: wall)
        let c = controller(agents)
        let r = try await check(c, ["host": "host-x"])
        #expect(problems(r) == ["WARN cluster host-x agent_not_announcing"])
        #expect(r.agents.first?.last_seen_seconds_ago == nil)
    }

    @Test func noAgentsIsAFailureAndTheControllerItemsAreShown() async throws {
        let agents = FakeCheckAgents([:], clock: clock, wall: wall)
        let c = controller(agents, selfCheck: [CheckItem(id: "agent_liveness", status: .pass, finding: "ok")])
        let r = try await check(c)
        #expect(problems(r) == ["FAIL cluster - no_agents"])
        #expect(r.items.map(\.id) == ["no_agents", "agent_liveness"])
        #expect(r.status == .fail)
        #expect(r.status.exitStatus.rawValue == 9)
    }

    @Test func agentsAreAskedInParallelWithABoundedWait() async throws {
        let hosts = (1...5).map { "host-\($0)" }
        let agents = FakeCheckAgents(
            Dictionary(uniqueKeysWithValues: hosts.enumerated().map { ($1, .answer(hostID: $0 + 1, skew: 0)) }), clock: clock, wall: wall,
            barrier: hosts.count)
        let c = controller(agents, responseTimeout: .seconds(20))
        try await announce(c, hosts.enumerated().map { ($1, $0 + 1) })
        let r = try await check(c, ["timeout_s": 25])
        #expect(agents.state.withLock { $0.inFlightAtOnce } == hosts.count)
        #expect(r.status == .pass)
        // timeout_s, but never past agent_response_timeout…
        #expect(Set(agents.calls.map(\.timeout)) == [.seconds(20)])
        let fewer = FakeCheckAgents(["host-a": .answer(hostID: 1, skew: 0)], clock: clock, wall: wall)
        let c2 = controller(fewer)
        try await announce(c2, [("host-a", 1)])
        _ = try await check(c2, ["timeout_s": 5])
        #expect(fewer.calls.last?.timeout == .seconds(5))
        // …nor past the caller's deadline (less a margin for the answer).
        _ = try await check(c2, [:], deadline: clock.now + .seconds(10))
        #expect(fewer.calls.last?.timeout == .seconds(9))
        _ = try await check(c2)
        #expect(fewer.calls.last?.timeout == ClusterCheck.defaultTimeout)
    }

    @Test func refusalsUnreadableRepliesAndLateAnnouncementsAreFindings() async throws {
        let agents = FakeCheckAgents(
            ["host-a": .refusing, "host-b": .garbage, "host-c": .answer(hostID: 3, skew: 0)], clock: clock, wall: wall)
        let c = controller(agents)
        try await announce(c, [("host-a", 1), ("host-b", 2), ("host-c", 3)])
        clock.advance(.seconds(31))
        try await announce(c, [("host-a", 1), ("host-b", 2)])
        let r = try await check(c)
        #expect(
            problems(r) == [
                "FAIL cluster host-a agent_refused", "FAIL cluster host-b check_failed", "WARN cluster host-c agent_stale",
            ])
        let unreadable = try #require(r.items.first { $0.id == "check_failed" })
        #expect(unreadable.finding.contains("a result the controller cannot read"))
        #expect(r.agents.first { $0.host == "host-b" }?.answered == false)
    }

    @Test func badArgumentsAreRefused() async throws {
        let c = controller(FakeCheckAgents([:], clock: clock, wall: wall))
        for args: [String: JSONValue] in [["timeout_s": 0], ["timeout_s": 601], ["host": ""], ["timeout_s": "5"], ["hosts": "a"]] {
            let e = await expectCode("invalid_argument") { _ = try await c.dispatch("check_cluster", args) }
            #expect(e != nil, "\(args)")
        }
    }

    @Test func theControllerChecksItsOwnConfiguration() throws {
        func items(_ overrides: [String]) throws -> [String] {
            let parsed = try overrides.map { (o) throws(ConfigError) in try ConfigOverride.parse(o) }
            let loaded = try ControllerOptions.schema.load(iniText: nil, fileName: "(test)", env: [:], overrides: parsed)
            return ClusterCheck.controllerItems(ControllerOptions.Settings(loaded)).map { "\($0.status.rawValue) \($0.id)" }
        }
        #expect(
            try items(["DEFAULT.transport_url=rabbit://u:p@localhost:5672/", "auth.driver_public_keys=AAAA"]) == [
                "PASS auth_enforce", "PASS driver_keys", "PASS transport_tls", "PASS agent_liveness", "PASS agent_response_timeout",
                "PASS max_clock_skew",
            ])
        #expect(
            try items([
                "DEFAULT.transport_url=rabbit://u:p@broker.example:5672/", "auth.enforce=false", "controller.agent_stale_after=10",
                "controller.agent_down_after=15", "controller.agent_response_timeout=30", "auth.max_clock_skew=900",
            ]) == [
                "WARN auth_enforce", "PASS driver_keys", "WARN transport_tls", "WARN agent_liveness", "WARN agent_response_timeout",
                "WARN max_clock_skew",
            ])
        #expect(try items(["DEFAULT.transport_url=rabbit://u:p@127.0.0.1:5672/"]).contains("WARN driver_keys"))
    }

    @Test func transportHostIgnoresCredentialsAndPorts() {
        #expect(TransportHost.first(of: "rabbit://u:p@w@broker.example:5672/aos") == "broker.example")
        #expect(TransportHost.first(of: "rabbit://u:p@[::1]:5672/,rabbit://x@y:1/") == "::1")
        #expect(TransportHost.first(of: "rabbit://localhost/") == "localhost")
    }
}
