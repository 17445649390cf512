/// Lock mode of an activation in a shared (lvmlockd) VG: `lvchange -aey` or `-asy`.
public enum LVActivationMode: String, Sendable, Hashable, Codable, CaseIterable {
    case exclusive
    case shared
}

/// Everything the agent asks of LVM on its own host, for one VG at a time.
///
/// LVM commands act only on the host where they run, so one `LVMBackend` value stands for
/// one host. Two implementations: `RealLVMBackend` (runs lvm2/sanlock commands by argv)
/// and `SimulatedLVMBackend` (one host of an in-memory `SimulatedCluster` with lvmlockd's
/// lock semantics). `LVMBehaviourSuite` holds both to the same behaviour.
///
/// Every method throws only `LVMError`; names and sizes are validated before any command
/// runs (`invalid_argument`). Sizes are bytes; LVM rounds them up to whole extents.
/// What a job writes over a range of an LV.
public enum RangeFill: String, Sendable, Hashable, Codable {
    /// Ask the device to zero the range itself (`blkdiscard --zeroout`).
    case zeroOffload
    /// Write zeros.
    case zeros
    /// Write random data (the first pass of a shred).
    case random
}

public protocol LVMBackend: Sendable {
    /// `lvcreate`. With `activate: false` the LV is created inactive (`-an`), which is
    /// what the agent wants when the creator is not the user; otherwise it is activated
    /// exclusively on this host (lvcreate's default in a shared VG). Returns the new LV.
    func createLV(vg: String, name: String, sizeBytes: UInt64, activate: Bool) async throws(LVMError) -> LogicalVolume

    /// `lvextend` to an absolute size. Asking for the current size is a no-op (retries
    /// are safe); asking for less is `size_conflict`. `sharedUpdate` adds
    /// `--lockopt shupdate`, needed when the LV is active shared; other hosts then keep
    /// the old device size until they `refresh`.
    func extendLV(vg: String, name: String, newSizeBytes: UInt64, sharedUpdate: Bool) async throws(LVMError)

    /// `lvremove`. Refused with `busy` while the LV is active on this host (the agent
    /// deactivates first), `locked_by_other_host` while active elsewhere.
    func removeLV(vg: String, name: String) async throws(LVMError)

    /// `removeLV` for a caller that has just seen the LV inactive on this host (the agent's
    /// `delete_lv` reads it first anyway): `RealLVMBackend` skips its own `lvs` guard, one LVM
    /// command less. Should the LV have been activated in between, `lvremove` still refuses:
    /// it asks "remove active logical volume?" and its stdin is /dev/null, so the answer is no.
    func removeInactiveLV(vg: String, name: String) async throws(LVMError)

    /// `lvchange -aey` / `-asy`. Already active in that mode: no-op. ex → sh on the holder
    /// is a downgrade; sh → ex works only when no other host holds the LV.
    func activate(vg: String, name: String, mode: LVActivationMode) async throws(LVMError)

    /// `lvchange -an`: deactivates locally and releases the LV lock. Inactive: no-op.
    /// `busy` while the device is open (a VM uses it).
    func deactivate(vg: String, name: String) async throws(LVMError)

    /// `lvchange --addtag TAG`: a VG metadata change (no LV lock; works while the LV is active
    /// on any host). Adding a tag the LV has is a no-op.
    func addTag(vg: String, name: String, tag: String) async throws(LVMError)

    /// `lvchange --deltag TAG`. Removing a tag the LV does not have is a no-op.
    func removeTag(vg: String, name: String, tag: String) async throws(LVMError)

    /// `lvchange --refresh`: reload the device so it shows the LV's current size.
    func refresh(vg: String, name: String) async throws(LVMError)

    /// Visible LVs of the VG as this host sees them (`lv_active*` are local facts only;
    /// no host can see where else an LV is active). Internal LVs like `[lvmlock]` are hidden.
    func listLVs(vg: String) async throws(LVMError) -> [LogicalVolume]

    /// One LV, or `not_found`.
    func lvInfo(vg: String, name: String) async throws(LVMError) -> LogicalVolume

    /// VG capacity, lock type and metadata-area use, or `not_found`.
    func vgInfo(vg: String) async throws(LVMError) -> VolumeGroup

    /// `vgchange --lock-start VG` (joins the sanlock lockspace; seconds to tens of seconds).
    func lockStart(vg: String) async throws(LVMError)

    /// `vgchange --lock-stop VG`; `busy` while LVs of the VG are active on this host.
    func lockStop(vg: String) async throws(LVMError)

    /// Whether this host has joined the VG's lockspace (from `sanlock client status`).
    func lockspaceStarted(vg: String) async throws(LVMError) -> Bool

    /// This host's sanlock view: joined lockspaces and held LV locks with their mode.
    /// The only source of the lock mode (`lv_active_exclusively` is not it).
    func lockStatus() async throws(LVMError) -> SanlockStatus

    /// Size in bytes of the LV's device on this host (`blockdev --getsize64`), nil when the
    /// LV is not active here. Differs from `lvInfo` size after a shared extend until `refresh`.
    func deviceSize(vg: String, name: String) async throws(LVMError) -> UInt64?

    /// `lvrename`: the LV must be inactive everywhere (LVM takes its lock exclusively).
    func renameLV(vg: String, from: String, to: String) async throws(LVMError)

    /// Job I/O on an LV active on this host: writes `fill` over `length` bytes at `offset`.
    /// Returns how it was done: `.zeroOffload` falls back to `.zeros` when the device cannot.
    func fillRange(vg: String, name: String, offset: UInt64, length: UInt64, fill: RangeFill) async throws(LVMError) -> RangeFill

    /// Job I/O: copies `length` bytes at `offset` of `source` to the same offset of `target`
    /// (both active on this host).
    func copyRange(vg: String, source: String, target: String, offset: UInt64, length: UInt64) async throws(LVMError)

    /// SHA-256 (hex) of the first `length` bytes of an LV active on this host.
    func checksum(vg: String, name: String, length: UInt64) async throws(LVMError) -> String

    /// Boot wait: true once the VG is visible with none of its PVs missing.
    func pvsPresent(vg: String) async throws(LVMError) -> Bool

    /// Recovery: what LVM says about the VG's lockspace on this host. nil: it works;
    /// `lockStorageFailed`: sanlock lost the lease storage (its own status does not show
    /// that, LVM's warnings do); `lockspaceNotStarted`: not joined, or dropped.
    func lockspaceProblem(vg: String) async throws(LVMError) -> LVMErrorCode?

    /// `lvmlockctl --drop VG`: forgets a killed lockspace and its locks. Only after the
    /// VG's LVs are deactivated on this host; on a healthy lockspace it silently drops it.
    func dropLockspace(vg: String) async throws(LVMError)

    /// `lvcreate -s`: a short-lived COW snapshot `name` of `origin` (Snapshots.swift), for a
    /// copy job that must read a point-in-time image of a volume in use here. The origin must
    /// be active exclusively on this host; the snapshot is active with it.
    func createSnapshot(vg: String, origin: String, name: String, cowBytes: UInt64) async throws(LVMError) -> LogicalVolume

    /// `lvremove` of a snapshot: refused with `invalid_argument` for an LV that is not one, and
    /// with `not_active` unless the snapshot is active on this host (see Snapshots.swift).
    func removeSnapshot(vg: String, name: String) async throws(LVMError)
}

extension LVMBackend {
    /// The device path a VM uses: `/dev/<vg>/<lv>`.
    public func devicePath(vg: String, name: String) -> String { "/dev/\(vg)/\(name)" }

    /// Backends without a separate check to skip remove as `removeLV` does.
    public func removeInactiveLV(vg: String, name: String) async throws(LVMError) {
        try await removeLV(vg: vg, name: name)
    }
}
