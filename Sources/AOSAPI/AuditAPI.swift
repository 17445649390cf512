import RPCWire

// The drift audit (`aosctl audit`, docs/operations.md "Drift audit"): two agent methods, both
// for the admin only. `audit_report` says what LVM shows on the agent's host next to the
// agent's own record; `audit_fix` applies one of the two repairs that cannot lose data.

/// `audit_report`: `{vg?, active_only?, limit?}`.
public struct AuditReportRequest: APIRequest, Equatable {
    /// One served VG; absent: every served VG.
    public var vg: String?
    /// Only the LVs active on this host (the inactive ones are the same on every host: the
    /// shared VG's metadata; one host's full listing is enough).
    public var active_only: Bool?
    /// At most this many LVs per VG (default `AuditLimits.defaultLVs`, at most `AuditLimits.maxLVs`);
    /// the active ones come first.
    public var limit: Int64?

    public init(vg: String? = nil, active_only: Bool? = nil, limit: Int64? = nil) {
        self.vg = vg
        self.active_only = active_only
        self.limit = limit
    }
}

/// The bound on an `audit_report` reply: about 120 bytes per LV, so the default is ~1.2 MB per VG.
public enum AuditLimits {
    public static let defaultLVs: Int64 = 10_000
    public static let maxLVs: Int64 = 100_000
}

/// One LV as LVM shows it on the reporting host.
public struct AuditLV: Codable, Sendable, Equatable {
    public var name: String
    /// Active on this host (`lv_active`).
    public var active: Bool
    /// Its device is open on this host (a VM, a copy…).
    public var open: Bool
    /// The lock this host holds on it, from sanlock (lvmlockd's LV lock); absent when none or unknown.
    public var lock_mode: LVMode?
    /// The name matches the agent's `[agent] lv_name_pattern`.
    public var managed: Bool
    /// Hosts whose activation was released while their agent was down (`aos-released.<host>` tags).
    public var released_hosts: [String]?

    public init(
        name: String, active: Bool, open: Bool, lock_mode: LVMode? = nil, managed: Bool, released_hosts: [String]? = nil
    ) {
        self.name = name
        self.active = active
        self.open = open
        self.lock_mode = lock_mode
        self.managed = managed
        self.released_hosts = released_hosts
    }
}

/// One VG of an `audit_report`.
public struct AuditVG: Codable, Sendable, Equatable {
    public var vg: String
    /// LVs LVM lists in the VG (internal ones excluded), and how many of them are active here.
    public var lv_count: Int64
    public var active_count: Int64
    /// `lvs` holds every LV of the VG (neither `active_only` nor cut by `limit`).
    public var complete: Bool
    /// `lvs` was cut by `limit` (active LVs first, then by name).
    public var truncated: Bool
    public var lvs: [AuditLV]
    /// The listing failed: `code: message` (then `lvs` is empty).
    public var error: String?

    public init(
        vg: String, lv_count: Int64, active_count: Int64, complete: Bool, truncated: Bool, lvs: [AuditLV], error: String? = nil
    ) {
        self.vg = vg
        self.lv_count = lv_count
        self.active_count = active_count
        self.complete = complete
        self.truncated = truncated
        self.lvs = lvs
        self.error = error
    }

    /// Every LV active on the host is in `lvs`.
    public var activeListComplete: Bool { error == nil && Int64(lvs.count(where: \.active)) >= active_count }
}

/// `vg/name` of an LV in an audit.
public struct AuditLVRef: Codable, Sendable, Hashable, Comparable, CustomStringConvertible {
    public var vg: String
    public var name: String
    public init(vg: String, name: String) {
        self.vg = vg
        self.name = name
    }
    public var description: String { "\(vg)/\(name)" }
    public static func < (a: Self, b: Self) -> Bool { (a.vg, a.name) < (b.vg, b.name) }
}

/// `audit_report` → `{host, lock_modes, name_patterns, vgs, records, intents, restore_failures, job_ids}`.
public struct AuditReportResult: APIResponse, Equatable {
    public var host: String
    /// The LVs' `lock_mode` comes from sanlock; false when sanlock could not be asked.
    public var lock_modes: Bool
    /// `[agent] lv_name_pattern`.
    public var name_patterns: [String]
    public var vgs: [AuditVG]
    /// The agent's activation record (`activations.json`) for the reported VGs.
    public var records: [ActiveLV]
    /// Activations or deactivations in progress (or interrupted, until reconciled).
    public var intents: [AuditLVRef]
    /// Records the boot could not restore.
    public var restore_failures: [AuditLVRef]
    /// The ids of the jobs this agent holds in the reported VGs, in any state (their LVs are
    /// `aos-wipe-<id>`, `aos-copy-<id>`, `aos-cow-<id>`); absent from agents older than the field.
    public var job_ids: [String]?

    public init(
        host: String, lock_modes: Bool, name_patterns: [String], vgs: [AuditVG], records: [ActiveLV],
        intents: [AuditLVRef] = [], restore_failures: [AuditLVRef] = [], job_ids: [String]? = nil
    ) {
        self.host = host
        self.lock_modes = lock_modes
        self.name_patterns = name_patterns
        self.vgs = vgs
        self.records = records
        self.intents = intents
        self.restore_failures = restore_failures
        self.job_ids = job_ids
    }
}

/// The repairs `audit_fix` makes; neither touches LVM's state, only the agent's record (and
/// through its next announcement the controller's map).
public enum AuditFixAction: String, WireEnum {
    /// Drop the record of an LV that is not active on this host (re-checked under the LV's lock).
    case forgetRecord = "forget_record"
    /// Record an activation LVM shows on this host in the mode sanlock holds (re-checked).
    case recordActivation = "record_activation"
}

/// `audit_fix`: `{vg, name, action, mode?}` (`mode`: the lock mode the plan saw, for `record_activation`).
public struct AuditFixRequest: APIRequest, Equatable {
    public var vg: String
    public var name: String
    public var action: AuditFixAction
    public var mode: LVMode?

    public init(vg: String, name: String, action: AuditFixAction, mode: LVMode? = nil) {
        self.vg = vg
        self.name = name
        self.action = action
        self.mode = mode
    }
}

/// `audit_fix` → `{host, vg, name, action, changed}`.
public struct AuditFixResult: APIResponse, Equatable {
    public var host: String
    public var vg: String
    public var name: String
    public var action: AuditFixAction
    public var changed: Bool

    public init(host: String, vg: String, name: String, action: AuditFixAction, changed: Bool) {
        self.host = host
        self.vg = vg
        self.name = name
        self.action = action
        self.changed = changed
    }
}
