import AOSAPI
import AOSConfig
import RPCWire

/// `check_cluster` (`aosctl doctor`, docs/operations.md "Doctor"): every agent's preflight
/// check run now, asked in parallel with a bounded wait each, plus what only the controller
/// sees: agents down or not answering, sanlock host_id collisions, each agent's clock against
/// the controller's, and the controller's own configuration.
public enum ClusterCheck {
    /// Clock skew above this is a WARN: sanlock's lease timing is per host (a skewed clock does
    /// not break it), but the logs of two hosts can no longer be lined up to the second when a
    /// lease is lost, and request deadlines and signatures use wall-clock time.
    public static let skewWarnSeconds = 2.0
    /// Each agent's answer is waited for this long unless the request says otherwise.
    public static let defaultTimeout: Duration = .seconds(30)
    public static let maxTimeoutSeconds: Int64 = 600

    /// What the controller can say about its own configuration (computed once at start).
    public static func controllerItems(_ s: ControllerOptions.Settings, announceInterval: Int = 10) -> [CheckItem] {
        var items: [CheckItem] = []
        if s.auth.enforce {
            items.append(
                CheckItem(
                    id: "auth_enforce", status: .pass, finding: "requests without a role are refused", evidence: "[auth] enforce = true"))
        } else {
            items.append(
                CheckItem(
                    id: "auth_enforce", status: .warn,
                    finding: "requests from senders without a role are only logged, not refused: any broker user can command the agents",
                    evidence: "[auth] enforce = false",
                    fix: "give every component its broker user (aosctl broker-setup), then set [auth] enforce = true"))
        }
        if s.auth.enforce && s.auth.driverPublicKeys.isEmpty {
            items.append(
                CheckItem(
                    id: "driver_keys", status: .warn,
                    finding: "no driver public key: the Cinder driver's requests (oslo.messaging carries no user id) will be refused",
                    evidence: "[auth] driver_public_keys is empty",
                    fix: "aosctl auth keygen, then put the public key in [auth] driver_public_keys (docs/security.md)"))
        } else {
            items.append(
                CheckItem(
                    id: "driver_keys", status: .pass, finding: "\(s.auth.driverPublicKeys.count) driver public key(s)",
                    evidence: "[auth] driver_public_keys"))
        }
        let brokerHost = TransportHost.first(of: s.messaging.transportURL)
        if !s.messaging.ssl && !TransportHost.isLoopback(brokerHost) && !s.messaging.transportURL.hasPrefix("amqps") {
            items.append(
                CheckItem(
                    id: "transport_tls", status: .warn,
                    finding:
                        "the broker \(brokerHost) is reached without TLS: the broker password and every request cross the network in clear",
                    evidence: "[oslo_messaging_rabbit] ssl = false",
                    fix: "enable TLS on RabbitMQ and set [oslo_messaging_rabbit] ssl = true (docs/agent.md, 'Broker TLS and the password')")
            )
        } else {
            items.append(
                CheckItem(id: "transport_tls", status: .pass, finding: "broker traffic is TLS or stays on this host", evidence: brokerHost))
        }
        let stale = s.agentStaleAfter, down = s.agentDownAfter
        if down < 3 * announceInterval || stale < 2 * announceInterval {
            items.append(
                CheckItem(
                    id: "agent_liveness", status: .warn,
                    finding:
                        "agents announce every \(announceInterval) s (default): stale after \(stale) s / down after \(down) s lets one late announcement mark a host stale or down",
                    evidence: "[controller] agent_stale_after = \(stale), agent_down_after = \(down)",
                    fix: "keep agent_stale_after >= 2 and agent_down_after >= 3 announce intervals (defaults 30 and 60)"))
        } else {
            items.append(
                CheckItem(
                    id: "agent_liveness", status: .pass, finding: "stale after \(stale) s, down after \(down) s",
                    evidence: "[controller] agent_stale_after, agent_down_after"))
        }
        if s.agentResponseTimeout < 60 {
            items.append(
                CheckItem(
                    id: "agent_response_timeout", status: .warn,
                    finding:
                        "\(s.agentResponseTimeout) s: an LVM command waiting for a lock or a busy VG can take longer; the request fails while the agent still completes it",
                    evidence: "[controller] agent_response_timeout = \(s.agentResponseTimeout)",
                    fix: "use the driver's agent_response_timeout (default 2888 s); deadlines stop work nobody waits for"))
        } else {
            items.append(
                CheckItem(
                    id: "agent_response_timeout", status: .pass, finding: "\(s.agentResponseTimeout) s",
                    evidence: "[controller] agent_response_timeout"))
        }
        if s.auth.maxClockSkew > 300 {
            items.append(
                CheckItem(
                    id: "max_clock_skew", status: .warn,
                    finding: "\(s.auth.maxClockSkew) s: a captured signed request or announcement can be replayed for that long",
                    evidence: "[auth] max_clock_skew = \(s.auth.maxClockSkew)", fix: "keep clocks in sync (NTP) and max_clock_skew at 60 s")
            )
        } else {
            items.append(
                CheckItem(id: "max_clock_skew", status: .pass, finding: "\(s.auth.maxClockSkew) s", evidence: "[auth] max_clock_skew"))
        }
        return items
    }

    /// The item for a measured skew (agent minus controller, seconds) and its uncertainty.
    static func skewItem(_ skew: Double, uncertainty: Double, maxClockSkew: Double) -> CheckItem {
        let text = "\(signed(skew)) s ± \(rounded(uncertainty)) s"
        let evidence = "agent clock minus controller clock, corrected for half the network round trip: \(text)"
        let fix = "synchronize the clocks (chrony or systemd-timesyncd against the same NTP servers on every host)"
        if abs(skew) > maxClockSkew {
            return CheckItem(
                id: "clock_skew", status: .fail,
                finding:
                    "clock \(text) off the controller's, beyond [auth] max_clock_skew (\(Int(maxClockSkew)) s): its announcements are refused, so it looks down",
                evidence: evidence, fix: fix)
        }
        if abs(skew) > skewWarnSeconds {
            return CheckItem(
                id: "clock_skew", status: .warn,
                finding: "clock \(text) off the controller's (more than \(Int(skewWarnSeconds)) s): logs of the hosts no longer line up",
                evidence: evidence, fix: fix)
        }
        return CheckItem(
            id: "clock_skew", status: .pass, finding: "clock within \(Int(skewWarnSeconds)) s of the controller's (\(text))",
            evidence: evidence)
    }

    static func rounded(_ x: Double) -> Double { (x * 1000).rounded() / 1000 }
    static func signed(_ x: Double) -> String { (x >= 0 ? "+" : "") + "\(rounded(x))" }

    /// "3 s", "4 min 10 s", "2 h 5 min", "3 d 4 h".
    public static func age(_ seconds: Double) -> String {
        let s = Int(max(0, seconds).rounded())
        if s < 60 { return "\(s) s" }
        if s < 3600 { return "\(s / 60) min \(s % 60) s" }
        if s < 86_400 { return "\(s / 3600) h \(s % 3600 / 60) min" }
        return "\(s / 86_400) d \(s % 86_400 / 3600) h"
    }
}

/// The host part of a transport URL's first broker (no password kept).
enum TransportHost {
    static func first(of url: String) -> String {
        var rest = Substring(url)
        if let r = rest.range(of: "://") { rest = rest[r.upperBound...] }
        if let comma = rest.firstIndex(of: ",") { rest = rest[..<comma] }
        if let slash = rest.firstIndex(of: "/") { rest = rest[..<slash] }
        if let at = rest.lastIndex(of: "@") { rest = rest[rest.index(after: at)...] }
        if rest.hasPrefix("["), let close = rest.firstIndex(of: "]") { return String(rest[rest.index(after: rest.startIndex)..<close]) }
        if let colon = rest.lastIndex(of: ":") { rest = rest[..<colon] }
        return String(rest)
    }

    static func isLoopback(_ host: String) -> Bool {
        host == "localhost" || host == "::1" || host.hasPrefix("127.")
    }
}

extension Controller {
    /// One agent's answer to `check_host`, or why there is none.
    struct AgentAnswer: Sendable {
        var result: Result<CheckHostResult, ServiceError>
        var roundTrip: Duration
        /// The controller's wall clock when the answer arrived.
        var arrivedWall: Double
    }

    func checkCluster(_ r: CheckClusterRequest, deadline: ContinuousClock.Instant?) async -> CheckClusterResult {
        let start = now()
        let v = snapshot
        var timeout = min(r.timeout_s.map { Duration.seconds($0) } ?? ClusterCheck.defaultTimeout, settings.agentResponseTimeout)
        if let deadline {
            // Answer before the caller gives up, even if some agents have not.
            let remaining = deadline - start
            timeout = max(.milliseconds(100), min(timeout, remaining - min(.seconds(1), remaining / 10)))
        }
        let hosts = r.host.map { [$0] } ?? v.agents.keys.sorted()
        var items: [ClusterCheckItem] = []
        if r.host == nil {
            items += settings.selfCheck.map { ClusterCheckItem(source: "controller", host: nil, item: $0) }
            if hosts.isEmpty {
                items.append(
                    ClusterCheckItem(
                        source: "cluster", host: nil,
                        item: CheckItem(
                            id: "no_agents", status: .fail, finding: "no agent has announced itself to this controller",
                            evidence: "list_agents is empty",
                            fix: "start aos-agent on the hosts; their [DEFAULT] transport_url and control_exchange must be the controller's"
                        )))
            }
        }
        let ask = hosts.filter { v.liveness(of: $0, now: start) != .down }
        let caller = self.caller
        let perAgent = timeout
        let answers = await withTaskGroup(of: (String, AgentAnswer).self) { group in
            for h in ask {
                group.addTask { [self] in
                    let t0 = now()
                    let result: Result<CheckHostResult, ServiceError>
                    do {
                        let raw = try await caller.call(
                            host: h, method: AgentMethod.checkHost.rawValue, args: [:], timeout: perAgent, instance: nil)
                        result = .success(try agentResult(CheckHostResult.self, raw, host: h, method: .checkHost))
                    } catch let e as ServiceError {
                        result = .failure(e)
                    } catch {
                        result = .failure(ServiceError(.internal, "check_host on \(h): \(error)"))
                    }
                    return (h, AgentAnswer(result: result, roundTrip: now() - t0, arrivedWall: wallClock()))
                }
            }
            var out: [String: AgentAnswer] = [:]
            for await (h, a) in group { out[h] = a }
            return out
        }
        let t = now()
        for (h, a) in answers { if case .success = a.result { view.withLock { $0.touch(h, at: t) } } }

        // host_id of every host not down (a fresh answer wins over the announcement).
        var idOf: [String: Int] = [:]
        for (h, a) in v.agents where v.liveness(of: h, now: start) != .down { if let id = a.report.hostID { idOf[h] = id } }
        for (h, a) in answers { if case .success(let c) = a.result { idOf[h] = c.host_id } }
        var hostsOfID: [Int: [String]] = [:]
        for (h, id) in idOf { hostsOfID[id, default: []].append(h) }

        var agents: [ClusterAgentCheck] = []
        for h in hosts {
            var mine: [ClusterCheckItem] = []
            func add(_ source: String, _ item: CheckItem) { mine.append(ClusterCheckItem(source: source, host: h, item: item)) }
            let liveness = v.liveness(of: h, now: start)
            let age = v.agents[h].map { (start - $0.lastSeen).secondsValue }
            let seen = age.map { "last announcement \(ClusterCheck.age($0)) ago" } ?? "never announced itself to this controller"
            var skew: Double?
            var uncertainty: Double?
            var roundTrip: Double?
            let answer = answers[h]
            if liveness == .down {
                add(
                    "cluster",
                    CheckItem(
                        id: "agent_down", status: .fail, finding: "agent down: \(seen)",
                        evidence:
                            "no announcement for agent_down_after (\(formatSeconds(settings.liveness.downAfter))); check_host not sent",
                        fix: "on \(h): systemctl status aos-agent; journalctl -u aos-agent (is the host up, can it reach the broker?)"))
            } else if let answer {
                roundTrip = answer.roundTrip.secondsValue
                switch answer.result {
                case .success(let c):
                    for item in c.items { add("agent", item) }
                    // The agent read its clock last; the reply then took about half of the round
                    // trip that the check itself did not use.
                    let oneWay = max(0, answer.roundTrip.secondsValue - max(0, c.elapsed_s)) / 2
                    let s = c.clock - (answer.arrivedWall - oneWay)
                    if s.isFinite {
                        skew = ClusterCheck.rounded(s)
                        uncertainty = ClusterCheck.rounded(oneWay)
                        add("cluster", ClusterCheck.skewItem(s, uncertainty: oneWay, maxClockSkew: settings.maxClockSkew.secondsValue))
                    }
                    if v.agents[h] == nil {
                        add(
                            "cluster",
                            CheckItem(
                                id: "agent_not_announcing", status: .warn,
                                finding: "answers check_host but never announced itself to this controller: requests are not routed to it",
                                evidence: "not in list_agents",
                                fix: "its [agent] controller_topic and [DEFAULT] control_exchange must be the controller's; see its log"))
                    } else if liveness == .stale {
                        add(
                            "cluster",
                            CheckItem(
                                id: "agent_stale", status: .warn, finding: "answers, but its announcements are late: \(seen)",
                                evidence: "agent_stale_after = \(formatSeconds(settings.liveness.staleAfter))",
                                fix: "see the agent's log on \(h) (broker reconnections, a blocked announce loop)"))
                    }
                case .failure(let e):
                    add("cluster", Self.noAnswerItem(e, host: h, seen: seen, timeout: timeout))
                }
            }
            if let id = idOf[h], let others = hostsOfID[id]?.filter({ $0 != h }).sorted(), !others.isEmpty {
                add(
                    "cluster",
                    CheckItem(
                        id: "host_id_collision", status: .fail,
                        finding:
                            "sanlock host_id \(id) is also used by \(others.joined(separator: ", ")): their leases collide; one host's locks can be taken for the other's",
                        evidence: "host_id \(id) announced by \(([h] + others).sorted().joined(separator: ", "))",
                        fix: "give each host a unique host_id in /etc/lvm/lvmlocal.conf (local { host_id = N }), then restart its agent"))
            }
            let status = mine.map(\.status).max() ?? .pass
            var answered = false
            var hostID = v.agents[h]?.report.hostID.map { Int64($0) }
            if case .success(let c)? = answer?.result {
                answered = true
                hostID = Int64(c.host_id)
            }
            agents.append(
                ClusterAgentCheck(
                    host: h, liveness: liveness, last_seen_seconds_ago: age.map { ($0 * 10).rounded() / 10 }, answered: answered,
                    host_id: hostID, clock_skew_s: skew, clock_uncertainty_s: uncertainty,
                    round_trip_s: roundTrip.map(ClusterCheck.rounded), status: status))
            items += mine
        }
        let ordered = ClusterCheckItem.ordered(items)
        return CheckClusterResult(status: ordered.first?.status ?? .pass, items: ordered, agents: agents, clock: wallClock())
    }

    static func noAnswerItem(_ e: ServiceError, host h: String, seen: String, timeout: Duration) -> CheckItem {
        switch e.wireCode {
        case .unknownMethod?:
            return CheckItem(
                id: "check_unsupported", status: .warn, finding: "this agent has no check_host (an older version): its host is not checked",
                evidence: "\(e.code): \(e.message)", fix: "upgrade aos-agent on \(h), or run aos-agent check there")
        case .notAuthorized?:
            return CheckItem(
                id: "agent_refused", status: .fail, finding: "the agent refused the controller: it cannot command this host",
                evidence: "\(e.code): \(e.message)",
                fix: "the agent's [auth] controller_users must name the controller's broker user (docs/security.md)")
        case .timedOut?:
            return CheckItem(
                id: "agent_not_answering", status: .fail, finding: "no answer to check_host within \(formatSeconds(timeout)) (\(seen))",
                evidence: "\(e.code): \(e.message)",
                fix: "on \(h): journalctl -u aos-agent; a hung LVM or sanlock command shows in ps (D state)")
        case .agentUnavailable?:
            return CheckItem(
                id: "agent_not_answering", status: .fail, finding: "nothing listens on its queue (\(seen))",
                evidence: "\(e.code): \(e.message)",
                fix: "on \(h): systemctl status aos-agent (is it running and connected to this broker?)")
        default:
            return CheckItem(
                id: "check_failed", status: .fail, finding: "check_host failed: \(e.message)", evidence: e.code,
                fix: "see the agent's log on \(h)")
        }
    }
}

extension CheckClusterRequest: CheckedRequest {
    func check(_ method: String) throws(ServiceError) {
        if let h = host, h.isEmpty || h.utf8.count > 255 {
            throw Check.bad(method, "argument 'host' must be a host name (1 to 255 bytes)", "host")
        }
        if let t = timeout_s, !(1...ClusterCheck.maxTimeoutSeconds).contains(t) {
            throw Check.bad(method, "argument 'timeout_s' must be between 1 and \(ClusterCheck.maxTimeoutSeconds), got \(t)", "timeout_s")
        }
    }
}
