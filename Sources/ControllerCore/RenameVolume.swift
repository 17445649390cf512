import AOSAPI
import RPCWire

// `rename_volume` (docs/rpc-api.md): Cinder's manage_existing renames an LV made outside
// Cinder to `volume-<id>`. Only an LV active nowhere is renamed: a host with it active would
// keep its device (and its guests' disk paths) under the old name.

extension RenameVolumeRequest: CheckedRequest {
    func check(_ method: String) throws(ServiceError) {
        try Check.lvName(name, method)
        try Check.lvName(new_name, method, key: "new_name")
        if name == new_name { throw Check.bad(method, "'new_name' must differ from 'name'", "new_name") }
        for (key, value) in [("name", name), ("new_name", new_name)] where JobLVName.isJobLV(value) {
            throw Check.bad(
                method, "'\(key)' \(value) is in a job's namespace (\(JobLVName.wipePrefix)*, \(JobLVName.copyPrefix)*): not a volume", key)
        }
        try Check.vg(vg, method)
    }
}

extension Controller {
    func renameVolume(_ r: RenameVolumeRequest, deadline: ContinuousClock.Instant?) async throws -> RenameVolumeResult {
        let vg = try await resolveVG(r.vg, method: .renameVolume, deadline: deadline)
        let lv = LVKey(vg: vg, name: r.name)
        // Every host the map knows, down ones too: a dead host's lease may still hold the LV,
        // and its agent would look for the old name when it comes back.
        let active = view.withLock { $0.activations(of: lv) }
        if !active.isEmpty {
            throw ServiceError(
                .busy,
                "volume \(lv) is active \(describe(active)): deactivate it there before renaming it "
                    + "(a host with it active would keep its device under the old name)",
                details: [
                    "vg": .string(vg), "name": .string(r.name), "new_name": .string(r.new_name),
                    "holder_host": .string(active[0].host), "holders": holders(active),
                ])
        }
        let request = RenameLVRequest(vg: vg, name: r.name, new_name: r.new_name)
        let host: String, a: RenameLVResult
        do {
            (host, a) = try await onAnyAgent(vg: vg, .renameLV, request, as: RenameLVResult.self, deadline: deadline)
        } catch let e as ServiceError {
            throw enrichConflict(e, lv: lv, target: nil, action: "rename")
        }
        view.withLock { $0.recordDeleted(lv) }
        logger.info(
            "volume renamed", metadata: ["lv": "\(lv)", "new_name": "\(r.new_name)", "host": "\(host)", "changed": "\(a.changed)"])
        return RenameVolumeResult(vg: vg, name: r.name, new_name: r.new_name, size_bytes: a.size_bytes, changed: a.changed, host: host)
    }
}
