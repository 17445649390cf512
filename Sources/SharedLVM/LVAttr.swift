/// The 10-character `lv_attr` string of lvs(8), decoded into named fields.
///
/// Unknown letters are kept (`.other`) instead of failing: newer lvm2 versions add
/// letters, and an attr we cannot name must not make a whole listing fail.
/// `X` means LVM could not ask the kernel (e.g. after an `error` table was loaded
/// during lockspace loss: `-wi-XX--X-`).
public struct LVAttr: Sendable, Hashable, CustomStringConvertible {
    public enum VolumeType: Sendable, Hashable {
        case plain, cache, mirrored, mirroredWithoutInitialSync, origin, originWithMergingSnapshot
        case raid, raidWithoutInitialSync, snapshot, mergingSnapshot, pvmove, virtual
        case image, imageOutOfSync, mirrorLog, underConversion, thinVolume, thinPool
        case thinPoolData, vdoPool, vdoPoolData, metadata
        case other(Character)
    }

    public enum Permissions: Sendable, Hashable {
        case writeable, readOnly, readOnlyActivation, unknown
        case other(Character)
    }

    public enum AllocationPolicy: Sendable, Hashable {
        case anywhere, contiguous, inherited, cling, normal
        case other(Character)
    }

    public enum State: Sendable, Hashable {
        case inactive, active, historical, suspended, invalidSnapshot, invalidSuspendedSnapshot
        case snapshotMergeFailed, suspendedSnapshotMergeFailed
        case mappedDeviceWithoutTables, mappedDeviceWithInactiveTable
        case thinPoolCheckNeeded, suspendedThinPoolCheckNeeded, unknown
        case other(Character)
    }

    public enum Health: Sendable, Hashable {
        case ok, partial, refreshNeeded, mismatches, writemostly, error, failed
        case dataSpaceOut, metadataReadOnly, unknown
        case other(Character)
    }

    /// The attr string as LVM printed it.
    public let raw: String
    public let volumeType: VolumeType
    public let permissions: Permissions
    public let allocationPolicy: AllocationPolicy
    /// Allocation policy letter was upper case: LV locked against allocation changes.
    public let allocationLocked: Bool
    public let fixedMinor: Bool
    public let state: State
    /// nil when LVM could not tell (`X`).
    public let deviceOpen: Bool?
    /// Target type letter (`-` for plain linear), kept as a letter: only informative.
    public let targetType: Character
    public let zero: Bool
    public let health: Health
    public let skipActivation: Bool

    /// Parses an attr string; nil if it is not 10 characters (the format since lvm2 2.02.x).
    public init?(_ raw: String) {
        let c = Array(raw)
        guard c.count == 10 else { return nil }
        self.raw = raw
        volumeType = Self.volumeType(c[0])
        switch c[1] {
        case "w": permissions = .writeable
        case "r": permissions = .readOnly
        case "R": permissions = .readOnlyActivation
        case "X", "-": permissions = .unknown
        default: permissions = .other(c[1])
        }
        switch Character(c[2].lowercased()) {
        case "a": allocationPolicy = .anywhere
        case "c": allocationPolicy = .contiguous
        case "i": allocationPolicy = .inherited
        case "l": allocationPolicy = .cling
        case "n": allocationPolicy = .normal
        default: allocationPolicy = .other(c[2])
        }
        allocationLocked = c[2].isUppercase
        fixedMinor = c[3] == "m"
        state = Self.state(c[4])
        switch c[5] {
        case "o": deviceOpen = true
        case "X": deviceOpen = nil
        default: deviceOpen = false
        }
        targetType = c[6]
        zero = c[7] == "z"
        health = Self.health(c[8])
        skipActivation = c[9] == "k"
    }

    public var description: String { raw }

    private static func volumeType(_ c: Character) -> VolumeType {
        switch c {
        case "-": return .plain
        case "C": return .cache
        case "m": return .mirrored
        case "M": return .mirroredWithoutInitialSync
        case "o": return .origin
        case "O": return .originWithMergingSnapshot
        case "r": return .raid
        case "R": return .raidWithoutInitialSync
        case "s": return .snapshot
        case "S": return .mergingSnapshot
        case "p": return .pvmove
        case "v": return .virtual
        case "i": return .image
        case "I": return .imageOutOfSync
        case "l": return .mirrorLog
        case "c": return .underConversion
        case "V": return .thinVolume
        case "t": return .thinPool
        case "T": return .thinPoolData
        case "d": return .vdoPool
        case "D": return .vdoPoolData
        case "e": return .metadata
        default: return .other(c)
        }
    }

    private static func state(_ c: Character) -> State {
        switch c {
        case "-": return .inactive
        case "a": return .active
        case "h": return .historical
        case "s": return .suspended
        case "I": return .invalidSnapshot
        case "S": return .invalidSuspendedSnapshot
        case "m": return .snapshotMergeFailed
        case "M": return .suspendedSnapshotMergeFailed
        case "d": return .mappedDeviceWithoutTables
        case "i": return .mappedDeviceWithInactiveTable
        case "c": return .thinPoolCheckNeeded
        case "C": return .suspendedThinPoolCheckNeeded
        case "X": return .unknown
        default: return .other(c)
        }
    }

    private static func health(_ c: Character) -> Health {
        switch c {
        case "-": return .ok
        case "p": return .partial
        case "r": return .refreshNeeded
        case "m": return .mismatches
        case "w": return .writemostly
        case "E": return .error
        case "F": return .failed
        case "D": return .dataSpaceOut
        case "M": return .metadataReadOnly
        case "X": return .unknown
        default: return .other(c)
        }
    }
}
