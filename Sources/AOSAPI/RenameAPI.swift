import RPCWire

// Renaming an LV (docs/agent.md `rename_lv`, docs/rpc-api.md `rename_volume`): how Cinder's
// manage_existing brings an LV made outside Cinder under its `volume-<id>` name.

/// `rename_lv` (agent): `name` → `new_name` in `vg`; both names in `[agent] lv_name_pattern`.
public struct RenameLVRequest: APIRequest, Equatable {
    public var vg: String
    public var name: String
    public var new_name: String

    public init(vg: String, name: String, new_name: String) {
        self.vg = vg
        self.name = name
        self.new_name = new_name
    }
}

/// `rename_lv` → `{host, vg, name, new_name, size_bytes, changed}`; `changed: false` when
/// `name` is gone and `new_name` exists (a retry of a rename that was done).
public struct RenameLVResult: APIResponse, Equatable {
    public var host: String
    public var vg: String
    public var name: String
    public var new_name: String
    public var size_bytes: Int64
    public var changed: Bool

    public init(host: String, vg: String, name: String, new_name: String, size_bytes: Int64, changed: Bool) {
        self.host = host
        self.vg = vg
        self.name = name
        self.new_name = new_name
        self.size_bytes = size_bytes
        self.changed = changed
    }
}

/// `rename_volume` (controller): as `rename_lv`, on any live agent of the VG, refused while the
/// LV is active on any host.
public struct RenameVolumeRequest: APIRequest, Equatable {
    public var name: String
    public var new_name: String
    public var vg: String?

    public init(name: String, new_name: String, vg: String? = nil) {
        self.name = name
        self.new_name = new_name
        self.vg = vg
    }
}

/// `rename_volume` → `{vg, name, new_name, size_bytes, changed, host}`.
public struct RenameVolumeResult: APIResponse, Equatable {
    public var vg: String
    public var name: String
    public var new_name: String
    public var size_bytes: Int64
    public var changed: Bool
    public var host: String

    public init(vg: String, name: String, new_name: String, size_bytes: Int64, changed: Bool, host: String) {
        self.vg = vg
        self.name = name
        self.new_name = new_name
        self.size_bytes = size_bytes
        self.changed = changed
        self.host = host
    }
}
