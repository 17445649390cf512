import AOSAPI
import RPCWire
import SharedLVM
import SimulatedLVM
import Testing

@testable import AgentCore

/// Evacuate (ReleasedActivations.swift): `release_lv` tags an LV for another host; at boot an
/// agent does not restore what was released while it was down, and never takes an open LV.
struct ReleasedActivationTests {
    let tagA = "aos-released.host-a"

    /// Host A holds v1..v3 exclusively, then "dies"; B records the releases.
    func evacuated(_ c: Cluster, stateDir: String) async throws -> AgentService {
        let a = try await c.agent("host-a", hostId: 1, stateDir: stateDir)
        let b = try await c.agent("host-b", hostId: 2)
        try await a.createLVs(["v1", "v2", "v3", "kept"], activate: "exclusive")
        for name in ["v1", "v2", "v3"] {
            let r = try await b.call("release_lv", ["vg": "vg1", "name": .string(name), "host": "host-a"])
            #expect(r["changed"] == true && r["host"] == "host-b")
            #expect(c.sim.tags(vg: "vg1", lv: name) == [tagA])
        }
        // Retried by the controller: no change, one tag.
        #expect(try await b.call("release_lv", ["vg": "vg1", "name": "v1", "host": "host-a"])["changed"] == false)
        #expect(c.sim.tags(vg: "vg1", lv: "v1") == [tagA])
        // A missing LV has nothing to release.
        #expect(try await b.call("release_lv", ["vg": "vg1", "name": "gone", "host": "host-a"])["changed"] == false)
        return b
    }

    @Test func aRebootedHostDropsReleasedActivations() async throws {
        let c = Cluster()
        let dir = "\(c.root)/host-a"
        let b = try await evacuated(c, stateDir: dir)
        // A died holding the locks; its lease expires (the others may take its LVs) and B takes v1.
        c.sim.rebootHost("host-a")
        try await b.call("activate_lv", ["vg": "vg1", "name": "v1", "mode": "exclusive"])
        c.sim.clearCalls()
        let a2 = try await c.agent("host-a", hostId: 1, stateDir: dir)
        let activations = c.sim.calls(host: "host-a").filter { $0.method == "activate" }.map { $0.arguments[1] }
        #expect(activations == ["kept"], "only the unreleased LV is restored")
        #expect(a2.store.all.map(\.name) == ["kept"])
        for name in ["v1", "v2", "v3"] { #expect(c.sim.tags(vg: "vg1", lv: name) == [], "\(name): tag removed") }
        #expect(c.sim.lockHolders(vg: "vg1", lv: "v1")?.exclusive == "host-b")
        #expect(c.sim.lockHolders(vg: "vg1", lv: "v2")?.exclusive == nil, "v2 is free, not re-taken")
        let h = a2.health()
        #expect(h["restore_failures"] == [])
        #expect(h["active_lvs"] == [["vg": "vg1", "name": "kept", "mode": "exclusive"]])
        #expect(h["state_problems"] == nil)
    }

    @Test func anAgentRestartGivesUpUnusedReleasedLVsAndKeepsOpenOnes() async throws {
        let c = Cluster()
        let dir = "\(c.root)/host-a"
        _ = try await evacuated(c, stateDir: dir)
        // Only A's agent was down: its LVs are still active; a VM still uses v2.
        #expect(c.sim.setOpen(host: "host-a", vg: "vg1", lv: "v2", true))
        let a2 = try await c.agent("host-a", hostId: 1, stateDir: dir)
        #expect(c.sim.lockHolders(vg: "vg1", lv: "v1")?.exclusive == nil, "v1 deactivated: not open")
        #expect(c.sim.lockHolders(vg: "vg1", lv: "v3")?.exclusive == nil)
        #expect(c.sim.lockHolders(vg: "vg1", lv: "v2")?.exclusive == "host-a", "v2 is open: never taken from the VM")
        #expect(c.sim.tags(vg: "vg1", lv: "v1") == [] && c.sim.tags(vg: "vg1", lv: "v2") == [tagA])
        #expect(a2.store.all.map(\.name) == ["kept", "v2"])
        let h = a2.health()
        #expect(h["restore_failures"] == [])
        #expect(h["active_lvs"]?.arrayValue?.compactMap { $0["name"]?.stringValue } == ["kept", "v2"])
        let problems = h["state_problems"]?.arrayValue?.compactMap(\.stringValue) ?? []
        #expect(problems.count == 1 && problems[0].contains("vg1/v2") && problems[0].contains("still uses it"), "\(problems)")
        // The VM stops, the operator deactivates: the problem goes.
        c.sim.setOpen(host: "host-a", vg: "vg1", lv: "v2", false)
        try await a2.call("deactivate_lv", ["vg": "vg1", "name": "v2"])
        #expect(a2.health()["state_problems"] == nil)
    }

    @Test func activatingRemovesTheOwnStaleTagSoTheNextBootRestores() async throws {
        let c = Cluster()
        let dir = "\(c.root)/host-a"
        let b = try await evacuated(c, stateDir: dir)
        c.sim.rebootHost("host-a")
        // Someone tags v1 for A again after A returned (a late release); then A gets v1 legitimately.
        let a2 = try await c.agent("host-a", hostId: 1, stateDir: dir)
        try await b.call("release_lv", ["vg": "vg1", "name": "v1", "host": "host-a"])
        try await b.call("release_lv", ["vg": "vg1", "name": "v1", "host": "cmp_x"])
        let r = try await a2.call("activate_lv", ["vg": "vg1", "name": "v1", "mode": "exclusive"])
        #expect(r["warning"] == nil)
        #expect(c.sim.tags(vg: "vg1", lv: "v1") == ["aos-released.cmp_5Fx"], "only A's own tag removed")
        c.sim.rebootHost("host-a")
        _ = try await c.agent("host-a", hostId: 1, stateDir: dir)
        #expect(c.sim.lockHolders(vg: "vg1", lv: "v1")?.exclusive == "host-a", "restored after the next reboot")
    }

    @Test func aConflictWithAReleasedHostSaysTheLeaseMustExpire() async throws {
        let c = Cluster()
        let b = try await evacuated(c, stateDir: "\(c.root)/host-a")
        // A is dead, its lease has not expired: its lock stands.
        let e = await expectError("locked_by_other_host") {
            try await b.call("activate_lv", ["vg": "vg1", "name": "v1", "mode": "exclusive"])
        }
        #expect(e?.message.contains("released while its agent was down") == true, "\(e?.message ?? "")")
        #expect(e?.message.contains("lease expires") == true)
        #expect(e?.details["released_hosts"] == ["host-a"])
        // Without a release tag the message stays LVM's.
        let plain = await expectError("locked_by_other_host") {
            try await b.call("activate_lv", ["vg": "vg1", "name": "kept", "mode": "exclusive"])
        }
        #expect(plain?.message.contains("lease") == false)
        c.sim.expireLeases(vg: "vg1", host: "host-a")
        #expect(try await b.call("activate_lv", ["vg": "vg1", "name": "v1", "mode": "exclusive"])["changed"] == true)
    }

    @Test func badReleaseRequestsRunNothing() async throws {
        let c = Cluster()
        let b = try await c.agent("host-b", hostId: 2)
        try await b.createLVs(["v1"])
        c.sim.clearCalls()
        for host: JSONValue in ["", "host-b", "a b", .string(String(repeating: "h", count: 256)), 5, .null] {
            await expectError("invalid_argument") { try await b.call("release_lv", ["vg": "vg1", "name": "v1", "host": host]) }
        }
        await expectError("invalid_argument") { try await b.call("release_lv", ["vg": "vg1", "name": "v1"]) }
        await expectError("invalid_argument") {
            try await b.call("release_lv", ["vg": "vg1", "name": "v1", "host": "host-a", "extra": 1])
        }
        await expectError("unknown_vg") { try await b.call("release_lv", ["vg": "vg9", "name": "v1", "host": "host-a"]) }
        await expectError("invalid_argument") { try await b.call("release_lv", ["vg": "vg1", "name": "-x", "host": "host-a"]) }
        #expect(c.sim.calls(host: "host-b").isEmpty)
        let managed = try await c.agent("host-c", hostId: 3, lvNames: LVNamePolicy(["volume-*"]))
        await expectError("lv_not_managed") { try await managed.call("release_lv", ["vg": "vg1", "name": "v1", "host": "host-a"]) }
    }

    @Test func releaseTagsMapHostNamesTotally() {
        #expect(ReleaseTag.tag(for: "cmp-1.example.org") == "aos-released.cmp-1.example.org")
        #expect(ReleaseTag.tag(for: "cmp_1") == "aos-released.cmp_5F1")
        #expect(ReleaseTag.tag(for: "") == nil)
        for host in ["cmp-1", "a_b", "x:y/z", "ünï", "UP.case-9", "_", "a+b=c", String(repeating: "\u{7f}", count: 255)] {
            let tag = ReleaseTag.tag(for: host)
            #expect(tag != nil, "\(host)")
            if let tag {
                #expect((try? LVTag.validate(tag)) != nil, "\(tag) is a valid LVM tag")
                #expect(ReleaseTag.host(fromTag: tag) == host, "\(host) round trip")
            }
        }
        #expect(ReleaseTag.tag(for: String(repeating: "\u{7f}", count: 337))?.utf8.count == 1024, "at the limit")
        #expect(ReleaseTag.tag(for: String(repeating: "\u{7f}", count: 338)) == nil, "over 1024 characters")
        for notOurs in [
            "aos-released.", "aos-released.a_2", "aos-released.a_zz", "aos-released.a_2D", "aos-released.a+b", "other", "aos-released.a_FF",
        ] {
            #expect(ReleaseTag.host(fromTag: notOurs) == nil, "\(notOurs)")
        }
        #expect(ReleaseTag.releasedHosts(["x", "aos-released.b", "aos-released.a"]) == ["a", "b"])
    }
}
