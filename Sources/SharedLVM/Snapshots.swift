// Short-lived copy-on-write snapshots (`lvcreate -s`) for the copy jobs: a copy of a volume in
// use on this host reads a point-in-time image instead of the moving origin (docs/agent.md,
// "Jobs"). In a shared (lvmlockd) VG a thick snapshot has no lock of its own: it lives under the
// origin's lock, which must be held exclusively by this host (see docs/cinder.md, "Snapshots",
// for what the lab showed). Kept apart from LVMBackend.swift so other backend work merges cleanly.

/// Sizing of the copy-on-write area.
public enum COWSnapshot {
    /// The smallest COW area: small volumes get this much, whatever their size.
    public static let floorBytes: UInt64 = 256 << 20
    /// The COW area holds this fraction of the origin: blocks the VM overwrites while the copy
    /// runs. When they exceed it the snapshot becomes invalid and the copy fails (it never
    /// yields a corrupt copy).
    public static let fractionDivisor: UInt64 = 5

    /// `max(origin / 5, 256 MiB)`, but never more than the origin plus 1/32 (LVM's own
    /// maximum useful size is the origin plus its exception metadata).
    public static func cowBytes(originBytes: UInt64) -> UInt64 {
        let wanted = max(originBytes / fractionDivisor, floorBytes)
        let most = originBytes + max(originBytes / 32, 8 << 20)
        return min(wanted, most)
    }
}

extension COWSnapshot {
    /// lvmlockd (lvm2 2.03.16, lab) lets any host `lvremove` a snapshot without the origin's
    /// lock, even while another host has it active: that host's device-mapper then keeps writing
    /// COW data into extents the VG gives to the next LV. So a snapshot is removed only where it
    /// is active, i.e. where its origin is held exclusively.
    public static func notActiveHere(vg: String, name: String, argv: [String]) -> LVMError {
        LVMError(
            code: .notActive,
            message: "snapshot \(vg)/\(name) is not active on this host; activate its origin exclusively here first "
                + "(removing it elsewhere would leave a holder's device writing into freed extents)",
            argv: argv)
    }
}

extension LVMCommands {
    /// `lvcreate -s -L COW -n NAME VG/ORIGIN`: a thick snapshot, active where the origin is.
    public static func createSnapshot(vg: String, origin: String, name: String, cowBytes: UInt64) -> [String] {
        ["lvcreate", "-s", "-L", bytes(cowBytes), "-n", name, lvPath(vg, origin)]
    }

    /// `lvremove --yes VG/SNAP`: a snapshot is active with its origin and cannot be
    /// deactivated alone ("Change of snapshot … will also change its origin"), so the question
    /// "remove active logical volume?" is answered; the backend checks first that the LV is a
    /// snapshot (never a volume) and active here.
    public static func removeSnapshot(vg: String, name: String) -> [String] {
        ["lvremove", "--yes", lvPath(vg, name)]
    }
}

extension LogicalVolume {
    /// A thick (COW) snapshot, valid or not.
    public var isSnapshot: Bool {
        switch attr.volumeType {
        case .snapshot, .mergingSnapshot: return true
        default: return attr.state == .invalidSnapshot || attr.state == .invalidSuspendedSnapshot
        }
    }

    /// The snapshot's COW area overflowed (`I` in lv_attr): its content is unusable.
    public var snapshotInvalid: Bool { attr.state == .invalidSnapshot || attr.state == .invalidSuspendedSnapshot }
}

extension LVMBackend {
    public func createSnapshot(vg: String, origin: String, name: String, cowBytes: UInt64) async throws(LVMError) -> LogicalVolume {
        throw LVMError(
            code: .internal, message: "this LVM backend cannot take snapshots",
            argv: LVMCommands.createSnapshot(vg: vg, origin: origin, name: name, cowBytes: cowBytes))
    }

    public func removeSnapshot(vg: String, name: String) async throws(LVMError) {
        throw LVMError(
            code: .internal, message: "this LVM backend cannot remove snapshots", argv: LVMCommands.removeSnapshot(vg: vg, name: name))
    }
}

extension RealLVMBackend {
    public func createSnapshot(vg: String, origin: String, name: String, cowBytes: UInt64) async throws(LVMError) -> LogicalVolume {
        try LVMError.checkNames(vg: vg, lv: origin)
        try LVMError.checkNames(vg: vg, lv: name)
        try LVSize.validate(cowBytes)
        try await execute(LVMCommands.createSnapshot(vg: vg, origin: origin, name: name, cowBytes: cowBytes))
        return try await lvInfo(vg: vg, name: name)
    }

    public func removeSnapshot(vg: String, name: String) async throws(LVMError) {
        try LVMError.checkNames(vg: vg, lv: name)
        let argv = LVMCommands.removeSnapshot(vg: vg, name: name)
        let lv = try await lvInfo(vg: vg, name: name)
        guard lv.isSnapshot else {
            throw LVMError(
                code: .invalidArgument, message: "Logical volume \(vg)/\(name) is not a snapshot (attr \(lv.attr)); not removed",
                argv: argv)
        }
        guard lv.activeLocally else { throw COWSnapshot.notActiveHere(vg: vg, name: name, argv: argv) }
        try await execute(argv)
    }
}
