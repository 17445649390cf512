import HostCommands
import SharedLVM

/// One host of a `SimulatedCluster`, as `LVMBackend`. Failures carry LVM's own stderr texts
/// and go through `LVMErrorClassifier`, so the simulator and the classifier cannot drift apart.
public struct SimulatedLVMBackend: LVMBackend {
    public let cluster: SimulatedCluster
    public let hostName: String
    public let hostId: Int

    public init(cluster: SimulatedCluster, hostName: String, hostId: Int) {
        self.cluster = cluster
        self.hostName = hostName
        self.hostId = hostId
        cluster.registerHost(hostName, hostId: hostId)
    }

    typealias State = SimulatedCluster.State
    typealias VG = SimulatedCluster.VG
    typealias LV = SimulatedCluster.LV

    // MARK: LV operations

    public func createLV(vg: String, name: String, sizeBytes: UInt64, activate: Bool) async throws(LVMError) -> LogicalVolume {
        let argv = LVMCommands.create(vg: vg, name: name, sizeBytes: sizeBytes, activate: activate)
        return try await operation("createLV", [vg, name, "\(sizeBytes)", "activate=\(activate)"]) { (s) throws(LVMError) in
            try LVMError.checkNames(vg: vg, lv: name)
            try LVSize.validate(sizeBytes)
            var group = try self.group(s, vg, argv)
            try self.requireLockspace(group, argv, failedText: "VG \(vg) lock failed: storage failed for sanlock leases")
            if group.lvs[name] != nil {
                throw Self.fail(argv, "Logical Volume \"\(name)\" already exists in volume group \"\(vg)\"")
            }
            let extents = Self.extents(sizeBytes, group.extentSize)
            guard extents <= group.freeExtents else {
                throw Self.fail(
                    argv, "Volume group \"\(vg)\" has insufficient free space (\(group.freeExtents) extents): \(extents) required.")
            }
            var lv = LV(
                name: name, uuid: SimulatedCluster.lvmUUID(&s.random), extents: extents,
                leaseOffset: group.nextLeaseOffset)
            group.nextLeaseOffset += 1 << 20
            if activate {
                lv.exclusiveHolder = hostName
                lv.leaseVersion += 1
                lv.devices[hostName] = .init(sizeBytes: extents * group.extentSize)
            }
            group.lvs[name] = lv
            s.vgs[vg] = group
            return self.view(lv, group)
        }
    }

    public func extendLV(vg: String, name: String, newSizeBytes: UInt64, sharedUpdate: Bool) async throws(LVMError) {
        let argv = LVMCommands.extend(vg: vg, name: name, newSizeBytes: newSizeBytes, sharedUpdate: sharedUpdate)
        try await operation("extendLV", [vg, name, "\(newSizeBytes)", "sharedUpdate=\(sharedUpdate)"]) { (s) throws(LVMError) in
            try LVMError.checkNames(vg: vg, lv: name)
            try LVSize.validate(newSizeBytes)
            try self.changeLV(
                &s, vg: vg, name: name, argv,
                lockspaceFailedText: "VG \(vg) lock failed: storage failed for sanlock leases"
            ) { (lv, group) throws(LVMError) in
                if sharedUpdate {
                    // shupdate takes the LV lock shared: only an exclusive holder elsewhere conflicts.
                    if let holder = lv.exclusiveHolder, holder != hostName {
                        throw Self.fail(argv, "LV locked by other host: \(vg)/\(name)")
                    }
                } else {
                    if lv.sharedHolders.contains(hostName) {
                        throw Self.fail(argv, "LV is already locked with incompatible mode: \(vg)/\(name)")
                    }
                    if lv.holders(except: hostName) {
                        throw Self.fail(argv, "LV locked by other host: \(vg)/\(name)")
                    }
                }
                let extents = Self.extents(newSizeBytes, group.extentSize)
                if extents == lv.extents { return }  // same size: a retried request, no-op
                if extents < lv.extents {
                    throw Self.fail(argv, "New size given (\(extents) extents) not larger than existing size (\(lv.extents) extents)")
                }
                guard extents - lv.extents <= group.freeExtents else {
                    throw Self.fail(
                        argv,
                        "Volume group \"\(vg)\" has insufficient free space (\(group.freeExtents) extents): \(extents - lv.extents) required."
                    )
                }
                lv.extents = extents
                // The extending host reloads its own device; other hosts keep the old size
                // until `lvchange --refresh` (lvmlockd does not refresh them with sanlock).
                if lv.devices[hostName] != nil { lv.devices[hostName]!.sizeBytes = extents * group.extentSize }
            }
        }
    }

    public func removeLV(vg: String, name: String) async throws(LVMError) {
        let argv = LVMCommands.remove(vg: vg, name: name)
        try await operation("removeLV", [vg, name]) { (s) throws(LVMError) in
            try LVMError.checkNames(vg: vg, lv: name)
            var group = try self.group(s, vg, argv)
            let lv = try self.lv(group, name, argv)
            if let device = lv.devices[hostName] {
                if device.open { throw Self.fail(argv, "Logical volume \(vg)/\(name) in use.") }
                throw LVMError(
                    code: .busy, message: "Logical volume \(vg)/\(name) is active on this host; deactivate it first.",
                    argv: argv)
            }
            try self.requireLockspace(group, argv, failedText: "VG \(vg) lock failed: storage failed for sanlock leases")
            if lv.holders(except: hostName) {
                throw Self.fail(argv, "LV locked by other host: \(vg)/\(name)")
            }
            group.lvs[name] = nil
            s.vgs[vg] = group
        }
    }

    public func activate(vg: String, name: String, mode: LVActivationMode) async throws(LVMError) {
        let argv = LVMCommands.activate(vg: vg, name: name, mode: mode)
        try await operation("activate", [vg, name, mode.rawValue]) { (s) throws(LVMError) in
            // With a killed lockspace lvchange -aey printed the same text as not started.
            try self.changeLV(
                &s, vg: vg, name: name, argv,
                lockspaceFailedText: "Cannot access VG \(vg) due to failed lock."
            ) { (lv, group) throws(LVMError) in
                let conflict: Bool
                switch mode {
                case .exclusive: conflict = lv.holders(except: hostName)
                case .shared: conflict = lv.exclusiveHolder.map { $0 != hostName } ?? false
                }
                if conflict {
                    throw Self.fail(argv, "LV locked by other host: \(vg)/\(name)", "Failed to lock logical volume \(vg)/\(name).")
                }
                switch mode {
                case .exclusive:
                    if lv.exclusiveHolder != hostName { lv.leaseVersion += 1 }
                    lv.sharedHolders.remove(hostName)
                    lv.exclusiveHolder = hostName
                case .shared:
                    if lv.exclusiveHolder == hostName { lv.exclusiveHolder = nil }
                    lv.sharedHolders.insert(hostName)
                }
                // Activating an already active LV does not reload its table (size stays).
                if lv.devices[hostName] == nil {
                    lv.devices[hostName] = .init(sizeBytes: lv.extents * group.extentSize)
                }
            }
            Self.activateSnapshots(&s, vg: vg, origin: name, host: hostName)
        }
    }

    public func deactivate(vg: String, name: String) async throws(LVMError) {
        let argv = LVMCommands.deactivate(vg: vg, name: name)
        try await operation("deactivate", [vg, name]) { (s) throws(LVMError) in
            // Unlocking works in a killed lockspace (that is how recovery deactivates).
            try self.changeLV(&s, vg: vg, name: name, argv, lockspaceFailedText: nil) { (lv, _) throws(LVMError) in
                if lv.devices[hostName]?.open == true {
                    throw Self.fail(argv, "Logical volume \(vg)/\(name) in use.")
                }
                lv.devices[hostName] = nil
                if lv.exclusiveHolder == hostName { lv.exclusiveHolder = nil }
                lv.sharedHolders.remove(hostName)
            }
            Self.deactivateSnapshots(&s, vg: vg, origin: name, host: hostName)
        }
    }

    /// Tags are VG metadata: the VG lock (a started lockspace) is needed, the LV lock is not,
    /// so a host can tag an LV that another host holds, as with lvm2.
    public func addTag(vg: String, name: String, tag: String) async throws(LVMError) {
        let argv = LVMCommands.addTag(vg: vg, name: name, tag: tag)
        try await operation("addTag", [vg, name, tag]) { (s) throws(LVMError) in
            try LVTag.validate(tag)
            try self.changeLV(
                &s, vg: vg, name: name, argv, lockspaceFailedText: "VG \(vg) lock failed: storage failed for sanlock leases"
            ) { (lv, _) throws(LVMError) in
                var tags = lv.tags ?? []
                if !tags.contains(tag) { tags.append(tag) }
                lv.tags = tags
            }
        }
    }

    public func removeTag(vg: String, name: String, tag: String) async throws(LVMError) {
        let argv = LVMCommands.removeTag(vg: vg, name: name, tag: tag)
        try await operation("removeTag", [vg, name, tag]) { (s) throws(LVMError) in
            try LVTag.validate(tag)
            try self.changeLV(
                &s, vg: vg, name: name, argv, lockspaceFailedText: "VG \(vg) lock failed: storage failed for sanlock leases"
            ) { (lv, _) throws(LVMError) in
                lv.tags = (lv.tags ?? []).filter { $0 != tag }
            }
        }
    }

    public func refresh(vg: String, name: String) async throws(LVMError) {
        let argv = LVMCommands.refresh(vg: vg, name: name)
        try await operation("refresh", [vg, name]) { (s) throws(LVMError) in
            try self.changeLV(&s, vg: vg, name: name, argv, lockspaceFailedText: nil) { (lv, group) throws(LVMError) in
                if lv.devices[hostName] != nil { lv.devices[hostName]!.sizeBytes = lv.extents * group.extentSize }
            }
        }
    }

    // MARK: Reports (work without a started lockspace, as lvs/vgs do)

    public func listLVs(vg: String) async throws(LVMError) -> [LogicalVolume] {
        let argv = LVMCommands.listLVs(vg: vg)
        return try await operation("listLVs", [vg]) { (s) throws(LVMError) in
            try LVMError.checkNames(vg: vg)
            let group = try self.group(s, vg, argv)
            return group.lvs.values.sorted { $0.name < $1.name }.map { self.view($0, group) }
        }
    }

    public func lvInfo(vg: String, name: String) async throws(LVMError) -> LogicalVolume {
        let argv = LVMCommands.lvInfo(vg: vg, name: name)
        return try await operation("lvInfo", [vg, name]) { (s) throws(LVMError) in
            try LVMError.checkNames(vg: vg, lv: name)
            let group = try self.group(s, vg, argv)
            return self.view(try self.lv(group, name, argv), group)
        }
    }

    public func vgInfo(vg: String) async throws(LVMError) -> VolumeGroup {
        let argv = LVMCommands.vgInfo(vg: vg)
        return try await operation("vgInfo", [vg]) { (s) throws(LVMError) in
            try LVMError.checkNames(vg: vg)
            let g = try self.group(s, vg, argv)
            let mdaSize: UInt64 = 1_044_480
            let mdaUsed = min(mdaSize, 4_096 + UInt64(g.lvs.count) * 700)
            return VolumeGroup(
                name: g.name, uuid: g.uuid, attr: "wz--ns", sizeBytes: g.totalExtents * g.extentSize,
                freeBytes: g.freeExtents * g.extentSize, extentSizeBytes: g.extentSize,
                extentCount: g.totalExtents, freeExtentCount: g.freeExtents, lvCount: g.lvs.count,
                pvCount: 1, missingPVCount: 0, lockType: "sanlock", lockArgs: "1.0.0:lvmlock",
                metadataAreaSizeBytes: mdaSize, metadataAreaFreeBytes: mdaSize - mdaUsed)
        }
    }

    // MARK: Lockspace

    public func lockStart(vg: String) async throws(LVMError) {
        let argv = LVMCommands.lockStart(vg: vg)
        try await operation("lockStart", [vg]) { (s) throws(LVMError) in
            try LVMError.checkNames(vg: vg)
            var group = try self.group(s, vg, argv)
            if group.failedHosts.contains(hostName) {
                throw Self.fail(argv, "Skipping global lock: storage failed for sanlock leases")
            }
            if group.startedHosts.contains(hostName) { return }
            if let other = group.startedHosts.first(where: { $0 != hostName && s.hostIds[$0] == hostId }) {
                throw Self.fail(argv, "Failed to start locking for VG \(vg): host_id \(hostId) is in use by \(other)")
            }
            group.startedHosts.insert(hostName)
            s.vgs[vg] = group
        }
    }

    public func lockStop(vg: String) async throws(LVMError) {
        let argv = LVMCommands.lockStop(vg: vg)
        try await operation("lockStop", [vg]) { (s) throws(LVMError) in
            try LVMError.checkNames(vg: vg)
            var group = try self.group(s, vg, argv)
            if group.lvs.values.contains(where: { $0.devices[hostName] != nil }) {
                throw Self.fail(argv, "VG \(vg) stop failed: LVs must first be deactivated")
            }
            group.startedHosts.remove(hostName)
            s.vgs[vg] = group
        }
    }

    public func lockspaceProblem(vg: String) async throws(LVMError) -> LVMErrorCode? {
        try await operation("lockspaceProblem", [vg]) { (s) throws(LVMError) in
            try LVMError.checkNames(vg: vg)
            let group = try self.group(s, vg, LVMCommands.probe(vg: vg))
            if group.failedHosts.contains(hostName) { return .lockStorageFailed }
            return group.startedHosts.contains(hostName) ? nil : .lockspaceNotStarted
        }
    }

    public func dropLockspace(vg: String) async throws(LVMError) {
        try await operation("dropLockspace", [vg]) { (s) throws(LVMError) in
            try LVMError.checkNames(vg: vg)
            SimulatedCluster.drop(&s, vg: vg, host: hostName)
        }
    }

    public func lockspaceStarted(vg: String) async throws(LVMError) -> Bool {
        try await operation("lockspaceStarted", [vg]) { (s) throws(LVMError) in
            try LVMError.checkNames(vg: vg)
            return s.vgs[vg]?.startedHosts.contains(hostName) ?? false
        }
    }

    public func lockStatus() async throws(LVMError) -> SanlockStatus {
        try await operation("lockStatus", []) { (s) throws(LVMError) in
            var status = SanlockStatus(daemon: "simulated.\(hostName)")
            for group in s.vgs.values.sorted(by: { $0.name < $1.name }) where group.startedHosts.contains(hostName) {
                let path = "/dev/mapper/\(group.name.replacing("-", with: "--"))-lvmlock"
                let lockspace = "lvm_\(group.name)"
                status.lockspaces.append(.init(name: lockspace, vg: group.name, hostId: hostId, path: path, offset: 0))
                for lv in group.lvs.values.sorted(by: { $0.leaseOffset < $1.leaseOffset }) {
                    if lv.exclusiveHolder == hostName {
                        status.resources.append(
                            .init(
                                lockspace: lockspace, lvUUID: lv.uuid, path: path, offset: lv.leaseOffset,
                                mode: .exclusive, leaseVersion: lv.leaseVersion, pid: 1010))
                    } else if lv.sharedHolders.contains(hostName) {
                        status.resources.append(
                            .init(
                                lockspace: lockspace, lvUUID: lv.uuid, path: path, offset: lv.leaseOffset,
                                mode: .shared, pid: 1010))
                    }
                }
            }
            return status
        }
    }

    // MARK: Devices

    public func deviceSize(vg: String, name: String) async throws(LVMError) -> UInt64? {
        try await operation("deviceSize", [vg, name]) { (s) throws(LVMError) in
            try LVMError.checkNames(vg: vg, lv: name)
            return s.vgs[vg]?.lvs[name]?.devices[hostName]?.sizeBytes
        }
    }

    public func renameLV(vg: String, from: String, to: String) async throws(LVMError) {
        let argv = LVMCommands.rename(vg: vg, from: from, to: to)
        try await operation("renameLV", [vg, from, to]) { (s) throws(LVMError) in
            try LVMError.checkNames(vg: vg, lv: from)
            try LVMError.checkNames(vg: vg, lv: to)
            var group = try self.group(s, vg, argv)
            var lv = try self.lv(group, from, argv)
            try self.requireLockspace(group, argv, failedText: "VG \(vg) lock failed: storage failed for sanlock leases")
            if group.lvs[to] != nil {
                throw Self.fail(argv, "Logical Volume \"\(to)\" already exists in volume group \"\(vg)\"")
            }
            if lv.devices[hostName] != nil || lv.holders(except: hostName) {
                throw Self.fail(argv, "LV locked by other host: \(vg)/\(from)")
            }
            lv.name = to
            group.lvs[from] = nil
            group.lvs[to] = lv
            s.vgs[vg] = group
        }
    }

    public func fillRange(
        vg: String, name: String, offset: UInt64, length: UInt64, fill: RangeFill
    ) async throws(LVMError) -> RangeFill {
        let device = devicePath(vg: vg, name: name)
        let input = fill == .random ? "/dev/urandom" : "/dev/zero"
        let argv = LVMCommands.fill(device: device, input: input, offset: offset, length: length)
        return try await operation("fillRange", [vg, name, "\(offset)", "\(length)", fill.rawValue]) { (s) throws(LVMError) in
            try LVMError.checkNames(vg: vg, lv: name)
            var lv = try self.activeHere(s, vg, name, argv)
            try Self.consumeIOFailure(&s, argv)
            var data = lv.data ?? [:]
            for block in Self.blockRange(offset, length) { data[block] = fill == .random ? UInt32.max : nil }
            lv.data = data
            s.vgs[vg]?.lvs[name] = lv
            SimulatedCluster.noteOriginWrite(&s, vg: vg, origin: name, blocks: Self.blockRange(offset, length))
            return fill == .zeroOffload && !s.zeroOffload ? .zeros : fill
        }
    }

    public func copyRange(vg: String, source: String, target: String, offset: UInt64, length: UInt64) async throws(LVMError) {
        let argv = LVMCommands.copy(
            source: devicePath(vg: vg, name: source), target: devicePath(vg: vg, name: target), offset: offset, length: length)
        try await operation("copyRange", [vg, source, target, "\(offset)", "\(length)"]) { (s) throws(LVMError) in
            try LVMError.checkNames(vg: vg, lv: source)
            try LVMError.checkNames(vg: vg, lv: target)
            let from = try self.activeHere(s, vg, source, argv)
            var to = try self.activeHere(s, vg, target, argv)
            try Self.consumeIOFailure(&s, argv)
            var data = to.data ?? [:]
            for block in Self.blockRange(offset, length) { data[block] = from.data?[block] }
            to.data = data
            s.vgs[vg]?.lvs[target] = to
            SimulatedCluster.noteOriginWrite(&s, vg: vg, origin: target, blocks: Self.blockRange(offset, length))
        }
    }

    /// Not SHA-256: a digest of the simulated content (block tags), equal for equal content.
    public func checksum(vg: String, name: String, length: UInt64) async throws(LVMError) -> String {
        let argv = ["sha256", devicePath(vg: vg, name: name)]
        return try await operation("checksum", [vg, name, "\(length)"]) { (s) throws(LVMError) in
            try LVMError.checkNames(vg: vg, lv: name)
            let lv = try self.activeHere(s, vg, name, argv)
            var hash: UInt64 = 0xcbf2_9ce4_8422_2325  // FNV-1a over (block, tag) and the length
            func mix(_ value: UInt64) {
                for shift in stride(from: 0, to: 64, by: 8) { hash = (hash ^ (value >> UInt64(shift) & 0xff)) &* 0x100_0000_01b3 }
            }
            mix(length)
            for block in Self.blockRange(0, length) {
                if let tag = lv.data?[block] {
                    mix(block)
                    mix(UInt64(tag))
                }
            }
            return String(hash, radix: 16)
        }
    }

    /// The LV, which must be active on this host (job I/O opens its device).
    func activeHere(_ s: State, _ vg: String, _ name: String, _ argv: [String]) throws(LVMError) -> LV {
        let lv = try self.lv(try self.group(s, vg, argv), name, argv)
        guard lv.devices[hostName] != nil else {
            throw LVMError(code: .notActive, message: "Logical volume \(vg)/\(name) is not active on this host", argv: argv)
        }
        return lv
    }

    private static func consumeIOFailure(_ s: inout State, _ argv: [String]) throws(LVMError) {
        guard s.ioFailures > 0 else { return }
        s.ioFailures -= 1
        throw LVMError(code: .internal, message: "dd: error writing: Input/output error", argv: argv)
    }

    static func blockRange(_ offset: UInt64, _ length: UInt64) -> Range<UInt64> {
        guard length > 0 else { return 0..<0 }
        return (offset >> 20)..<SimulatedCluster.blocks(offset + length)
    }

    public func pvsPresent(vg: String) async throws(LVMError) -> Bool {
        try await operation("pvsPresent", [vg]) { (s) throws(LVMError) in
            try LVMError.checkNames(vg: vg)
            return s.vgs[vg]?.pvsPresent ?? false
        }
    }

    // MARK: Helpers

    func operation<T: Sendable>(
        _ method: String, _ arguments: [String], _ body: (inout State) throws(LVMError) -> T
    ) async throws(LVMError) -> T {
        cluster.record(hostName, method, arguments)
        let start = ContinuousClock.now
        if cluster.latency > .zero { try? await Task.sleep(for: cluster.latency) }
        // The LVM command metrics as the real backend records them (the command it would run).
        let command = Self.commands[method] ?? "other"
        do {
            let result = try cluster.withState(body)
            LVMCommandMetrics.record(command: command, duration: ContinuousClock.now - start, failure: nil)
            return result
        } catch {
            LVMCommandMetrics.record(command: command, duration: ContinuousClock.now - start, failure: error.code)
            throw error
        }
    }

    /// The program the real backend runs for each operation (`LVMCommands`).
    static let commands: [String: String] = [
        "createLV": "lvcreate", "extendLV": "lvextend", "removeLV": "lvremove", "activate": "lvchange",
        "deactivate": "lvchange", "refresh": "lvchange", "listLVs": "lvs", "lvInfo": "lvs", "vgInfo": "vgs",
        "lockStart": "vgchange", "lockStop": "vgchange", "lockStatus": "sanlock", "lockspaceStarted": "sanlock",
        "lockspaceProblem": "vgs", "dropLockspace": "lvmlockctl", "deviceSize": "blockdev", "renameLV": "lvrename",
        "fillRange": "dd", "copyRange": "dd", "pvsPresent": "pvs",
    ]

    /// A failure as LVM prints it (two-space indented lines, exit 5), classified by the real classifier.
    static func fail(_ argv: [String], _ lines: String...) -> LVMError {
        let stderr = lines.map { "  \($0)\n" }.joined()
        return LVMErrorClassifier.error(for: CommandResult(argv: argv, termination: .exited(5), stderr: stderr))
    }

    static func extents(_ bytes: UInt64, _ extentSize: UInt64) -> UInt64 {
        (bytes + extentSize - 1) / extentSize
    }

    func group(_ s: State, _ vg: String, _ argv: [String]) throws(LVMError) -> VG {
        guard let group = s.vgs[vg], group.pvsPresent else {
            throw Self.fail(argv, "Volume group \"\(vg)\" not found", "Cannot process volume group \(vg)")
        }
        return group
    }

    func lv(_ group: VG, _ name: String, _ argv: [String]) throws(LVMError) -> LV {
        guard let lv = group.lvs[name] else {
            throw Self.fail(argv, "Failed to find logical volume \"\(group.name)/\(name)\"")
        }
        return lv
    }

    /// The frame of the methods that change one LV: names checked, VG and LV looked up, the
    /// lockspace checked, `body` applied to the LV, the LV stored back. `lockspaceFailedText`
    /// is what LVM prints when this host's lockspace failed; nil where a failed lockspace
    /// still works (unlock, refresh) and only a lockspace not joined at all is refused.
    private func changeLV(
        _ s: inout State, vg: String, name: String, _ argv: [String], lockspaceFailedText: String?,
        _ body: (inout LV, VG) throws(LVMError) -> Void
    ) throws(LVMError) {
        try LVMError.checkNames(vg: vg, lv: name)
        var group = try self.group(s, vg, argv)
        if let lockspaceFailedText {
            try requireLockspace(group, argv, failedText: lockspaceFailedText)
        } else if !group.startedHosts.contains(hostName) {
            throw Self.fail(argv, "Cannot access VG \(vg) due to failed lock.")
        }
        var lv = try self.lv(group, name, argv)
        try body(&lv, group)
        group.lvs[name] = lv
        s.vgs[vg] = group
    }

    func requireLockspace(_ group: VG, _ argv: [String], failedText: String) throws(LVMError) {
        if group.failedHosts.contains(hostName) { throw Self.fail(argv, failedText) }
        if !group.startedHosts.contains(hostName) {
            throw Self.fail(argv, "Cannot access VG \(group.name) due to failed lock.")
        }
    }

    func view(_ lv: LV, _ group: VG) -> LogicalVolume {
        let device = lv.devices[hostName]
        let attr = Self.attr(lv, group, device: device)
        return LogicalVolume(
            name: lv.name, vg: group.name, uuid: lv.uuid, sizeBytes: lv.extents * group.extentSize,
            attr: LVAttr(attr)!, active: device != nil, activeLocally: device != nil,
            activeExclusively: device != nil, lockArgs: "1.0.0:\(lv.leaseOffset)", tags: lv.tags ?? [])
    }
}
