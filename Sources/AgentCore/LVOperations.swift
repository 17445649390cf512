import AOSAPI
import RPCWire
import SharedLVM

/// The LV operations that change something. Each runs under its LV's lock and a slot (see
/// `withLV`); arguments are already checked and the request admitted.
extension AgentService {
    /// The LV as LVM shows it, nil when it does not exist; any other LVM error becomes the
    /// agent's error for `operation` (and is noted if it tells about the lockspace).
    func lvInfoIfPresent(_ operation: String, _ vg: String, _ name: String) async throws(ServiceError) -> LogicalVolume? {
        do {
            return try await backend.lvInfo(vg: vg, name: name)
        } catch  where error.code == .notFound {
            return nil
        } catch {
            noteLockspace(error, vg: vg)
            throw .lvm(error, operation: operation, host: host, vg: vg, lv: name)
        }
    }

    func createLV(_ lv: LVRef, _ size: UInt64) async throws(ServiceError) -> CreateLVResult {
        let (vg, name) = (lv.vg, lv.name)
        do {
            // Inactive (-an): the creator is rarely the user, and no host is left holding it.
            let created = try await backend.createLV(vg: vg, name: name, sizeBytes: size, activate: false)
            logger.info("created LV", metadata: ["vg": "\(vg)", "lv": "\(name)", "size_bytes": "\(created.sizeBytes)"])
            return CreateLVResult(host: host, vg: vg, name: name, size_bytes: Int64(clamping: created.sizeBytes), changed: true)
        } catch  where error.code == .alreadyExists {
            let existing = try await lvm("create_lv", vg, name) { () async throws(LVMError) in try await backend.lvInfo(vg: vg, name: name)
            }
            let group = try await lvm("create_lv", vg, name) { () async throws(LVMError) in try await backend.vgInfo(vg: vg) }
            let wanted = LVSize.roundUp(size, extentSize: max(1, group.extentSizeBytes))
            guard existing.sizeBytes == wanted else {
                throw ServiceError(
                    .sizeConflict,
                    "create_lv \(lv) on host \(host): the LV exists with \(existing.sizeBytes) bytes, not the requested \(size) bytes (\(wanted) in whole extents)",
                    details: [
                        "host": .string(host), "vg": .string(vg), "lv": .string(name),
                        "existing_size_bytes": .int(Int64(clamping: existing.sizeBytes)),
                        "requested_size_bytes": .int(Int64(clamping: size)),
                    ])
            }
            return CreateLVResult(host: host, vg: vg, name: name, size_bytes: Int64(clamping: existing.sizeBytes), changed: false)
        } catch {
            noteLockspace(error, vg: vg)
            throw .lvm(error, operation: "create_lv", host: host, vg: vg, lv: name)
        }
    }

    func extendLV(_ lv: LVRef, _ size: UInt64, sharedUpdate: Bool) async throws(ServiceError) -> ExtendLVResult {
        let (vg, name) = (lv.vg, lv.name)
        let before = try await lvm("extend_lv", vg, name) { () async throws(LVMError) in try await backend.lvInfo(vg: vg, name: name) }
        try await lvm("extend_lv", vg, name) { () async throws(LVMError) in
            try await backend.extendLV(vg: vg, name: name, newSizeBytes: size, sharedUpdate: sharedUpdate)
        }
        let after = try await lvm("extend_lv", vg, name) { () async throws(LVMError) in try await backend.lvInfo(vg: vg, name: name) }
        var refreshed = false
        if after.active {
            // A host with the LV active must reload it to see the new size (sanlock does not
            // refresh other hosts; on this host it makes the result certain).
            try await lvm("extend_lv (refresh)", vg, name) { () async throws(LVMError) in try await backend.refresh(vg: vg, name: name) }
            refreshed = true
        }
        let changed = after.sizeBytes != before.sizeBytes
        if changed {
            logger.info(
                "extended LV",
                metadata: [
                    "vg": "\(vg)", "lv": "\(name)", "from": "\(before.sizeBytes)",
                    "to": "\(after.sizeBytes)", "shared_update": "\(sharedUpdate)",
                ])
        }
        return ExtendLVResult(
            host: host, vg: vg, name: name, size_bytes: Int64(clamping: after.sizeBytes), changed: changed,
            refreshed: refreshed)
    }

    func refreshLV(_ lv: LVRef) async throws(ServiceError) -> RefreshLVResult {
        let (vg, name) = (lv.vg, lv.name)
        let info = try await lvm("refresh_lv", vg, name) { () async throws(LVMError) in try await backend.lvInfo(vg: vg, name: name) }
        if info.active {
            try await lvm("refresh_lv", vg, name) { () async throws(LVMError) in try await backend.refresh(vg: vg, name: name) }
        }
        let device = try await lvm("refresh_lv", vg, name) { () async throws(LVMError) in try await backend.deviceSize(vg: vg, name: name) }
        return RefreshLVResult(
            host: host, vg: vg, name: name, size_bytes: Int64(clamping: device ?? info.sizeBytes),
            lv_size_bytes: Int64(clamping: info.sizeBytes), active: info.active, refreshed: info.active)
    }

    /// Without clearing: `lvremove` now. With clearing: the LV is renamed out of the volume
    /// namespace and a wipe job clears and removes it (Jobs/); the call returns at once.
    func deleteLV(_ lv: LVRef, clear: VolumeClear, clearMiB: UInt64) async throws(ServiceError) -> DeleteLVResult {
        let (vg, name) = (lv.vg, lv.name)
        guard let info = try await lvInfoIfPresent("delete_lv", vg, name) else {
            return DeleteLVResult(host: host, vg: vg, name: name, changed: false)
        }
        if info.active {
            let mode = store.record(vg: vg, name: name)?.mode.rawValue ?? "unknown mode"
            throw ServiceError(
                .busy, "delete_lv \(lv): the LV is active on host \(host) (\(mode)); deactivate it first",
                details: ["host": .string(host), "vg": .string(vg), "lv": .string(name), "active_here": true])
        }
        if clear != .none {
            let job = try await startWipe(lv, info: info, clear: clear, clearMiB: clearMiB)
            _ = forget(vg, name)
            return DeleteLVResult(host: host, vg: vg, name: name, changed: true, job: job)
        }
        let changed: Bool
        do {
            // Seen inactive just above: no second `lvs` inside the backend.
            try await backend.removeInactiveLV(vg: vg, name: name)
            changed = true
            logger.info("deleted LV", metadata: ["vg": "\(vg)", "lv": "\(name)", "cleared": "false"])
        } catch  where error.code == .notFound {
            changed = false
        } catch {
            noteLockspace(error, vg: vg)
            throw .lvm(error, operation: "delete_lv", host: host, vg: vg, lv: name)
        }
        _ = forget(vg, name)
        return DeleteLVResult(host: host, vg: vg, name: name, changed: changed)
    }

    func activateLV(_ lv: LVRef, _ mode: LVActivationMode) async throws(ServiceError) -> ActivateLVResult {
        let (vg, name) = (lv.vg, lv.name)
        let info = try await lvm("activate_lv", vg, name) { () async throws(LVMError) in try await backend.lvInfo(vg: vg, name: name) }
        let previous = store.record(vg: vg, name: name)
        let already = info.active && previous?.mode == mode
        // The intent is durable before LVM changes anything: killed between the activation
        // and the record, the next start finds it and records what LVM shows.
        if previous?.mode != mode {
            try recordIntent(ActivationIntent(vg: vg, name: name, operation: .activate(mode)))
        }
        do {
            try await backend.activate(vg: vg, name: name, mode: mode)
        } catch {
            if previous?.mode != mode { abandonIntent(vg, name) }
            noteLockspace(error, vg: vg)
            throw explainReleasedConflict(
                .lvm(error, operation: "activate_lv \(mode.rawValue)", host: host, vg: vg, lv: name), tags: info.tags)
        }
        var out = ActivateLVResult(
            host: host, vg: vg, name: name, mode: mode.wire, changed: !already,
            device_path: backend.devicePath(vg: vg, name: name))
        if previous?.mode != mode {
            do {
                try store.set(ActivationRecord(vg: vg, name: name, mode: mode))
            } catch {
                reportStoreProblem(error, vg: vg, name: name)
                out.warning = "activated, but not recorded for restore after reboot: \(error.message)"
            }
        }
        if let warning = await clearOwnReleaseTag(lv, tags: info.tags) {
            out.warning = out.warning.map { "\($0); \(warning)" } ?? warning
        }
        state.update {
            _ = $0.restoreFailures.removeValue(forKey: lv.description)
            _ = $0.releasedInUse.removeValue(forKey: lv.description)
        }
        if !already {
            logger.info("activated LV", metadata: ["vg": "\(vg)", "lv": "\(name)", "mode": "\(mode.rawValue)"])
            changes.yield()
        }
        return out
    }

    func deactivateLV(_ lv: LVRef) async throws(ServiceError) -> LVChangeResult {
        let (vg, name) = (lv.vg, lv.name)
        let info = try await lvInfoIfPresent("deactivate_lv", vg, name)
        var changed = false
        if let info, info.active {
            // Durable before the LVM command: killed after the deactivation but before the
            // record is removed, the next start must not re-activate what the caller released.
            try recordIntent(ActivationIntent(vg: vg, name: name, operation: .deactivate))
            do {
                try await backend.deactivate(vg: vg, name: name)
            } catch {
                abandonIntent(vg, name)
                noteLockspace(error, vg: vg)
                throw .lvm(error, operation: "deactivate_lv", host: host, vg: vg, lv: name)
            }
            changed = true
            logger.info("deactivated LV", metadata: ["vg": "\(vg)", "lv": "\(name)"])
        }
        let hadRecord = forget(vg, name)
        if changed || hadRecord { changes.yield() }
        return LVChangeResult(host: host, vg: vg, name: name, changed: changed)
    }
}
