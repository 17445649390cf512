import RPCWire
import SharedLVM

/// What adoption found for one LV that is active on this host (docs/agent.md, "Adoption").
public struct AdoptionFinding: Sendable, Hashable {
    public enum Kind: Sendable, Hashable {
        /// Active here under a lock sanlock shows, not in the activation record: adopt it in
        /// the lock's mode.
        case adopt(LVActivationMode)
        /// Active here and recorded in the mode of its lock: nothing to do.
        case recorded(LVActivationMode)
        /// Recorded in another mode than the lock sanlock shows: the record follows the lock.
        case modeDiffers(recorded: LVActivationMode, lock: LVActivationMode)
        /// Active here but its lock mode cannot be read (no lock in sanlock's list, the VG's
        /// lockspace not joined): reported, never recorded on a guess.
        case unclassified(String)
        /// Active here, name outside `[agent] lv_name_pattern`: not the agent's (listed only).
        case notManaged
    }

    public var vg: String
    public var name: String
    public var uuid: String
    /// The device is open here (a VM or another process uses it).
    public var open: Bool
    public var kind: Kind

    public var key: String { "\(vg)/\(name)" }

    /// The record adoption writes for this LV (nil: nothing to write).
    public var recordToWrite: ActivationRecord? {
        switch kind {
        case .adopt(let mode), .modeDiffers(_, let mode): return ActivationRecord(vg: vg, name: name, mode: mode)
        case .recorded, .unclassified, .notManaged: return nil
        }
    }

    /// One word for tables and logs: adopt, recorded, mode_differs, unclassified, not_managed.
    public var action: String {
        switch kind {
        case .adopt: return "adopt"
        case .recorded: return "recorded"
        case .modeDiffers: return "mode_differs"
        case .unclassified: return "unclassified"
        case .notManaged: return "not_managed"
        }
    }

    /// The lock mode sanlock shows (nil when unclassified).
    public var lockMode: LVActivationMode? {
        switch kind {
        case .adopt(let m), .recorded(let m), .modeDiffers(_, let m): return m
        case .unclassified, .notManaged: return nil
        }
    }

    public var detail: String {
        switch kind {
        case .adopt(let m): return "active here with a \(m.rawValue) lock, not recorded"
        case .recorded(let m): return "recorded as \(m.rawValue), as its lock"
        case .modeDiffers(let r, let l): return "recorded as \(r.rawValue) but its lock is \(l.rawValue)"
        case .unclassified(let why): return why
        case .notManaged: return "its name matches no [agent] lv_name_pattern: the agent leaves it alone"
        }
    }

    public var json: JSONValue {
        var o: [String: JSONValue] = [
            "vg": .string(vg), "name": .string(name), "uuid": .string(uuid), "open": .bool(open),
            "action": .string(action), "detail": .string(detail),
        ]
        o["mode"] = lockMode.map { .string($0.rawValue) } ?? .null
        return .object(o)
    }
}

/// The LVs of the served VGs that are active on this host, classified by the lock sanlock
/// shows for each (`sanlock client status`: `SH` shared, a lease version exclusive).
///
/// Why sanlock and not `lvs`: with lvm2 2.03.16 `lv_active_exclusively` says "active
/// exclusively" for an LV activated with `-asy` too (a local device-mapper notion), and
/// `lv_active_remotely` is always empty; the lock mode is visible only in sanlock's list,
/// matched to the LV by its UUID (docs/agent.md, "Adoption"; checked by
/// Tests/lab/test_lab_adoption.py).
public struct AdoptionSurvey: Sendable {
    public var findings: [AdoptionFinding]
    /// VGs whose LVs could not be listed, or with LVs active here while this host has not joined their lockspace.
    public var problems: [String: String]

    public init(findings: [AdoptionFinding] = [], problems: [String: String] = [:]) {
        self.findings = findings
        self.problems = problems
    }

    /// The records adoption writes (adopt and mode_differs findings).
    public var recordsToWrite: [ActivationRecord] { findings.compactMap(\.recordToWrite).sorted() }

    public var unclassified: [AdoptionFinding] {
        findings.filter { if case .unclassified = $0.kind { return true } else { return false } }
    }

    /// Reads LVM and sanlock (nothing is changed): one `sanlock client status`, one `lvs` per VG.
    public static func run(
        backend: any LVMBackend, volumeGroups: [String], lvNames: LVNamePolicy, records: [ActivationRecord]
    ) async -> AdoptionSurvey {
        var survey = AdoptionSurvey()
        let locks: SanlockStatus?
        do { locks = try await backend.lockStatus() } catch {
            locks = nil
            for vg in volumeGroups { survey.problems[vg] = "cannot read sanlock's locks: \(error.message)" }
        }
        let recorded = Dictionary(records.map { ($0.key, $0.mode) }, uniquingKeysWith: { a, _ in a })
        for vg in volumeGroups {
            let lvs: [LogicalVolume]
            do { lvs = try await backend.listLVs(vg: vg) } catch {
                survey.problems[vg] = "cannot list the LVs of \(vg): \(error.message)"
                continue
            }
            let joined = locks?.lockspace(forVG: vg) != nil
            // Not joined and nothing active: nothing to adopt (a host that never started it).
            if locks != nil, !joined, lvs.contains(where: { $0.active && !$0.isInternal }) {
                survey.problems[vg] = "this host has not joined the lockspace of \(vg) (vgchange --lock-start \(vg)): lock modes unknown"
            }
            for lv in lvs where lv.active && !lv.isInternal {
                survey.findings.append(
                    classify(lv, locks: joined ? locks : nil, recorded: recorded[lv.vg + "/" + lv.name], lvNames: lvNames))
            }
        }
        survey.findings.sort { $0.key < $1.key }
        return survey
    }

    static func classify(
        _ lv: LogicalVolume, locks: SanlockStatus?, recorded: LVActivationMode?, lvNames: LVNamePolicy
    ) -> AdoptionFinding {
        func finding(_ kind: AdoptionFinding.Kind) -> AdoptionFinding {
            AdoptionFinding(vg: lv.vg, name: lv.name, uuid: lv.uuid, open: lv.deviceOpen, kind: kind)
        }
        guard lvNames.manages(lv.name) else { return finding(.notManaged) }
        guard let locks else {
            return finding(.unclassified("active here, but the VG's lockspace is not joined: its lock mode cannot be read"))
        }
        guard let resource = locks.resource(lvUUID: lv.uuid) else {
            return finding(
                .unclassified(
                    "active here, but sanlock shows no lock for it (UUID \(lv.uuid)): a dropped lockspace, or activated without lvmlockd"
                ))
        }
        guard let recorded else { return finding(.adopt(resource.mode)) }
        return finding(recorded == resource.mode ? .recorded(recorded) : .modeDiffers(recorded: recorded, lock: resource.mode))
    }

    /// A table for `aos-agent adopt` (one line per finding, then the VG problems).
    public func table(dryRun: Bool) -> String {
        var rows = [["VG", "LV", "LOCK", "OPEN", dryRun ? "WOULD" : "ACTION", "DETAIL"]]
        for f in findings {
            rows.append([f.vg, f.name, f.lockMode?.rawValue ?? "-", f.open ? "open" : "-", f.action, f.detail])
        }
        var widths = [Int](repeating: 0, count: rows[0].count)
        for row in rows { for (i, cell) in row.enumerated() { widths[i] = max(widths[i], cell.count) } }
        var out = ""
        for row in rows {
            var line = ""
            for (i, cell) in row.enumerated() {
                line += i == row.count - 1 ? cell : cell + String(repeating: " ", count: widths[i] - cell.count + 2)
            }
            out += line + "\n"
        }
        if findings.isEmpty { out += "(no LV of the served VGs is active on this host)\n" }
        for vg in problems.keys.sorted() { out += "VG \(vg): \(problems[vg] ?? "")\n" }
        return out
    }

    /// `aos-agent adopt --json`: `{"dry_run", "recorded", "findings", "problems"}`.
    public func jsonText(dryRun: Bool, recorded: Int) -> String {
        JSONWriter.serialize(
            .object([
                "dry_run": .bool(dryRun), "recorded": .int(Int64(recorded)),
                "findings": .array(findings.map(\.json)),
                "problems": .object(problems.mapValues { .string($0) }),
            ]))
    }
}
