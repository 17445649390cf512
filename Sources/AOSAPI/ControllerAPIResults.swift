import RPCWire

// The controller's results (docs/rpc-api.md, "Methods"). Property names are the wire keys;
// the Cinder driver (deploy/cinder) and aosctl read them, so they never change within 1.x.
// Optional properties are left out when nil unless the type says otherwise.

/// How recently an agent announced itself (`status` in `list_agents` and `pool_stats`).
public enum Liveness: String, WireEnum, Comparable {
    /// Announced within `agent_stale_after`: gets requests.
    case alive
    /// Late, but not yet `agent_down_after`: still gets requests sent to it by name, and is
    /// used for "any host" requests only when no alive agent qualifies.
    case stale
    /// Silent for `agent_down_after` or longer: requests to it fail at once with `agent_unavailable`.
    case down

    private var rank: Int { self == .alive ? 0 : self == .stale ? 1 : 2 }
    public static func < (a: Liveness, b: Liveness) -> Bool { a.rank < b.rank }
}

/// One host where a volume is active, and how (`active_on` entries).
public struct ActiveOn: Codable, Sendable, Equatable {
    public var host: String
    public var mode: LVMode

    public init(host: String, mode: LVMode) {
        self.host = host
        self.mode = mode
    }
}

/// `create_volume` → `{vg, name, size_bytes, changed, host}` (`host`: the agent that ran lvcreate).
public struct CreateVolumeResult: APIResponse, Equatable {
    public var vg: String
    public var name: String
    public var size_bytes: Int64
    public var changed: Bool
    public var host: String

    public init(vg: String, name: String, size_bytes: Int64, changed: Bool, host: String) {
        self.vg = vg
        self.name = name
        self.size_bytes = size_bytes
        self.changed = changed
        self.host = host
    }
}

/// `extend_volume` → `{vg, name, size_bytes, changed, host, refreshed_hosts, active_on}`.
public struct ExtendVolumeResult: APIResponse, Equatable {
    public var vg: String
    public var name: String
    public var size_bytes: Int64
    public var changed: Bool
    public var host: String
    public var refreshed_hosts: [String]
    public var active_on: [ActiveOn]

    public init(
        vg: String, name: String, size_bytes: Int64, changed: Bool, host: String,
        refreshed_hosts: [String], active_on: [ActiveOn]
    ) {
        self.vg = vg
        self.name = name
        self.size_bytes = size_bytes
        self.changed = changed
        self.host = host
        self.refreshed_hosts = refreshed_hosts
        self.active_on = active_on
    }
}

/// `delete_volume` → `{vg, name, changed, host, job}`: `job` is the agent's wipe of the LV
/// (null when it was removed at once); the volume is gone under its name either way.
public struct DeleteVolumeResult: APIResponse, Equatable {
    public var vg: String
    public var name: String
    public var changed: Bool
    public var host: String
    @AlwaysPresent public var job: JobInfo?

    public init(vg: String, name: String, changed: Bool, host: String, job: JobInfo? = nil) {
        self.vg = vg
        self.name = name
        self.changed = changed
        self.host = host
        self.job = job
    }
}

/// `activate_volume` → `{vg, name, host, mode, changed, active_on}`.
public struct ActivateVolumeResult: APIResponse, Equatable {
    public var vg: String
    public var name: String
    public var host: String
    public var mode: LVMode
    public var changed: Bool
    public var active_on: [ActiveOn]

    public init(vg: String, name: String, host: String, mode: LVMode, changed: Bool, active_on: [ActiveOn]) {
        self.vg = vg
        self.name = name
        self.host = host
        self.mode = mode
        self.changed = changed
        self.active_on = active_on
    }
}

/// `deactivate_volume` → `{vg, name, host, changed, active_on}`, plus `released: true` and
/// `released_by` when `host`'s agent was down: the deactivation was recorded in the VG (by the
/// agent `released_by`), not executed; that host's agent drops the activation when it returns.
public struct DeactivateVolumeResult: APIResponse, Equatable {
    public var vg: String
    public var name: String
    public var host: String
    public var changed: Bool
    public var active_on: [ActiveOn]
    public var released: Bool?
    public var released_by: String?

    public init(
        vg: String, name: String, host: String, changed: Bool, active_on: [ActiveOn], released: Bool? = nil,
        released_by: String? = nil
    ) {
        self.vg = vg
        self.name = name
        self.host = host
        self.changed = changed
        self.active_on = active_on
        self.released = released
        self.released_by = released_by
    }
}

/// One volume: LVM's fields from a routed agent (left out when the agent did not report them),
/// `active_on` from the cluster-wide activation map. `get_volume` (with `source_host`, the
/// agent asked) and the entries of `list_volumes` (without).
public struct VolumeInfo: APIResponse, Equatable {
    public var vg: String
    public var name: String
    public var size_bytes: Int64?
    public var uuid: String?
    public var attr: String?
    public var active_on: [ActiveOn]
    public var source_host: String?

    public init(
        vg: String, name: String, size_bytes: Int64? = nil, uuid: String? = nil, attr: String? = nil,
        active_on: [ActiveOn], source_host: String? = nil
    ) {
        self.vg = vg
        self.name = name
        self.size_bytes = size_bytes
        self.uuid = uuid
        self.attr = attr
        self.active_on = active_on
        self.source_host = source_host
    }
}

public typealias GetVolumeResult = VolumeInfo

/// `list_volumes` → `{vg, volumes, source_host}`, volumes sorted by name.
public struct ListVolumesResult: APIResponse, Equatable {
    public var vg: String
    public var volumes: [VolumeInfo]
    public var source_host: String

    public init(vg: String, volumes: [VolumeInfo], source_host: String) {
        self.vg = vg
        self.volumes = volumes
        self.source_host = source_host
    }
}

/// An error carried inside a result instead of failing the call (`pool_stats.error`).
public struct ErrorSummary: Codable, Sendable, Equatable {
    public var code: String
    public var message: String

    public init(code: String, message: String) {
        self.code = code
        self.message = message
    }
}

/// `pool_stats` → capacity for the Cinder scheduler and each host's lockspace health. When no
/// live agent can answer, the call still succeeds: `available: false`, zero capacity, `error`.
public struct PoolStatsResult: APIResponse, Equatable {
    /// One host's view of the VG.
    public struct Host: Codable, Sendable, Equatable {
        public var status: Liveness
        /// The agent's lockspace state for the VG ("started", "lost"…), "not_served" without one.
        public var lockspace: String
        /// With a lost lockspace: the `aosctl recover` command to run.
        public var hint: String?

        public init(status: Liveness, lockspace: String, hint: String? = nil) {
            self.status = status
            self.lockspace = lockspace
            self.hint = hint
        }
    }

    public var vg: String
    public var total_bytes: Int64
    public var free_bytes: Int64
    public var total_capacity_gb: Double
    public var free_capacity_gb: Double
    public var lv_count: Int64
    public var active_lv_count: Int64
    /// Bytes of deleted volumes still waiting for their wipe: counted in the used space (the
    /// extents are not free until the wipe removed the LV), shown apart for the scheduler.
    public var wiping_bytes: Int64
    public var wiping_lv_count: Int64
    public var available: Bool
    public var source_host: String?
    public var hosts: [String: Host]
    public var error: ErrorSummary?
    /// Warnings an operator should act on (e.g. `volume_clear = none`).
    public var warnings: [String]

    public init(
        vg: String, total_bytes: Int64, free_bytes: Int64, lv_count: Int64, active_lv_count: Int64,
        available: Bool, source_host: String?, hosts: [String: Host], error: ErrorSummary? = nil,
        wiping_bytes: Int64 = 0, wiping_lv_count: Int64 = 0, warnings: [String] = []
    ) {
        self.wiping_bytes = wiping_bytes
        self.wiping_lv_count = wiping_lv_count
        self.warnings = warnings
        self.vg = vg
        self.total_bytes = total_bytes
        self.free_bytes = free_bytes
        self.total_capacity_gb = Double(total_bytes) / Double(1 << 30)
        self.free_capacity_gb = Double(free_bytes) / Double(1 << 30)
        self.lv_count = lv_count
        self.active_lv_count = active_lv_count
        self.available = available
        self.source_host = source_host
        self.hosts = hosts
        self.error = error
    }
}

/// `list_agents` → every agent the controller hears from, and the sanlock host_id collisions.
public struct ListAgentsResult: APIResponse, Equatable {
    /// One agent. `host_id` and `version` are always present (`null` when the agent did not say).
    public struct Agent: Codable, Sendable, Equatable {
        public var host: String
        public var status: Liveness
        public var last_seen_seconds_ago: Double
        public var host_id: Int64?
        public var version: String?
        public var ready: Bool
        /// The agent's own per-VG entries (`lockspace`, `problem`, `fenced`, `hint`), from its report.
        public var vgs: [String: VGHealth]
        public var active_lvs: [ActiveLV]
        /// The agent's `restore_failures`, from its report.
        public var restore_failures: [RestoreFailureInfo]
        public var host_id_conflict: Bool
        /// The other hosts announcing the same host_id (only with a conflict).
        public var host_id_conflict_with: [String]?

        public init(
            host: String, status: Liveness, last_seen_seconds_ago: Double, host_id: Int64?, version: String?,
            ready: Bool, vgs: [String: VGHealth], active_lvs: [ActiveLV], restore_failures: [RestoreFailureInfo],
            host_id_conflict: Bool, host_id_conflict_with: [String]? = nil
        ) {
            self.host = host
            self.status = status
            self.last_seen_seconds_ago = last_seen_seconds_ago
            self.host_id = host_id
            self.version = version
            self.ready = ready
            self.vgs = vgs
            self.active_lvs = active_lvs
            self.restore_failures = restore_failures
            self.host_id_conflict = host_id_conflict
            self.host_id_conflict_with = host_id_conflict_with
        }

        enum CodingKeys: String, CodingKey {
            case host, status, last_seen_seconds_ago, host_id, version, ready, vgs, active_lvs, restore_failures
            case host_id_conflict, host_id_conflict_with
        }

        public init(from decoder: any Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            host = try c.decode(String.self, forKey: .host)
            status = try c.decode(Liveness.self, forKey: .status)
            last_seen_seconds_ago = try c.decode(Double.self, forKey: .last_seen_seconds_ago)
            host_id = try c.decodeIfPresent(Int64.self, forKey: .host_id)
            version = try c.decodeIfPresent(String.self, forKey: .version)
            ready = try c.decode(Bool.self, forKey: .ready)
            vgs = try c.decodeIfPresent([String: VGHealth].self, forKey: .vgs) ?? [:]
            active_lvs = try c.decodeIfPresent([ActiveLV].self, forKey: .active_lvs) ?? []
            restore_failures = try c.decodeIfPresent([RestoreFailureInfo].self, forKey: .restore_failures) ?? []
            host_id_conflict = try c.decode(Bool.self, forKey: .host_id_conflict)
            host_id_conflict_with = try c.decodeIfPresent([String].self, forKey: .host_id_conflict_with)
        }

        public func encode(to encoder: any Encoder) throws {
            var c = encoder.container(keyedBy: CodingKeys.self)
            try c.encode(host, forKey: .host)
            try c.encode(status, forKey: .status)
            try c.encode(last_seen_seconds_ago, forKey: .last_seen_seconds_ago)
            try c.encode(host_id, forKey: .host_id)  // null when unknown
            try c.encode(version, forKey: .version)  // null when unknown
            try c.encode(ready, forKey: .ready)
            try c.encode(vgs, forKey: .vgs)
            try c.encode(active_lvs, forKey: .active_lvs)
            try c.encode(restore_failures, forKey: .restore_failures)
            try c.encode(host_id_conflict, forKey: .host_id_conflict)
            try c.encodeIfPresent(host_id_conflict_with, forKey: .host_id_conflict_with)
        }
    }

    /// Two or more live hosts announcing the same sanlock host_id.
    public struct HostIDConflict: Codable, Sendable, Equatable {
        public var host_id: Int64
        public var hosts: [String]

        public init(host_id: Int64, hosts: [String]) {
            self.host_id = host_id
            self.hosts = hosts
        }
    }

    public var agents: [Agent]
    public var host_id_conflicts: [HostIDConflict]

    public init(agents: [Agent], host_id_conflicts: [HostIDConflict]) {
        self.agents = agents
        self.host_id_conflicts = host_id_conflicts
    }
}

/// `copy_volume` → `{vg, source, target, host, changed, job}`.
public struct CopyVolumeResult: APIResponse, Equatable {
    public var vg: String
    public var source: String
    public var target: String
    public var host: String
    public var changed: Bool
    public var job: JobInfo

    public init(vg: String, source: String, target: String, host: String, changed: Bool, job: JobInfo) {
        self.vg = vg
        self.source = source
        self.target = target
        self.host = host
        self.changed = changed
        self.job = job
    }
}

/// `list_jobs` (controller) → every job of the agents asked, newest first, each host's counts,
/// and the hosts that did not answer (their jobs are missing from the list, not finished).
public struct ClusterJobsResult: APIResponse, Equatable {
    public struct HostCounts: Codable, Sendable, Equatable {
        public var queued: Int64
        public var running: Int64
        public var failed: Int64
        public var wiping_bytes: Int64

        public init(queued: Int64, running: Int64, failed: Int64, wiping_bytes: Int64) {
            self.queued = queued
            self.running = running
            self.failed = failed
            self.wiping_bytes = wiping_bytes
        }
    }

    public var jobs: [JobInfo]
    public var hosts: [String: HostCounts]
    public var unreachable: [String: ErrorSummary]

    public init(jobs: [JobInfo], hosts: [String: HostCounts], unreachable: [String: ErrorSummary]) {
        self.jobs = jobs
        self.hosts = hosts
        self.unreachable = unreachable
    }
}
