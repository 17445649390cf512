import AOSAPI
import RPCWire
import Testing

@testable import ControllerCore

@Suite struct ClusterViewTests {
    let t0 = ContinuousClock.now
    let policy = LivenessPolicy(staleAfter: .seconds(30), downAfter: .seconds(60))

    func report(
        _ host: String, id: Int? = 1, lockspace: LockspaceState = .started, ready: Bool = true,
        active: [LVKey: ActivationMode] = [:], instance: String? = nil
    ) -> AgentReport {
        var r = AgentReport(host: host, hostID: id, ready: ready, lockspaces: ["vg0": lockspace], activeLVs: active)
        r.instanceID = instance
        return r
    }

    @Test func decodesHealthReport() throws {
        let json: JSONValue = [
            "host": "host-a", "host_id": 7, "version": "0.1.0", "instance_id": "run-1", "ready": false, "phase": "restoring",
            "vgs": ["vg0": ["lockspace": "lost", "hint": "run: aosctl recover --host host-a --vg vg0"]],
            "active_lvs": [["vg": "vg0", "name": "volume-1", "mode": "shared"], ["vg": "vg0", "name": "volume-2", "mode": "exclusive"]],
            "restore_failures": [
                ["vg": "vg0", "name": "volume-3", "mode": "exclusive", "code": "locked_by_other_host", "message": "held"]
            ],
        ]
        let request = try AgentAnnounceRequest.decode(["report": json, "sent_at": 1], method: "agent_announce")
        let r = try AgentReport(health: request.report)
        #expect(r.host == "host-a")
        #expect(r.hostID == 7)
        #expect(r.version == "0.1.0")
        #expect(r.instanceID == "run-1")
        #expect(r.ready == false)
        #expect(r.lockspaces == ["vg0": .lost])
        #expect(r.vgs["vg0"]?.hint == "run: aosctl recover --host host-a --vg vg0")
        #expect(r.activeLVs == [LVKey(vg: "vg0", name: "volume-1"): .shared, LVKey(vg: "vg0", name: "volume-2"): .exclusive])
        #expect(r.restoreFailures.map(\.code) == ["locked_by_other_host"])
    }

    @Test func reportWithoutHostIsRejected() {
        for report: JSONValue in [["host_id": 1], "nope"] {
            #expect(throws: ServiceError.self) {
                try AgentAnnounceRequest.decode(["report": report, "sent_at": 1], method: "agent_announce")
            }
        }
        #expect(throws: ServiceError.self) {
            try AgentReport(
                health: AgentHealth(
                    host: "", host_id: 1, version: "v", instance_id: "i", ready: true, phase: "ready",
                    vgs: [:], active_lvs: [], restore_failures: []))
        }
    }

    @Test func livenessFollowsThresholds() {
        var v = ClusterView(policy: policy, startedAt: t0)
        v.apply(report("a"), sentAt: 1, receivedAt: t0)
        #expect(v.liveness(of: "a", now: t0 + .seconds(29)) == .alive)
        #expect(v.liveness(of: "a", now: t0 + .seconds(30)) == .stale)
        #expect(v.liveness(of: "a", now: t0 + .seconds(59)) == .stale)
        #expect(v.liveness(of: "a", now: t0 + .seconds(60)) == .down)
        v.apply(report("a"), sentAt: 2, receivedAt: t0 + .seconds(61))
        #expect(v.liveness(of: "a", now: t0 + .seconds(62)) == .alive)
    }

    @Test func unknownHostIsWorthATryUntilDownAfterStart() {
        let v = ClusterView(policy: policy, startedAt: t0)
        #expect(v.liveness(of: "x", now: t0 + .seconds(1)) == .stale)
        #expect(v.warmingUp(now: t0 + .seconds(1)))
        #expect(v.liveness(of: "x", now: t0 + .seconds(60)) == .down)
        #expect(!v.warmingUp(now: t0 + .seconds(30)))
    }

    @Test func olderAnnouncementIsIgnored() {
        var v = ClusterView(policy: policy, startedAt: t0)
        let lv = LVKey(vg: "vg0", name: "v1")
        let first = v.apply(report("a", active: [lv: .exclusive]), sentAt: 10, receivedAt: t0)
        let older = v.apply(report("a"), sentAt: 9, receivedAt: t0 + .seconds(1))
        #expect(first && !older)
        #expect(v.activations(of: lv) == [Activation(host: "a", mode: .exclusive)])
    }

    @Test func activationMapCombinesReportsAndOwnChanges() {
        var v = ClusterView(policy: policy, startedAt: t0)
        let lv = LVKey(vg: "vg0", name: "v1")
        v.apply(report("a", active: [lv: .shared]), sentAt: 1, receivedAt: t0)
        v.apply(report("b", id: 2), sentAt: 1, receivedAt: t0)
        v.recordActivation(lv, host: "b", mode: .shared)
        #expect(v.activations(of: lv) == [Activation(host: "a", mode: .shared), Activation(host: "b", mode: .shared)])
        #expect(v.activationMap(vg: "vg0")[lv]?.count == 2)
        v.recordActivation(lv, host: "a", mode: nil)
        #expect(v.activations(of: lv) == [Activation(host: "b", mode: .shared)])
        // A report composed before the change and received after it does not undo it (a
        // delete right after an acknowledged deactivate was refused as busy: issue 15 chaos)…
        v.apply(report("b", id: 2), sentAt: 2, receivedAt: t0)
        v.apply(report("a"), sentAt: 2, receivedAt: t0)  // …but a report that agrees settles it
        #expect(v.activations(of: lv) == [Activation(host: "b", mode: .shared)])
        // The third report after the change is the truth again, whatever the change said.
        v.apply(report("b", id: 2), sentAt: 3, receivedAt: t0)
        #expect(v.activations(of: lv) == [Activation(host: "b", mode: .shared)])
        v.apply(report("b", id: 2), sentAt: 4, receivedAt: t0)
        #expect(v.activations(of: lv).isEmpty)
        v.recordDeleted(lv)
        #expect(v.activationMap().isEmpty)
    }

    @Test func theControllersOwnBrokerOutageDoesNotCountAgainstTheAgents() {
        var v = ClusterView(policy: policy, startedAt: t0)
        v.apply(report("a"), sentAt: 1, receivedAt: t0)
        v.apply(report("b", id: 2), sentAt: 1, receivedAt: t0 - policy.downAfter - .seconds(1))  // down already
        #expect(v.liveness(of: "b", now: t0) == .down)
        // Cut off for 10 down-periods, from 1 s after a's last report.
        let lost = t0 + .seconds(1)
        let back = lost + policy.downAfter * 10
        #expect(v.liveness(of: "a", now: back) == .down)  // what it would say without the discount
        v.discountOutage(from: lost, to: back)
        #expect(v.liveness(of: "a", now: back) == .alive)  // heard 1 s of hearing time ago
        #expect(v.liveness(of: "a", now: back + policy.downAfter) == .down)  // silence after the outage counts
        #expect(v.liveness(of: "b", now: back) == .down)  // down before the outage: stays down
    }

    @Test func aRestartedAgentsReportReplacesTheControllersOwnChanges() {
        var v = ClusterView(policy: policy, startedAt: t0)
        let lv = LVKey(vg: "vg0", name: "v1")
        v.apply(report("a", instance: "run-1"), sentAt: 1, receivedAt: t0)
        v.recordActivation(lv, host: "a", mode: .exclusive)
        v.apply(report("a", instance: "run-1"), sentAt: 2, receivedAt: t0)  // in flight: kept
        #expect(v.activations(of: lv) == [Activation(host: "a", mode: .exclusive)])
        v.apply(report("a", instance: "run-2"), sentAt: 3, receivedAt: t0)  // a new run: its report is all there is
        #expect(v.activations(of: lv).isEmpty)
    }

    @Test func candidatesPreferConfiguredAliveReadyStartedHosts() {
        var v = ClusterView(policy: policy, startedAt: t0)
        v.apply(report("a", id: 1), sentAt: 1, receivedAt: t0)
        v.apply(report("b", id: 2), sentAt: 1, receivedAt: t0 + .seconds(20))
        v.apply(report("c", id: 3), sentAt: 1, receivedAt: t0 + .seconds(20))
        v.apply(report("d", id: 4, lockspace: .notStarted), sentAt: 1, receivedAt: t0 + .seconds(20))
        v.apply(report("e", id: 5, ready: false), sentAt: 1, receivedAt: t0 + .seconds(20))
        let now = t0 + .seconds(21)
        #expect(v.candidates(vg: "vg0", preferred: [], now: now) == ["a", "b", "c"])
        #expect(v.candidates(vg: "vg0", preferred: ["c"], now: now) == ["c", "a", "b"])
        // a goes stale: alive hosts first, even before a preferred stale one.
        let later = t0 + .seconds(35)
        #expect(v.candidates(vg: "vg0", preferred: ["a"], now: later) == ["b", "c", "a"])
        #expect(v.candidates(vg: "vg0", preferred: [], now: t0 + .seconds(61)) == ["b", "c"])
        #expect(v.candidates(vg: "other", preferred: [], now: now).isEmpty)
    }

    @Test func hostIDCollisionsAmongLiveAgents() {
        var v = ClusterView(policy: policy, startedAt: t0)
        v.apply(report("a", id: 1), sentAt: 1, receivedAt: t0)
        v.apply(report("b", id: 1), sentAt: 1, receivedAt: t0 + .seconds(40))
        v.apply(report("c", id: 2), sentAt: 1, receivedAt: t0 + .seconds(40))
        #expect(v.hostIDConflicts(now: t0 + .seconds(41)) == [1: ["a", "b"]])
        // A down agent no longer holds its id.
        #expect(v.hostIDConflicts(now: t0 + .seconds(61)).isEmpty)
    }
}

@Suite struct ExtendPlanTests {
    @Test func inactiveGoesAnywhere() {
        #expect(ExtendPlan.plan(activations: [], preferred: [], isDown: { _ in false }) == .anyHost)
    }

    @Test func exclusiveRunsOnHolder() {
        #expect(
            ExtendPlan.plan(
                activations: [Activation(host: "b", mode: .exclusive)], preferred: ["a"],
                isDown: { _ in false }) == .onHolder("b"))
    }

    @Test func sharedUsesSharedUpdateOnPreferredHolderAndRefreshesOthers() {
        let acts = [Activation(host: "a", mode: .shared), Activation(host: "b", mode: .shared), Activation(host: "c", mode: .shared)]
        #expect(
            ExtendPlan.plan(activations: acts, preferred: [], isDown: { _ in false })
                == .sharedUpdate(primary: "a", refresh: ["b", "c"]))
        #expect(
            ExtendPlan.plan(activations: acts, preferred: ["c"], isDown: { _ in false })
                == .sharedUpdate(primary: "c", refresh: ["a", "b"]))
        #expect(
            ExtendPlan.plan(activations: [Activation(host: "b", mode: .shared)], preferred: [], isDown: { _ in false })
                == .sharedUpdate(primary: "b", refresh: []))
    }

    @Test func downHolderStopsTheExtend() {
        let acts = [Activation(host: "a", mode: .shared), Activation(host: "b", mode: .shared)]
        #expect(ExtendPlan.plan(activations: acts, preferred: [], isDown: { $0 == "b" }) == .holderDown("b"))
    }

    @Test func describesActivations() {
        #expect(describe([Activation(host: "a", mode: .exclusive)]) == "exclusively on a")
        #expect(describe([Activation(host: "a", mode: .shared), Activation(host: "b", mode: .shared)]) == "shared on a, b")
    }
}

@Suite struct AnnouncementTrustTests {
    let t0 = ContinuousClock.now
    let policy = LivenessPolicy(staleAfter: .seconds(30), downAfter: .seconds(60))

    func report(_ host: String, instance: String) -> AgentReport {
        AgentReport(host: host, hostID: 1, instanceID: instance)
    }

    @Test func aNewAgentRunReplacesAReportFromTheFuture() {
        var v = ClusterView(policy: policy, startedAt: t0)
        let first = v.apply(report("a", instance: "forged"), sentAt: 9e9, receivedAt: t0)
        // The same run may not go back in time…
        let older = v.apply(report("a", instance: "forged"), sentAt: 100, receivedAt: t0)
        // …but the real agent (another instance) replaces it.
        let real = v.apply(report("a", instance: "real"), sentAt: 100, receivedAt: t0)
        #expect(first && !older && real)
        #expect(v.agents["a"]?.report.instanceID == "real")
    }
}
