import Logging
import RPCWire
import Synchronization
import Testing

@testable import ControllerCore

/// Log lines a test reads back.
final class LogCapture: Sendable {
    struct Line: Sendable, Equatable {
        var level: Logger.Level
        var message: String
        var host: String?
    }

    private let lines = Mutex<[Line]>([])

    var all: [Line] { lines.withLock { $0 } }
    func clear() { lines.withLock { $0.removeAll() } }
    func append(_ l: Line) { lines.withLock { $0.append(l) } }

    /// (host, first words of the message) of every liveness line, in order.
    var transitions: [String] {
        all.compactMap { l in
            guard let h = l.host else { return nil }
            if l.message.hasPrefix("agent is alive again") { return "\(h) alive" }
            if l.message.hasPrefix("agent is late") { return "\(h) stale" }
            if l.message.hasPrefix("agent is down") { return "\(h) down" }
            return nil
        }
    }

    var collisions: [String] {
        all.filter { $0.message.hasPrefix("HOST_ID COLLISION") }.map { $0.host ?? "?" }
    }

    struct Handler: LogHandler {
        let capture: LogCapture
        var metadata: Logger.Metadata = [:]
        var logLevel: Logger.Level = .trace
        subscript(metadataKey key: String) -> Logger.Metadata.Value? {
            get { metadata[key] }
            set { metadata[key] = newValue }
        }
        func log(event: LogEvent) {
            // Collision lines name their hosts; liveness lines their host.
            let host = event.metadata?["hosts"].map { "\($0)" } ?? event.metadata?["host"].map { "\($0)" }
            capture.append(Line(level: event.level, message: "\(event.message)", host: host))
        }
    }

    var logger: Logger { Logger(label: "test") { _ in Handler(capture: self) } }
}

/// Liveness transitions and host_id collisions: announcements touch only their own host,
/// the 1 s timer (`checkLiveness`, driven here by hand with a fake clock) finds the rest.
@Suite struct LivenessMonitorTests {
    let agents = FakeAgents()
    let clock = FakeClock()
    let log = LogCapture()

    func controller() -> Controller {
        var settings = ControllerSettings(
            agentResponseTimeout: .seconds(10),
            liveness: LivenessPolicy(staleAfter: .seconds(30), downAfter: .seconds(60)))
        settings.livenessPollInterval = .milliseconds(10)
        return Controller(caller: agents, settings: settings, logger: log.logger, now: { clock.now }, wallClock: { 1.0 })
    }

    @Test func timerFindsStaleAndDownAndAnAnnouncementBringsItsHostBack() async throws {
        let c = controller()
        try await announce(c, agents, [("host-a", 1), ("host-b", 2)])
        c.checkLiveness()
        #expect(log.transitions.isEmpty)  // first sight of an alive host is not a transition

        clock.advance(.seconds(31))
        // host-a announces: it stays alive, and the announcement does not look at host-b…
        try await announce(c, agents, [("host-a", 1)])
        #expect(log.transitions.isEmpty)
        // …the timer does.
        c.checkLiveness()
        #expect(log.transitions == ["host-b stale"])
        c.checkLiveness()
        #expect(log.transitions == ["host-b stale"])  // logged once per transition

        clock.advance(.seconds(29))  // host-b silent for 60 s, host-a for 29 s
        c.checkLiveness()
        #expect(log.transitions == ["host-b stale", "host-b down"])
        #expect((try c.listAgents().wireValue())["agents"]?.arrayValue?[1]["status"] == "down")

        // A down host that announces is alive again at once, without waiting for the timer.
        try await announce(c, agents, [("host-b", 2)])
        #expect(log.transitions == ["host-b stale", "host-b down", "host-b alive"])
        c.checkLiveness()
        #expect(log.transitions.count == 3)
    }

    @Test func timerLogsSeveralHostsInNameOrder() async throws {
        let c = controller()
        try await announce(c, agents, [("host-c", 3), ("host-a", 1), ("host-b", 2)])
        clock.advance(.seconds(61))
        c.checkLiveness()
        #expect(log.transitions == ["host-a down", "host-b down", "host-c down"])
        #expect(log.all.filter { $0.message.hasPrefix("agent is down") }.allSatisfy { $0.level == .error })
    }

    @Test func collisionIsLoggedOnTheAnnouncementThatCausesIt() async throws {
        let c = controller()
        try await announce(c, agents, [("host-a", 5), ("host-c", 6)])
        #expect(log.collisions.isEmpty)
        try await announce(c, agents, [("host-b", 5)])
        #expect(log.collisions == ["host-a,host-b"])
        // Not repeated on every announcement or tick…
        try await announce(c, agents, [("host-a", 5), ("host-b", 5)])
        c.checkLiveness()
        #expect(log.collisions.count == 1)
        // …but once a minute while it lasts.
        clock.advance(.seconds(25))
        try await announce(c, agents, [("host-a", 5), ("host-b", 5), ("host-c", 6)])
        clock.advance(.seconds(25))
        try await announce(c, agents, [("host-a", 5), ("host-b", 5), ("host-c", 6)])
        clock.advance(.seconds(11))
        c.checkLiveness()
        #expect(log.collisions == ["host-a,host-b", "host-a,host-b"])
    }

    @Test func collisionEndsWhenAHostChangesItsIDOrGoesDown() async throws {
        let c = controller()
        try await announce(c, agents, [("host-a", 5), ("host-b", 5), ("host-c", 5)])
        #expect(c.snapshot.hostIDConflicts(now: clock.now) == [5: ["host-a", "host-b", "host-c"]])
        try await announce(c, agents, [("host-c", 7)])  // fixed its lvmlocal.conf and restarted
        #expect(c.snapshot.hostIDConflicts(now: clock.now) == [5: ["host-a", "host-b"]])
        #expect(log.collisions.last == "host-a,host-b")
        clock.advance(.seconds(40))
        try await announce(c, agents, [("host-a", 5), ("host-c", 7)])
        clock.advance(.seconds(21))  // host-b is down now: it no longer holds the id
        c.checkLiveness()
        #expect(c.snapshot.hostIDConflicts(now: clock.now).isEmpty)
        #expect((try c.listAgents().wireValue())["host_id_conflicts"] == [])
        // It comes back with the same id: the collision is back, found on its announcement.
        let before = log.collisions.count
        try await announce(c, agents, [("host-b", 5)])
        #expect(log.collisions.count == before + 1)
    }
}

@Suite struct HostIDIndexTests {
    let t0 = ContinuousClock.now
    let policy = LivenessPolicy(staleAfter: .seconds(30), downAfter: .seconds(60))

    /// What `hostIDConflicts` must equal: a full scan of the view.
    func scan(_ v: ClusterView, now: ContinuousClock.Instant) -> [Int: [String]] {
        var byID: [Int: [String]] = [:]
        for a in v.agents.values {
            guard let id = a.report.hostID, v.liveness(of: a.report.host, now: now) != .down else { continue }
            byID[id, default: []].append(a.report.host)
        }
        return byID.filter { $0.value.count > 1 }.mapValues { $0.sorted() }
    }

    @Test func indexAgreesWithAFullScan() {
        var v = ClusterView(policy: policy, startedAt: t0)
        var rng = SplitMix(seed: 17)
        var t = t0
        var sent = 0.0
        for step in 0..<3000 {
            let host = "h\(rng.next() % 40)"
            let idChoice = rng.next() % 12
            let id: Int? = idChoice == 0 ? nil : Int(idChoice)  // some agents send no host_id
            sent += 1
            // Now and then an older report of the same run, which is ignored.
            let stale = rng.next() % 10 == 0
            v.apply(
                AgentReport(host: host, hostID: id, instanceID: "run-1"),
                sentAt: stale ? sent - 50 : sent, receivedAt: t)
            t += .seconds(Int64(rng.next() % 3))
            if step % 50 == 0 {
                #expect(v.hostIDConflicts(now: t) == scan(v, now: t), "step \(step)")
            }
        }
        #expect(v.hostIDConflicts(now: t) == scan(v, now: t))
        #expect(v.hostIDConflicts(now: t + .seconds(120)).isEmpty)
    }
}

/// A small deterministic generator, so a failing sequence can be replayed.
struct SplitMix {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
