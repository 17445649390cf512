import RPCWire

// The controller's requests (docs/rpc-api.md, "Methods"). Property names are the wire keys
// (the keyword arguments). These types fix the shapes and JSON types only: the rules about
// names and sizes (LVM's characters, 1 byte … 1 PiB, exactly one of size_bytes/size_gb) are
// checked by the controller before any agent is called.

/// `create_volume`, `extend_volume`: the volume and its (new total) size, as `size_bytes` or
/// `size_gb` (GiB, as Cinder counts), exactly one of them.
public struct VolumeSizeRequest: APIRequest, Equatable {
    public var name: String
    public var size_bytes: Int64?
    public var size_gb: Int64?
    public var vg: String?

    public init(name: String, size_bytes: Int64? = nil, size_gb: Int64? = nil, vg: String? = nil) {
        self.name = name
        self.size_bytes = size_bytes
        self.size_gb = size_gb
        self.vg = vg
    }
}

public typealias CreateVolumeRequest = VolumeSizeRequest
public typealias ExtendVolumeRequest = VolumeSizeRequest

/// `delete_volume`: `volume_clear` and `volume_clear_size_mb` override the agent's defaults.
public struct DeleteVolumeRequest: APIRequest, Equatable {
    public var name: String
    public var vg: String?
    public var volume_clear: VolumeClear?
    public var volume_clear_size_mb: Int64?

    public init(name: String, vg: String? = nil, volume_clear: VolumeClear? = nil, volume_clear_size_mb: Int64? = nil) {
        self.name = name
        self.vg = vg
        self.volume_clear = volume_clear
        self.volume_clear_size_mb = volume_clear_size_mb
    }
}

/// `activate_volume`: `mode` defaults to exclusive.
public struct ActivateVolumeRequest: APIRequest, Equatable {
    public var name: String
    public var host: String
    public var mode: LVMode?
    public var vg: String?

    public init(name: String, host: String, mode: LVMode? = nil, vg: String? = nil) {
        self.name = name
        self.host = host
        self.mode = mode
        self.vg = vg
    }
}

/// `deactivate_volume`.
public struct DeactivateVolumeRequest: APIRequest, Equatable {
    public var name: String
    public var host: String
    public var vg: String?

    public init(name: String, host: String, vg: String? = nil) {
        self.name = name
        self.host = host
        self.vg = vg
    }
}

/// `get_volume`.
public struct GetVolumeRequest: APIRequest, Equatable {
    public var name: String
    public var vg: String?

    public init(name: String, vg: String? = nil) {
        self.name = name
        self.vg = vg
    }
}

/// A request naming at most a VG (default: the only one the agents serve): `list_volumes`, `pool_stats`.
public struct VGSelectRequest: APIRequest, Equatable {
    public var vg: String?
    public init(vg: String? = nil) { self.vg = vg }
}

public typealias ListVolumesRequest = VGSelectRequest
public typealias PoolStatsRequest = VGSelectRequest

/// `list_agents`: no arguments (any is refused by name).
public typealias ListAgentsRequest = NoArguments

/// `lock_status`: the host whose agent is asked.
public struct LockStatusRequest: APIRequest, Equatable {
    public var host: String
    public init(host: String) { self.host = host }
}

/// `agent_announce` (a cast from an agent): its `health()` report and when it sent it (unix
/// seconds; required, so that reports can be ordered and a replayed one refused).
public struct AgentAnnounceRequest: APIRequest, Equatable {
    public var report: AgentHealth
    public var sent_at: Double

    public init(report: AgentHealth, sent_at: Double) {
        self.report = report
        self.sent_at = sent_at
    }
}

/// `agent_heartbeat(host, instance_id, report_sent_at, sent_at)`: the agent run `instance_id`
/// on `host` is alive and its report is the one it announced in full at `report_sent_at`
/// (that announcement's `sent_at`). A controller holding another report (or none) for that
/// run asks the agent for its `health()`.
public struct AgentHeartbeatRequest: APIRequest, Equatable {
    public var host: String
    public var instance_id: String
    public var report_sent_at: Double
    public var sent_at: Double

    public init(host: String, instance_id: String, report_sent_at: Double, sent_at: Double) {
        self.host = host
        self.instance_id = instance_id
        self.report_sent_at = report_sent_at
        self.sent_at = sent_at
    }
}

/// `copy_volume`: copies volume `source` into a new volume `target` as a job on a host that
/// can read the source (its exclusive holder, a host holding it shared, or any live agent when
/// it is inactive everywhere; `host` picks one). The size defaults to the source's; larger is
/// allowed. The call returns the job at once; `job_info` follows it.
public struct CopyVolumeRequest: APIRequest, Equatable {
    public var source: String
    public var target: String
    public var vg: String?
    public var size_bytes: Int64?
    public var size_gb: Int64?
    public var verify: Bool?
    public var host: String?

    public init(
        source: String, target: String, vg: String? = nil, size_bytes: Int64? = nil, size_gb: Int64? = nil,
        verify: Bool? = nil, host: String? = nil
    ) {
        self.source = source
        self.target = target
        self.vg = vg
        self.size_bytes = size_bytes
        self.size_gb = size_gb
        self.verify = verify
        self.host = host
    }
}

/// `list_jobs`: every live agent's jobs, or only `host`'s.
public struct ListJobsRequest: APIRequest, Equatable {
    public var host: String?
    public init(host: String? = nil) { self.host = host }
}

/// `job_info`, `cancel_job`: a job by id; `host` (from the job) saves asking every agent.
public struct ClusterJobRequest: APIRequest, Equatable {
    public var id: String
    public var host: String?

    public init(id: String, host: String? = nil) {
        self.id = id
        self.host = host
    }
}
