import AOSAPI
import Logging
import RPCWire
import Synchronization

/// Remembers the liveness last logged per host and the host_id collisions last reported, and
/// logs the changes: a host going stale (warning), down (error) or alive again (notice), and
/// every collision (error, repeated once a minute while it lasts).
///
/// Lock order: the controller's view first, then this monitor.
final class LivenessMonitor: Sendable {
    struct State {
        var liveness: [String: Liveness] = [:]
        var reportedConflicts: [Int: [String]] = [:]
        var lastConflictLog: ContinuousClock.Instant?
        /// Hosts whose `health()` the controller is fetching after a heartbeat it could not
        /// place (one fetch per host at a time, however many heartbeats arrive meanwhile).
        var fetching: Set<String> = []

        /// Records `state` for `host`; the transition when it differs from the last one.
        mutating func note(_ host: String, _ state: Liveness) -> Change? {
            guard liveness[host] != state else { return nil }
            defer { liveness[host] = state }
            return Change(host: host, old: liveness[host], new: state)
        }

        /// Whether to log `conflicts` now: when they changed, and once a minute while a
        /// collision persists (it must not go unnoticed).
        mutating func noteConflicts(_ conflicts: [Int: [String]], at t: ContinuousClock.Instant) -> Bool {
            if conflicts != reportedConflicts {
                reportedConflicts = conflicts
                lastConflictLog = t
                return !conflicts.isEmpty
            }
            if !conflicts.isEmpty, let last = lastConflictLog, t - last >= .seconds(60) {
                lastConflictLog = t
                return true
            }
            return false
        }
    }

    struct Change: Equatable {
        var host: String
        var old: Liveness?
        var new: Liveness
    }

    let state = Mutex(State())
    let logger: Logger

    init(logger: Logger) { self.logger = logger }

    func log(_ changes: [Change]) {
        for c in changes {
            switch c.new {
            case .alive where c.old != nil: logger.notice("agent is alive again", metadata: ["host": "\(c.host)"])
            case .alive: break
            case .stale: logger.warning("agent is late with its announcement (stale)", metadata: ["host": "\(c.host)"])
            case .down:
                logger.error(
                    "agent is down: no announcement within agent_down_after; requests to it fail with agent_unavailable",
                    metadata: ["host": "\(c.host)"])
            }
        }
    }

    func log(conflicts: [Int: [String]]) {
        for (id, hosts) in conflicts.sorted(by: { $0.key < $1.key }) {
            logger.error(
                "HOST_ID COLLISION: several hosts announce the same sanlock host_id; sanlock leases will fight. Give each host a unique host_id in /etc/lvm/lvmlocal.conf",
                metadata: ["host_id": "\(id)", "hosts": "\(hosts.joined(separator: ","))"])
        }
    }
}

extension Controller {
    /// `agent_announce`: takes an agent's report into the view. The clock is checked before
    /// the report's shape, so a forged or replayed announcement is refused (and logged) as such
    /// whatever else it holds.
    func announce(_ raw: [String: JSONValue]) throws(ServiceError) {
        try checkClock(sentAt: raw["sent_at"]?.doubleValue, host: raw["report"]?["host"]?.stringValue)
        let request = try AgentAnnounceRequest.decode(raw, method: ControllerMethod.agentAnnounce.rawValue)
        take(try AgentReport(health: request.report), sentAt: request.sent_at)
    }

    /// `agent_heartbeat`: the agent is alive and its report unchanged since the full
    /// announcement it names. When the view holds that report, this is all there is to do
    /// (O(1), no report to decode: issue 17). Otherwise (this controller just started, or missed
    /// that announcement, or the agent restarted) it fetches the agent's `health()` now and
    /// takes it as that announcement, instead of waiting up to `full_announce_every`
    /// intervals for the next full one.
    func heartbeat(_ raw: [String: JSONValue]) async throws(ServiceError) {
        try checkClock(sentAt: raw["sent_at"]?.doubleValue, host: raw["host"]?.stringValue)
        let hb = try AgentHeartbeatRequest.decode(raw, method: ControllerMethod.agentHeartbeat.rawValue)
        // It becomes the held report's sent_at (compared, ordered): a finite number only.
        guard hb.report_sent_at.isFinite else {
            throw ServiceError(
                .invalidArgument, "agent_heartbeat: report_sent_at must be a finite number",
                details: ["argument": "report_sent_at", "method": .string(ControllerMethod.agentHeartbeat.rawValue)])
        }
        let t = now()
        let (outcome, change) = view.withLock { v in
            let outcome = v.heartbeat(host: hb.host, instance: hb.instance_id, reportSentAt: hb.report_sent_at, receivedAt: t)
            let change = v.isKnown(hb.host) ? monitor.state.withLock { $0.note(hb.host, v.liveness(of: hb.host, now: t)) } : nil
            return (outcome, change)
        }
        if let change { monitor.log([change]) }
        guard outcome == .needsReport else { return }
        guard monitor.state.withLock({ $0.fetching.insert(hb.host).inserted }) else { return }
        defer { _ = monitor.state.withLock { $0.fetching.remove(hb.host) } }
        do {
            let reply = try await caller.call(
                host: hb.host, method: AgentMethod.health.rawValue, args: [:], timeout: .seconds(5), instance: hb.instance_id)
            let health = try agentResult(AgentHealth.self, reply, host: hb.host, method: .health)
            guard health.host == hb.host, health.instance_id == hb.instance_id else {
                logger.warning(
                    "agent_heartbeat: the agent's health() names another host or run; ignored",
                    metadata: ["host": "\(hb.host)", "reported_host": "\(JSONValue.printable(health.host, limit: 255))"])
                return
            }
            take(try AgentReport(health: health), sentAt: hb.report_sent_at)
        } catch {
            logger.info(
                "agent_heartbeat: could not fetch the agent's report; the next heartbeat tries again",
                metadata: ["host": "\(hb.host)", "error": "\(error)"])
        }
    }

    /// Takes a report (from an announcement, or fetched after a heartbeat) into the view and
    /// logs what it changed.
    func take(_ report: AgentReport, sentAt: Double) {
        let t = now()
        // O(1) in the number of hosts: only this host's liveness is looked at here, and the
        // (indexed) host_id collisions only when this announcement can change them (a new
        // host, another host_id, back from down); every other change is found by the
        // service's 1 s `checkLiveness` timer.
        var restartedCalls: [AgentCallWatch.Waiter] = []
        let (isNew, taken, change, logConflicts) = view.withLock { v in
            let isNew = !v.isKnown(report.host)
            let previousID = v.agents[report.host]?.report.hostID
            let previousRun = v.agents[report.host]?.report.instanceID
            guard v.apply(report, sentAt: sentAt, receivedAt: t) else {
                return (isNew, false, LivenessMonitor.Change?.none, [Int: [String]]?.none)
            }
            // A new run: the calls waiting on the old one cannot be answered (agent_restarted).
            if let run = report.instanceID, previousRun != run {
                restartedCalls = watch.takeOut(report.host) { $0.instance.map { $0 != run } ?? false }
            }
            let state = v.liveness(of: report.host, now: t)
            return monitor.state.withLock { m in
                let change = m.note(report.host, state)
                guard isNew || previousID != report.hostID || change?.old == .down else {
                    return (isNew, true, change, nil)
                }
                let conflicts = v.hostIDConflicts(now: t)
                return (isNew, true, change, m.noteConflicts(conflicts, at: t) ? conflicts : nil)
            }
        }
        guard taken else { return }
        if let run = report.instanceID {
            for w in restartedCalls { endCall(w, restartedTo: run, at: t) }
        }
        if isNew {
            logger.info(
                "agent announced itself",
                metadata: [
                    "host": "\(report.host)", "host_id": "\(report.hostID.map(String.init) ?? "?")",
                    "version": "\(report.version ?? "?")", "ready": "\(report.ready)",
                ])
        }
        if let change { monitor.log([change]) }
        if let logConflicts { monitor.log(conflicts: logConflicts) }
    }

    /// Refuses a `sent_at` (unix seconds) further than `maxClockSkew` from our clock: a report
    /// far from it could be a forged or replayed one pinning a host's state.
    func checkClock(sentAt: Double?, host: String?) throws(ServiceError) {
        guard let sentAt else { return }  // missing or not a number: the request's decoding says so
        let skew = sentAt - wallClock()
        let allowed = Double(settings.maxClockSkew.components.seconds)
        guard sentAt.isFinite, abs(skew) <= allowed else {
            let from = host.map { " from \(JSONValue.printable($0, limit: 255))" } ?? ""
            var details: [String: JSONValue] = ["argument": "sent_at"]
            if let host { details["host"] = .string(host) }
            throw ServiceError(
                .invalidArgument,
                "agent_announce\(from): sent_at is \(abs(skew) < 1e9 ? "\(Int(skew)) s" : "years") off from the controller's clock (allowed: ±\(Int(allowed)) s); check NTP on both hosts",
                details: details)
        }
    }

    /// Logs liveness transitions and host_id collisions: one pass over the hosts, called
    /// every second by the service (announcements only look at their own host).
    public func checkLiveness() {
        let t = now()
        let (changes, logConflicts) = view.withLock { v in
            let conflicts = v.hostIDConflicts(now: t)
            return monitor.state.withLock { m -> ([LivenessMonitor.Change], [Int: [String]]?) in
                let changes = v.agents.keys.compactMap { m.note($0, v.liveness(of: $0, now: t)) }
                return (changes, m.noteConflicts(conflicts, at: t) ? conflicts : nil)
            }
        }
        monitor.log(changes.sorted { $0.host < $1.host })
        if let logConflicts { monitor.log(conflicts: logConflicts) }
    }
}

extension Controller {
    /// The controller's own broker connection was down from `lost` to `back` (ControllerService):
    /// the agents could not be heard, so that time does not count against them (without this,
    /// every agent was "down" right after a broker restart and calls were refused as
    /// agent_unavailable until each announced again).
    public func brokerOutage(from lost: ContinuousClock.Instant, to back: ContinuousClock.Instant) {
        view.withLock { $0.discountOutage(from: lost, to: back) }
        logger.info(
            "broker connection back: the agents' silence while it was away does not count against them",
            metadata: ["outage_s": "\(formatSeconds(back - lost))"])
    }
}
