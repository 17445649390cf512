import AOSAPI
import RPCWire
import SharedLVM

/// The read-only methods (and `start_lockspace`): they report LVM's view with the agent's own.
extension AgentService {
    /// An LV as the API reports it; `mode` is the agent's record.
    private func apiInfo(_ lv: LogicalVolume, host: String? = nil) -> LVInfo {
        LVInfo(
            host: host, vg: lv.vg, name: lv.name, uuid: lv.uuid, size_bytes: Int64(clamping: lv.sizeBytes), active: lv.active,
            device_open: lv.deviceOpen, mode: store.record(vg: lv.vg, name: lv.name)?.mode.wire, device_path: lv.path,
            attr: lv.attr.description)
    }

    func lvInfo(_ lv: LVRef) async throws(ServiceError) -> LVInfo {
        let found = try await lvm("lv_info", lv.vg, lv.name) { () async throws(LVMError) in
            try await backend.lvInfo(vg: lv.vg, name: lv.name)
        }
        return apiInfo(found, host: host)
    }

    func listLVs(_ vg: String) async throws(ServiceError) -> ListLVsResult {
        let lvs = try await lvm("list_lvs", vg, nil) { () async throws(LVMError) in try await backend.listLVs(vg: vg) }
        return ListLVsResult(host: host, vg: vg, lvs: lvs.filter { !$0.isInternal }.map { apiInfo($0) })
    }

    func vgInfo(_ vg: String) async throws(ServiceError) -> VGInfo {
        let g = try await lvm("vg_info", vg, nil) { () async throws(LVMError) in try await backend.vgInfo(vg: vg) }
        let started = try await lvm("vg_info", vg, nil) { () async throws(LVMError) in try await backend.lockspaceStarted(vg: vg) }
        let lockspace = state.update { $0.observeLockspace(vg, sanlockJoined: started) }
        // Deleted volumes waiting for their wipe, whichever host's job it is: used, not free.
        let lvs = try await lvm("vg_info", vg, nil) { () async throws(LVMError) in try await backend.listLVs(vg: vg) }
        let wiping = lvs.filter { $0.name.hasPrefix(JobLVName.wipePrefix) }
        return VGInfo(
            host: host, vg: vg, uuid: g.uuid, size_bytes: Int64(clamping: g.sizeBytes), free_bytes: Int64(clamping: g.freeBytes),
            extent_size_bytes: Int64(clamping: g.extentSizeBytes), extent_count: Int64(clamping: g.extentCount),
            free_extent_count: Int64(clamping: g.freeExtentCount), lv_count: Int64(clamping: g.lvCount),
            pv_count: Int64(clamping: g.pvCount), missing_pv_count: Int64(clamping: g.missingPVCount),
            lock_type: g.lockType, shared: g.shared, lockspace: lockspace,
            metadata_area_size_bytes: Int64(clamping: g.metadataAreaSizeBytes),
            metadata_area_free_bytes: Int64(clamping: g.metadataAreaFreeBytes),
            wiping_lv_count: Int64(wiping.count), wiping_bytes: Int64(clamping: wiping.reduce(0) { $0 &+ $1.sizeBytes }),
            volume_clear: configuration.volumeClear)
    }

    func lockStatus() async throws(ServiceError) -> LockStatusResult {
        let status: SanlockStatus
        do { status = try await backend.lockStatus() } catch {
            throw ServiceError(
                code: error.code.rawValue, message: "lock_status on host \(host) failed: \(error.message)",
                details: [
                    "host": .string(host), "stderr": .string(error.stderr),
                    "argv": .array(error.argv.map(JSONValue.string)), "operation": "lock_status",
                ])
        }
        // Name the LVs behind the lock UUIDs where the VG can be listed.
        var names: [String: (String, String)] = [:]
        for vg in configuration.volumeGroups {
            if let lvs = try? await backend.listLVs(vg: vg) {
                for lv in lvs { names[lv.uuid] = (vg, lv.name) }
            }
        }
        let lockspaces = status.lockspaces.map { l in
            SanlockLockspace(
                name: l.name, vg: l.vg, host_id: l.hostId, path: l.path, offset: Int64(clamping: l.offset),
                transition: l.transition)
        }
        let locks = status.resources.map { r in
            let known = names[r.lvUUID]
            return SanlockLock(
                lockspace: r.lockspace, lv_uuid: r.lvUUID, mode: r.mode.wire, offset: Int64(clamping: r.offset),
                lease_version: r.leaseVersion.map { Int64(clamping: $0) }, pid: r.pid.map { Int64($0) },
                vg: known?.0, name: known?.1)
        }
        return LockStatusResult(host: host, host_id: configuration.hostId, daemon: status.daemon, lockspaces: lockspaces, locks: locks)
    }

    /// `start_lockspace`: `vgchange --lock-start` and check that sanlock joined.
    func startLockspaceRequest(_ vg: String) async throws(ServiceError) -> StartLockspaceResult {
        let before = state.read { $0.lockspaces[vg] }
        await startLockspace(vg)
        let (after, problem) = state.read { ($0.lockspaces[vg], $0.vgProblems[vg]) }
        if after != .started {
            let hint =
                after == .lost
                ? "the lease storage still fails: deactivate the VG's LVs and run lvmlockctl --drop \(vg) first"
                : (problem ?? "see the agent log")
            throw ServiceError(
                after == .lost ? .lockspaceLost : .lockspaceNotStarted,
                "cannot start the lockspace of VG \(vg) on host \(host): \(hint)",
                details: ["host": .string(host), "vg": .string(vg)])
        }
        setPhase("ready", status: "ready")
        return StartLockspaceResult(host: host, vg: vg, changed: before != .started)
    }
}
