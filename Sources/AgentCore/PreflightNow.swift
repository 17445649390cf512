import AOSAPI
import AOSConfig
import OsloRPC
import RPCWire

/// What `check_host` runs: the host's preflight check and the wall clock the agent reports.
/// The daemon builds it for its backend (`real`: `Preflight.run` on this host; `simulated`:
/// nothing to check, and `[agent] simulated_clock_offset_s` may move the reported clock so
/// tests can stage a skewed host).
public struct HostCheckSource: Sendable {
    public var backend: String
    public var run: @Sendable () async -> PreflightReport
    public var wallClock: @Sendable () -> Double

    public init(backend: String, run: @escaping @Sendable () async -> PreflightReport, wallClock: @escaping @Sendable () -> Double) {
        self.backend = backend
        self.run = run
        self.wallClock = wallClock
    }

    /// The real host: every preflight item, checked now.
    public static func real(expect: PreflightExpectations, wallClock: @escaping @Sendable () -> Double) -> HostCheckSource {
        HostCheckSource(backend: "real", run: { await Preflight.run(host: PreflightSystemHost(), expect: expect) }, wallClock: wallClock)
    }

    /// The simulated backend: no host preparation to check (one PASS item says so).
    public static func simulated(wallClock: @escaping @Sendable () -> Double) -> HostCheckSource {
        HostCheckSource(
            backend: "simulated",
            run: {
                PreflightReport(items: [
                    PreflightItem(
                        id: "lvm_backend", status: .pass, finding: "simulated LVM backend: no host preparation to check",
                        evidence: "[agent] lvm_backend = simulated")
                ])
            }, wallClock: wallClock)
    }

    /// An agent built without one (tests): no items.
    public static let unconfigured = HostCheckSource(backend: "none", run: { PreflightReport(items: []) }, wallClock: { 0 })
}

extension PreflightItem {
    /// The item as the API carries it.
    public var checkItem: CheckItem {
        CheckItem(
            id: id, status: status, finding: finding, evidence: evidence, fix: fix,
            blocking: blocking)
    }
}

extension AgentService {
    /// `check_host`: the preflight check run now (read-only commands, each bounded), and the
    /// agent's wall clock taken last, with the check's duration, so the caller can tell the
    /// network's share of the round trip from the check's.
    public func checkHost() async -> CheckHostResult {
        let source = configuration.hostCheck
        let clock = ContinuousClock()
        let start = clock.now
        let report = await source.run()
        let elapsed = clock.now - start
        let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
        return CheckHostResult(
            host: host, host_id: configuration.hostId, backend: source.backend,
            status: report.worst, items: report.items.map(\.checkItem),
            clock: source.wallClock(), elapsed_s: seconds)
    }
}

extension AgentDaemon {
    /// `check_host`'s source for this configuration's backend.
    static func hostCheck(_ c: Configuration, settings: AgentOptions.Settings, environment: [String: String]) -> HostCheckSource {
        guard settings.lvmBackend == .real else {
            let offset = Double(c.int(AgentSimulationOptions.clockOffset))
            return .simulated(wallClock: { RPCDeadline.wallClockNow() + offset })
        }
        let expect = Preflight.expectations(
            settings, hostIdOverride: nil, lvmDirectory: Preflight.lvmDirectory(environment: environment))
        return .real(expect: expect, wallClock: RPCDeadline.wallClockNow)
    }
}
