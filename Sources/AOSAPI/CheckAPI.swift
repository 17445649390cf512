import RPCWire

// The checks an operator runs at 3 a.m. (`aosctl doctor`, docs/operations.md "Doctor"): the
// agent's `check_host` (its preflight check run now, with its wall clock) and the controller's
// `check_cluster` (every agent's check, fanned out in parallel, plus what only the controller
// sees: agents down, host_id collisions, clock skew, its own configuration).

/// One item's outcome, ordered PASS < WARN < FAIL.
public enum CheckStatus: String, WireEnum, Hashable, Comparable {
    case pass = "PASS"
    case warn = "WARN"
    case fail = "FAIL"

    var rank: Int {
        switch self {
        case .pass: return 0
        case .warn: return 1
        case .fail: return 2
        }
    }

    public static func < (a: CheckStatus, b: CheckStatus) -> Bool { a.rank < b.rank }

    /// `aosctl doctor`'s exit status for a report whose worst item is this: 0, 8 or 9.
    public var exitStatus: CLIExitStatus {
        switch self {
        case .pass: return .ok
        case .warn: return .warnings
        case .fail: return .failures
        }
    }
}

/// One checked item (the agent's preflight items have the same fields; docs/operations.md).
public struct CheckItem: Codable, Sendable, Hashable {
    /// Stable name (`use_lvmlockd`, `clock_skew`, `agent_down`…): tests and operators match on it.
    public var id: String
    public var status: CheckStatus
    /// One line: what was found.
    public var finding: String
    /// Where it shows: `file:line: text`, `$ command`, a configuration option, a measurement.
    public var evidence: String
    /// What to change (empty on PASS).
    public var fix: String
    /// A FAIL that stops the agent at start (preflight items only).
    public var blocking: Bool

    public init(id: String, status: CheckStatus, finding: String, evidence: String = "", fix: String = "", blocking: Bool = false) {
        self.id = id
        self.status = status
        self.finding = finding
        self.evidence = evidence
        self.fix = fix
        self.blocking = blocking
    }
}

/// `check_host`: the agent's preflight check, run now (read-only), and its wall clock.
public struct CheckHostResult: APIResponse, Equatable {
    public var host: String
    public var host_id: Int
    /// `real`, or `simulated` (no host preparation to check).
    public var backend: String
    /// The worst item's status.
    public var status: CheckStatus
    public var items: [CheckItem]
    /// The agent's wall clock (unix seconds) when it composed this reply.
    public var clock: Double
    /// Seconds the check took on the agent (the caller subtracts it from the round trip).
    public var elapsed_s: Double

    public init(
        host: String, host_id: Int, backend: String, status: CheckStatus, items: [CheckItem], clock: Double, elapsed_s: Double
    ) {
        self.host = host
        self.host_id = host_id
        self.backend = backend
        self.status = status
        self.items = items
        self.clock = clock
        self.elapsed_s = elapsed_s
    }
}

/// `check_cluster`: `host` limits the check to one agent; `timeout_s` bounds each agent's
/// answer (default 30 s, 1…600; never past the caller's deadline).
public struct CheckClusterRequest: APIRequest, Equatable {
    public var host: String?
    public var timeout_s: Int64?

    public init(host: String? = nil, timeout_s: Int64? = nil) {
        self.host = host
        self.timeout_s = timeout_s
    }
}

/// One finding of `check_cluster`: an item and where it comes from.
public struct ClusterCheckItem: Codable, Sendable, Equatable {
    /// `agent` (a host's preflight item), `cluster` (what the controller sees of a host: down,
    /// not answering, host_id collision, clock skew), `controller` (its own configuration), or
    /// `caller` (added by aosctl: the broker and the controller as the caller reaches them).
    public var source: String
    /// The host it is about; null for the controller's own items.
    @AlwaysPresent public var host: String?
    public var id: String
    public var status: CheckStatus
    public var finding: String
    public var evidence: String
    public var fix: String

    /// Findings worst first; then by source (the caller's own, the controller's, the cluster's,
    /// the agents'), host and id; equal ones keep their order. A stable order for people and tests.
    public static func ordered(_ items: [ClusterCheckItem]) -> [ClusterCheckItem] {
        func rank(_ s: String) -> Int {
            switch s {
            case "caller": return 0
            case "controller": return 1
            case "cluster": return 2
            default: return 3
            }
        }
        return items.enumerated().sorted { a, b in
            let (x, y) = (a.element, b.element)
            if x.status != y.status { return x.status > y.status }
            if rank(x.source) != rank(y.source) { return rank(x.source) < rank(y.source) }
            if (x.host ?? "") != (y.host ?? "") { return (x.host ?? "") < (y.host ?? "") }
            if x.id != y.id { return x.id < y.id }
            return a.offset < b.offset
        }.map(\.element)
    }

    public init(source: String, host: String?, item: CheckItem) {
        self.source = source
        self.host = host
        self.id = item.id
        self.status = item.status
        self.finding = item.finding
        self.evidence = item.evidence
        self.fix = item.fix
    }
}

/// One agent in `check_cluster`.
public struct ClusterAgentCheck: Codable, Sendable, Equatable {
    public var host: String
    /// Liveness from its announcements when the check began.
    public var liveness: Liveness
    /// Seconds since its last announcement (null: never heard of).
    @AlwaysPresent public var last_seen_seconds_ago: Double?
    /// It answered `check_host`.
    public var answered: Bool
    @AlwaysPresent public var host_id: Int64?
    /// Its clock minus the controller's, corrected for the network's share of the round trip.
    @AlwaysPresent public var clock_skew_s: Double?
    /// How far off that estimate may be: half the round trip the check itself did not use.
    @AlwaysPresent public var clock_uncertainty_s: Double?
    @AlwaysPresent public var round_trip_s: Double?
    /// The worst of its items.
    public var status: CheckStatus

    public init(
        host: String, liveness: Liveness, last_seen_seconds_ago: Double?, answered: Bool, host_id: Int64?,
        clock_skew_s: Double?, clock_uncertainty_s: Double?, round_trip_s: Double?, status: CheckStatus
    ) {
        self.host = host
        self.liveness = liveness
        self.last_seen_seconds_ago = last_seen_seconds_ago
        self.answered = answered
        self.host_id = host_id
        self.clock_skew_s = clock_skew_s
        self.clock_uncertainty_s = clock_uncertainty_s
        self.round_trip_s = round_trip_s
        self.status = status
    }
}

/// `check_cluster`'s result: findings worst first (then controller, cluster, agents; host; id).
public struct CheckClusterResult: APIResponse, Equatable {
    /// The worst finding's status.
    public var status: CheckStatus
    public var items: [ClusterCheckItem]
    /// The agents asked or found down, by host.
    public var agents: [ClusterAgentCheck]
    /// The controller's wall clock (unix seconds) when it answered.
    public var clock: Double

    public init(status: CheckStatus, items: [ClusterCheckItem], agents: [ClusterAgentCheck], clock: Double) {
        self.status = status
        self.items = items
        self.agents = agents
        self.clock = clock
    }
}
