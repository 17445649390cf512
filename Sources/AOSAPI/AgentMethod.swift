/// The agent's RPC methods (topic `aos-agent`, server = host name, version 1.0; docs/agent.md).
public enum AgentMethod: String, APIMethod {
    case createLV = "create_lv"
    case extendLV = "extend_lv"
    case refreshLV = "refresh_lv"
    case deleteLV = "delete_lv"
    case activateLV = "activate_lv"
    case deactivateLV = "deactivate_lv"
    case lvInfo = "lv_info"
    case listLVs = "list_lvs"
    case vgInfo = "vg_info"
    case lockStatus = "lock_status"
    case health
    /// `vgchange --lock-start VG`: the step of a recovery (after `lvmlockctl --drop`) and
    /// the only way out of the `lost` state without restarting the agent.
    case startLockspace = "start_lockspace"
    /// One step of the lockspace recovery (`aosctl recover`): `plan` changes nothing.
    case recover
    /// Starts a job copying one LV into a new one (returns at once; docs/agent.md, "Jobs").
    case copyLV = "copy_lv"
    /// This agent's jobs, unfinished and recently finished.
    case listJobs = "list_jobs"
    /// One job by id.
    case jobInfo = "job_info"
    /// Asks a copy job to stop (its half-written target is removed); a wipe cannot be cancelled.
    case cancelJob = "cancel_job"
    /// Renames an LV that is active nowhere (Cinder's manage_existing; docs/agent.md).
    case renameLV = "rename_lv"
    /// Records on an LV (tag `aos-released.<host>`) that `host`'s activation was released while
    /// that host's agent was down (evacuate); the returning agent does not restore it.
    case releaseLV = "release_lv"
    /// The preflight check (`aos-agent check`) run now, with the agent's wall clock
    /// (`aosctl doctor`; read-only).
    case checkHost = "check_host"
    /// The drift audit's view of this host: LVM's LVs next to the agent's record (read-only).
    case auditReport = "audit_report"
    /// A drift audit repair of the agent's record only (`forget_record`, `record_activation`).
    case auditFix = "audit_fix"

    /// Methods that change LVM state; refused with `not_ready` until the boot sequence is done.
    public var isMutating: Bool {
        switch self {
        case .createLV, .extendLV, .refreshLV, .deleteLV, .activateLV, .deactivateLV, .startLockspace, .recover, .copyLV,
            .cancelJob, .renameLV, .releaseLV, .auditFix:
            return true
        case .lvInfo, .listLVs, .vgInfo, .lockStatus, .health, .listJobs, .jobInfo, .checkHost, .auditReport: return false
        }
    }

    /// Only the controller and the admin command an agent; every state change is a call
    /// addressed to this agent's own queue (`aos-agent.<host>`) with a deadline.
    /// `release_lv` is the controller's alone: it speaks for another host, on the controller's
    /// view that this host's agent is down.
    /// The audit's methods are the admin's alone (`aosctl audit`).
    public var traits: MethodTraits {
        let callers: Set<Role>
        switch self {
        case .releaseLV: callers = [.controller]
        case .auditReport, .auditFix: callers = [.admin]
        default: callers = [.controller, .admin]
        }
        return MethodTraits(callers: callers, mutating: isMutating, directedOnly: isMutating)
    }
}
