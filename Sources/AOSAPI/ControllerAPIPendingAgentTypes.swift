import RPCWire

// TEMPORARY, until the agent's API types (branch h-agent, Sources/AOSAPI/AgentAPILV.swift) are
// merged: they define these two enums, and this file goes then.

/// An LV's activation mode.
public enum LVMode: String, WireEnum {
    case exclusive
    case shared
}

/// `volume_clear` of `delete_lv`.
public enum VolumeClear: String, WireEnum {
    case none
    case zero
}
