import AOSAPI
import RPCWire
import SharedLVM

// Activations released while their host's agent was down (evacuate; docs/agent.md,
// "Released activations"). The record is the LV tag `aos-released.<host>` in the shared VG's
// metadata (`ReleaseTag`): any host with the lockspace started can write it (lvchange
// --addtag takes the VG lock, not the LV lock) and every host reads it, so the returning
// agent learns at boot what the cluster did without it.
extension AgentService {
    /// `release_lv`: tags the LV as released by `releasedHost` (not this host: its own
    /// activation is deactivated with `deactivate_lv`). An LV that is gone has nothing to release.
    func releaseLV(_ lv: LVRef, for releasedHost: String, tag: String) async throws(ServiceError) -> ReleaseLVResult {
        let (vg, name) = (lv.vg, lv.name)
        guard let info = try await lvInfoIfPresent("release_lv", vg, name) else {
            return ReleaseLVResult(host: host, vg: vg, name: name, changed: false)
        }
        if info.tags.contains(tag) { return ReleaseLVResult(host: host, vg: vg, name: name, changed: false) }
        try await lvm("release_lv", vg, name) { () async throws(LVMError) in try await backend.addTag(vg: vg, name: name, tag: tag) }
        logger.notice(
            "recorded a released activation of another host (its agent is down)",
            metadata: ["vg": "\(vg)", "lv": "\(name)", "released_host": "\(releasedHost)", "tag": "\(tag)"])
        return ReleaseLVResult(host: host, vg: vg, name: name, changed: true)
    }

    /// This host's release tag (nil only for a host name too long for an LVM tag).
    var ownReleaseTag: String? { ReleaseTag.tag(for: host) }

    /// After an activation by request: a release tag of this host on the LV is stale (the
    /// cluster gives the LV to this host again), and must go, or the next boot would drop this
    /// legitimate activation. Returns a warning when it could not be removed.
    func clearOwnReleaseTag(_ lv: LVRef, tags: [String]) async -> String? {
        guard let tag = ownReleaseTag, tags.contains(tag) else { return nil }
        do {
            try await backend.removeTag(vg: lv.vg, name: lv.name, tag: tag)
            logger.info("removed the stale release tag of this host", metadata: ["vg": "\(lv.vg)", "lv": "\(lv.name)", "tag": "\(tag)"])
            return nil
        } catch {
            noteLockspace(error, vg: lv.vg)
            logger.error(
                "cannot remove the stale release tag of this host; the next boot would not restore this activation",
                metadata: ["vg": "\(lv.vg)", "lv": "\(lv.name)", "tag": "\(tag)", "error": "\(error)"])
            return "activated, but the LV still carries \(tag) (\(error.message)): after a reboot this host would not restore it; "
                + "run 'lvchange --deltag \(tag) \(lv)'"
        }
    }

    /// A lock conflict on an LV whose holder's activation was released (evacuate): the holder's
    /// sanlock lease still lives. Says so, and how long that lasts.
    func explainReleasedConflict(_ error: ServiceError, tags: [String]) -> ServiceError {
        guard error.wireCode == .lockedByOtherHost else { return error }
        let released = ReleaseTag.releasedHosts(tags).filter { $0 != host }
        guard !released.isEmpty else { return error }
        let names = released.joined(separator: ", ")
        var out = error
        out.details["released_hosts"] = .array(released.map(JSONValue.string))
        out.message +=
            " — the activation on \(names) was released while its agent was down (evacuate), but sanlock still holds "
            + "the LV lock of \(names): it is free once that host's lease expires (8 × sanlock io_timeout + 60 s after the "
            + "host stopped, ~80 s at io_timeout 2 s, ~140 s at the default 10 s). If \(names) is still running with only "
            + "its agent stopped, the lease never expires: start that agent (it gives the LV up) or fence the host, then retry"
        return out
    }

    /// The boot's rule for a recorded activation whose LV carries this host's release tag:
    /// returns true when the record was settled here (the restore must not activate it).
    /// - not active here (the host rebooted): the record and the tag go;
    /// - active but not open (only the agent was down): deactivated, then both go;
    /// - active and open (a VM still uses it: the host was not dead): kept, with an error in
    ///   the log and in `health().state_problems`. A disk is never taken from a running VM.
    func settleReleased(_ record: ActivationRecord, _ info: LogicalVolume) async -> Bool {
        guard let tag = ownReleaseTag, info.tags.contains(tag) else { return false }
        let lv = LVRef(vg: record.vg, name: record.name)
        let key = record.key
        if info.active && info.deviceOpen {
            let problem =
                "\(key) was released while this agent was down (tag \(tag): its server was evacuated), but it is active and open "
                + "here: a VM on this host still uses it. Kept; stop that VM, then deactivate the LV (deactivate_lv)"
            logger.error(
                "released activation still in use on this host; not taken from the VM",
                metadata: ["vg": "\(record.vg)", "lv": "\(record.name)", "tag": "\(tag)"])
            state.update { $0.releasedInUse[key] = problem }
            return true
        }
        if info.active {
            do {
                _ = try await deactivateLV(lv)
            } catch {
                logger.error(
                    "cannot deactivate a released activation",
                    metadata: ["vg": "\(record.vg)", "lv": "\(record.name)", "code": "\(error.code)", "error": "\(error.message)"])
                state.update {
                    $0.restoreFailures[key] = RestoreFailure(
                        record: record, code: error.code,
                        message: "released while the agent was down (tag \(tag)), but the deactivation failed: \(error.message)")
                }
                return true
            }
        } else {
            _ = forget(record.vg, record.name)
        }
        do {
            try await backend.removeTag(vg: record.vg, name: record.name, tag: tag)
        } catch {
            noteLockspace(error, vg: record.vg)
            // Harmless: without a record the tag means nothing to this host; the next activation removes it.
            logger.warning(
                "cannot remove this host's release tag", metadata: ["vg": "\(record.vg)", "lv": "\(record.name)", "error": "\(error)"])
        }
        logger.notice(
            "activation released while the agent was down (evacuate); not restored",
            metadata: ["vg": "\(record.vg)", "lv": "\(record.name)", "was_active_here": "\(info.active)", "tag": "\(tag)"])
        changes.yield()
        return true
    }
}
