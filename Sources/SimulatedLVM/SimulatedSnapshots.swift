import SharedLVM

// Thick COW snapshots in the simulated cluster, with the semantics the lab showed on lvm2 +
// lvmlockd + sanlock (docs/cinder.md, "Snapshots"): `lvcreate -s` needs the origin active
// exclusively on this host; the snapshot has no lock of its own and is active with its origin;
// it holds the origin's content at its creation (later writes to the origin do not show in it)
// until more MiB blocks were overwritten than its COW area holds: then it is invalid.

extension SimulatedCluster {
    struct SnapshotState: Sendable, Codable, Equatable {
        var origin: String
        /// Origin blocks overwritten since the snapshot was taken (each took a COW chunk).
        var usedBlocks: Set<UInt64> = []
        var invalid = false
    }

    /// A write to `origin` over `blocks`: each snapshot of it saves the old block in its COW
    /// area (once per block); a full area makes the snapshot invalid.
    static func noteOriginWrite(_ s: inout State, vg: String, origin: String, blocks: Range<UInt64>) {
        guard var group = s.vgs[vg], !blocks.isEmpty else { return }
        for name in group.lvs.keys {
            guard var snap = group.lvs[name]?.snapshot, snap.origin == origin, !snap.invalid else { continue }
            let capacity = group.lvs[name]!.extents * group.extentSize >> 20
            for block in blocks { snap.usedBlocks.insert(block) }
            if UInt64(snap.usedBlocks.count) > capacity {
                snap.invalid = true
                snap.usedBlocks = []
            }
            group.lvs[name]!.snapshot = snap
        }
        s.vgs[vg] = group
    }

    /// Tests: the COW area of `lv` overflows now (as if the VM wrote too much).
    public func invalidateSnapshot(vg: String, lv: String) {
        mutate { s in s.vgs[vg]?.lvs[lv]?.snapshot?.invalid = true }
    }

    /// The COW snapshots of `origin` (names, sorted).
    public func snapshots(vg: String, origin: String) -> [String] {
        mutate { s in s.vgs[vg].map { g in g.lvs.values.filter { $0.snapshot?.origin == origin }.map(\.name).sorted() } ?? [] }
    }
}

extension SimulatedLVMBackend {
    public func createSnapshot(vg: String, origin: String, name: String, cowBytes: UInt64) async throws(LVMError) -> LogicalVolume {
        let argv = LVMCommands.createSnapshot(vg: vg, origin: origin, name: name, cowBytes: cowBytes)
        return try await operation("createSnapshot", [vg, origin, name, "\(cowBytes)"]) { (s) throws(LVMError) in
            try LVMError.checkNames(vg: vg, lv: origin)
            try LVMError.checkNames(vg: vg, lv: name)
            try LVSize.validate(cowBytes)
            var group = try self.group(s, vg, argv)
            try self.requireLockspace(group, argv, failedText: "VG \(vg) lock failed: storage failed for sanlock leases")
            let source = try self.lv(group, origin, argv)
            if group.lvs[name] != nil {
                throw Self.fail(argv, "Logical Volume \"\(name)\" already exists in volume group \"\(vg)\"")
            }
            if source.snapshot != nil {
                throw Self.fail(argv, "Snapshots of snapshots are not supported.")
            }
            // lvmlockd takes the origin's lock exclusively for lvcreate -s (for the moment of
            // the command when the origin is inactive: the snapshot is then created inactive).
            if source.holders(except: hostName) {
                throw Self.fail(argv, "LV locked by other host: \(vg)/\(origin)", "Failed to lock origin LV \(vg)/\(origin)")
            }
            if source.sharedHolders.contains(hostName) {
                throw Self.fail(
                    argv, "LV is already locked with incompatible mode: \(vg)/\(origin)", "Failed to lock origin LV \(vg)/\(origin)")
            }
            let extents = Self.extents(cowBytes, group.extentSize)
            guard extents <= group.freeExtents else {
                throw Self.fail(
                    argv, "Volume group \"\(vg)\" has insufficient free space (\(group.freeExtents) extents): \(extents) required.")
            }
            var lv = LV(name: name, uuid: SimulatedCluster.lvmUUID(&s.random), extents: extents, leaseOffset: 0)
            lv.data = source.data
            lv.snapshot = .init(origin: origin)
            if let device = source.devices[hostName] { lv.devices[hostName] = .init(sizeBytes: device.sizeBytes) }
            group.lvs[name] = lv
            s.vgs[vg] = group
            return self.view(lv, group)
        }
    }

    public func removeSnapshot(vg: String, name: String) async throws(LVMError) {
        let argv = LVMCommands.removeSnapshot(vg: vg, name: name)
        try await operation("removeSnapshot", [vg, name]) { (s) throws(LVMError) in
            try LVMError.checkNames(vg: vg, lv: name)
            var group = try self.group(s, vg, argv)
            let lv = try self.lv(group, name, argv)
            guard lv.snapshot != nil else {
                throw LVMError(
                    code: .invalidArgument, message: "Logical volume \(vg)/\(name) is not a snapshot; not removed", argv: argv)
            }
            try self.requireLockspace(group, argv, failedText: "VG \(vg) lock failed: storage failed for sanlock leases")
            guard lv.devices[hostName] != nil else { throw COWSnapshot.notActiveHere(vg: vg, name: name, argv: argv) }
            if lv.devices[hostName]?.open == true { throw Self.fail(argv, "Logical volume \(vg)/\(name) in use.") }
            group.lvs[name] = nil
            s.vgs[vg] = group
        }
    }

    /// `lvchange -an ORIGIN` deactivates its snapshots with it.
    static func deactivateSnapshots(_ s: inout State, vg: String, origin: String, host: String) {
        guard var group = s.vgs[vg] else { return }
        for name in group.lvs.keys where group.lvs[name]?.snapshot?.origin == origin {
            group.lvs[name]!.devices[host] = nil
        }
        s.vgs[vg] = group
    }

    /// Activating an origin activates its snapshots with it.
    static func activateSnapshots(_ s: inout State, vg: String, origin: String, host: String) {
        guard var group = s.vgs[vg], let device = group.lvs[origin]?.devices[host] else { return }
        for name in group.lvs.keys where group.lvs[name]?.snapshot?.origin == origin && group.lvs[name]?.devices[host] == nil {
            group.lvs[name]!.devices[host] = .init(sizeBytes: device.sizeBytes)
        }
        s.vgs[vg] = group
    }

    /// lv_attr as lvs prints it: `o` for an origin, `s` for a snapshot (state `I` once invalid).
    static func attr(_ lv: LV, _ group: VG, device: SimulatedCluster.Device?) -> String {
        let isOrigin = group.lvs.values.contains { $0.snapshot?.origin == lv.name }
        let type = lv.snapshot != nil ? "s" : isOrigin ? "o" : "-"
        let state = lv.snapshot?.invalid == true ? "I" : device != nil ? "a" : "-"
        return type + "wi-" + state + (device?.open == true ? "o" : "-") + (lv.snapshot != nil ? "s---" : "----")
    }
}
