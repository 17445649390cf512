import AOSAPI
import ArgumentParser
import RPCWire

#if canImport(Glibc)
import Glibc
#endif

/// `aosctl audit`: drift between LVM on each host, each agent's activation record and the
/// controller's activation map (and Cinder's volumes, when given), in one table.
struct Audit: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "audit",
        abstract: "Find drift between LVM, the agents' records, the controller's map and Cinder.",
        discussion: """
            Kinds: active_without_record, record_without_activation, controller_map_mismatch, \
            incompatible_activations, unexpected_name, no_cinder_volume, orphan_job_lv (docs/operations.md, \
            "Drift audit"). --fix repairs only the agents' records (record_without_activation when \
            the LV is active nowhere; active_without_record in the mode sanlock holds), after \
            showing the plan; it never activates, deactivates or deletes an LV.

            Exit status: 0 no drift, 10 drift found (after --fix: drift left), other statuses as \
            for every command.
            """)

    @Option(help: "Audit only this volume group (default: every VG the agents serve).") var vg: String?
    @Option(
        name: .customLong("cinder-volumes"),
        help: "Cinder's volumes as a JSON list (`openstack volume list --all-projects -f json`).")
    var cinderVolumes: String?
    @Option(
        name: .customLong("cinder-snapshots"),
        help: "Cinder's snapshots as a JSON list (`openstack volume snapshot list --all-projects -f json`).")
    var cinderSnapshots: String?
    @Option(help: "At most this many LVs per VG in each agent's reply (active ones first).")
    var limit: Int64 = AuditLimits.defaultLVs
    @Flag(help: "Repair the findings that are safe to repair, after showing the plan.") var fix = false
    @Flag(help: "With --fix: apply the plan without asking.") var yes = false
    @OptionGroup var global: GlobalOptions

    func validate() throws {
        guard (1...AuditLimits.maxLVs).contains(limit) else {
            throw ValidationError("--limit must be between 1 and \(AuditLimits.maxLVs)")
        }
        if yes && !fix { throw ValidationError("--yes goes with --fix") }
    }

    func run() async throws {
        // Cinder's lists are read before anything is asked: a bad file is a usage error.
        var cinder: Set<String>?
        do throws(CLIError) {
            if let path = cinderVolumes { cinder = try Self.cinderNames(path, snapshots: false) }
            if let path = cinderSnapshots { cinder = (cinder ?? []).union(try Self.cinderNames(path, snapshots: true)) }
        } catch {
            report(error, json: global.json)
            throw ExitCode(error.status.rawValue)
        }
        var driftLeft = false
        try await runCommand(global) { s throws(CLIError) in
            let (input, hosts) = try await gather(s, cinder: cinder)
            let result = DriftAudit.compute(input)
            var doc: [String: JSONValue] = [
                "hosts": .array(hosts.map(JSONValue.string)),
                "unreachable": .object(input.unreachable.mapValues(JSONValue.string)),
                "findings": try wire(result.findings),
                "warnings": .array(result.warnings.map(JSONValue.string)),
                "cinder_checked": .bool(cinder != nil),
            ]
            var text = Self.render(result, hosts: hosts)
            driftLeft = !result.findings.isEmpty
            guard fix else { return (.object(doc), text) }
            let plan = result.plan
            doc["plan"] = try wire(plan)
            if plan.isEmpty {
                doc["applied"] = .array([])
                return (.object(doc), text + "\nNothing is safe to fix automatically.\n")
            }
            text += "\nPlan (" + String(plan.count) + " fixes; only agents' records change, no LV is (de)activated):\n"
            text += table(["KIND", "VOLUME", "FIX"], plan.map { [$0.kind.rawValue, "\($0.vg)/\($0.name)", $0.fix?.description ?? "-"] })
            if !yes {
                guard !s.json, isatty(0) == 1 else {
                    if !s.json { stdoutText(text) }
                    throw CLIError(.invalidArgument, "--fix changes the agents' records: give --yes to apply the plan above")
                }
                stdoutText(text)
                text = ""
                stderrLine("Apply these \(plan.count) fixes? [y/N] ")
                let answer = readLine(strippingNewline: true)?.lowercased() ?? ""
                guard answer == "y" || answer == "yes" else {
                    throw CLIError(.other, "not applied: the answer was not 'yes'")
                }
            }
            var applied: [JSONValue] = []
            var rows: [[String]] = []
            var failed = 0
            for f in plan {
                guard let fx = f.fix else { continue }
                let request = AuditFixRequest(vg: f.vg, name: f.name, action: fx.action, mode: fx.mode)
                var entry: [String: JSONValue] = ["kind": .string(f.kind.rawValue), "vg": .string(f.vg), "name": .string(f.name)]
                entry["host"] = .string(fx.host)
                entry["action"] = .string(fx.action.rawValue)
                do throws(CLIError) {
                    let (raw, r) = try await s.agent(fx.host, .auditFix, request, as: AuditFixResult.self)
                    entry["result"] = raw
                    rows.append(["\(f.vg)/\(f.name)", fx.host, fx.action.rawValue, r.changed ? "done" : "already so"])
                } catch {
                    failed += 1
                    entry["error"] = error.json["error"] ?? .null
                    rows.append(["\(f.vg)/\(f.name)", fx.host, fx.action.rawValue, "failed: \(error.code): \(error.message)"])
                }
                applied.append(.object(entry))
            }
            doc["applied"] = .array(applied)
            text += "\nApplied:\n" + table(["VOLUME", "HOST", "ACTION", "RESULT"], rows)
            // Drift left: findings without a fix, and fixes that failed.
            driftLeft = failed > 0 || result.findings.count > plan.count
            return (.object(doc), text)
        }
        if driftLeft { throw ExitCode(CLIExitStatus.drift.rawValue) }
    }

    /// The three views: every agent's `audit_report` (one full listing per VG, the others only
    /// their active LVs) and the controller's map; with --direct, that one agent alone.
    private func gather(_ s: Session, cinder: Set<String>?) async throws(CLIError) -> (DriftInput, [String]) {
        var targets: [(host: String, vgs: Set<String>)] = []
        var unreachable: [String: String] = [:]
        var map: [String: [ActiveLV]]?
        if let host = global.direct {
            targets = [(host, [])]
        } else {
            let (_, agents) = try await s.controller(.listAgents, ListAgentsRequest(), as: ListAgentsResult.self)
            var m: [String: [ActiveLV]] = [:]
            for a in agents.agents {
                m[a.host] = a.active_lvs
                if a.status == .down {
                    unreachable[a.host] = "down in the controller's view"
                } else {
                    targets.append((a.host, Set(a.vgs.keys)))
                }
            }
            map = m
        }
        var reports: [AuditReportResult] = []
        var complete: Set<String> = []
        let (vg, limit) = (self.vg, self.limit)
        @Sendable func report(_ host: String, activeOnly: Bool) async -> Result<AuditReportResult, CLIError> {
            do throws(CLIError) {
                let request = AuditReportRequest(vg: vg, active_only: activeOnly, limit: limit)
                return .success(try await s.agent(host, .auditReport, request, as: AuditReportResult.self).result)
            } catch {
                return .failure(error)
            }
        }
        // A full listing only from the first host that gives one per VG (the VG's metadata is
        // shared), asked one after another; every other host lists its active LVs only, and
        // those are asked in parallel (a fleet of 2,000 agents would take minutes in turn).
        var activeOnlyHosts: [String] = []
        for t in targets {
            if let vg, !t.vgs.isEmpty, !t.vgs.contains(vg) { continue }
            let wanted = vg.map { Set([$0]) } ?? t.vgs
            if !wanted.isEmpty && wanted.isSubset(of: complete) {
                activeOnlyHosts.append(t.host)
                continue
            }
            switch await report(t.host, activeOnly: false) {
            case .success(let r):
                for v in r.vgs where v.complete { complete.insert(v.vg) }
                reports.append(r)
            case .failure(let error):
                if global.direct != nil { throw error }
                unreachable[t.host] = "\(error.code): \(error.message)"
            }
        }
        let answers = await withTaskGroup(of: (String, Result<AuditReportResult, CLIError>).self) { group in
            var pending = activeOnlyHosts.makeIterator()
            for _ in 0..<Self.parallelReports {
                guard let host = pending.next() else { break }
                group.addTask { (host, await report(host, activeOnly: true)) }
            }
            var out: [(String, Result<AuditReportResult, CLIError>)] = []
            while let answer = await group.next() {
                out.append(answer)
                if let host = pending.next() { group.addTask { (host, await report(host, activeOnly: true)) } }
            }
            return out
        }
        for (host, answer) in answers {
            switch answer {
            case .success(let r): reports.append(r)
            case .failure(let error): unreachable[host] = "\(error.code): \(error.message)"
            }
        }
        if let vg, let m = map {
            map = m.mapValues { $0.filter { $0.vg == vg } }
        }
        let hosts = reports.map(\.host).sorted()
        let input = DriftInput(
            reports: reports, unreachable: unreachable, controllerMap: map, cinderNames: cinder, wholeCluster: global.direct == nil)
        return (input, hosts)
    }

    /// Agents asked for their active LVs at once (each reply is small; the broker and this
    /// process bound the rest).
    static let parallelReports = 16

    private func wire(_ value: some Encodable) throws(CLIError) -> JSONValue {
        do { return try value.wireValue() } catch { throw CLIError(error) }
    }

    static func render(_ r: DriftResult, hosts: [String]) -> String {
        var out: String
        if r.findings.isEmpty {
            out = "No drift found (\(hosts.count) hosts audited: \(hosts.isEmpty ? "none" : hosts.joined(separator: ", "))).\n"
        } else {
            out = table(
                ["KIND", "VOLUME", "HOSTS", "FIX", "DETAIL"],
                r.findings.map {
                    [
                        $0.kind.rawValue, "\($0.vg)/\($0.name)", $0.hosts.isEmpty ? "-" : $0.hosts.joined(separator: ","),
                        $0.fix.map { "\($0.action.rawValue)" } ?? "-", $0.detail,
                    ]
                })
            let fixable = r.plan.count
            out += "\n\(r.findings.count) findings (\(fixable) safe to fix with --fix) on \(hosts.count) hosts.\n"
        }
        if !r.warnings.isEmpty { out += "\nNot judged:\n" + r.warnings.map { "  - \($0)\n" }.joined() }
        return out
    }

    /// LV names from a Cinder list file (at most 64 MiB).
    static func cinderNames(_ path: String, snapshots: Bool) throws(CLIError) -> Set<String> {
        guard let f = fopen(path, "r") else {
            throw CLIError(.invalidArgument, "cannot read \(path): \(String(cString: strerror(errno)))")
        }
        defer { fclose(f) }
        var bytes: [UInt8] = []
        var buf = [UInt8](repeating: 0, count: 65_536)
        while true {
            let n = fread(&buf, 1, buf.count, f)
            if n <= 0 { break }
            bytes += buf[0..<n]
            if bytes.count > 64 << 20 { throw CLIError(.invalidArgument, "\(path) is larger than 64 MiB") }
        }
        let doc: JSONValue
        do { doc = try JSONValue.parse(bytes) } catch { throw CLIError(.invalidArgument, "\(path) is not JSON: \(error)") }
        do { return try CinderView.lvNames(doc, snapshots: snapshots) } catch {
            throw CLIError(.invalidArgument, "\(path): \(error.message)")
        }
    }
}
