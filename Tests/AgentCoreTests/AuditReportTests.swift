import AOSAPI
import RPCWire
import SharedLVM
import SimulatedLVM
import Testing

@testable import AgentCore

/// The agent's side of the drift audit (AuditReport.swift): `audit_report` shows LVM's view with
/// sanlock's lock modes next to the record; `audit_fix` changes the record only, re-checking LVM.
struct AuditReportTests {
    /// Host A: v1 and v2 activated through the agent, then v3 activated and v2 deactivated "by
    /// hand" (the same host's LVM, behind the agent's back).
    func drifted(_ c: Cluster) async throws -> AgentService {
        let a = try await c.agent("host-a", hostId: 1)
        try await a.createLVs(["v1", "v2"], activate: "exclusive")
        try await a.createLVs(["v3"])
        let byHand = SimulatedLVMBackend(cluster: c.sim, hostName: "host-a", hostId: 1)
        try await byHand.activate(vg: "vg1", name: "v3", mode: .exclusive)
        try await byHand.deactivate(vg: "vg1", name: "v2")
        return a
    }

    func report(_ a: AgentService, _ args: [String: JSONValue] = [:]) async throws -> AuditReportResult {
        let raw = try await a.handle(method: "audit_report", args: args)
        return try JSONValueDecoder().decode(AuditReportResult.self, from: raw)
    }

    @Test func reportShowsLVMNextToTheRecord() async throws {
        let c = Cluster()
        let a = try await drifted(c)
        let r = try await report(a)
        #expect(r.host == "host-a" && r.lock_modes && r.name_patterns == ["*"])
        #expect(r.records.map(\.name) == ["v1", "v2"])
        let vg = try #require(r.vgs.first)
        #expect(vg.vg == "vg1" && vg.lv_count == 3 && vg.active_count == 2 && vg.complete && !vg.truncated)
        #expect(vg.lvs.map(\.name) == ["v1", "v3", "v2"], "active ones first")
        #expect(vg.lvs.map(\.lock_mode) == [.exclusive, .exclusive, nil])

        let active = try await report(a, ["active_only": true])
        #expect(active.vgs[0].lvs.map(\.name) == ["v1", "v3"] && !active.vgs[0].complete)
        let cut = try await report(a, ["limit": 1])
        #expect(cut.vgs[0].lvs.map(\.name) == ["v1"] && cut.vgs[0].truncated && !cut.vgs[0].activeListComplete)
        await expectError("invalid_argument") { _ = try await a.call("audit_report", ["limit": 0]) }
        await expectError("unknown_vg") { _ = try await a.call("audit_report", ["vg": "vg9"]) }

        let drift = DriftAudit.compute(DriftInput(reports: [r]))
        #expect(drift.findings.map { "\($0.kind.rawValue) \($0.name)" } == ["active_without_record v3", "record_without_activation v2"])
        #expect(drift.plan.count == 2)
    }

    @Test func fixChangesTheRecordOnlyAfterCheckingLVM() async throws {
        let c = Cluster()
        let a = try await drifted(c)
        c.sim.clearCalls()
        func fix(_ name: String, _ action: String, _ mode: String? = nil) async throws -> [String: JSONValue] {
            var args: [String: JSONValue] = ["vg": "vg1", "name": .string(name), "action": .string(action)]
            if let mode { args["mode"] = .string(mode) }
            return try await a.call("audit_fix", args)
        }
        // What LVM does not confirm is refused.
        await expectError("busy") { _ = try await fix("v1", "forget_record") }
        await expectError("not_active") { _ = try await fix("v2", "record_activation", "exclusive") }
        await expectError("incompatible_lock_mode") { _ = try await fix("v3", "record_activation", "shared") }
        #expect(a.store.all.map(\.name) == ["v1", "v2"])

        #expect(try await fix("v2", "forget_record")["changed"] == true)
        #expect(try await fix("v2", "forget_record")["changed"] == false)
        #expect(try await fix("v3", "record_activation", "exclusive")["changed"] == true)
        #expect(
            a.store.all == [
                ActivationRecord(vg: "vg1", name: "v1", mode: .exclusive), ActivationRecord(vg: "vg1", name: "v3", mode: .exclusive),
            ])
        // No LV was activated or deactivated by the fixes.
        let changes = c.sim.calls(host: "host-a").filter { ["activate", "deactivate", "remove"].contains($0.method) }
        #expect(changes.isEmpty, "\(changes)")
        #expect(DriftAudit.compute(DriftInput(reports: [try await report(a)])).findings.isEmpty)
    }
}
