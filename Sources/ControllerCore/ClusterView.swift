import AOSAPI
import RPCWire

/// How recently an agent announced itself (the wire's `status`, AOSAPI).
public typealias Liveness = AOSAPI.Liveness

/// Activation mode of an LV on one host (the agents' `mode`, AOSAPI).
public typealias ActivationMode = LVMode

/// One LV's activation on one host.
public struct Activation: Sendable, Hashable {
    public var host: String
    public var mode: ActivationMode
    public init(host: String, mode: ActivationMode) { self.host = host; self.mode = mode }
}

/// `vg/name` of an LV.
public struct LVKey: Sendable, Hashable, Comparable, CustomStringConvertible {
    public var vg: String
    public var name: String
    public init(vg: String, name: String) { self.vg = vg; self.name = name }
    public var description: String { "\(vg)/\(name)" }
    public static func < (a: LVKey, b: LVKey) -> Bool { (a.vg, a.name) < (b.vg, b.name) }
}

/// An agent's announcement (its `health()` report, `AgentHealth`), as the view keeps it.
public struct AgentReport: Sendable, Equatable {
    public var host: String
    public var hostID: Int?
    public var version: String?
    public var ready: Bool
    /// The agent run that sent it (a new one after every agent start).
    public var instanceID: String?
    /// The agent's own per-VG entries (lockspace state, problem, fence record, hint).
    public var vgs: [String: VGHealth]
    public var activeLVs: [LVKey: ActivationMode]
    public var restoreFailures: [RestoreFailureInfo]

    public init(
        host: String, hostID: Int? = nil, version: String? = nil, ready: Bool = true, instanceID: String? = nil,
        vgs: [String: VGHealth] = [:], activeLVs: [LVKey: ActivationMode] = [:],
        restoreFailures: [RestoreFailureInfo] = []
    ) {
        self.host = host
        self.hostID = hostID
        self.version = version
        self.ready = ready
        self.instanceID = instanceID
        self.vgs = vgs
        self.activeLVs = activeLVs
        self.restoreFailures = restoreFailures
    }

    /// A report with only lockspace states per VG (tests, and the view's own bookkeeping).
    public init(
        host: String, hostID: Int? = nil, ready: Bool = true, lockspaces: [String: LockspaceState],
        activeLVs: [LVKey: ActivationMode] = [:]
    ) {
        self.init(
            host: host, hostID: hostID, ready: ready, vgs: lockspaces.mapValues { VGHealth(lockspace: $0) },
            activeLVs: activeLVs)
    }

    /// The report of an announcement. Refuses a report without a host name (`invalid_argument`).
    public init(health h: AgentHealth) throws(ServiceError) {
        guard !h.host.isEmpty else {
            throw ServiceError(.invalidArgument, "agent_announce: the report has an empty 'host'", details: ["argument": "report"])
        }
        var active: [LVKey: ActivationMode] = [:]
        for lv in h.active_lvs { active[LVKey(vg: lv.vg, name: lv.name)] = lv.mode }
        self.init(
            host: h.host, hostID: h.host_id, version: h.version, ready: h.ready, instanceID: h.instance_id,
            vgs: h.vgs, activeLVs: active, restoreFailures: h.restore_failures)
    }

    /// Lockspace state per VG.
    public var lockspaces: [String: LockspaceState] { vgs.mapValues(\.lockspace) }
}

/// Liveness thresholds, in seconds.
public struct LivenessPolicy: Sendable, Equatable {
    public var staleAfter: Duration
    public var downAfter: Duration
    public init(staleAfter: Duration, downAfter: Duration) {
        self.staleAfter = staleAfter
        self.downAfter = max(downAfter, staleAfter)
    }
}

/// Everything the controller knows about the cluster, rebuilt from announcements only.
/// A pure value: the caller supplies the time, so tests drive it without a clock.
public struct ClusterView: Sendable {
    public struct Agent: Sendable {
        public var report: AgentReport
        public var lastSeen: ContinuousClock.Instant
        /// The agent's `sent_at` (unix seconds) of the last report taken.
        public var sentAt: Double?
        public var announcements: Int
    }

    public let policy: LivenessPolicy
    /// When this view started: a host never heard of counts as last seen then, so right after
    /// a controller (re)start requests are still tried until the agents have announced.
    public let startedAt: ContinuousClock.Instant
    public private(set) var agents: [String: Agent] = [:]
    /// Hosts by the sanlock host_id they last announced, kept up to date by `apply`, and the
    /// ids announced by more than one host: collision checks look at those only, so they cost
    /// nothing per announcement however many hosts there are.
    private var hostsByID: [Int: Set<String>] = [:]
    private var sharedIDs: Set<Int> = []
    /// Activations the controller made itself, so routing sees them before the agent's
    /// announcements do. An announcement in flight while the change ran (composed before it,
    /// received after it) must not undo it: an entry goes when a report agrees with it, when the
    /// agent restarts (its report is all there is), or at the `pendingAnnouncements`-th report
    /// after it (by then the agent announced after the change: it announces at every change).
    private var pending: [String: [LVKey: Pending]] = [:]
    private struct Pending: Sendable {
        var mode: ActivationMode?
        /// The host's announcement count when the change was recorded.
        var announcementsAtRecord: Int
    }
    static let pendingAnnouncements = 3

    public init(policy: LivenessPolicy, startedAt: ContinuousClock.Instant) {
        self.policy = policy
        self.startedAt = startedAt
    }

    // MARK: Updates

    /// Takes an announcement. Returns false (and ignores it) when it is older than the one held
    /// from the same agent run; a report from a new run (another `instance_id`: the agent
    /// restarted) always replaces the old one, whatever the old one's `sent_at` said.
    @discardableResult
    public mutating func apply(_ report: AgentReport, sentAt: Double?, receivedAt: ContinuousClock.Instant) -> Bool {
        if let old = agents[report.host], let oldSent = old.sentAt, let sentAt, sentAt < oldSent,
            old.report.instanceID == report.instanceID
        {
            return false
        }
        let previous = agents[report.host]
        let count = (previous?.announcements ?? 0) + 1
        if previous?.report.instanceID != report.instanceID {
            pending[report.host] = nil
        } else {
            prunePending(report, count: count)
        }
        if previous?.report.hostID != report.hostID {
            if let id = previous?.report.hostID { unindex(report.host, id: id) }
            if let id = report.hostID { index(report.host, id: id) }
        }
        agents[report.host] = Agent(report: report, lastSeen: receivedAt, sentAt: sentAt, announcements: count)
        return true
    }

    /// Drops the controller's own changes for `report.host` that the report agrees with or that
    /// `pendingAnnouncements` reports have outlived (`count`: the host's announcement count
    /// with this one).
    private mutating func prunePending(_ report: AgentReport, count: Int) {
        guard let entries = pending[report.host] else { return }
        let kept = entries.filter { lv, p in
            report.activeLVs[lv] != p.mode && count - p.announcementsAtRecord < Self.pendingAnnouncements
        }
        pending[report.host] = kept.isEmpty ? nil : kept
    }

    /// What a heartbeat (`agent_heartbeat`) did to the view.
    public enum HeartbeatOutcome: Sendable, Equatable {
        /// It named the agent run and full report held: the host is seen now, and the
        /// heartbeat counts as a repeat of that report.
        case taken
        /// The view holds another report (or none) for that run: liveness was refreshed only
        /// if the run is the one held; the caller should fetch the agent's `health()`.
        case needsReport
    }

    /// Takes a heartbeat: `instance` (the agent run) says its report is unchanged since its
    /// full announcement sent at `reportSentAt`. O(1) plus the host's pending entries.
    public mutating func heartbeat(
        host: String, instance: String, reportSentAt: Double, receivedAt: ContinuousClock.Instant
    ) -> HeartbeatOutcome {
        guard var agent = agents[host], agent.report.instanceID == instance else { return .needsReport }
        // The run is the one held: it is alive, whatever report it means.
        agent.lastSeen = max(agent.lastSeen, receivedAt)
        let matches = agent.sentAt == reportSentAt
        if matches { agent.announcements += 1 }
        agents[host] = agent
        if matches {
            prunePending(agent.report, count: agent.announcements)
            return .taken
        }
        // A heartbeat overtaken by a newer full announcement of the same run: nothing to fetch.
        if let held = agent.sentAt, reportSentAt < held { return .taken }
        return .needsReport
    }

    private mutating func index(_ host: String, id: Int) {
        hostsByID[id, default: []].insert(host)
        if hostsByID[id, default: []].count > 1 { sharedIDs.insert(id) }
    }

    private mutating func unindex(_ host: String, id: Int) {
        hostsByID[id]?.remove(host)
        let count = hostsByID[id]?.count ?? 0
        if count == 0 { hostsByID[id] = nil }
        if count < 2 { sharedIDs.remove(id) }
    }

    /// Records an activation change the controller just made through an agent.
    public mutating func recordActivation(_ lv: LVKey, host: String, mode: ActivationMode?) {
        pending[host, default: [:]][lv] = Pending(mode: mode, announcementsAtRecord: agents[host]?.announcements ?? 0)
    }

    /// Records that an LV no longer exists (deleted): it is active nowhere.
    public mutating func recordDeleted(_ lv: LVKey) {
        for host in Set(agents.keys).union(pending.keys) where activeMode(of: lv, on: host) != nil {
            recordActivation(lv, host: host, mode: nil)
        }
    }

    /// The controller itself was cut off from the broker from `lost` to `back`: it could hear
    /// no one, so that silence says nothing about the agents. Each agent that was not down
    /// when the outage began gets the outage's length added to its last-seen time (never past
    /// `back`); one already down stays down.
    public mutating func discountOutage(from lost: ContinuousClock.Instant, to back: ContinuousClock.Instant) {
        guard back > lost else { return }
        for (host, agent) in agents where lost - agent.lastSeen < policy.downAfter {
            agents[host]?.lastSeen = min(back, agent.lastSeen + (back - lost))
        }
    }

    /// Any successful reply from an agent proves it alive.
    public mutating func touch(_ host: String, at now: ContinuousClock.Instant) {
        if agents[host] != nil { agents[host]!.lastSeen = max(agents[host]!.lastSeen, now) }
    }

    // MARK: Queries

    public func liveness(of host: String, now: ContinuousClock.Instant) -> Liveness {
        // A host never heard of is "stale" (worth a try) until down_after past the view's start.
        let age = now - (agents[host]?.lastSeen ?? startedAt)
        if age >= policy.downAfter { return .down }
        if age >= policy.staleAfter || agents[host] == nil { return .stale }
        return .alive
    }

    public func isKnown(_ host: String) -> Bool { agents[host] != nil }

    /// Still inside the start-up window in which hosts may not have announced yet.
    public func warmingUp(now: ContinuousClock.Instant) -> Bool { now - startedAt < policy.staleAfter }

    private func activeMode(of lv: LVKey, on host: String) -> ActivationMode? {
        if let p = pending[host]?[lv] { return p.mode }
        return agents[host]?.report.activeLVs[lv]
    }

    /// Where `lv` is active, from the latest reports plus the controller's own changes, sorted by host.
    public func activations(of lv: LVKey) -> [Activation] {
        let hosts = Set(agents.keys).union(pending.keys)
        return hosts.sorted().compactMap { h in activeMode(of: lv, on: h).map { Activation(host: h, mode: $0) } }
    }

    /// The cluster-wide activation map: every LV active somewhere, in `vg` (or every VG).
    public func activationMap(vg: String? = nil) -> [LVKey: [Activation]] {
        var keys = Set<LVKey>()
        for a in agents.values { keys.formUnion(a.report.activeLVs.keys) }
        for p in pending.values { keys.formUnion(p.keys) }
        var out: [LVKey: [Activation]] = [:]
        for k in keys where vg == nil || k.vg == vg {
            let acts = activations(of: k)
            if !acts.isEmpty { out[k] = acts }
        }
        return out
    }

    /// VG names any agent reports.
    public var knownVGs: [String] {
        Set(agents.values.flatMap { $0.report.vgs.keys }).sorted()
    }

    public func lockspace(of host: String, vg: String) -> LockspaceState? { agents[host]?.report.vgs[vg]?.lockspace }

    /// Hosts (not down) whose lockspace for `vg` is started and that are ready, best first:
    /// alive before stale, then `preferred` order, then by name.
    public func candidates(vg: String, preferred: [String], now: ContinuousClock.Instant) -> [String] {
        let eligible = agents.values.filter { a in
            a.report.ready && a.report.vgs[vg]?.lockspace == .started && liveness(of: a.report.host, now: now) != .down
        }.map(\.report.host)
        func rank(_ h: String) -> (Int, Int, String) {
            (liveness(of: h, now: now) == .alive ? 0 : 1, preferred.firstIndex(of: h) ?? preferred.count, h)
        }
        return eligible.sorted { rank($0) < rank($1) }
    }

    /// Groups of two or more hosts (none of them down) that announce the same sanlock host_id.
    /// Looks only at ids more than one host has announced (kept by `apply`): O(colliding hosts).
    public func hostIDConflicts(now: ContinuousClock.Instant) -> [Int: [String]] {
        var out: [Int: [String]] = [:]
        for id in sharedIDs {
            let live = (hostsByID[id] ?? []).filter { liveness(of: $0, now: now) != .down }
            if live.count > 1 { out[id] = live.sorted() }
        }
        return out
    }
}
