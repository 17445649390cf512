import AOSAPI
import OsloRPC
import RPCWire

#if canImport(Glibc)
import Glibc
#endif

/// What `aosctl doctor` adds to the controller's findings (the caller's own view: broker,
/// permissions, the controller's answer), the text report and the exit status.
enum DoctorFindings {
    static func caller(_ item: CheckItem) -> ClusterCheckItem { ClusterCheckItem(source: "caller", host: nil, item: item) }

    /// The controller's result with the caller's items merged in, worst first.
    static func merge(_ r: CheckClusterResult, caller: [ClusterCheckItem]) -> CheckClusterResult {
        let items = ClusterCheckItem.ordered(caller + r.items)
        return CheckClusterResult(status: items.map(\.status).max() ?? .pass, items: items, agents: r.agents, clock: r.clock)
    }

    static func seconds(_ d: Duration) -> Double {
        ((Double(d.components.seconds) + Double(d.components.attoseconds) / 1e18) * 1000).rounded() / 1000
    }

    /// The controller did not answer: why, as a finding.
    static func controllerFailure(_ e: CLIError, user: String?, session: Session) -> ClusterCheckItem {
        let topic = session.settings.controllerTopic
        let evidence = "\(e.code): \(e.message)"
        switch e.code {
        case WireErrorCode.notAuthorized.rawValue:
            return caller(
                CheckItem(
                    id: "caller_role", status: .fail,
                    finding: "the controller refused broker user \(user ?? "?"): doctor needs the admin role", evidence: evidence,
                    fix: "run aosctl as a user in the controller's [auth] admin_users (aos-admin; docs/security.md)"))
        case WireErrorCode.timedOut.rawValue:
            return caller(
                CheckItem(
                    id: "controller", status: .fail, finding: "no answer from the controller on topic \(topic) within \(session.timeout)",
                    evidence: evidence, fix: "systemctl status aos-controller; raise --timeout if the agents are slow to check"))
        case WireErrorCode.unreachable.rawValue:
            return caller(
                CheckItem(
                    id: "controller", status: .fail, finding: "no controller listens on topic \(topic)", evidence: evidence,
                    fix: "systemctl status aos-controller; its [controller] topic and [DEFAULT] control_exchange must be aosctl's"))
        default:
            let refused = e.message.contains("ACCESS_REFUSED") || e.message.contains("403")
            return caller(
                CheckItem(
                    id: refused ? "broker_permissions" : "controller", status: .fail,
                    finding: refused
                        ? "the broker refused user \(user ?? "?") an operation check_cluster needs" : "check_cluster failed: \(e.message)",
                    evidence: evidence,
                    fix: refused
                        ? "grant the permissions aosctl broker-setup prints for the admin user (configure/write/read on the vhost)"
                        : "see the controller's log"))
        }
    }

    /// `--direct HOST`: that agent's check_host, with its clock against this machine's.
    static func direct(_ s: Session, host: String, into result: inout CheckClusterResult) async -> [ClusterCheckItem] {
        let clock = ContinuousClock()
        let start = clock.now
        do {
            let (_, c) = try await s.agent(host, .checkHost, NoArguments(), as: CheckHostResult.self)
            let arrived = RPCDeadline.wallClockNow()
            let rtt = seconds(clock.now - start)
            let oneWay = max(0, rtt - max(0, c.elapsed_s)) / 2
            let skew = c.clock - (arrived - oneWay)
            var items = c.items.map { ClusterCheckItem(source: "agent", host: host, item: $0) }
            let text = "\((skew >= 0 ? "+" : "") + String((skew * 1000).rounded() / 1000)) s ± \((oneWay * 1000).rounded() / 1000) s"
            let status: CheckStatus = abs(skew) > 2 ? .warn : .pass
            items.append(
                ClusterCheckItem(
                    source: "cluster", host: host,
                    item: CheckItem(
                        id: "clock_skew", status: status,
                        finding: status == .pass ? "clock within 2 s of this machine's (\(text))" : "clock \(text) off this machine's",
                        evidence: "agent clock minus aosctl's clock, corrected for half the network round trip",
                        fix: status == .pass ? "" : "synchronize the clocks (chrony or systemd-timesyncd against the same NTP servers)")))
            result.agents = [
                ClusterAgentCheck(
                    host: host, liveness: .alive, last_seen_seconds_ago: nil, answered: true, host_id: Int64(c.host_id),
                    clock_skew_s: (skew * 1000).rounded() / 1000, clock_uncertainty_s: (oneWay * 1000).rounded() / 1000,
                    round_trip_s: rtt, status: items.map(\.status).max() ?? .pass)
            ]
            return items
        } catch {
            result.agents = [
                ClusterAgentCheck(
                    host: host, liveness: .down, last_seen_seconds_ago: nil, answered: false, host_id: nil, clock_skew_s: nil,
                    clock_uncertainty_s: nil, round_trip_s: nil, status: .fail)
            ]
            return [
                ClusterCheckItem(
                    source: "cluster", host: host,
                    item: CheckItem(
                        id: "agent_not_answering", status: .fail, finding: "no answer to check_host: \(error.message)",
                        evidence: error.code, fix: "on \(host): systemctl status aos-agent; journalctl -u aos-agent"))
            ]
        }
    }

    /// The human report: findings worst first with evidence and fix under each (PASS only
    /// with `all`), a result line, then one line per agent.
    static func text(_ r: CheckClusterResult, all: Bool) -> String {
        let shown = r.items.filter { all || $0.status != .pass }
        let hostWidth = max(4, shown.map { ($0.host ?? "-").count }.max() ?? 4)
        let idWidth = max(4, shown.map(\.id.count).max() ?? 4)
        func pad(_ s: String, _ n: Int) -> String { s.count >= n ? s : s + String(repeating: " ", count: n - s.count) }
        var out = ""
        if shown.isEmpty {
            out += "No problem found.\n"
        } else {
            out += "STATUS  " + pad("SOURCE", 10) + "  " + pad("HOST", hostWidth) + "  " + pad("ITEM", idWidth) + "  FINDING\n"
            let indent = String(repeating: " ", count: 8 + 10 + 2 + hostWidth + 2 + idWidth + 2)
            for i in shown {
                out +=
                    pad(i.status.rawValue, 6) + "  " + pad(i.source, 10) + "  " + pad(i.host ?? "-", hostWidth) + "  " + pad(i.id, idWidth)
                    + "  "
                    + i.finding + "\n"
                if i.status != .pass {
                    if !i.evidence.isEmpty { out += indent + "evidence: " + i.evidence + "\n" }
                    if !i.fix.isEmpty { out += indent + "fix: " + i.fix + "\n" }
                }
            }
        }
        let counts = [CheckStatus.fail, .warn, .pass].map { s in "\(r.items.filter { $0.status == s }.count) \(s.rawValue)" }
        let answered = r.agents.filter(\.answered).count
        out += "result: \(r.status.rawValue) (\(counts.joined(separator: ", "))); agents: \(r.agents.count), answered: \(answered)\n"
        if !r.agents.isEmpty {
            out += "\n"
            out += table(
                ["HOST", "LIVENESS", "LAST_SEEN", "HOST_ID", "CLOCK_SKEW", "ROUND_TRIP", "STATUS"],
                r.agents.map { a in
                    [
                        a.host, a.liveness.rawValue, a.last_seen_seconds_ago.map { "\($0)s ago" } ?? "-", a.host_id.map(String.init) ?? "-",
                        a.clock_skew_s.map { "\($0 >= 0 ? "+" : "")\($0)s ±\(a.clock_uncertainty_s ?? 0)" } ?? "-",
                        a.round_trip_s.map { "\($0)s" } ?? "-", a.status.rawValue,
                    ]
                })
        }
        return out
    }
}
