import RPCWire

// The agent's LV requests and results (docs/agent.md, "RPC API"). Property names are the wire
// keys. Validation that needs LVM's rules (VG/LV names, extents) is the agent's; these types
// only fix the shapes and JSON types.

/// An LV's activation mode (the agent's record of how it activated the LV; sanlock's lock mode).
public enum LVMode: String, WireEnum {
    case exclusive
    case shared
}

/// `volume_clear` of `delete_lv` (as Cinder's option): how a deleted volume's data is cleared.
public enum VolumeClear: String, WireEnum {
    /// Removed at once; the next LV on those extents may expose the data.
    case none
    /// Zeroed (the device's zeroing offload when it has one), then removed, as a wipe job.
    case zero
    /// Random data then zeros, then removed, as a wipe job.
    case shred
}

/// A request naming one VG: `list_lvs`, `vg_info`, `start_lockspace`.
public struct VGRequest: APIRequest, Equatable {
    public var vg: String
    public init(vg: String) { self.vg = vg }
}

/// A request naming one LV: `refresh_lv`, `deactivate_lv`, `lv_info`.
public struct LVRequest: APIRequest, Equatable {
    public var vg: String
    public var name: String
    public init(vg: String, name: String) {
        self.vg = vg
        self.name = name
    }
}

public typealias RefreshLVRequest = LVRequest
public typealias DeactivateLVRequest = LVRequest
public typealias LVInfoRequest = LVRequest
public typealias ListLVsRequest = VGRequest
public typealias VGInfoRequest = VGRequest
public typealias StartLockspaceRequest = VGRequest

/// A request without arguments: `lock_status`, `health` (any argument is refused by name).
public struct NoArguments: APIRequest, Equatable {
    public init() {}
}

/// `create_lv`: exactly one of `size_bytes` (bytes) and `size_gb` (GiB), positive, at most
/// 1 PiB (the agent checks; signed so that a negative size is refused as "must be positive").
public struct CreateLVRequest: APIRequest, Equatable {
    public var vg: String
    public var name: String
    public var size_bytes: Int64?
    public var size_gb: Int64?

    public init(vg: String, name: String, size_bytes: Int64? = nil, size_gb: Int64? = nil) {
        self.vg = vg
        self.name = name
        self.size_bytes = size_bytes
        self.size_gb = size_gb
    }
}

/// `extend_lv`: the new size as for `create_lv`; `shared_update` (default false) extends an LV
/// active shared (`lvextend --lockopt shupdate`).
public struct ExtendLVRequest: APIRequest, Equatable {
    public var vg: String
    public var name: String
    public var size_bytes: Int64?
    public var size_gb: Int64?
    public var shared_update: Bool?

    public init(vg: String, name: String, size_bytes: Int64? = nil, size_gb: Int64? = nil, shared_update: Bool? = nil) {
        self.vg = vg
        self.name = name
        self.size_bytes = size_bytes
        self.size_gb = size_gb
        self.shared_update = shared_update
    }
}

/// `delete_lv`: `volume_clear` and `volume_clear_size_mb` (MiB, 0: the whole LV) default to
/// the agent's configuration.
public struct DeleteLVRequest: APIRequest, Equatable {
    public var vg: String
    public var name: String
    public var volume_clear: VolumeClear?
    public var volume_clear_size_mb: Int64?

    public init(vg: String, name: String, volume_clear: VolumeClear? = nil, volume_clear_size_mb: Int64? = nil) {
        self.vg = vg
        self.name = name
        self.volume_clear = volume_clear
        self.volume_clear_size_mb = volume_clear_size_mb
    }
}

/// `activate_lv`: `mode` defaults to exclusive.
public struct ActivateLVRequest: APIRequest, Equatable {
    public var vg: String
    public var name: String
    public var mode: LVMode?

    public init(vg: String, name: String, mode: LVMode? = nil) {
        self.vg = vg
        self.name = name
        self.mode = mode
    }
}

/// `release_lv`: `host` is the host whose activation of the LV was released while its agent
/// was down (the controller's caller only).
public struct ReleaseLVRequest: APIRequest, Equatable {
    public var vg: String
    public var name: String
    public var host: String

    public init(vg: String, name: String, host: String) {
        self.vg = vg
        self.name = name
        self.host = host
    }
}

/// `deactivate_lv` and `release_lv` → `{host, vg, name, changed}` (`host`: the agent that ran it).
public struct LVChangeResult: APIResponse, Equatable {
    public var host: String
    public var vg: String
    public var name: String
    public var changed: Bool

    public init(host: String, vg: String, name: String, changed: Bool) {
        self.host = host
        self.vg = vg
        self.name = name
        self.changed = changed
    }
}

public typealias DeactivateLVResult = LVChangeResult
public typealias ReleaseLVResult = LVChangeResult

/// `create_lv` → `{host, vg, name, size_bytes, changed}` (the size in whole extents).
public struct CreateLVResult: APIResponse, Equatable {
    public var host: String
    public var vg: String
    public var name: String
    public var size_bytes: Int64
    public var changed: Bool

    public init(host: String, vg: String, name: String, size_bytes: Int64, changed: Bool) {
        self.host = host
        self.vg = vg
        self.name = name
        self.size_bytes = size_bytes
        self.changed = changed
    }
}

/// `extend_lv` → `{host, vg, name, size_bytes, changed, refreshed}`; `refreshed`: the LV was
/// active here and was reloaded.
public struct ExtendLVResult: APIResponse, Equatable {
    public var host: String
    public var vg: String
    public var name: String
    public var size_bytes: Int64
    public var changed: Bool
    public var refreshed: Bool

    public init(host: String, vg: String, name: String, size_bytes: Int64, changed: Bool, refreshed: Bool) {
        self.host = host
        self.vg = vg
        self.name = name
        self.size_bytes = size_bytes
        self.changed = changed
        self.refreshed = refreshed
    }
}

/// `refresh_lv` → `{host, vg, name, size_bytes, lv_size_bytes, active, refreshed}`:
/// `size_bytes` is what the device shows on this host, `lv_size_bytes` LVM's metadata.
public struct RefreshLVResult: APIResponse, Equatable {
    public var host: String
    public var vg: String
    public var name: String
    public var size_bytes: Int64
    public var lv_size_bytes: Int64
    public var active: Bool
    public var refreshed: Bool

    public init(host: String, vg: String, name: String, size_bytes: Int64, lv_size_bytes: Int64, active: Bool, refreshed: Bool) {
        self.host = host
        self.vg = vg
        self.name = name
        self.size_bytes = size_bytes
        self.lv_size_bytes = lv_size_bytes
        self.active = active
        self.refreshed = refreshed
    }
}

/// `activate_lv` → `{host, vg, name, mode, changed, device_path}`, and `warning` when the
/// activation could not be recorded for the restore after a reboot.
public struct ActivateLVResult: APIResponse, Equatable {
    public var host: String
    public var vg: String
    public var name: String
    public var mode: LVMode
    public var changed: Bool
    public var device_path: String
    public var warning: String?

    public init(host: String, vg: String, name: String, mode: LVMode, changed: Bool, device_path: String, warning: String? = nil) {
        self.host = host
        self.vg = vg
        self.name = name
        self.mode = mode
        self.changed = changed
        self.device_path = device_path
        self.warning = warning
    }
}

/// One LV as `lv_info` (with `host`) and `list_lvs` (without) report it. `mode` is the agent's
/// own record of the activation, `null` (always present) when it has none.
public struct LVInfo: APIResponse, Equatable {
    public var host: String?
    public var vg: String
    public var name: String
    public var uuid: String
    public var size_bytes: Int64
    public var active: Bool
    public var device_open: Bool
    @AlwaysPresent public var mode: LVMode?
    public var device_path: String
    public var attr: String

    public init(
        host: String? = nil, vg: String, name: String, uuid: String, size_bytes: Int64, active: Bool,
        device_open: Bool, mode: LVMode?, device_path: String, attr: String
    ) {
        self.host = host
        self.vg = vg
        self.name = name
        self.uuid = uuid
        self.size_bytes = size_bytes
        self.active = active
        self.device_open = device_open
        self.mode = mode
        self.device_path = device_path
        self.attr = attr
    }
}

public typealias LVInfoResult = LVInfo

/// `list_lvs` → `{host, vg, lvs}` (LVM's internal LVs left out).
public struct ListLVsResult: APIResponse, Equatable {
    public var host: String
    public var vg: String
    public var lvs: [LVInfo]

    public init(host: String, vg: String, lvs: [LVInfo]) {
        self.host = host
        self.vg = vg
        self.lvs = lvs
    }
}
