import RPCWire

// The drift computation of `aosctl audit`: a pure function over three views — what LVM shows
// on each host (`audit_report`), each agent's activation record (same reply), and the
// controller's activation map (`list_agents`) — plus, optionally, Cinder's list of volumes.

/// The kinds of drift, by their stable names (`--json`, docs/operations.md).
public enum DriftKind: String, WireEnum, Comparable {
    /// LVM shows the LV active on a host whose agent has no record of it.
    case activeWithoutRecord = "active_without_record"
    /// The agent records an activation LVM does not show on its host.
    case recordWithoutActivation = "record_without_activation"
    /// The controller's map says something else than the agent's record.
    case controllerMapMismatch = "controller_map_mismatch"
    /// Active on two or more hosts with an exclusive lock among them.
    case incompatibleActivations = "incompatible_activations"
    /// A name outside the agents' `lv_name_pattern` and the jobs' `aos-*` names.
    case unexpectedName = "unexpected_name"
    /// A volume-named LV that no Cinder volume or snapshot owns (only with Cinder's view).
    case noCinderVolume = "no_cinder_volume"
    /// A job's LV (`aos-wipe-*`, `aos-copy-*`, `aos-cow-*`) whose job no agent holds: its host's
    /// agent lost its `state_dir` or never came back; it holds space (and a deleted volume's data).
    case orphanJobLV = "orphan_job_lv"

    public static func < (a: Self, b: Self) -> Bool {
        (allCases.firstIndex(of: a) ?? 0) < (allCases.firstIndex(of: b) ?? 0)
    }
}

/// The repair of a finding (`aosctl audit --fix`): one `audit_fix` call on one host.
public struct DriftFix: Codable, Sendable, Equatable {
    public var host: String
    public var action: AuditFixAction
    public var mode: LVMode?

    public init(host: String, action: AuditFixAction, mode: LVMode? = nil) {
        self.host = host
        self.action = action
        self.mode = mode
    }

    public var description: String {
        switch action {
        case .forgetRecord: return "drop the record on \(host)"
        case .recordActivation: return "record the \(mode?.rawValue ?? "?") activation on \(host)"
        }
    }
}

/// One drift finding.
public struct DriftFinding: Codable, Sendable, Equatable {
    public var kind: DriftKind
    public var vg: String
    public var name: String
    /// The hosts concerned (empty for kinds about the LV itself).
    public var hosts: [String]
    public var detail: String
    /// The safe repair, when there is one.
    public var fix: DriftFix?

    public init(kind: DriftKind, vg: String, name: String, hosts: [String], detail: String, fix: DriftFix? = nil) {
        self.kind = kind
        self.vg = vg
        self.name = name
        self.hosts = hosts
        self.detail = detail
        self.fix = fix
    }
}

/// The three views (and Cinder's) the audit compares.
public struct DriftInput: Sendable {
    /// The `audit_report` of every agent that answered.
    public var reports: [AuditReportResult]
    /// Agents that should have answered but did not: host → why.
    public var unreachable: [String: String]
    /// The controller's activation map by host (`list_agents`' `active_lvs`); nil without the controller.
    public var controllerMap: [String: [ActiveLV]]?
    /// LV names Cinder's volumes and snapshots own; nil when not given.
    public var cinderNames: Set<String>?
    /// The reports cover every agent (false: one host asked directly, `--direct`): only then
    /// can "active on no other host" be known, which dropping a record requires.
    public var wholeCluster: Bool

    public init(
        reports: [AuditReportResult], unreachable: [String: String] = [:], controllerMap: [String: [ActiveLV]]? = nil,
        cinderNames: Set<String>? = nil, wholeCluster: Bool = true
    ) {
        self.reports = reports
        self.unreachable = unreachable
        self.controllerMap = controllerMap
        self.cinderNames = cinderNames
        self.wholeCluster = wholeCluster
    }
}

/// The audit's answer: findings sorted by kind, VG, name, and what limited it.
public struct DriftResult: Codable, Sendable, Equatable {
    public var findings: [DriftFinding]
    /// What the audit could not judge (unreachable hosts, changes in progress, cut listings…).
    public var warnings: [String]

    public init(findings: [DriftFinding], warnings: [String]) {
        self.findings = findings
        self.warnings = warnings
    }

    /// The fixes of the findings, in order.
    public var plan: [DriftFinding] { findings.filter { $0.fix != nil } }
}

public enum DriftAudit {
    /// One host's activation of an LV as LVM shows it.
    struct Seen {
        var host: String
        var lv: AuditLV
        var recorded: LVMode?
        /// The mode the lock says, else the record's.
        var mode: LVMode? { lv.lock_mode ?? recorded }
    }

    public static func compute(_ input: DriftInput) -> DriftResult {
        var findings: [DriftFinding] = []
        var warnings: [String] = []
        let reports = input.reports.sorted { $0.host < $1.host }
        for (host, why) in input.unreachable.sorted(by: { $0.key < $1.key }) {
            warnings.append("\(host) did not answer (\(why)): its LVs and record are not audited")
        }
        // Keys being changed right now (an intent on some host) are not judged: the views
        // disagree for a moment by design.
        var inProgress: [AuditLVRef: String] = [:]
        for r in reports { for i in r.intents { inProgress[i] = r.host } }
        for (key, host) in inProgress.sorted(by: { $0.key < $1.key }) {
            warnings.append("\(key): a change is in progress on \(host); not judged (run the audit again)")
        }
        var records: [String: [AuditLVRef: LVMode]] = [:]
        for r in reports {
            var m: [AuditLVRef: LVMode] = [:]
            for rec in r.records { m[AuditLVRef(vg: rec.vg, name: rec.name)] = rec.mode }
            records[r.host] = m
        }

        // LVM's view: activations per LV, and every LV of a VG from the complete listings.
        var seen: [AuditLVRef: [Seen]] = [:]
        var everyLV: [String: [String: AuditLV]] = [:]  // vg → name → LV (managed if any host says so)
        var completeVGs: Set<String> = []
        var listedVGs: Set<String> = []
        var activeListed: [String: Set<String>] = [:]  // host → VGs whose active LVs are all listed
        // Activations released while their host's agent was down (evacuate; `aos-released.<host>`
        // tags, the same in every listing): that host's agent settles them at its next start, so
        // neither its LVM view nor its record nor the map is judged for them.
        var releasedFrom: [AuditLVRef: Set<String>] = [:]
        for r in reports {
            for vg in r.vgs {
                for lv in vg.lvs {
                    if let hosts = lv.released_hosts { releasedFrom[AuditLVRef(vg: vg.vg, name: lv.name), default: []].formUnion(hosts) }
                }
            }
        }
        func released(_ key: AuditLVRef, on host: String) -> Bool { releasedFrom[key]?.contains(host) == true }
        for r in reports {
            if !r.lock_modes { warnings.append("\(r.host): sanlock could not be asked; lock modes are the agent's record") }
            for vg in r.vgs {
                if let error = vg.error {
                    warnings.append("\(r.host): cannot list VG \(vg.vg): \(error)")
                    continue
                }
                listedVGs.insert(vg.vg)
                if vg.activeListComplete {
                    activeListed[r.host, default: []].insert(vg.vg)
                } else {
                    warnings.append(
                        "\(r.host): VG \(vg.vg) has \(vg.active_count) active LVs, more than the listing limit; its records are not checked"
                    )
                }
                if vg.truncated {
                    warnings.append("\(r.host): the listing of VG \(vg.vg) was cut at \(vg.lvs.count) of \(vg.lv_count) LVs")
                }
                if vg.complete { completeVGs.insert(vg.vg) }
                for lv in vg.lvs {
                    let key = AuditLVRef(vg: vg.vg, name: lv.name)
                    if vg.complete || lv.active {
                        var known = everyLV[vg.vg, default: [:]][lv.name] ?? lv
                        known.managed = known.managed || lv.managed
                        everyLV[vg.vg, default: [:]][lv.name] = known
                    }
                    guard lv.active else { continue }
                    // The host's own activation released while its agent was down (evacuate):
                    // its agent settles it at its next start; not drift of that host.
                    if released(key, on: r.host) {
                        warnings.append("\(key): released from \(r.host) (evacuate) but still active there; its agent settles it")
                        continue
                    }
                    seen[key, default: []].append(Seen(host: r.host, lv: lv, recorded: records[r.host]?[key]))
                }
            }
        }
        for vg in listedVGs.subtracting(completeVGs).sorted() {
            warnings.append("VG \(vg): no complete listing; names and Cinder ownership not checked")
        }
        let allAnswered = input.unreachable.isEmpty && input.wholeCluster
        if !input.wholeCluster {
            warnings.append("only \(reports.map(\.host).joined(separator: ", ")) audited: activations on other hosts are not compared")
        }

        // Incompatible activations: an exclusive lock with any other activation.
        var incompatible: Set<AuditLVRef> = []
        for (key, acts) in seen.sorted(by: { $0.key < $1.key }) where acts.count > 1 && inProgress[key] == nil {
            let modes = acts.map(\.mode)
            if modes.contains(.exclusive) {
                incompatible.insert(key)
                let hosts = acts.map(\.host).sorted()
                let text = acts.sorted { $0.host < $1.host }.map { "\($0.host) (\($0.mode?.rawValue ?? "mode unknown"))" }
                findings.append(
                    DriftFinding(
                        kind: .incompatibleActivations, vg: key.vg, name: key.name, hosts: hosts,
                        detail: "active on \(text.joined(separator: ", ")): an exclusive activation must be the only one"))
            } else if modes.contains(nil) {
                let hosts = acts.map(\.host).sorted().joined(separator: ", ")
                warnings.append("\(key): active on \(hosts) in modes that are not known; not judged")
            }
        }

        // Activations without a record.
        for (key, acts) in seen.sorted(by: { $0.key < $1.key }) where inProgress[key] == nil {
            for a in acts where a.recorded == nil && !JobLVName.isJobLV(key.name) {
                var fix: DriftFix?
                var why = ""
                if !a.lv.managed {
                    why = "; not fixed: the name is outside the agent's lv_name_pattern"
                } else if incompatible.contains(key) {
                    why = "; not fixed: it is also active elsewhere with an exclusive lock"
                } else if let mode = a.lv.lock_mode {
                    fix = DriftFix(host: a.host, action: .recordActivation, mode: mode)
                } else {
                    why = "; not fixed: sanlock shows no lock mode for it"
                }
                let open = a.lv.open ? ", open" : ""
                findings.append(
                    DriftFinding(
                        kind: .activeWithoutRecord, vg: key.vg, name: key.name, hosts: [a.host],
                        detail:
                            "active on \(a.host) (\(a.lv.lock_mode?.rawValue ?? "lock mode unknown")\(open)) but not in its agent's record\(why)",
                        fix: fix))
            }
        }

        // Records without an activation.
        for r in reports {
            let failed = Set(r.restore_failures)
            for (key, mode) in (records[r.host] ?? [:]).sorted(by: { $0.key < $1.key }) where inProgress[key] == nil {
                guard activeListed[r.host]?.contains(key.vg) == true, !released(key, on: r.host) else { continue }
                if seen[key]?.contains(where: { $0.host == r.host }) == true { continue }
                let activeElsewhere = (seen[key] ?? []).map(\.host).sorted()
                let exists = everyLV[key.vg]?[key.name] != nil || !completeVGs.contains(key.vg)
                var detail = "recorded (\(mode.rawValue)) by the agent on \(r.host), but LVM does not show it active there"
                if !exists { detail += "; the LV does not exist" }
                var fix: DriftFix?
                if failed.contains(key) {
                    detail += "; its restore at boot failed (see the agent's restore_failures): not fixed"
                } else if !activeElsewhere.isEmpty {
                    detail += "; active on \(activeElsewhere.joined(separator: ", ")): not fixed"
                } else if !allAnswered {
                    detail += input.wholeCluster ? "; not fixed while a host does not answer" : "; not fixed: other hosts were not audited"
                } else {
                    fix = DriftFix(host: r.host, action: .forgetRecord)
                }
                findings.append(
                    DriftFinding(kind: .recordWithoutActivation, vg: key.vg, name: key.name, hosts: [r.host], detail: detail, fix: fix))
            }
        }

        // The controller's map against each answering agent's record.
        if let map = input.controllerMap {
            let auditedVGs = Set(reports.flatMap { $0.vgs.map(\.vg) })
            for r in reports {
                var mapped: [AuditLVRef: LVMode] = [:]
                for a in map[r.host] ?? [] { mapped[AuditLVRef(vg: a.vg, name: a.name)] = a.mode }
                let own = records[r.host] ?? [:]
                for key in Set(mapped.keys).union(own.keys).sorted()
                where inProgress[key] == nil && auditedVGs.contains(key.vg) && mapped[key] != own[key] && !released(key, on: r.host) {
                    let m = mapped[key]?.rawValue ?? "not active"
                    let o = own[key]?.rawValue ?? "no record"
                    findings.append(
                        DriftFinding(
                            kind: .controllerMapMismatch, vg: key.vg, name: key.name, hosts: [r.host],
                            detail: "the controller's map says \(m) on \(r.host), its agent's record says \(o) "
                                + "(the agent's next announcement corrects the map; if this stays, see the agent's log)"))
                }
            }
            for host in Set(map.keys).subtracting(reports.map(\.host)).subtracting(input.unreachable.keys).sorted()
            where !(map[host] ?? []).isEmpty {
                warnings.append("\(host) is in the controller's map but was not audited (down?)")
            }
        }

        // Names, and ownership by Cinder, from the complete listings.
        for vg in completeVGs.sorted() {
            for (name, lv) in (everyLV[vg] ?? [:]).sorted(by: { $0.key < $1.key }) where !JobLVName.isJobLV(name) {
                if !lv.managed {
                    findings.append(
                        DriftFinding(
                            kind: .unexpectedName, vg: vg, name: name, hosts: [],
                            detail: "outside the agents' lv_name_pattern and the jobs' names (aos-wipe-*, aos-copy-*, aos-cow-*)"))
                } else if let cinder = input.cinderNames, !cinder.contains(name) {
                    findings.append(
                        DriftFinding(
                            kind: .noCinderVolume, vg: vg, name: name, hosts: [],
                            detail: "no Cinder volume or snapshot owns it\(lv.active ? " (it is active)" : "")"))
                }
            }
        }
        // Job LVs whose job no agent holds: judged only when every agent answered with its jobs.
        let heldJobs = Set(reports.flatMap { $0.job_ids ?? [] })
        let withoutJobs = reports.filter { $0.job_ids == nil }.map(\.host).sorted()
        for vg in completeVGs.sorted() {
            for name in (everyLV[vg] ?? [:]).keys.sorted() {
                guard let id = JobLVName.jobID(name), !heldJobs.contains(id) else { continue }
                let key = AuditLVRef(vg: vg, name: name)
                if !allAnswered {
                    warnings.append("\(key): no answering agent holds job \(id); not judged while a host does not answer")
                } else if !withoutJobs.isEmpty {
                    warnings.append(
                        "\(key): no agent lists job \(id), but \(withoutJobs.joined(separator: ", ")) do not report jobs (older agents)")
                } else {
                    findings.append(
                        DriftFinding(
                            kind: .orphanJobLV, vg: vg, name: name, hosts: [],
                            detail: "no agent holds job \(id) (its agent lost state_dir or never came back); "
                                + "it holds space and maybe a deleted volume's data: clear and remove it by hand (docs/agent.md, Jobs)"))
                }
            }
        }
        findings.sort { ($0.kind, $0.vg, $0.name, $0.hosts.first ?? "") < ($1.kind, $1.vg, $1.name, $1.hosts.first ?? "") }
        return DriftResult(findings: findings, warnings: warnings)
    }
}

/// Cinder's view for the audit: the LV names its volumes and snapshots own.
public enum CinderView {
    /// LV names from a JSON list: strings (an LV name `volume-…`/`_snapshot-…`, or an id), or
    /// objects with `lv_name` (the LV name) or `id`/`ID` (`openstack volume list -f json`).
    /// An id becomes `volume-<id>`, or `_snapshot-<id>` when `snapshots` (the Cinder driver's names).
    public static func lvNames(_ doc: JSONValue, snapshots: Bool = false) throws(ServiceError) -> Set<String> {
        guard let list = doc.arrayValue else {
            throw ServiceError(.invalidArgument, "the Cinder list must be a JSON list of volumes")
        }
        let prefix = snapshots ? "_snapshot-" : "volume-"
        var out: Set<String> = []
        for (i, item) in list.enumerated() {
            if let s = item.stringValue, !s.isEmpty {
                out.insert(s.hasPrefix("volume-") || s.hasPrefix("_snapshot-") ? s : prefix + s)
            } else if let lv = item["lv_name"]?.stringValue, !lv.isEmpty {
                out.insert(lv)
            } else if let id = (item["id"] ?? item["ID"])?.stringValue, !id.isEmpty {
                out.insert(prefix + id)
            } else {
                throw ServiceError(
                    .invalidArgument,
                    "entry \(i) of the Cinder list has neither an id (id, ID) nor an lv_name: \(JSONValue.printable(JSONWriter.serialize(item), limit: 120))"
                )
            }
        }
        return out
    }
}
