import AOSAPI
import AOSAuth
import OsloRPC
import RPCWire
import Testing

@testable import ControllerCore

@Suite struct ControllerTests {
    let agents = FakeAgents()
    let clock = FakeClock()

    func ready(preferred: [String] = [], timeout: Duration = .seconds(2888)) async throws -> Controller {
        let c = makeController(agents, clock: clock, preferred: preferred, timeout: timeout)
        try await announce(c, agents, [("host-a", 1), ("host-b", 2)])
        return c
    }

    @Test func createGoesToPreferredHostAndLeavesLVInactive() async throws {
        let c = try await ready(preferred: ["host-b"])
        let r = try await c.dispatch("create_volume", ["vg": "vg0", "name": "volume-1", "size_gb": 1])
        #expect(r["host"] == "host-b")
        #expect(r["size_bytes"] == .int(1 << 30))
        #expect(r["changed"] == true)
        #expect(agents.calls.map(\.host) == ["host-b"])
        let again = try await c.dispatch("create_volume", ["vg": "vg0", "name": "volume-1", "size_bytes": .int(1 << 30)])
        #expect(again["changed"] == false)
    }

    @Test func vgIsImpliedWhenAgentsServeOnlyOne() async throws {
        let c = try await ready()
        let r = try await c.dispatch("create_volume", ["name": "volume-1", "size_gb": 1])
        #expect(r["vg"] == "vg0")
    }

    @Test func createFailsOverWhenAnAgentIsUnreachable() async throws {
        let c = try await ready(preferred: ["host-a"])
        agents.setUndeliverable("host-a")
        let r = try await c.dispatch("create_volume", ["vg": "vg0", "name": "volume-1", "size_gb": 1])
        #expect(r["host"] == "host-b")
        #expect(agents.calls.map(\.host) == ["host-a", "host-b"])
    }

    @Test func createSkipsAgentsWithoutLockspace() async throws {
        let c = makeController(agents, clock: clock)
        try await announce(c, agents, [("host-a", 1)], lockspace: .lost)
        try await announce(c, agents, [("host-b", 2)])
        let r = try await c.dispatch("create_volume", ["vg": "vg0", "name": "volume-1", "size_gb": 1])
        #expect(r["host"] == "host-b")
    }

    @Test func noLiveAgentIsAgentUnavailableAtOnce() async throws {
        let c = try await ready()
        clock.advance(.seconds(61))
        let e = await expectCode("agent_unavailable") {
            _ = try await c.dispatch("create_volume", ["vg": "vg0", "name": "volume-1", "size_gb": 1])
        }
        #expect(e?.message.contains("host-a: down") == true)
        #expect(agents.calls.isEmpty)
    }

    @Test func unknownVGIsNamed() async throws {
        let c = try await ready()
        let e = await expectCode("unknown_vg") {
            _ = try await c.dispatch("create_volume", ["vg": "nope", "name": "volume-1", "size_gb": 1])
        }
        #expect(e?.message.contains("vg0") == true)
    }

    @Test func activationConflictNamesTheHolder() async throws {
        let c = try await ready()
        _ = try await c.dispatch("create_volume", ["vg": "vg0", "name": "volume-1", "size_gb": 1])
        let r = try await c.dispatch("activate_volume", ["vg": "vg0", "name": "volume-1", "host": "host-a", "mode": "exclusive"])
        #expect(r["active_on"] == [["host": "host-a", "mode": "exclusive"]])
        let e = await expectCode("locked_by_other_host") {
            _ = try await c.dispatch("activate_volume", ["vg": "vg0", "name": "volume-1", "host": "host-b", "mode": "exclusive"])
        }
        #expect(e?.details["holder_host"] == "host-a")
        #expect(e?.details["holder_mode"] == "exclusive")
        #expect(e?.message.contains("active exclusively on host-a") == true)
        #expect(e?.details["host"] == "host-b")
    }

    @Test func holderIsKnownFromAnotherControllersActivation() async throws {
        // Controller 1 activates; controller 2 learns it only from the agent's announcement.
        let c1 = try await ready()
        _ = try await c1.dispatch("create_volume", ["vg": "vg0", "name": "volume-1", "size_gb": 1])
        _ = try await c1.dispatch("activate_volume", ["vg": "vg0", "name": "volume-1", "host": "host-a"])
        let c2 = makeController(agents, clock: clock)
        try await announce(c2, agents, [("host-a", 1), ("host-b", 2)])
        let e = await expectCode("locked_by_other_host") {
            _ = try await c2.dispatch("activate_volume", ["vg": "vg0", "name": "volume-1", "host": "host-b"])
        }
        #expect(e?.details["holder_host"] == "host-a")
    }

    @Test func sharedOnBothThenDeactivate() async throws {
        let c = try await ready()
        _ = try await c.dispatch("create_volume", ["vg": "vg0", "name": "v", "size_gb": 1])
        _ = try await c.dispatch("activate_volume", ["vg": "vg0", "name": "v", "host": "host-a", "mode": "shared"])
        let r = try await c.dispatch("activate_volume", ["vg": "vg0", "name": "v", "host": "host-b", "mode": "shared"])
        #expect(r["active_on"] == [["host": "host-a", "mode": "shared"], ["host": "host-b", "mode": "shared"]])
        let d = try await c.dispatch("deactivate_volume", ["vg": "vg0", "name": "v", "host": "host-a"])
        #expect(d["active_on"] == [["host": "host-b", "mode": "shared"]])
        let g = try await c.dispatch("get_volume", ["vg": "vg0", "name": "v"])
        #expect(g["size_bytes"] == .int(1 << 30))
        #expect(g["active_on"] == [["host": "host-b", "mode": "shared"]])
    }

    @Test func activateOnDownHostFailsWithoutCallingIt() async throws {
        let c = try await ready()
        clock.advance(.seconds(61))
        try await announce(c, agents, [("host-b", 2)])
        let e = await expectCode("agent_unavailable") {
            _ = try await c.dispatch("activate_volume", ["vg": "vg0", "name": "v", "host": "host-a"])
        }
        #expect(e?.message.contains("host-a is down") == true)
        #expect(agents.calls.isEmpty)
    }

    @Test func waitingCallEndsWhenAgentGoesDown() async throws {
        let c = try await ready()
        agents.setHanging("host-a")
        let advancer = Task {
            while agents.calls.isEmpty { try await Task.sleep(for: .milliseconds(5)) }
            clock.advance(.seconds(61))
        }
        let e = await expectCode("agent_unavailable") {
            _ = try await c.dispatch("activate_volume", ["vg": "vg0", "name": "v", "host": "host-a"])
        }
        // (No timed assertion: the fake's call sleeps the whole 2888 s timeout unless cancelled,
        // so reaching this line at all, with the cancellation recorded below, is the proof.)
        // The request was sent: the answer must not read as "nothing happened" (issue 15).
        #expect(e?.message.contains("went down") == true)
        #expect(e?.message.contains("may still run") == true)
        #expect(e?.message.contains("not sent") == false)
        #expect(e?.details["may_still_run"] == .bool(true))
        try await advancer.value
        // The abandoned call was cancelled, and had ended before the error was returned.
        #expect(agents.state.withLock { $0.cancelled } == ["host-a"])
    }

    @Test func waitingCallEndsWhenAgentAnnouncesANewRun() async throws {
        let c = try await ready()
        agents.setHanging("host-a")
        let restarter = Task {
            while agents.calls.isEmpty { try await Task.sleep(for: .milliseconds(5)) }
            // Host A's agent was SIGKILLed and is back: its first announcement names a new run.
            let report = agents.report("host-a", hostID: 1, instance: "run-host-a-2")
            _ = try await c.dispatch("agent_announce", ["report": report, "sent_at": 2.0])
        }
        let e = await expectCode("agent_restarted") {
            _ = try await c.dispatch("activate_volume", ["vg": "vg0", "name": "v", "host": "host-a"])
        }
        #expect(e?.message.contains("restarted while activate_lv waited") == true)
        #expect(e?.details["may_have_run"] == .bool(true))
        #expect(e?.details["new_instance"] == "run-host-a-2")
        try await restarter.value
        #expect(agents.state.withLock { $0.cancelled } == ["host-a"])
    }

    /// The watch (AgentCallWatch) keeps no call after it ended, whichever way it ended:
    /// answered, timed out, cancelled by the caller, ended by its host going down.
    @Test func noWaitingCallIsLeftBehind() async throws {
        let c = try await ready()
        _ = try await c.dispatch("create_volume", ["vg": "vg0", "name": "v", "size_gb": 1])
        for _ in 0..<50 { _ = try await c.dispatch("get_volume", ["vg": "vg0", "name": "v"]) }
        #expect(c.watch.count == 0)
        agents.setHanging("host-a")
        let sent = { agents.calls.filter { $0.host == "host-a" && $0.method == "activate_lv" }.count }
        // Timed out: the caller's deadline leaves the agent call ~0.5 s.
        _ = await expectCode("timed_out") {
            _ = try await c.dispatch(
                "activate_volume", ["vg": "vg0", "name": "v", "host": "host-a"], deadline: clock.now + .milliseconds(600))
        }
        #expect(c.watch.count == 0)
        // Cancelled by its caller.
        let cancelled = Task { try await c.dispatch("activate_volume", ["vg": "vg0", "name": "v", "host": "host-a"]) }
        while sent() < 2 { try await Task.sleep(for: .milliseconds(5)) }
        #expect(c.watch.count == 1)
        cancelled.cancel()
        _ = await cancelled.result
        #expect(c.watch.count == 0)
        // Two calls waiting on the host, both ended when it goes down.
        let waiting = (0..<2).map { _ in
            Task { try await c.dispatch("activate_volume", ["vg": "vg0", "name": "v", "host": "host-a"]) }
        }
        while sent() < 4 { try await Task.sleep(for: .milliseconds(5)) }
        clock.advance(.seconds(61))
        for t in waiting {
            do {
                _ = try await t.value
                Issue.record("a call to a host gone down succeeded")
            } catch let e as ServiceError {
                #expect(e.code == "agent_unavailable")
            }
        }
        #expect(c.watch.count == 0)
        // Nothing waits: the watcher's next pass stops it.
        #expect(c.checkWaitingCalls() == false)
        #expect(agents.state.withLock { $0.cancelled }.count == 3)
    }

    /// A new run of one host ends the calls waiting on that host only.
    @Test func aRestartEndsOnlyThatHostsCalls() async throws {
        let c = try await ready()
        agents.setHanging("host-a")
        agents.setHanging("host-b")
        let onB = Task { try await c.dispatch("activate_volume", ["vg": "vg0", "name": "v", "host": "host-b"]) }
        let onA = Task { try await c.dispatch("activate_volume", ["vg": "vg0", "name": "v", "host": "host-a"]) }
        while agents.calls.count < 2 { try await Task.sleep(for: .milliseconds(5)) }
        let report = agents.report("host-a", hostID: 1, instance: "run-host-a-2")
        _ = try await c.dispatch("agent_announce", ["report": report, "sent_at": 2.0])
        do {
            _ = try await onA.value
            Issue.record("the call to the restarted agent succeeded")
        } catch let e as ServiceError {
            #expect(e.code == "agent_restarted")
        }
        // host-b's call still waits (the fake hangs for the whole timeout): only it is left.
        #expect(c.watch.count == 1)
        #expect(agents.state.withLock { $0.cancelled } == ["host-a"])
        onB.cancel()
        _ = await onB.result
        #expect(c.watch.count == 0)
    }

    @Test func cancellingTheCallerCancelsTheAgentCall() async throws {
        let c = try await ready()
        agents.setHanging("host-a")
        let call = Task { try await c.dispatch("activate_volume", ["vg": "vg0", "name": "v", "host": "host-a"]) }
        while agents.calls.isEmpty { try await Task.sleep(for: .milliseconds(5)) }
        call.cancel()
        _ = await call.result
        #expect(agents.state.withLock { $0.cancelled } == ["host-a"])
    }

    @Test func agentTimeoutNeverExceedsCallersDeadline() async throws {
        let c = try await ready(timeout: .seconds(2888))
        _ = try await c.dispatch(
            "create_volume", ["vg": "vg0", "name": "v", "size_gb": 1],
            deadline: clock.now + .seconds(10))
        let t = try #require(agents.lastTimeout)
        #expect(t <= .seconds(10) && t >= .seconds(8))
        _ = try await c.dispatch("get_volume", ["vg": "vg0", "name": "v"])
        #expect(agents.lastTimeout == .seconds(2888))
    }

    @Test func expiredCallerDeadlineSendsNothing() async throws {
        let c = try await ready()
        let before = agents.calls.count
        _ = await expectCode("timed_out") {
            _ = try await c.dispatch(
                "activate_volume", ["vg": "vg0", "name": "v", "host": "host-a"],
                deadline: clock.now - .seconds(1))
        }
        #expect(agents.calls.count == before)
    }

    @Test func extendExclusiveRunsOnHolder() async throws {
        let c = try await ready(preferred: ["host-a"])
        _ = try await c.dispatch("create_volume", ["vg": "vg0", "name": "v", "size_gb": 1])
        _ = try await c.dispatch("activate_volume", ["vg": "vg0", "name": "v", "host": "host-b"])
        let r = try await c.dispatch("extend_volume", ["vg": "vg0", "name": "v", "size_gb": 2])
        #expect(r["host"] == "host-b")
        #expect(r["size_bytes"] == .int(2 << 30))
        #expect(r["refreshed_hosts"] == ["host-b"])
        #expect(agents.calls.last?.method == "extend_lv")
    }

    @Test func extendSharedUsesSharedUpdateAndRefreshesOtherHolders() async throws {
        let c = try await ready()
        _ = try await c.dispatch("create_volume", ["vg": "vg0", "name": "v", "size_gb": 1])
        _ = try await c.dispatch("activate_volume", ["vg": "vg0", "name": "v", "host": "host-a", "mode": "shared"])
        _ = try await c.dispatch("activate_volume", ["vg": "vg0", "name": "v", "host": "host-b", "mode": "shared"])
        let r = try await c.dispatch("extend_volume", ["vg": "vg0", "name": "v", "size_gb": 3])
        #expect(r["size_bytes"] == .int(3 << 30))
        #expect(r["refreshed_hosts"] == ["host-a", "host-b"])
        let tail = agents.state.withLock { Array($0.calls.suffix(2)) }
        #expect(tail[0].host == "host-a" && tail[0].method == "extend_lv" && tail[0].args["shared_update"] == true)
        #expect(tail[1].host == "host-b" && tail[1].method == "refresh_lv")
    }

    @Test func extendInactiveGoesToAnyLiveAgent() async throws {
        let c = try await ready(preferred: ["host-b"])
        _ = try await c.dispatch("create_volume", ["vg": "vg0", "name": "v", "size_gb": 1])
        let r = try await c.dispatch("extend_volume", ["vg": "vg0", "name": "v", "size_bytes": .int(3 << 30)])
        #expect(r["host"] == "host-b")
        #expect(r["refreshed_hosts"] == [])
    }

    @Test func deleteRefusesWhileActive() async throws {
        let c = try await ready()
        _ = try await c.dispatch("create_volume", ["vg": "vg0", "name": "v", "size_gb": 1])
        _ = try await c.dispatch("activate_volume", ["vg": "vg0", "name": "v", "host": "host-a"])
        let e = await expectCode("busy") { _ = try await c.dispatch("delete_volume", ["vg": "vg0", "name": "v"]) }
        #expect(e?.details["holder_host"] == "host-a")
        _ = try await c.dispatch("deactivate_volume", ["vg": "vg0", "name": "v", "host": "host-a"])
        let r = try await c.dispatch("delete_volume", ["vg": "vg0", "name": "v", "volume_clear": "zero"])
        #expect(r["changed"] == true)
        let again = try await c.dispatch("delete_volume", ["vg": "vg0", "name": "v"])
        #expect(again["changed"] == false)
        _ = await expectCode("not_found") { _ = try await c.dispatch("get_volume", ["vg": "vg0", "name": "v"]) }
    }

    @Test func listVolumesAndPoolStats() async throws {
        let c = try await ready()
        _ = try await c.dispatch("create_volume", ["vg": "vg0", "name": "b", "size_gb": 1])
        _ = try await c.dispatch("create_volume", ["vg": "vg0", "name": "a", "size_gb": 2])
        _ = try await c.dispatch("activate_volume", ["vg": "vg0", "name": "a", "host": "host-b"])
        let l = try await c.dispatch("list_volumes", ["vg": "vg0"])
        let vols = try #require(l["volumes"]?.arrayValue)
        #expect(vols.map { $0["name"] } == ["a", "b"])
        #expect(vols[0]["active_on"] == [["host": "host-b", "mode": "exclusive"]])
        let p = try await c.dispatch("pool_stats", [:])
        #expect(p["total_bytes"] == .int(100 << 30))
        #expect(p["free_bytes"] == .int(97 << 30))
        #expect(p["lv_count"] == 2)
        #expect(p["available"] == true)
        #expect(p["hosts"]?["host-a"] == ["status": "alive", "lockspace": "started"])
        clock.advance(.seconds(61))
        let down = try await c.dispatch("pool_stats", ["vg": "vg0"])
        #expect(down["available"] == false)
        #expect(down["free_bytes"] == 0)
        #expect(down["hosts"]?["host-a"]?["status"] == "down")
    }

    @Test func listAgentsFlagsHostIDCollision() async throws {
        let c = makeController(agents, clock: clock)
        try await announce(c, agents, [("host-a", 5), ("host-b", 5), ("host-c", 6)])
        let r = try c.listAgents().wireValue()
        let list = try #require(r["agents"]?.arrayValue)
        #expect(list.map { $0["host"] } == ["host-a", "host-b", "host-c"])
        #expect(list[0]["host_id_conflict"] == true && list[0]["host_id_conflict_with"] == ["host-b"])
        #expect(list[2]["host_id_conflict"] == false)
        #expect(r["host_id_conflicts"] == [["host_id": 5, "hosts": ["host-a", "host-b"]]])
        #expect(list[0]["status"] == "alive")
    }

    static let badInputs: [BadCase] = [
        BadCase("create_volume", ["vg": "vg0", "size_gb": 1]),
        BadCase("create_volume", ["vg": "vg0", "name": "v"]),
        BadCase("create_volume", ["vg": "vg0", "name": "v", "size_gb": 1, "size_bytes": 5]),
        BadCase("create_volume", ["vg": "vg0", "name": "v", "size_bytes": 0]),
        BadCase("create_volume", ["vg": "vg0", "name": "v", "size_bytes": "10"]),
        BadCase("create_volume", ["vg": "vg0", "name": "v", "size_bytes": true]),
        BadCase("create_volume", ["vg": "vg0", "name": "v", "size_gb": .int(1 << 40)]),
        BadCase("create_volume", ["vg": "vg0", "name": "--help", "size_gb": 1]),
        BadCase("create_volume", ["vg": "vg0", "name": "a;b", "size_gb": 1]),
        BadCase("create_volume", ["vg": "vg0", "name": "../x", "size_gb": 1]),
        BadCase("create_volume", ["vg": "vg0", "name": 5, "size_gb": 1]),
        BadCase("create_volume", ["vg": "../etc", "name": "v", "size_gb": 1]),
        BadCase("activate_volume", ["vg": "vg0", "name": "v", "host": "host-a", "mode": "both"]),
        BadCase("activate_volume", ["vg": "vg0", "name": "v"]),
        BadCase("activate_volume", ["vg": "vg0", "name": "v", "host": "a b"]),
        BadCase("delete_volume", ["vg": "vg0", "name": "v", "volume_clear": "wipe"]),
        BadCase("copy_volume", ["vg": "vg0", "source": "a"]),
        BadCase("copy_volume", ["vg": "vg0", "source": "a", "target": "a"]),
        BadCase("copy_volume", ["vg": "vg0", "source": "a", "target": "-b"]),
        BadCase("copy_volume", ["vg": "vg0", "source": "a", "target": "b", "size_gb": 1, "size_bytes": 5]),
        BadCase("copy_volume", ["vg": "vg0", "source": "a", "target": "b", "size_bytes": 0]),
        BadCase("copy_volume", ["vg": "vg0", "source": "a", "target": "b", "host": ""]),
        BadCase("copy_volume", ["vg": "vg0", "source": "a", "target": "b", "verify": "yes"]),
        BadCase("list_jobs", ["host": "a b"]),
        BadCase("job_info", [:]),
        BadCase("job_info", ["id": ""]),
        BadCase("job_info", ["id": "a b"]),
        BadCase("cancel_job", ["id": 5]),
        BadCase("lock_status", [:]),
        BadCase("agent_announce", ["report": ["host_id": 3]]),
    ]

    @Test(arguments: badInputs)
    func badInputIsInvalidArgumentAndReachesNoAgent(_ bad: BadCase) async throws {
        let c = try await ready()
        _ = await expectCode("invalid_argument") { _ = try await c.dispatch(bad.method, bad.args) }
        #expect(agents.calls.isEmpty)
    }

    @Test func endpointServesEveryMethodAtVersion1() throws {
        let c = makeController(agents, clock: clock)
        let e = c.endpoint
        #expect(e.version == RPCVersion(major: 1, minor: 0))
        #expect(Set(e.handlers.keys) == Set(Controller.methods))
    }

    @Test func rpcErrorsMapToStableCodes() {
        let target = RPCTarget(topic: "aos-agent", server: "h")
        let remote = RPCAgentCaller.serviceError(
            .remote(ServiceError(code: "not_found", message: "gone").rpcFailure), host: "h", method: "lv_info", timeout: .seconds(5))
        #expect(remote.code == "not_found" && remote.details["host"] == "h")
        #expect(
            RPCAgentCaller.serviceError(
                .undeliverable(target: target, reason: "NO_ROUTE"), host: "h", method: "m",
                timeout: .seconds(5)
            ).code == "agent_unavailable")
        #expect(
            RPCAgentCaller.serviceError(
                .timedOut(method: "m", msgID: "x", after: .seconds(5), monitor: false),
                host: "h", method: "m", timeout: .seconds(5)
            ).code == "timed_out")
        #expect(
            RPCAgentCaller.serviceError(.transport(.closed), host: "h", method: "m", timeout: .seconds(5)).code
                == "messaging_error")
        let bad = RPCAgentCaller.serviceError(
            .badReply(method: "list_lvs", msgID: "x", reason: "a reply of 20000000 bytes exceeds this client's limit"),
            host: "h", method: "list_lvs", timeout: .seconds(5))
        #expect(bad.code == "messaging_error" && bad.details["host"] == "h")
        #expect(bad.message.contains("20000000 bytes exceeds"))
    }
}

struct BadCase: Sendable, CustomTestStringConvertible {
    let method: String
    let args: [String: JSONValue]
    init(_ method: String, _ args: [String: JSONValue]) { self.method = method; self.args = args }
    var testDescription: String { "\(method) \(JSONWriter.serialize(.object(args)))" }
}

@Suite struct AnnouncementSkewTests {
    @Test func sentAtOutsideTheSkewWindowIsRefused() async throws {
        let agents = FakeAgents()
        let c = makeController(agents, clock: FakeClock())
        let report = agents.report("host-a", hostID: 1)
        for sentAt in [1.0 + 61, 1.0 - 61, 1e300, -1e300] {
            _ = await expectCode("invalid_argument") {
                _ = try await c.dispatch("agent_announce", ["report": report, "sent_at": .double(sentAt)])
            }
        }
        #expect(c.snapshot.agents["host-a"] == nil)
        // The clock is checked first: a replayed report is refused as such whatever its shape.
        let e = await expectCode("invalid_argument") {
            _ = try await c.dispatch("agent_announce", ["report": ["host": "host-a", "ready": false], "sent_at": 86_400])
        }
        #expect(e?.message.contains("agent_announce from host-a: sent_at is") == true && e?.details["argument"] == "sent_at")
        _ = try await c.dispatch("agent_announce", ["report": report, "sent_at": .double(60)])
        #expect(c.snapshot.agents["host-a"] != nil)
    }
}

@Suite struct ControllerPolicyCoverageTests {
    @Test func everyControllerMethodHasARule() {
        let policy = Policies.controller()
        #expect(Set(policy.rules.keys) == Set(Controller.methods))
        #expect(policy.rules["agent_announce"]?.callers == [.agent])
        for m in ControllerMethod.allCases where m.isMutating { #expect(policy.rules[m.rawValue]?.mutating == true, "\(m)") }
    }
}

@Suite struct UnknownArgumentTests {
    @Test func unknownArgumentsAreRefusedByName() async throws {
        let agents = FakeAgents()
        let c = makeController(agents, clock: FakeClock())
        let e = await expectCode("invalid_argument") {
            _ = try await c.dispatch("create_volume", ["name": "volume-1", "size_gb": 1, "sise_gb": 2, "x\u{1}": 1])
        }
        #expect(e?.message.contains("'sise_gb'") == true)
        #expect(e?.message.contains("'x?'") == true)
        #expect(e?.details["argument"] == "sise_gb")
        _ = await expectCode("invalid_argument") { _ = try await c.dispatch("list_agents", ["verbose": true]) }
    }
}
