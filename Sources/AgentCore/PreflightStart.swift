import AOSConfig
import Logging

extension Preflight {
    /// The daemons the agent may start before (systemd ordering is not a readiness check).
    static let daemonItems: Set<String> = ["lvmlockd", "sanlock"]

    /// What the agent's configuration expects of the host.
    public static func expectations(_ settings: AgentOptions.Settings, hostIdOverride: Int?, lvmDirectory: String) -> PreflightExpectations
    {
        var expect = PreflightExpectations(
            volumeGroups: settings.volumeGroups, lvmDirectory: lvmDirectory, agentLVMLocalConf: settings.lvmlocalConf,
            hostIdOverride: hostIdOverride)
        expect.riskStaleWritesWithoutWatchdog = settings.riskStaleWritesWithoutWatchdog
        return expect
    }

    /// LVM's configuration directory: `LVM_SYSTEM_DIR` as LVM reads it, else /etc/lvm.
    public static func lvmDirectory(environment: [String: String]) -> String {
        if let dir = environment["LVM_SYSTEM_DIR"], !dir.isEmpty { return dir }
        return "/etc/lvm"
    }

    /// The check at the agent's start (real LVM backend): while the only blocking failures
    /// are lvmlockd or sanlock not answering, it is repeated every `poll` for up to `wait`
    /// (they may still be starting). Every non-PASS item is logged. The caller stops the
    /// agent when `blocking` of the result is not empty.
    public static func atStart(
        host: some PreflightHost, expect: PreflightExpectations, wait: Duration, poll: Duration = .seconds(2),
        logger: Logger = Logger(label: "aos.preflight")
    ) async -> PreflightReport {
        let clock = ContinuousClock()
        let start = clock.now
        var report = await run(host: host, expect: expect)
        while !report.blocking.isEmpty, report.blocking.allSatisfy({ daemonItems.contains($0.id) }), clock.now - start < wait {
            logger.notice(
                "preflight: waiting for the lock daemons",
                metadata: ["failing": "\(report.blocking.map(\.id).joined(separator: ","))", "wait_s": "\(wait.components.seconds)"])
            do { try await Task.sleep(for: poll) } catch { break }
            report = await run(host: host, expect: expect)
        }
        for item in report.items where item.status != .pass {
            let metadata: Logger.Metadata = [
                "item": "\(item.id)", "evidence": "\(item.evidence)", "fix": "\(item.fix)", "blocking": "\(item.blocking)",
            ]
            if item.status == .fail {
                logger.error("preflight FAIL: \(item.finding)", metadata: metadata)
            } else {
                logger.warning("preflight WARN: \(item.finding)", metadata: metadata)
            }
        }
        logger.notice("preflight done", metadata: ["result": "\(report.worst.rawValue)", "problems": "\(report.problems.count)"])
        return report
    }
}

extension AgentService {
    /// Puts the start's preflight findings into `health().preflight`.
    public func notePreflight(_ report: PreflightReport) {
        let problems = report.problems
        state.update { $0.preflight = problems }
    }
}
