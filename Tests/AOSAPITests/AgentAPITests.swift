import AOSAPI
import RPCWire
import Testing

/// The agent's typed requests and results produce exactly the wire shapes of docs/agent.md:
/// keys that are `null` when unknown stay present, optional additions stay absent.
@Suite struct AgentAPITests {
    @Test func lvInfoKeepsANullModeAndOmitsHostInLists() throws {
        let lv = LVInfo(
            vg: "vg", name: "volume-1", uuid: "u", size_bytes: 1 << 30, active: false, device_open: false,
            mode: nil, device_path: "/dev/vg/volume-1", attr: "-wi-------")
        let json = try lv.wireValue()
        #expect(
            json == [
                "vg": "vg", "name": "volume-1", "uuid": "u", "size_bytes": .int(1 << 30), "active": false,
                "device_open": false, "mode": .null, "device_path": "/dev/vg/volume-1", "attr": "-wi-------",
            ])
        var withHost = lv
        withHost.host = "h1"
        withHost.mode = .shared
        #expect(try withHost.wireValue()["host"] == "h1")
        #expect(try withHost.wireValue()["mode"] == "shared")
        // A consumer decodes what the agent sends (null mode = none).
        #expect(try JSONValueDecoder().decode(LVInfo.self, from: json) == lv)
    }

    @Test func lockStatusKeepsUnknownValuesAsNull() throws {
        let r = LockStatusResult(
            host: "h", host_id: 3, daemon: nil,
            lockspaces: [SanlockLockspace(name: "lvm_vg", vg: "vg", host_id: 3, path: "/dev/x", offset: 0, transition: nil)],
            locks: [
                SanlockLock(
                    lockspace: "lvm_vg", lv_uuid: "u", mode: .shared, offset: 1, lease_version: nil,
                    pid: nil, vg: nil, name: nil)
            ])
        let json = try r.wireValue()
        #expect(json["daemon"] == .null && json.objectValue?.keys.contains("daemon") == true)
        #expect(json["lockspaces"]?.arrayValue?.first?.objectValue?.keys.contains("transition") == true)
        let lock = json["locks"]?.arrayValue?.first?.objectValue ?? [:]
        #expect(Set(lock.keys) == ["lockspace", "lv_uuid", "mode", "offset", "lease_version", "pid", "vg", "name"])
        #expect(lock["mode"] == "shared")
    }

    @Test func healthLeavesOutWhatIsNotThere() throws {
        let h = AgentHealth(
            host: "h", host_id: 1, version: "0.1.0", instance_id: "i", ready: true, phase: "ready",
            vgs: ["vg": VGHealth(lockspace: .started)],
            active_lvs: [ActiveLV(vg: "vg", name: "volume-1", mode: .exclusive)], restore_failures: [])
        let json = try h.wireValue()
        #expect(json["vgs"] == ["vg": ["lockspace": "started"]])
        #expect(json.objectValue?.keys.contains("state_problems") == false)
        #expect(json["active_lvs"] == [["vg": "vg", "name": "volume-1", "mode": "exclusive"]])
        #expect(try JSONValueDecoder().decode(AgentHealth.self, from: json) == h)
        var lost = h
        lost.vgs["vg"] = VGHealth(
            lockspace: .lost, fenced: FencedSummary(at: 1.5, complete: false, lvs: 2, source: "kill_command"),
            hint: "run: aosctl recover --host h --vg vg")
        #expect(try lost.wireValue()["vgs"]?["vg"]?["fenced"] == ["at": 1.5, "complete": false, "lvs": 2, "source": "kill_command"])
    }

    @Test func planCarriesNullFencedAndVMsOtherStepsDoNot() throws {
        var plan = RecoverResult(host: "h", vg: "vg", step: .plan, status: .ok, changed: false, message: "m")
        plan.lvs = [RecoveryLV(name: "volume-1", mode: nil, device: .unknown, open: 0, device_path: "/dev/vg/volume-1")]
        let json = try plan.wireValue().objectValue ?? [:]
        #expect(json["fenced"] == .null && json.keys.contains("fenced"))
        #expect(json["vms"] == .null && json.keys.contains("vms"))
        #expect(json["lvs"]?.arrayValue?.first?.objectValue?.keys.contains("mode") == true)
        #expect(json["step"] == "plan" && json["status"] == "ok")
        let drop = try RecoverResult(host: "h", vg: "vg", step: .drop, status: .skipped, changed: false, message: "m").wireValue()
        #expect(Set(drop.objectValue.map { Array($0.keys) } ?? []) == ["host", "vg", "step", "status", "changed", "message", "seconds"])
        let left = try RecoveryLVOutcome(name: "volume-2", mode: nil, reason: "unknown mode").wireValue()
        #expect(left == ["name": "volume-2", "mode": .null, "reason": "unknown mode"])
        #expect(try DeactivatedLV(name: "x", how: .dmsetup).wireValue() == ["name": "x", "how": "dmsetup remove"])
    }

    @Test func requestsDecodeTheWireArgumentsAndRefuseBadOnes() throws {
        #expect(
            try CreateLVRequest.decode(["vg": "vg", "name": "n", "size_gb": 2], method: "create_lv")
                == CreateLVRequest(vg: "vg", name: "n", size_gb: 2))
        #expect(
            try RecoverRequest.decode(["vg": "vg", "step": "wait_path", "force": nil], method: "recover")
                == RecoverRequest(vg: "vg", step: .waitPath))
        #expect(
            try DeleteLVRequest.decode(["vg": "vg", "name": "n", "volume_clear": "none"], method: "delete_lv").volume_clear
                == VolumeClear.none)
        do {
            _ = try ActivateLVRequest.decode(["vg": "vg", "name": "n", "mode": "both"], method: "activate_lv")
            Issue.record("accepted a bad mode")
        } catch {
            #expect(error.code == "invalid_argument")
            #expect(error.message.contains("must be one of exclusive, shared"))
        }
        #expect(throws: ServiceError.self) { _ = try NoArguments.decode(["x": 1], method: "health") }
        #expect(RecoveryStep.execution.first == .fence && RecoveryStep.execution.last == .finish)
    }
}
