/// The controller's RPC methods (topic `aos-controller`, version 1.0; docs/rpc-api.md).
public enum ControllerMethod: String, APIMethod {
    case createVolume = "create_volume"
    case extendVolume = "extend_volume"
    case deleteVolume = "delete_volume"
    case activateVolume = "activate_volume"
    case deactivateVolume = "deactivate_volume"
    case getVolume = "get_volume"
    case listVolumes = "list_volumes"
    case poolStats = "pool_stats"
    case listAgents = "list_agents"
    case lockStatus = "lock_status"
    /// An agent's report of itself (a cast, every `announce_interval`, and at every change).
    case agentAnnounce = "agent_announce"
    /// Copies a volume into a new one as a job on a host that can read the source.
    case copyVolume = "copy_volume"
    /// Every live agent's jobs (or one host's).
    case listJobs = "list_jobs"
    /// One job by id (asked of its host, or of every live agent).
    case jobInfo = "job_info"
    /// Cancels a copy job.
    case cancelJob = "cancel_job"
    /// Renames a volume that is active nowhere (Cinder's manage_existing).
    case renameVolume = "rename_volume"
    /// An agent's short announcement between full ones: "alive, report unchanged since the
    /// full announcement I sent at `report_sent_at`" (issue 17: announcement size independent
    /// of the LVs held).
    case agentHeartbeat = "agent_heartbeat"
    /// Every agent's check run now plus what the controller sees (`aosctl doctor`; admin only).
    case checkCluster = "check_cluster"

    public var isMutating: Bool {
        switch self {
        case .createVolume, .extendVolume, .deleteVolume, .activateVolume, .deactivateVolume, .copyVolume, .cancelJob,
            .renameVolume:
            return true
        case .getVolume, .listVolumes, .poolStats, .listAgents, .lockStatus, .agentAnnounce, .agentHeartbeat, .listJobs,
            .jobInfo, .checkCluster:
            return false
        }
    }

    /// Volume operations and queries come from the Cinder driver and the admin; an
    /// announcement only from an agent (and, checked with its arguments, for its own host).
    public var traits: MethodTraits {
        switch self {
        case .agentAnnounce, .agentHeartbeat: return MethodTraits(callers: [.agent], mutating: false)
        case .checkCluster: return MethodTraits(callers: [.admin], mutating: false)
        default: return MethodTraits(callers: [.driver, .admin], mutating: isMutating)
        }
    }
}
