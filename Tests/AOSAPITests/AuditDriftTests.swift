import AOSAPI
import RPCWire
import Testing

/// The drift computation of `aosctl audit` over hand-made views: every kind is found, and the
/// look-alikes that are not drift (released LVs, job LVs, a shared activation on two hosts, a
/// change in progress) are not reported.
@Suite struct AuditDriftTests {
    static let vg = "vg1"

    static func lv(
        _ name: String, active: Bool = false, open: Bool = false, lock: LVMode? = nil, managed: Bool? = nil,
        released: [String]? = nil
    ) -> AuditLV {
        AuditLV(
            name: name, active: active, open: open, lock_mode: lock,
            managed: managed ?? (name.hasPrefix("volume-") || name.hasPrefix("_snapshot-")), released_hosts: released)
    }

    static func report(
        _ host: String, _ lvs: [AuditLV], records: [String: LVMode] = [:], complete: Bool = true, intents: [String] = [],
        failures: [String] = [], lockModes: Bool = true, jobs: [String]? = []
    ) -> AuditReportResult {
        let active = lvs.filter(\.active).count
        return AuditReportResult(
            host: host, lock_modes: lockModes, name_patterns: ["volume-*", "_snapshot-*"],
            vgs: [
                AuditVG(
                    vg: vg, lv_count: Int64(lvs.count), active_count: Int64(active), complete: complete, truncated: false,
                    lvs: complete ? lvs : lvs.filter(\.active))
            ],
            records: records.sorted { $0.key < $1.key }.map { ActiveLV(vg: vg, name: $0.key, mode: $0.value) },
            intents: intents.map { AuditLVRef(vg: vg, name: $0) }, restore_failures: failures.map { AuditLVRef(vg: vg, name: $0) },
            job_ids: jobs)
    }

    static func map(_ entries: [String: [String: LVMode]]) -> [String: [ActiveLV]] {
        entries.mapValues { lvs in lvs.sorted { $0.key < $1.key }.map { ActiveLV(vg: vg, name: $0.key, mode: $0.value) } }
    }

    static func kinds(_ r: DriftResult) -> [String] {
        r.findings.map { "\($0.kind.rawValue) \($0.name) \($0.hosts.joined(separator: ","))" }
    }

    /// A clean cluster: volumes active where recorded, one shared on two hosts, a job's LVs
    /// active without records, a snapshot LV: nothing to report.
    @Test func cleanClusterWithLookAlikes() {
        let a = Self.report(
            "a",
            [
                Self.lv("volume-1", active: true, lock: .exclusive), Self.lv("volume-2", active: true, lock: .shared),
                Self.lv("volume-3"), Self.lv("_snapshot-9"), Self.lv("aos-wipe-j1", active: true, lock: .exclusive, managed: false),
                Self.lv("aos-cow-j2", active: true, managed: false), Self.lv("aos-copy-j2", active: true, lock: .exclusive, managed: false),
            ], records: ["volume-1": .exclusive, "volume-2": .shared], jobs: ["j1"])
        let b = Self.report(
            "b", [Self.lv("volume-2", active: true, lock: .shared), Self.lv("volume-3")], records: ["volume-2": .shared],
            complete: false, jobs: ["j2"])
        let input = DriftInput(
            reports: [a, b], controllerMap: Self.map(["a": ["volume-1": .exclusive, "volume-2": .shared], "b": ["volume-2": .shared]]),
            cinderNames: ["volume-1", "volume-2", "volume-3", "_snapshot-9"])
        let r = DriftAudit.compute(input)
        #expect(r.findings.isEmpty, "\(Self.kinds(r))")
        #expect(r.warnings.isEmpty, "\(r.warnings)")
    }

    @Test func everyKindIsFound() {
        let a = Self.report(
            "a",
            [
                Self.lv("volume-1", active: true, lock: .exclusive),  // no record on a
                Self.lv("volume-2"),  // recorded on a, active nowhere
                Self.lv("volume-3", active: true, lock: .exclusive),  // exclusive on a, shared on b
                Self.lv("lv-legacy"),  // outside the pattern
                Self.lv("volume-4"),  // not Cinder's
                Self.lv("volume-5", active: true, lock: .shared),  // map disagrees
                Self.lv("aos-wipe-lost", managed: false),  // no agent holds its job
            ], records: ["volume-2": .exclusive, "volume-3": .exclusive, "volume-5": .shared])
        let b = Self.report("b", [Self.lv("volume-3", active: true, lock: .shared)], records: ["volume-3": .shared], complete: false)
        let input = DriftInput(
            reports: [a, b],
            controllerMap: Self.map(["a": ["volume-2": .exclusive, "volume-3": .exclusive], "b": ["volume-3": .shared]]),
            cinderNames: ["volume-1", "volume-2", "volume-3", "volume-5"])
        let r = DriftAudit.compute(input)
        #expect(
            Self.kinds(r) == [
                "active_without_record volume-1 a",
                "record_without_activation volume-2 a",
                "controller_map_mismatch volume-5 a",
                "incompatible_activations volume-3 a,b",
                "unexpected_name lv-legacy ",
                "no_cinder_volume volume-4 ",
                "orphan_job_lv aos-wipe-lost ",
            ])
        let fixes = r.findings.map(\.fix)
        #expect(fixes[0] == DriftFix(host: "a", action: .recordActivation, mode: .exclusive))
        #expect(fixes[1] == DriftFix(host: "a", action: .forgetRecord))
        #expect(fixes[2...].allSatisfy { $0 == nil })
        #expect(r.plan.count == 2)
        // Stable names on the wire.
        #expect(DriftKind.allCases.map(\.rawValue).count == 7)
    }

    /// A released activation (evacuate) is not drift of the host it was released from, and an
    /// exclusive activation next to it is not an incompatible pair.
    /// A job LV whose job no agent holds is an orphan, but only when every agent answered and
    /// reported its jobs; otherwise it is listed as not judged.
    @Test func orphanJobLVs() {
        let lvs = [
            Self.lv("volume-1"), Self.lv("aos-wipe-held", managed: false), Self.lv("aos-wipe-gone", managed: false),
            Self.lv("aos-copy-gone2", managed: false), Self.lv("aos-wipe-", managed: false),
        ]
        let a = Self.report("a", lvs, jobs: [])
        let b = Self.report("b", [], complete: false, jobs: ["held"])
        let r = DriftAudit.compute(DriftInput(reports: [a, b]))
        #expect(Self.kinds(r) == ["orphan_job_lv aos-copy-gone2 ", "orphan_job_lv aos-wipe-gone "], "\(r)")
        #expect(r.findings.allSatisfy { $0.fix == nil })
        #expect(r.warnings.isEmpty, "\(r.warnings)")

        let down = DriftAudit.compute(DriftInput(reports: [a], unreachable: ["b": "down in the controller's view"]))
        #expect(down.findings.isEmpty, "\(Self.kinds(down))")
        #expect(down.warnings.count(where: { $0.contains("not judged while a host does not answer") }) == 3, "\(down.warnings)")

        let old = DriftAudit.compute(DriftInput(reports: [a, Self.report("b", [], complete: false, jobs: nil)]))
        #expect(old.findings.isEmpty, "\(Self.kinds(old))")
        #expect(old.warnings.count(where: { $0.contains("b do not report jobs") }) == 3, "\(old.warnings)")
    }

    @Test func jobIDsFromNames() {
        #expect(JobLVName.jobID("aos-wipe-abc") == "abc")
        #expect(JobLVName.jobID("aos-cow-x") == "x")
        #expect(JobLVName.jobID("aos-copy-") == nil)
        #expect(JobLVName.jobID("volume-aos-wipe-x") == nil)
    }

    @Test func releasedActivationIsNotDrift() {
        let a = Self.report("a", [Self.lv("volume-1", active: true, lock: .exclusive, released: ["b"])], records: ["volume-1": .exclusive])
        let b = Self.report(
            "b", [Self.lv("volume-1", active: true, open: true, lock: .exclusive, released: ["b"])], records: ["volume-1": .exclusive],
            complete: false)
        let r = DriftAudit.compute(DriftInput(reports: [a, b], controllerMap: Self.map(["a": ["volume-1": .exclusive]])))
        // Not b's drift either way (LVM, record, map): its agent keeps it while a VM uses it, and
        // reports that in health().state_problems.
        #expect(r.findings.isEmpty, "\(Self.kinds(r))")
        #expect(r.warnings.contains { $0.contains("released from b") })
    }

    /// A change in progress (an intent) is not judged, whatever the views say.
    @Test func changeInProgressIsNotJudged() {
        let a = Self.report("a", [Self.lv("volume-1", active: true, lock: .exclusive)], intents: ["volume-1"])
        let r = DriftAudit.compute(DriftInput(reports: [a], controllerMap: Self.map(["a": [:]])))
        #expect(r.findings.isEmpty)
        #expect(r.warnings.contains { $0.contains("in progress") })
    }

    /// Fixes only when they are safe: not while a host is silent, not after a failed restore,
    /// not for an unmanaged name, not without sanlock's mode, not next to an exclusive elsewhere.
    @Test func unsafeFixesAreNotPlanned() {
        let a = Self.report(
            "a",
            [
                Self.lv("volume-1"), Self.lv("volume-2"), Self.lv("lv-x", active: true, lock: .exclusive),
                Self.lv("volume-3", active: true), Self.lv("volume-4", active: true, lock: .exclusive),
            ], records: ["volume-1": .exclusive, "volume-2": .shared], failures: ["volume-2"])
        let b = Self.report("b", [Self.lv("volume-4", active: true, lock: .exclusive)], records: ["volume-4": .exclusive], complete: false)
        let silent = DriftAudit.compute(DriftInput(reports: [a, b], unreachable: ["c": "timed out"]))
        #expect(silent.findings.filter { $0.kind == .recordWithoutActivation }.map(\.name) == ["volume-1", "volume-2"])
        #expect(silent.plan.isEmpty, "\(silent.plan)")
        #expect(silent.warnings.contains { $0.hasPrefix("c did not answer") })
        let direct = DriftAudit.compute(DriftInput(reports: [a], wholeCluster: false))
        #expect(direct.plan.map(\.name) == ["volume-4"], "an activation sanlock holds may still be recorded, no record dropped")
        #expect(direct.warnings.contains { $0.contains("other hosts are not compared") })
        let all = DriftAudit.compute(DriftInput(reports: [a, b]))
        #expect(all.plan.map(\.name) == ["volume-1"])
        let restore = all.findings.first { $0.name == "volume-2" }
        #expect(restore?.detail.contains("restore at boot failed") == true)
    }

    /// With an exclusive lock and no lock mode known on the other host: still incompatible;
    /// two activations of unknown modes: a warning, not a finding.
    @Test func unknownModes() {
        let a = Self.report(
            "a", [Self.lv("volume-1", active: true), Self.lv("volume-2", active: true, lock: .exclusive)], lockModes: false)
        let b = Self.report("b", [Self.lv("volume-1", active: true), Self.lv("volume-2", active: true)], complete: false, lockModes: false)
        let r = DriftAudit.compute(DriftInput(reports: [a, b]))
        #expect(r.findings.filter { $0.kind == .incompatibleActivations }.map(\.name) == ["volume-2"])
        #expect(r.warnings.contains { $0.contains("volume-1") && $0.contains("not known") })
    }

    /// A listing cut below the active LVs: that host's records are not judged.
    @Test func truncatedListing() {
        var a = Self.report("a", [Self.lv("volume-1", active: true, lock: .exclusive)], records: ["volume-2": .exclusive])
        a.vgs[0].active_count = 5
        a.vgs[0].truncated = true
        a.vgs[0].complete = false
        let r = DriftAudit.compute(DriftInput(reports: [a]))
        #expect(r.findings.map(\.kind) == [.activeWithoutRecord])
        #expect(r.warnings.contains { $0.contains("not checked") })
    }

    @Test func cinderLists() throws {
        let doc = try JSONValue.parse(
            Array(#"[{"ID": "11", "Name": "x"}, {"id": "22"}, "33", "volume-44", {"lv_name": "_snapshot-55"}]"#.utf8))
        #expect(try CinderView.lvNames(doc) == ["volume-11", "volume-22", "volume-33", "volume-44", "_snapshot-55"])
        #expect(try CinderView.lvNames(doc, snapshots: true).contains("_snapshot-11"))
        #expect(throws: ServiceError.self) { try CinderView.lvNames(.object([:])) }
        #expect(throws: ServiceError.self) { try CinderView.lvNames(.array([.object(["Name": "x"])])) }
    }

    /// The reply bound (docs/agent.md, "Drift audit"): a full listing of `AuditLimits.defaultLVs`
    /// Cinder-named LVs, and the drift computation over ten such hosts. Prints the numbers.
    @Test func replySizeAtTheDefaultLimit() throws {
        let n = Int(AuditLimits.defaultLVs)
        func name(_ i: Int) -> String {
            let hex = String(i, radix: 16)
            return "volume-0000aaaa-bbbb-cccc-dddd-" + String(repeating: "0", count: 12 - hex.count) + hex
        }
        let lvs = (0..<n).map { i in Self.lv(name(i), active: i % 10 == 0, lock: i % 10 == 0 ? .exclusive : nil) }
        let full = Self.report("host-0", lvs, records: Dictionary(uniqueKeysWithValues: (0..<n / 10).map { (name($0 * 10), .exclusive) }))
        let bytes = JSONWriter.serialize(try full.wireValue()).utf8.count
        print("audit_report with \(n) LVs (\(n / 10) active): \(bytes) bytes, \(bytes / n) per LV")
        #expect(bytes < 2 << 20, "the default limit keeps a reply near 1 MB")
        // Ten hosts: one full listing, nine with only their (here: no) active LVs.
        let others = (1..<10).map { Self.report("host-\($0)", [], complete: false) }
        let clock = ContinuousClock()
        var result = DriftResult(findings: [], warnings: [])
        let took = clock.measure { result = DriftAudit.compute(DriftInput(reports: [full] + others, cinderNames: [])) }
        print("drift over 10 hosts, \(n) LVs: \(took), \(result.findings.count) findings")
        #expect(result.findings.count == n, "every LV: no Cinder volume owns it")
    }
}
