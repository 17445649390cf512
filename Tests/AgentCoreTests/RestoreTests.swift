import RPCWire
import SharedLVM
import Testing

@testable import AgentCore

#if canImport(Glibc)
import Glibc
#endif

struct RestoreTests {
    @Test func activationsArePersistedAndRestoredAfterAReboot() async throws {
        let c = Cluster()
        let stateDir = "\(c.root)/host-a"
        let a = try await c.agent("host-a", hostId: 1, stateDir: stateDir)
        let b = try await c.agent("host-b", hostId: 2)
        for (name, mode) in [("v1", "exclusive"), ("v2", "shared"), ("v3", "exclusive"), ("v4", "shared"), ("v5", "exclusive")] {
            try await a.call("create_lv", ["vg": "vg1", "name": .string(name), "size_gb": 1])
            try await a.call("activate_lv", ["vg": "vg1", "name": .string(name), "mode": .string(mode)])
        }
        try await a.call("deactivate_lv", ["vg": "vg1", "name": "v5"])
        #expect(
            readFile("\(stateDir)/activations.json") == """
                {"activations": [{"mode": "exclusive", "name": "v1", "vg": "vg1"}, {"mode": "shared", "name": "v2", "vg": "vg1"}, \
                {"mode": "exclusive", "name": "v3", "vg": "vg1"}, {"mode": "shared", "name": "v4", "vg": "vg1"}], "format": 1, "host": "host-a"}

                """)

        // Host A reboots: its devices and locks are gone. Meanwhile B takes v3 and deletes v4.
        c.sim.rebootHost("host-a")
        try await b.call("activate_lv", ["vg": "vg1", "name": "v3", "mode": "exclusive"])
        try await b.call("delete_lv", ["vg": "vg1", "name": "v4"])
        c.sim.clearCalls()

        let a2 = try await c.agent("host-a", hostId: 1, stateDir: stateDir, boot: false)
        #expect(a2.health()["ready"] == false)
        await a2.boot()
        // Restore ran after the lockspace started, before ready; only recorded LVs were touched.
        let calls = c.sim.calls(host: "host-a").map { "\($0.method) \($0.arguments.joined(separator: " "))" }
        #expect(calls.firstIndex(of: "lockStart vg1")! < calls.firstIndex(of: "activate vg1 v1 exclusive")!)
        #expect(
            Set(calls.filter { $0.hasPrefix("activate") }) == [
                "activate vg1 v1 exclusive", "activate vg1 v2 shared", "activate vg1 v3 exclusive", "activate vg1 v4 shared",
            ])

        #expect(c.sim.lockHolders(vg: "vg1", lv: "v1")?.exclusive == "host-a")
        #expect(c.sim.lockHolders(vg: "vg1", lv: "v2")?.shared == ["host-a"])
        #expect(c.sim.lockHolders(vg: "vg1", lv: "v5")?.exclusive == nil)
        let h = a2.health()
        #expect(h["ready"] == true)
        #expect(h["active_lvs"] == [["vg": "vg1", "name": "v1", "mode": "exclusive"], ["vg": "vg1", "name": "v2", "mode": "shared"]])
        let failures = h["restore_failures"]?.arrayValue ?? []
        #expect(failures.map { $0["name"] } == ["v3", "v4"])
        #expect(failures.map { $0["code"] } == ["locked_by_other_host", "not_found"])
        #expect(failures.first?["mode"] == "exclusive")
        // The vanished LV's record is dropped; the contested one is kept.
        #expect(a2.store.all.map(\.name) == ["v1", "v2", "v3"])

        // Once B lets go, activating v3 again settles the failure.
        try await b.call("deactivate_lv", ["vg": "vg1", "name": "v3"])
        #expect(try await a2.call("activate_lv", ["vg": "vg1", "name": "v3", "mode": "exclusive"])["changed"] == true)
        #expect(a2.health()["restore_failures"]?.arrayValue?.map { $0["name"] } == ["v4"])
        // Deactivating clears any failure for that LV too.
        try await a2.call("deactivate_lv", ["vg": "vg1", "name": "v4"])
        #expect(a2.health()["restore_failures"] == [])
    }

    @Test func restoreWithoutRebootIsANoOp() async throws {
        // After a plain agent restart the LVs are still active: restore re-asserts them.
        let c = Cluster()
        let dir = "\(c.root)/a"
        let a = try await c.agent("host-a", hostId: 1, stateDir: dir)
        try await a.call("create_lv", ["vg": "vg1", "name": "v1", "size_gb": 1])
        try await a.call("activate_lv", ["vg": "vg1", "name": "v1", "mode": "shared"])
        let a2 = try await c.agent("host-a", hostId: 1, stateDir: dir)
        #expect(a2.health()["active_lvs"] == [["vg": "vg1", "name": "v1", "mode": "shared"]])
        #expect(try await a2.call("activate_lv", ["vg": "vg1", "name": "v1", "mode": "shared"])["changed"] == false)
    }

    @Test func recordsForUnavailableVGsAreReported() async throws {
        let c = Cluster()
        c.sim.ensureVolumeGroup("vg2", sizeBytes: 1 << 30)
        let dir = "\(c.root)/a"
        let a = try await c.agent("host-a", hostId: 1, stateDir: dir, volumeGroups: ["vg1", "vg2"])
        try await a.call("create_lv", ["vg": "vg2", "name": "gone", "size_bytes": .int(8 * MiB)])
        try await a.call("activate_lv", ["vg": "vg2", "name": "gone"])
        try await a.call("create_lv", ["vg": "vg1", "name": "pv-missing", "size_bytes": .int(8 * MiB)])
        try await a.call("activate_lv", ["vg": "vg1", "name": "pv-missing"])
        c.sim.rebootHost("host-a")
        c.sim.setPVsPresent(vg: "vg1", false)
        // vg2 dropped from the configuration; vg1's PVs do not show up.
        let a2 = try await c.agent("host-a", hostId: 1, stateDir: dir, volumeGroups: ["vg1"])
        let failures = a2.health()["restore_failures"]?.arrayValue ?? []
        #expect(failures.map { $0["name"] } == ["pv-missing", "gone"])
        #expect(failures.map { $0["code"] } == ["lockspace_not_started", "unknown_vg"])
        #expect(a2.health()["ready"] == true)
    }

    @Test func corruptStoreIsMovedAsideAndReported() async throws {
        let c = Cluster()
        let dir = "\(c.root)/a"
        _ = try ActivationStore(directory: dir, host: "host-a")
        writeFile("\(dir)/activations.json", "{\"format\": 1, \"activations\": [{\"vg\": 5}]")
        let a = try await c.agent("host-a", hostId: 1, stateDir: dir)
        #expect(a.store.all.isEmpty)
        #expect(a.health()["state_problems"]?.arrayValue?.first?.stringValue?.contains("not valid JSON") == true)
        #expect(readFile("\(dir)/activations.json.corrupt")?.hasPrefix("{\"format\"") == true)
        // It keeps working and writes a fresh store.
        try await a.call("create_lv", ["vg": "vg1", "name": "v1", "size_gb": 1])
        try await a.call("activate_lv", ["vg": "vg1", "name": "v1"])
        #expect(try ActivationStore(directory: dir, host: "host-a").all == [ActivationRecord(vg: "vg1", name: "v1", mode: .exclusive)])
    }

    @Test func storeWritesAtomicallyAndCreatesDirectories() throws {
        let root = makeTempDir()
        let dir = "\(root)/deep/er/state"
        let store = try ActivationStore(directory: dir, host: "h")
        try store.set(ActivationRecord(vg: "vg1", name: "a", mode: .shared))
        try store.set(ActivationRecord(vg: "vg1", name: "a", mode: .exclusive))
        try store.set(ActivationRecord(vg: "vg0", name: "b", mode: .shared))
        try store.remove(vg: "vg9", name: "none")
        #expect(access("\(dir)/activations.json.tmp", F_OK) != 0)
        let reopened = try ActivationStore(directory: dir, host: "h")
        #expect(
            reopened.all == [
                ActivationRecord(vg: "vg0", name: "b", mode: .shared), ActivationRecord(vg: "vg1", name: "a", mode: .exclusive),
            ])
        #expect(reopened.loadProblem == nil)
        var st = stat()
        stat(dir, &st)
        #expect(st.st_mode & 0o777 == 0o700)
    }
}
