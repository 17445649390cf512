import AOSAPI
import RPCWire
import Testing

@testable import ControllerCore

/// `rename_volume` (Cinder's manage_existing): refused while the activation map shows the LV
/// active anywhere, a down host included; otherwise one agent renames it.
@Suite struct RenameVolumeTests {
    let agents = FakeAgents()
    let clock = FakeClock()

    func ready() async throws -> Controller {
        let c = makeController(agents, clock: clock)
        try await announce(c, agents, [("host-a", 1), ("host-b", 2)])
        _ = try await c.dispatch("create_volume", ["vg": "vg0", "name": "lv-old", "size_gb": 1])
        return c
    }

    @Test func renamesAnInactiveVolume() async throws {
        let c = try await ready()
        let r = try await c.dispatch("rename_volume", ["vg": "vg0", "name": "lv-old", "new_name": "volume-1"])
        #expect(r["changed"] == true && r["size_bytes"] == .int(1 << 30) && r["new_name"] == "volume-1")
        #expect(try await c.dispatch("get_volume", ["vg": "vg0", "name": "volume-1"])["size_bytes"] == .int(1 << 30))
        _ = await expectCode("not_found") { _ = try await c.dispatch("get_volume", ["vg": "vg0", "name": "lv-old"]) }
        let again = try await c.dispatch("rename_volume", ["name": "lv-old", "new_name": "volume-1"])
        #expect(again["changed"] == false)
    }

    @Test func activeAnywhereIsBusyAndNothingIsSent() async throws {
        let c = try await ready()
        _ = try await c.dispatch("activate_volume", ["vg": "vg0", "name": "lv-old", "host": "host-b"])
        let before = agents.calls.count
        let e = await expectCode("busy") {
            _ = try await c.dispatch("rename_volume", ["vg": "vg0", "name": "lv-old", "new_name": "volume-1"])
        }
        #expect(e?.message.contains("exclusively on host-b") == true, "\(String(describing: e))")
        #expect(e?.details["holder_host"] == "host-b")
        #expect(agents.calls.count == before, "no agent was asked")
        // Still refused while host-b is down: its lease may hold the LV.
        clock.advance(.seconds(61))
        try await announce(c, agents, [("host-a", 1)])
        _ = await expectCode("busy") {
            _ = try await c.dispatch("rename_volume", ["vg": "vg0", "name": "lv-old", "new_name": "volume-1"])
        }
    }

    @Test func badNamesAreInvalidArguments() async throws {
        let c = try await ready()
        for (args, key) in [
            (["name": "lv-old", "new_name": "lv-old"], "new_name"),
            (["name": "lv-old", "new_name": "aos-wipe-1"], "new_name"),
            (["name": "aos-copy-1", "new_name": "volume-1"], "name"),
            (["name": "lv-old", "new_name": "a b"], "new_name"),
            (["name": "lv-old"], "new_name"),
        ] as [([String: JSONValue], String)] {
            let e = await expectCode("invalid_argument") { _ = try await c.dispatch("rename_volume", args) }
            #expect(e?.details["argument"] == .string(key), "\(args): \(String(describing: e))")
        }
    }

    @Test func takenNameIsAlreadyExists() async throws {
        let c = try await ready()
        _ = try await c.dispatch("create_volume", ["vg": "vg0", "name": "volume-1", "size_gb": 1])
        _ = await expectCode("already_exists") {
            _ = try await c.dispatch("rename_volume", ["vg": "vg0", "name": "lv-old", "new_name": "volume-1"])
        }
    }
}
