import AOSAPI
import RPCWire
import SharedLVM

// The drift audit on the agent's side (`aosctl audit`; docs/operations.md, "Drift audit"):
// `audit_report` lists what LVM shows on this host next to the agent's record; `audit_fix`
// repairs the record only — never an LVM change — after checking again, under the LV's lock,
// that LVM still shows what the plan saw.
extension AgentService {
    /// `audit_report`: per VG, the LVs (active ones first, at most `limit`), each with its lock
    /// mode from sanlock; the agent's records, intents and restore failures for those VGs.
    func auditReport(vgs: [String], activeOnly: Bool, limit: Int) async -> AuditReportResult {
        // One sanlock query for every VG: the lock mode of each LV this host holds.
        let status = try? await backend.lockStatus()
        var lockModes: [String: LVMode] = [:]
        for r in status?.resources ?? [] { lockModes[r.lvUUID] = r.mode.wire }
        var out: [AuditVG] = []
        for vg in vgs {
            let lvs: [LogicalVolume]
            do {
                lvs = try await backend.listLVs(vg: vg).filter { !$0.isInternal }
            } catch {
                noteLockspace(error, vg: vg)
                out.append(
                    AuditVG(
                        vg: vg, lv_count: 0, active_count: 0, complete: false, truncated: false, lvs: [],
                        error: "\(error.code.rawValue): \(error.message)"))
                continue
            }
            let active = lvs.filter(\.active).sorted { $0.name < $1.name }
            let listed = activeOnly ? active : active + lvs.filter { !$0.active }.sorted { $0.name < $1.name }
            let kept = listed.prefix(limit).map { lv in
                let released = ReleaseTag.releasedHosts(lv.tags)
                return AuditLV(
                    name: lv.name, active: lv.active, open: lv.deviceOpen, lock_mode: lv.active ? lockModes[lv.uuid] : nil,
                    managed: configuration.lvNames.manages(lv.name), released_hosts: released.isEmpty ? nil : released)
            }
            out.append(
                AuditVG(
                    vg: vg, lv_count: Int64(lvs.count), active_count: Int64(active.count),
                    complete: !activeOnly && kept.count == lvs.count, truncated: kept.count < listed.count, lvs: kept))
        }
        let served = Set(vgs)
        let records = store.all.filter { served.contains($0.vg) }.map { ActiveLV(vg: $0.vg, name: $0.name, mode: $0.mode.wire) }
        let intents = store.intents.filter { served.contains($0.vg) }.map { AuditLVRef(vg: $0.vg, name: $0.name) }
        let failures = state.read { Array($0.restoreFailures.values) }.map(\.record).filter { served.contains($0.vg) }.sorted()
            .map { AuditLVRef(vg: $0.vg, name: $0.name) }
        let jobIDs = jobs.all.filter { served.contains($0.vg) }.map(\.id).sorted()
        return AuditReportResult(
            host: host, lock_modes: status != nil, name_patterns: configuration.lvNames.patterns, vgs: out, records: records,
            intents: intents, restore_failures: failures, job_ids: jobIDs)
    }

    /// `audit_fix` on one LV, run under its lock.
    /// - `forget_record`: refused (`busy`) if the LV is active here; otherwise the record goes.
    /// - `record_activation`: refused (`not_active`) unless the LV is active here, and
    ///   (`incompatible_lock_mode`) unless sanlock holds its lock in `mode` (the plan's).
    /// Nothing is activated, deactivated or deleted; the change is announced to the controller.
    func auditFix(_ lv: LVRef, _ action: AuditFixAction, mode: LVMode?) async throws(ServiceError) -> AuditFixResult {
        let (vg, name) = (lv.vg, lv.name)
        let info = try await lvInfoIfPresent("audit_fix", vg, name)
        let details: [String: JSONValue] = [
            "host": .string(host), "vg": .string(vg), "lv": .string(name), "action": .string(action.rawValue),
        ]
        switch action {
        case .forgetRecord:
            if let info, info.active {
                throw ServiceError(.busy, "\(lv) is active on host \(host) now: its record stays (audit again)", details: details)
            }
            let had = forget(vg, name)
            if had {
                logger.notice("audit: dropped the record of an LV not active here", metadata: ["vg": "\(vg)", "lv": "\(name)"])
                changes.yield()
            }
            return AuditFixResult(host: host, vg: vg, name: name, action: action, changed: had)
        case .recordActivation:
            guard let info, info.active else {
                throw ServiceError(.notActive, "\(lv) is not active on host \(host): nothing to record (audit again)", details: details)
            }
            let held = try await lvm("audit_fix", vg, name) { () async throws(LVMError) in try await backend.lockStatus() }
                .resource(lvUUID: info.uuid)?.mode
            guard let held, mode == nil || held.wire == mode else {
                let shown = held.map { "sanlock holds its lock \($0.rawValue)" } ?? "sanlock shows no lock of it"
                throw ServiceError(
                    .incompatibleLockMode,
                    "\(lv) on host \(host): \(shown), the plan said \(mode?.rawValue ?? "-"); not recorded (audit again)",
                    details: details)
            }
            if store.record(vg: vg, name: name)?.mode == held {
                return AuditFixResult(host: host, vg: vg, name: name, action: action, changed: false)
            }
            do {
                try store.set(ActivationRecord(vg: vg, name: name, mode: held))
            } catch {
                reportStoreProblem(error, vg: vg, name: name)
                throw ServiceError(.internal, "cannot record \(lv) on host \(host): \(error.message)", details: details)
            }
            logger.notice(
                "audit: recorded an activation LVM shows here", metadata: ["vg": "\(vg)", "lv": "\(name)", "mode": "\(held.rawValue)"])
            changes.yield()
            return AuditFixResult(host: host, vg: vg, name: name, action: action, changed: true)
        }
    }
}
