import RPCWire

// The agent's status results: vg_info, lock_status, start_lockspace, health (also the
// announcement payload). Property names are the wire keys.

/// The lockspace of a VG as an agent knows it.
public enum LockspaceState: String, WireEnum {
    case started
    case notStarted = "not_started"
    /// sanlock lost the lease storage (LVM said `storage failed for sanlock leases`): needs
    /// the recovery procedure (deactivate, drop, lock-start, reactivate).
    case lost
}

/// `vg_info` → LVM's view of the VG and the agent's view of its lockspace.
public struct VGInfo: APIResponse, Equatable {
    public var host: String
    public var vg: String
    public var uuid: String
    public var size_bytes: Int64
    public var free_bytes: Int64
    public var extent_size_bytes: Int64
    public var extent_count: Int64
    public var free_extent_count: Int64
    public var lv_count: Int64
    public var pv_count: Int64
    public var missing_pv_count: Int64
    public var lock_type: String
    public var shared: Bool
    public var lockspace: LockspaceState
    public var metadata_area_size_bytes: Int64
    public var metadata_area_free_bytes: Int64
    /// LVs of deleted volumes waiting for (or in) their wipe, and their bytes: used space,
    /// not yet free. Counted from the LV names (`aos-wipe-*`), so every agent reports them.
    public var wiping_lv_count: Int64
    public var wiping_bytes: Int64
    /// This agent's `volume_clear` default (a pool with `none` can hand out old data).
    public var volume_clear: VolumeClear

    public init(
        host: String, vg: String, uuid: String, size_bytes: Int64, free_bytes: Int64, extent_size_bytes: Int64,
        extent_count: Int64, free_extent_count: Int64, lv_count: Int64, pv_count: Int64, missing_pv_count: Int64,
        lock_type: String, shared: Bool, lockspace: LockspaceState, metadata_area_size_bytes: Int64,
        metadata_area_free_bytes: Int64, wiping_lv_count: Int64 = 0, wiping_bytes: Int64 = 0,
        volume_clear: VolumeClear = .zero
    ) {
        self.wiping_lv_count = wiping_lv_count
        self.wiping_bytes = wiping_bytes
        self.volume_clear = volume_clear
        self.host = host
        self.vg = vg
        self.uuid = uuid
        self.size_bytes = size_bytes
        self.free_bytes = free_bytes
        self.extent_size_bytes = extent_size_bytes
        self.extent_count = extent_count
        self.free_extent_count = free_extent_count
        self.lv_count = lv_count
        self.pv_count = pv_count
        self.missing_pv_count = missing_pv_count
        self.lock_type = lock_type
        self.shared = shared
        self.lockspace = lockspace
        self.metadata_area_size_bytes = metadata_area_size_bytes
        self.metadata_area_free_bytes = metadata_area_free_bytes
    }
}

/// `start_lockspace` → `{host, vg, lockspace: "started", changed}`.
public struct StartLockspaceResult: APIResponse, Equatable {
    public var host: String
    public var vg: String
    public var lockspace: LockspaceState
    public var changed: Bool

    public init(host: String, vg: String, lockspace: LockspaceState = .started, changed: Bool) {
        self.host = host
        self.vg = vg
        self.lockspace = lockspace
        self.changed = changed
    }
}

/// `lock_status` → parsed `sanlock client status`. Keys whose value is unknown are `null`
/// (always present).
public struct LockStatusResult: APIResponse, Equatable {
    public var host: String
    public var host_id: Int
    @AlwaysPresent public var daemon: String?
    public var lockspaces: [SanlockLockspace]
    public var locks: [SanlockLock]

    public init(host: String, host_id: Int, daemon: String?, lockspaces: [SanlockLockspace], locks: [SanlockLock]) {
        self.host = host
        self.host_id = host_id
        self.daemon = daemon
        self.lockspaces = lockspaces
        self.locks = locks
    }
}

/// One lockspace sanlock has joined (`s` line).
public struct SanlockLockspace: Codable, Sendable, Equatable {
    public var name: String
    public var vg: String
    public var host_id: Int
    public var path: String
    public var offset: Int64
    /// "ADD", "REM"… while sanlock changes it; null otherwise (always present).
    @AlwaysPresent public var transition: String?

    public init(name: String, vg: String, host_id: Int, path: String, offset: Int64, transition: String?) {
        self.name = name
        self.vg = vg
        self.host_id = host_id
        self.path = path
        self.offset = offset
        self.transition = transition
    }
}

/// One lock this host holds (`r` line); `vg`/`name` when the LV is one of the served VGs'.
/// Unknown values are `null` (always present).
public struct SanlockLock: Codable, Sendable, Equatable {
    public var lockspace: String
    public var lv_uuid: String
    public var mode: LVMode
    public var offset: Int64
    @AlwaysPresent public var lease_version: Int64?
    @AlwaysPresent public var pid: Int64?
    @AlwaysPresent public var vg: String?
    @AlwaysPresent public var name: String?

    public init(
        lockspace: String, lv_uuid: String, mode: LVMode, offset: Int64, lease_version: Int64?, pid: Int64?,
        vg: String?, name: String?
    ) {
        self.lockspace = lockspace
        self.lv_uuid = lv_uuid
        self.mode = mode
        self.offset = offset
        self.lease_version = lease_version
        self.pid = pid
        self.vg = vg
        self.name = name
    }
}

/// `health` → the agent's self-report, and the `report` of its announcements. No LVM
/// command runs to make it.
public struct AgentHealth: APIResponse, Equatable {
    public var host: String
    public var host_id: Int
    public var version: String
    /// New at every start of the agent (callers name it in `_context_aos_agent_instance`).
    public var instance_id: String
    public var ready: Bool
    /// "starting", "waiting_for_pvs", "starting_lockspaces", "restoring", "ready".
    public var phase: String
    public var vgs: [String: VGHealth]
    /// What the agent holds active (its activation records without a restore failure).
    public var active_lvs: [ActiveLV]
    public var restore_failures: [RestoreFailureInfo]
    /// The last problems of the activation store; absent when there were none.
    public var state_problems: [String]?
    /// The WARN (and non-blocking FAIL) items of the preflight check run at start
    /// (`aos-agent check`, docs/operations.md "Preflight"), one line each; absent when all
    /// passed or the check did not run (simulated backend).
    public var preflight: [String]?

    public init(
        host: String, host_id: Int, version: String, instance_id: String, ready: Bool, phase: String,
        vgs: [String: VGHealth], active_lvs: [ActiveLV], restore_failures: [RestoreFailureInfo],
        state_problems: [String]? = nil, preflight: [String]? = nil
    ) {
        self.preflight = preflight
        self.host = host
        self.host_id = host_id
        self.version = version
        self.instance_id = instance_id
        self.ready = ready
        self.phase = phase
        self.vgs = vgs
        self.active_lvs = active_lvs
        self.restore_failures = restore_failures
        self.state_problems = state_problems
    }
}

/// One VG in `health().vgs`; `problem`, `fenced` and `hint` only when there is something to say.
public struct VGHealth: Codable, Sendable, Equatable {
    public var lockspace: LockspaceState
    /// The PVs did not appear, the lock start failed…
    public var problem: String?
    /// The kill command (or a recovery) fenced the VG's I/O in this boot.
    public var fenced: FencedSummary?
    /// What to run (`aosctl recover …`) when the lockspace was lost or the VG is fenced.
    public var hint: String?

    public init(lockspace: LockspaceState, problem: String? = nil, fenced: FencedSummary? = nil, hint: String? = nil) {
        self.lockspace = lockspace
        self.problem = problem
        self.fenced = fenced
        self.hint = hint
    }
}

/// A fence record in short: when (unix seconds), whether every device was fenced, how many
/// LVs, and who fenced (`kill_command`, `recovery`).
public struct FencedSummary: Codable, Sendable, Equatable {
    public var at: Double
    public var complete: Bool
    public var lvs: Int
    public var source: String

    public init(at: Double, complete: Bool, lvs: Int, source: String) {
        self.at = at
        self.complete = complete
        self.lvs = lvs
        self.source = source
    }
}

/// An LV the agent holds active, in its mode.
public struct ActiveLV: Codable, Sendable, Hashable {
    public var vg: String
    public var name: String
    public var mode: LVMode

    public init(vg: String, name: String, mode: LVMode) {
        self.vg = vg
        self.name = name
        self.mode = mode
    }
}

/// An activation the agent had recorded but could not restore at boot; `code` is a wire
/// error code (`locked_by_other_host`, `deactivate_pending`…).
public struct RestoreFailureInfo: Codable, Sendable, Hashable {
    public var vg: String
    public var name: String
    public var mode: LVMode
    public var code: String
    public var message: String

    public init(vg: String, name: String, mode: LVMode, code: String, message: String) {
        self.vg = vg
        self.name = name
        self.mode = mode
        self.code = code
        self.message = message
    }
}
