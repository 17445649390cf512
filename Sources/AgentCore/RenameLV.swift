import AOSAPI
import RPCWire
import SharedLVM

/// `rename_lv` (docs/agent.md): Cinder's manage_existing gives an LV made outside Cinder its
/// `volume-<id>` name. Both names are already checked and admitted (`[agent] lv_name_pattern`,
/// not a job's LV).
///
/// Only an LV that is active nowhere is renamed, as `delete_lv` removes only such LVs: a host
/// with the LV active would keep a device-mapper device under the old name, and the activation
/// records (this agent's store, the controller's map, the guests' disk paths) name it by its
/// old name. Active on this host → `busy` (deactivate first, even when nothing has it open:
/// the record and the path would be stale). Active on another host → `locked_by_other_host`:
/// `lvrename` takes the LV's lock exclusively (lvmlockd), which a holder elsewhere refuses
/// (the LVM behaviour scenario "rename needs the LV inactive everywhere" checks this on real
/// LVM in the lab), so the check is LVM's own and needs no probe activation.
extension AgentService {
    /// Runs `body` holding the LV locks of both names (taken in name order: two renames in
    /// opposite directions cannot deadlock), then a slot.
    func withLVs<T>(
        _ a: LVRef, _ b: LVRef, _ deadline: ContinuousClock.Instant?,
        _ body: () async throws(ServiceError) -> T
    ) async throws(ServiceError) -> T {
        let keys = Set([a.description, b.description]).sorted()
        for key in keys { await lvLocks.lock(key) }
        defer { for key in keys.reversed() { lvLocks.unlock(key) } }
        return try await withSlot(deadline, vg: a.vg, lv: a.name, body)
    }

    func renameLV(_ lv: LVRef, to newName: String) async throws(ServiceError) -> RenameLVResult {
        let (vg, name) = (lv.vg, lv.name)
        let operation = "rename_lv \(lv) → \(newName)"
        func details(_ extra: [String: JSONValue] = [:]) -> [String: JSONValue] {
            ["host": .string(host), "vg": .string(vg), "lv": .string(name), "new_name": .string(newName)].merging(extra) { $1 }
        }
        guard name != newName else {
            throw ServiceError(
                .invalidArgument, "\(operation): 'new_name' must differ from 'name'", details: details(["argument": "new_name"]))
        }
        // A copy job that will complete under the new name would collide with it.
        if let job = jobs.all.first(where: { $0.kind == .copy && !$0.isOver && $0.vg == vg && $0.target == newName }) {
            throw ServiceError(
                .alreadyExists, "\(operation): copy job \(job.id) on host \(host) is making \(vg)/\(newName)",
                details: details(["job": .string(job.id)]))
        }
        let source = try await lvInfoIfPresent("rename_lv", vg, name)
        let existing = try await lvInfoIfPresent("rename_lv", vg, newName)
        guard let source else {
            if let existing {
                // Done before (a retry): the LV carries the new name already.
                return RenameLVResult(
                    host: host, vg: vg, name: name, new_name: newName, size_bytes: Int64(clamping: existing.sizeBytes), changed: false)
            }
            throw ServiceError(.notFound, "\(operation): LV \(lv) does not exist", details: details())
        }
        if existing != nil {
            throw ServiceError(
                .alreadyExists, "\(operation): an LV named \(newName) exists already in volume group \(vg)", details: details())
        }
        if source.active {
            let mode = store.record(vg: vg, name: name)?.mode.rawValue ?? "unknown mode"
            throw ServiceError(
                .busy,
                "\(operation): the LV is active on host \(host) (\(mode)\(source.deviceOpen ? ", open" : "")); deactivate it first",
                details: details(["active_here": true]))
        }
        do {
            try await backend.renameLV(vg: vg, from: name, to: newName)
        } catch {
            noteLockspace(error, vg: vg)
            var e = ServiceError.lvm(error, operation: "rename_lv to \(newName)", host: host, vg: vg, lv: name)
            if error.code == .lockedByOtherHost {
                e.message =
                    "\(operation): the LV is active on another host (its lock is held there); deactivate it there first (\(e.message))"
            }
            throw e
        }
        // A stale record of the old name (the LV is inactive) must not be restored at boot.
        if forget(vg, name) { changes.yield() }
        logger.info("renamed LV", metadata: ["vg": "\(vg)", "lv": "\(name)", "new_name": "\(newName)"])
        return RenameLVResult(
            host: host, vg: vg, name: name, new_name: newName, size_bytes: Int64(clamping: source.sizeBytes), changed: true)
    }
}
