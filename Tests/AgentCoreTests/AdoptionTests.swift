import RPCWire
import SharedLVM
import SimulatedLVM
import Testing

@testable import AgentCore

#if canImport(Glibc)
import Glibc
#endif

/// Adoption (Adoption.swift, docs/agent.md "Adoption"): LVs activated "by hand" on a host —
/// by the AccentOS agent before the switch — through the simulated host's own backend, then
/// our agent starting on that host.
struct AdoptionTests {
    /// The host's LVM as the old agent used it: `vgchange --lock-start`, `lvcreate -an`, `lvchange -aey/-asy`.
    struct ByHand {
        let backend: SimulatedLVMBackend

        init(_ c: Cluster, _ host: String, hostId: Int) {
            backend = SimulatedLVMBackend(cluster: c.sim, hostName: host, hostId: hostId)
        }

        func start(_ vg: String = "vg1") async throws { try await backend.lockStart(vg: vg) }

        func create(_ name: String, _ mode: LVActivationMode?, vg: String = "vg1") async throws {
            _ = try await backend.createLV(vg: vg, name: name, sizeBytes: 64 << 20, activate: false)
            if let mode { try await backend.activate(vg: vg, name: name, mode: mode) }
        }
    }

    func modes(_ agent: AgentService) -> [String: String] {
        var out: [String: String] = [:]
        for lv in agent.health()["active_lvs"]?.arrayValue ?? [] {
            if let n = lv["name"]?.stringValue, let m = lv["mode"]?.stringValue { out[n] = m }
        }
        return out
    }

    func problems(_ agent: AgentService) -> [String] {
        (agent.health()["state_problems"]?.arrayValue ?? []).compactMap(\.stringValue)
    }

    @Test func firstStartRecordsTheLVsActiveHereInTheirLockModes() async throws {
        let c = Cluster()
        let old = ByHand(c, "host-a", hostId: 1)
        let other = ByHand(c, "host-b", hostId: 2)
        try await old.start()
        try await other.start()
        try await old.create("volume-ex", .exclusive)
        try await old.create("volume-sh", .shared)
        try await other.backend.activate(vg: "vg1", name: "volume-sh", mode: .shared)  // a multi-attach volume
        try await old.create("volume-off", nil)
        try await other.create("volume-b", .exclusive)  // active on the other host only
        try await old.create("admin-scratch", .exclusive)  // not the agent's (lv_name_pattern)
        #expect(c.sim.setOpen(host: "host-a", vg: "vg1", lv: "volume-ex", true))  // a VM runs on it

        let dir = "\(c.root)/host-a"
        #expect(access("\(dir)/activations.json", F_OK) != 0)
        let a = try await c.agent("host-a", hostId: 1, stateDir: dir, lvNames: .cinderDefault)
        #expect(
            a.store.all == [
                ActivationRecord(vg: "vg1", name: "volume-ex", mode: .exclusive),
                ActivationRecord(vg: "vg1", name: "volume-sh", mode: .shared),
            ])
        #expect(modes(a) == ["volume-ex": "exclusive", "volume-sh": "shared"])
        #expect(problems(a).isEmpty)
        #expect(a.health()["ready"] == true)
        // Adoption changed no LV: nothing was activated or deactivated on host-a by the agent.
        let changes = c.sim.calls(host: "host-a").map(\.method).filter { ["activate", "deactivate"].contains($0) }
        #expect(changes == ["activate", "activate", "activate"])  // the three by hand
        #expect(c.sim.lockHolders(vg: "vg1", lv: "admin-scratch")?.exclusive == "host-a")
    }

    @Test func adoptedActivationsAreRestoredAfterARebootAndHandOverForLiveMigration() async throws {
        let c = Cluster()
        let old = ByHand(c, "host-a", hostId: 1)
        try await old.start()
        try await old.create("volume-ex", .exclusive)
        try await old.create("volume-sh", .shared)
        let dir = "\(c.root)/host-a"
        _ = try await c.agent("host-a", hostId: 1, stateDir: dir, lvNames: .cinderDefault)

        // Reboot: devices and locks gone; the agent restores what it adopted, in those modes.
        c.sim.rebootHost("host-a")
        let a = try await c.agent("host-a", hostId: 1, stateDir: dir, lvNames: .cinderDefault)
        #expect(modes(a) == ["volume-ex": "exclusive", "volume-sh": "shared"])
        #expect(c.sim.lockHolders(vg: "vg1", lv: "volume-ex")?.exclusive == "host-a")
        #expect(c.sim.lockHolders(vg: "vg1", lv: "volume-sh")?.shared == ["host-a"])
        #expect(a.health()["restore_failures"] == [])

        // Live migration a -> b of the adopted exclusive volume: shared on both, then exclusive on b.
        let b = try await c.agent("host-b", hostId: 2, lvNames: .cinderDefault)
        await expectError("locked_by_other_host") {
            try await b.call("activate_lv", ["vg": "vg1", "name": "volume-ex", "mode": "exclusive"])
        }
        #expect(try await a.call("activate_lv", ["vg": "vg1", "name": "volume-ex", "mode": "shared"])["changed"] == true)
        #expect(try await b.call("activate_lv", ["vg": "vg1", "name": "volume-ex", "mode": "shared"])["changed"] == true)
        try await a.call("deactivate_lv", ["vg": "vg1", "name": "volume-ex"])
        #expect(try await b.call("activate_lv", ["vg": "vg1", "name": "volume-ex", "mode": "exclusive"])["changed"] == true)
        #expect(c.sim.lockHolders(vg: "vg1", lv: "volume-ex")?.exclusive == "host-b")
        #expect(modes(a) == ["volume-sh": "shared"])
        #expect(a.store.record(vg: "vg1", name: "volume-ex") == nil)
    }

    @Test func aLaterStartReportsUnrecordedActiveLVsAndAdoptRecordsThem() async throws {
        let c = Cluster()
        let dir = "\(c.root)/host-a"
        let first = try await c.agent("host-a", hostId: 1, stateDir: dir, lvNames: .cinderDefault)
        #expect(first.store.all.isEmpty)
        // The first start wrote the (empty) record: later starts are not first starts.
        #expect(readFile("\(dir)/activations.json") == "{\"activations\": [], \"format\": 1, \"host\": \"host-a\"}\n")

        // While the agent is stopped, someone activates an LV by hand on this host.
        let old = ByHand(c, "host-a", hostId: 1)
        try await old.create("volume-late", .shared)
        let a = try await c.agent("host-a", hostId: 1, stateDir: dir, lvNames: .cinderDefault)
        #expect(a.store.all.isEmpty)
        #expect(modes(a).isEmpty)
        #expect(problems(a).count == 1)
        #expect(
            problems(a).first?.contains("vg1/volume-late is active on this host (shared lock) but not in the activation record") == true)
        #expect(problems(a).first?.contains("aos-agent adopt") == true)

        // `aos-agent adopt` (the agent stopped): survey and one write.
        let onDisk = try Adoption.readRecords(directory: dir) ?? []
        let survey = await AdoptionSurvey.run(backend: old.backend, volumeGroups: ["vg1"], lvNames: .cinderDefault, records: onDisk)
        #expect(survey.findings.map(\.action) == ["adopt"])
        #expect(survey.recordsToWrite == [ActivationRecord(vg: "vg1", name: "volume-late", mode: .shared)])
        let store = try ActivationStore(directory: dir, host: "host-a")
        try store.setAll(survey.recordsToWrite)
        let again = try await c.agent("host-a", hostId: 1, stateDir: dir, lvNames: .cinderDefault)
        #expect(modes(again) == ["volume-late": "shared"])
        #expect(problems(again).isEmpty)
    }

    @Test func aProblemGoesAwayOnceTheAgentActivatesOrDeactivatesTheLV() async throws {
        let c = Cluster()
        let dir = "\(c.root)/host-a"
        _ = try await c.agent("host-a", hostId: 1, stateDir: dir, lvNames: .cinderDefault)
        let old = ByHand(c, "host-a", hostId: 1)
        try await old.create("volume-1", .exclusive)
        try await old.create("volume-2", .exclusive)
        let a = try await c.agent("host-a", hostId: 1, stateDir: dir, lvNames: .cinderDefault)
        #expect(problems(a).count == 2)
        try await a.call("activate_lv", ["vg": "vg1", "name": "volume-1", "mode": "exclusive"])
        try await a.call("deactivate_lv", ["vg": "vg1", "name": "volume-2"])
        #expect(problems(a).isEmpty)
        #expect(modes(a) == ["volume-1": "exclusive"])
    }

    @Test func lvsWithoutAReadableLockAreReportedNotRecorded() async throws {
        let c = Cluster()
        c.sim.ensureVolumeGroup("vg2", sizeBytes: 4 << 30)
        let old = ByHand(c, "host-a", hostId: 1)
        try await old.start()
        try await old.start("vg2")
        try await old.create("volume-ok", .exclusive)
        try await old.create("volume-nolock", .exclusive, vg: "vg2")
        // vg2's leases expired while its device stayed active (what a dropped lockspace leaves).
        c.sim.expireLeases(vg: "vg2", host: "host-a")
        let a = try await c.agent("host-a", hostId: 1, volumeGroups: ["vg1", "vg2"], lvNames: .cinderDefault)
        #expect(a.store.all == [ActivationRecord(vg: "vg1", name: "volume-ok", mode: .exclusive)])
        let p = problems(a)
        #expect(p.count == 1)
        #expect(
            p.first?.hasPrefix("vg2/volume-nolock is active on this host but was not adopted: active here, but sanlock shows no lock")
                == true)
    }

    @Test func theSurveyClassifiesByTheLockNotByTheRecord() async throws {
        let c = Cluster()
        let old = ByHand(c, "host-a", hostId: 1)
        try await old.start()
        try await old.create("volume-1", .exclusive)
        try await old.create("volume-2", .shared)
        try await old.create("volume-3", .shared)
        try await old.create("other", .shared)
        let recorded = [
            ActivationRecord(vg: "vg1", name: "volume-1", mode: .shared),  // the lock says exclusive
            ActivationRecord(vg: "vg1", name: "volume-2", mode: .shared),
        ]
        let survey = await AdoptionSurvey.run(backend: old.backend, volumeGroups: ["vg1"], lvNames: .cinderDefault, records: recorded)
        #expect(
            survey.findings.map { "\($0.name) \($0.action) \($0.lockMode?.rawValue ?? "-")" } == [
                "other not_managed -", "volume-1 mode_differs exclusive", "volume-2 recorded shared", "volume-3 adopt shared",
            ])
        #expect(survey.recordsToWrite.map(\.key) == ["vg1/volume-1", "vg1/volume-3"])
        #expect(survey.recordsToWrite.first?.mode == .exclusive)
        #expect(survey.problems.isEmpty && survey.unclassified.isEmpty)
        let table = survey.table(dryRun: true)
        #expect(table.hasPrefix("VG   LV        LOCK       OPEN  WOULD         DETAIL\n"))
        #expect(table.contains("volume-3  shared     -     adopt         active here with a shared lock, not recorded\n"))
        let json = try JSONValue.parse(Array(survey.jsonText(dryRun: true, recorded: 0).utf8))
        #expect(json["findings"]?.arrayValue?.count == 4)
        #expect(json["findings"]?.arrayValue?.last?["mode"] == "shared")
        #expect(json["dry_run"] == true)
    }

    @Test func aVGWhoseLockspaceIsNotJoinedIsAProblemAndItsLVsUnclassified() async throws {
        let c = Cluster()
        let old = ByHand(c, "host-a", hostId: 1)
        try await old.start()
        try await old.create("volume-1", .exclusive)
        c.sim.dropLockspace(vg: "vg1", host: "host-a")  // the device stays active, the lockspace is gone
        let survey = await AdoptionSurvey.run(backend: old.backend, volumeGroups: ["vg1"], lvNames: .cinderDefault, records: [])
        #expect(survey.problems["vg1"]?.contains("has not joined the lockspace of vg1") == true)
        #expect(survey.findings.map(\.action) == ["unclassified"])
        #expect(survey.recordsToWrite.isEmpty)
    }

    @Test func adoptionIsOneWriteAllOrNothing() async throws {
        let c = Cluster()
        let old = ByHand(c, "host-a", hostId: 1)
        try await old.start()
        try await old.create("volume-1", .exclusive)
        try await old.create("volume-2", .shared)
        let dir = "\(c.root)/host-a"
        // The agent dies before its adoption write: no file, so the next start adopts again.
        let dying = try await c.agent("host-a", hostId: 1, stateDir: dir, boot: false, lvNames: .cinderDefault)
        dying.store.crash(before: { $0 != "settle" })
        await dying.boot()
        #expect(access("\(dir)/activations.json", F_OK) != 0)
        let a = try await c.agent("host-a", hostId: 1, stateDir: dir, lvNames: .cinderDefault)
        #expect(modes(a) == ["volume-1": "exclusive", "volume-2": "shared"])
    }

    @Test func anUnreadableRecordIsNotAFirstStart() async throws {
        let c = Cluster()
        let old = ByHand(c, "host-a", hostId: 1)
        try await old.start()
        try await old.create("volume-1", .exclusive)
        let dir = makeTempDir()
        writeFile("\(dir)/activations.json", "{not json")
        let a = try await c.agent("host-a", hostId: 1, stateDir: dir, lvNames: .cinderDefault)
        #expect(a.store.all.isEmpty)
        #expect(problems(a).contains { $0.contains("vg1/volume-1 is active on this host (exclusive lock)") })
        let broken = makeTempDir()
        writeFile("\(broken)/activations.json", "{\"format\": 7}")
        #expect(throws: StoreError.self) { try Adoption.readRecords(directory: broken) }
    }

    @Test func agentRunningProbesTheNotificationSocket() throws {
        let dir = makeTempDir()
        #expect(Adoption.agentRunning(stateDirectory: dir) == false)
        #expect(try Adoption.readRecords(directory: dir) == nil)
        let listener = try FenceListener(stateDirectory: dir)
        #expect(Adoption.agentRunning(stateDirectory: dir) == true)
        listener.close()
    }
}
