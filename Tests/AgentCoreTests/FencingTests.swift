import Hypervisor
import RPCWire
import SharedLVM
import Synchronization
import Testing

@testable import AgentCore

#if canImport(Glibc)
import Glibc
#endif

/// device-mapper as a table of devices in memory; records every change in order.
final class FakeDeviceMapper: DeviceMapping {
    struct State {
        var devices: [DMDevice] = []
        var tables: [String: [DMTableLine]] = [:]
        var deps: [String: [String]] = [:]
        var calls: [String] = []
        var failing: Set<String> = []
        var multipathd: Multipathd = .absent
        var daemonCalls: [String] = []
        var queueingDisabled: Set<String> = []
    }
    /// multipathd as the fence meets it: not installed; running (with `no_path_retry queue` it
    /// switches queue_if_no_path back on unless told `disablequeueing`, as seen in the lab);
    /// refusing the command; or saying "ok" and switching queueing back on anyway.
    enum Multipathd { case absent, running, refusing, ignoring }
    let state = Mutex(State())

    var calls: [String] { state.withLock { $0.calls } }

    func add(
        _ name: String, uuid: String = "", block: String, sectors: UInt64 = 8192, target: String = "linear",
        params: String = "254:16 0", deps: [String] = [], suspended: Bool = false, open: Int = 0
    ) {
        state.withLock { s in
            s.devices.append(DMDevice(name: name, uuid: uuid, blockDevice: block, suspended: suspended, openCount: open))
            s.tables[name] = [DMTableLine(start: 0, length: sectors, target: target, params: params)]
            s.deps[name] = deps
        }
    }

    func target(_ name: String) -> String? { state.withLock { $0.tables[name]?.first?.target } }

    func devices() async throws(DMError) -> [DMDevice] { state.withLock { $0.devices } }
    func dependencies(of name: String) async throws(DMError) -> [String] { state.withLock { $0.deps[name] ?? [] } }
    func table(of name: String) async throws(DMError) -> [DMTableLine] {
        guard let t = state.withLock({ $0.tables[name] }) else { throw DMError(message: "Device does not exist.") }
        return t
    }
    func replaceWithErrorTable(_ name: String, sectors: UInt64) async throws(DMError) {
        try state.withLock { s throws(DMError) in
            s.calls.append("error \(name) \(sectors)")
            if s.failing.contains(name) { throw DMError(message: "ioctl failed") }
            s.tables[name] = [DMTableLine(start: 0, length: sectors, target: "error")]
            if let i = s.devices.firstIndex(where: { $0.name == name }) { s.devices[i].suspended = false }
        }
    }
    func message(_ name: String, _ text: String) async throws(DMError) {
        state.withLock { s in
            s.calls.append("message \(name) \(text)")
            guard var line = s.tables[name]?.first, line.target == "multipath" else { return }
            var words = line.params.split(separator: " ").map(String.init).filter { $0 != "queue_if_no_path" }
            let daemonRequeues =
                s.multipathd == .ignoring || (s.multipathd == .running && !s.queueingDisabled.contains(name))
            if text == "queue_if_no_path" || (text == "fail_if_no_path" && daemonRequeues) {
                words.insert("queue_if_no_path", at: 0)
            }
            line.params = words.joined(separator: " ")
            s.tables[name] = [line]
        }
    }
    func multipathdQueueing(_ name: String, disable: Bool) async throws(DMError) {
        try state.withLock { s throws(DMError) in
            let argv = ["multipathd", disable ? "disablequeueing" : "restorequeueing", "map", name]
            switch s.multipathd {
            case .absent: throw DMError(message: "No such file or directory", argv: argv)
            case .refusing: throw DMError(message: "multipathd refused: fail", argv: argv, termination: .exited(1))
            case .running, .ignoring:
                s.daemonCalls.append(argv.joined(separator: " "))
                if disable { s.queueingDisabled.insert(name) } else { s.queueingDisabled.remove(name) }
            }
        }
    }
    func remove(_ name: String) async throws(DMError) {
        state.withLock { s in
            s.calls.append("remove \(name)")
            s.devices.removeAll { $0.name == name }
            s.tables[name] = nil
        }
    }
}

let vgUUID = String(repeating: "A", count: 32)
func lvUUID(_ c: Character) -> String { "LVM-" + vgUUID + String(repeating: c, count: 32) }

/// The lab's layout on host 1: the shared disk behind dm "sanlock", VG vglab on it.
func labLayout(suspended: Bool = true, multipath: Bool = false) -> FakeDeviceMapper {
    let dm = FakeDeviceMapper()
    dm.add(
        "sanlock", block: "dm-0", sectors: 2_097_152, target: multipath ? "multipath" : "linear",
        params: multipath ? "1 queue_if_no_path 0 1 1 service-time 0 1 2 8:16 1 1" : "254:16 0",
        deps: ["vda"], suspended: suspended, open: 2)
    dm.add("vglab-lvmlock", uuid: lvUUID("L"), block: "dm-1", sectors: 524288, deps: ["dm-0"], open: 1)
    dm.add("vglab-t--a", uuid: lvUUID("B"), block: "dm-2", deps: ["dm-0"], open: 1)
    dm.add("vglab-t--b", uuid: lvUUID("C"), block: "dm-3", sectors: 16384, deps: ["dm-0"])
    dm.add("other-x", uuid: "LVM-" + String(repeating: "Z", count: 64), block: "dm-4", deps: ["vdb"])
    return dm
}

struct FencingTests {
    @Test func pathFirstThenEveryLVButTheLockLV() async throws {
        let dm = labLayout()
        let r = await Fencer(dm: dm, logger: .init(label: "t")).fence(
            vg: "vglab", host: "h1", modes: ["t-a": .exclusive], source: "kill_command")
        // The path first, alone; then the LVs (several at a time, so in any order).
        #expect(dm.calls.first == "error sanlock 2097152")
        #expect(Set(dm.calls.dropFirst()) == ["error vglab-t--a 8192", "error vglab-t--b 16384"])
        #expect(r.complete)
        #expect(r.paths.map(\.device) == ["sanlock"] && r.paths[0].action == "error_table")
        #expect(r.lvs.map(\.lv) == ["t-a", "t-b"])
        #expect(r.lvs.map(\.mode) == [.exclusive, nil])
        #expect(dm.target("vglab-lvmlock") == "linear" && dm.target("other-x") == "linear")

        // Fencing again (e.g. recovery after the kill command) changes nothing.
        let again = await Fencer(dm: dm, logger: .init(label: "t")).fence(vg: "vglab", host: "h1", modes: [:], source: "recovery")
        #expect(again.complete && again.lvs.allSatisfy { $0.action == "already_failing" })
        #expect(dm.calls.count == 3)
    }

    @Test func hundredsOfLVsAreAllFailedAndRecordedInOrder() async {
        let dm = labLayout()
        for i in 0..<300 {
            dm.add(
                "vglab-v\(i)", uuid: "LVM-" + vgUUID + String(repeating: "D", count: 28) + String(1000 + i),
                block: "dm-\(10 + i)", deps: ["dm-0"])
        }
        let r = await Fencer(dm: dm, logger: .init(label: "t"), parallelism: 8)
            .fence(vg: "vglab", host: "h1", modes: ["v7": .shared], source: "kill_command")
        #expect(r.complete)
        #expect(r.lvs.count == 302)
        #expect(r.lvs.map { $0.lv! } == r.lvs.map { $0.lv! }.sorted())
        #expect(r.lvs.first { $0.lv == "v7" }?.mode == .shared)
        #expect(dm.calls.first == "error sanlock 2097152")
        #expect(dm.calls.count == 303)
        #expect(dm.target("vglab-lvmlock") == "linear")
    }

    @Test func multipathStopsQueueingInsteadOfLosingItsTable() async {
        let dm = labLayout(suspended: false, multipath: true)
        let r = await Fencer(dm: dm, logger: .init(label: "t")).fence(vg: "vglab", host: "h1", modes: [:], source: "kill_command")
        #expect(dm.calls.first == "message sanlock fail_if_no_path")
        #expect(dm.target("sanlock") == "multipath")
        #expect(r.paths[0].queuedIfNoPath && r.complete)
    }

    /// The lab with real dm-multipath (issue 15): multipathd switched queue_if_no_path back on
    /// right after the fence's fail_if_no_path, the LV's table swap waited for the queued
    /// write and was killed, and the fence failed open. multipathd is told first now.
    @Test func aRunningMultipathdIsToldNotToQueueBeforeTheMessage() async {
        let dm = labLayout(suspended: false, multipath: true)
        dm.state.withLock { $0.multipathd = .running }
        let r = await Fencer(dm: dm, logger: .init(label: "t")).fence(vg: "vglab", host: "h1", modes: [:], source: "kill_command")
        #expect(dm.state.withLock { $0.daemonCalls } == ["multipathd disablequeueing map sanlock"])
        #expect(dm.calls.first == "message sanlock fail_if_no_path")
        #expect(dm.target("sanlock") == "multipath")
        #expect(dm.state.withLock { $0.tables["sanlock"]?.first?.params.contains("queue_if_no_path") } == false)
        #expect(r.paths[0].action == "fail_if_no_path" && r.paths[0].queuedIfNoPath && r.complete)
        #expect(r.paths[0].detail == "multipathd disablequeueing")
    }

    @Test func aMultipathdThatRefusesLeavesTheMapAnErrorTable() async {
        let dm = labLayout(suspended: false, multipath: true)
        dm.state.withLock { $0.multipathd = .refusing }
        let r = await Fencer(dm: dm, logger: .init(label: "t")).fence(vg: "vglab", host: "h1", modes: [:], source: "kill_command")
        // No message: multipathd could switch queueing back on; the error table cannot queue.
        #expect(dm.calls.first == "error sanlock 2097152")
        #expect(!dm.calls.contains("message sanlock fail_if_no_path"))
        #expect(dm.target("sanlock") == "error")
        #expect(r.paths[0].action == "error_table" && r.paths[0].queuedIfNoPath && r.complete)
        #expect(r.paths[0].detail?.contains("multipath -r") == true)
    }

    @Test func aMapThatStillQueuesAfterTheMessageGetsAnErrorTable() async {
        let dm = labLayout(suspended: false, multipath: true)
        dm.state.withLock { $0.multipathd = .ignoring }
        let r = await Fencer(dm: dm, logger: .init(label: "t")).fence(vg: "vglab", host: "h1", modes: [:], source: "kill_command")
        #expect(Array(dm.calls.prefix(2)) == ["message sanlock fail_if_no_path", "error sanlock 2097152"])
        #expect(dm.target("sanlock") == "error")
        #expect(r.paths[0].action == "error_table" && r.complete)
        #expect(r.paths[0].detail?.contains("still queue_if_no_path") == true)
    }

    @Test func anLVThatCannotBeFailedMakesTheFenceIncomplete() async {
        let dm = labLayout()
        dm.state.withLock { _ = $0.failing.insert("vglab-t--a") }
        let r = await Fencer(dm: dm, logger: .init(label: "t")).fence(vg: "vglab", host: "h1", modes: [:], source: "kill_command")
        #expect(!r.complete)
        #expect(r.lvs.first { $0.lv == "t-a" }?.ok == false)
        #expect(r.lvs.first { $0.lv == "t-b" }?.ok == true)  // the others are still failed
    }

    @Test func agentReportsAFenceRecordAndRefusesWithTheRecoveryHint() async throws {
        let c = Cluster()
        let dir = "\(c.root)/host-a"
        let a = try await c.agent("host-a", hostId: 1, stateDir: dir)
        try await a.call("create_lv", ["vg": "vg1", "name": "v1", "size_gb": 1])
        let record = FenceRecord(
            vg: "vg1", host: "host-a", fencedAt: HostFacts.now(), bootID: HostFacts.bootID(), paths: [],
            lvs: [], complete: true, durationMS: 12, source: "kill_command")
        try record.save(stateDirectory: dir)
        #expect(a.noteFenced("vg1"))
        let vgs = a.health()["vgs"]?["vg1"]
        #expect(vgs?["lockspace"] == "lost")
        #expect(vgs?["fenced"]?["complete"] == true)
        #expect(vgs?["hint"] == "run: aosctl recover --host host-a --vg vg1")
        let e = await expectError("lockspace_lost") { try await a.call("activate_lv", ["vg": "vg1", "name": "v1"]) }
        #expect(e?.message.contains("aosctl recover --host host-a --vg vg1") == true)
        #expect(c.sim.calls(host: "host-a").allSatisfy { $0.method != "activate" })

        // A record from an earlier boot describes devices that are gone: archived, not obeyed.
        var old = record
        old.bootID = "0000-earlier-boot"
        try old.save(stateDirectory: dir)
        let b = try await c.agent("host-a", hostId: 1, stateDir: dir)
        #expect(b.health()["vgs"]?["vg1"]?["lockspace"] == "started")
        #expect(readFile(FenceRecord.path(stateDirectory: dir, vg: "vg1")) == nil)
        #expect(readFile(FenceRecord.path(stateDirectory: dir, vg: "vg1") + ".earlier-boot") != nil)
    }

    @Test func killCommandNotificationReachesTheListener() async throws {
        let dir = makeTempDir()
        let listener = try FenceListener(stateDirectory: dir)
        #expect(FenceNotification.send(stateDirectory: dir, vg: "vglab"))
        var it = listener.notifications.makeAsyncIterator()
        #expect(await it.next() == "vglab")
        listener.close()
        #expect(await it.next() == nil)
        #expect(!FenceNotification.send(stateDirectory: makeTempDir(), vg: "vglab"))  // nobody listens: false, no hang
    }
}

/// A VG on two PVs (two multipath maps): the lock LV on the first, LVs on the second.
struct TwoPVFencingTests {
    func twoPVLayout() -> FakeDeviceMapper {
        let dm = FakeDeviceMapper()
        let mp = "1 queue_if_no_path 0 1 1 service-time 0 1 2 8:16 1 1"
        dm.add("mpatha", block: "dm-0", sectors: 2_097_152, target: "multipath", params: mp, deps: ["sda", "sdc"], open: 2)
        dm.add("mpathb", block: "dm-5", sectors: 4_194_304, target: "multipath", params: mp, deps: ["sdb", "sdd"], open: 1)
        dm.add("vglab-lvmlock", uuid: lvUUID("L"), block: "dm-1", sectors: 524288, deps: ["dm-0"], open: 1)
        dm.add("vglab-on--a", uuid: lvUUID("B"), block: "dm-2", deps: ["dm-0"])
        dm.add("vglab-on--b", uuid: lvUUID("C"), block: "dm-3", sectors: 16384, deps: ["dm-5"], open: 1)
        dm.add("vglab-both", uuid: lvUUID("D"), block: "dm-4", sectors: 32768, deps: ["dm-0", "dm-5"])
        dm.add("other-x", uuid: "LVM-" + String(repeating: "Z", count: 64), block: "dm-9", deps: ["vdb"])
        return dm
    }

    @Test func everyPVsPathStopsQueueingBeforeAnyLVTableIsReplaced() async {
        let dm = twoPVLayout()
        let r = await Fencer(dm: dm, logger: .init(label: "t")).fence(vg: "vglab", host: "h1", modes: [:], source: "kill_command")
        let calls = dm.calls
        #expect(Array(calls.prefix(2)) == ["message mpatha fail_if_no_path", "message mpathb fail_if_no_path"])
        #expect(Set(calls.dropFirst(2)) == ["error vglab-on--a 8192", "error vglab-on--b 16384", "error vglab-both 32768"])
        #expect(calls.count == 5)
        #expect(r.complete)
        #expect(Set(r.paths.map(\.device)) == ["mpatha", "mpathb"] && r.paths.allSatisfy { $0.queuedIfNoPath })
        #expect(dm.target("mpathb") == "multipath" && dm.target("other-x") == "linear")
    }

    @Test func withoutALockLVTheLVsStillNameEveryPV() async throws {
        let dm = twoPVLayout()
        try await dm.remove("vglab-lvmlock")
        let found = try await Fencer(dm: dm, logger: .init(label: "t")).devices(of: "vglab")
        #expect(Set(found.paths.map(\.name)) == ["mpatha", "mpathb"])
        #expect(found.nonDMPaths.isEmpty)
    }

    @Test func aCryptLayerOverMultipathFailsTheMultipathMapFirst() async {
        let dm = FakeDeviceMapper()
        dm.add(
            "mpatha", block: "dm-0", sectors: 2_097_152, target: "multipath",
            params: "1 queue_if_no_path 0 1 1 service-time 0 1 2 8:16 1 1", deps: ["sda"])
        dm.add("pv-crypt", block: "dm-7", sectors: 2_097_000, target: "crypt", deps: ["dm-0"])
        dm.add("vglab-lvmlock", uuid: lvUUID("L"), block: "dm-1", sectors: 524288, deps: ["dm-7"])
        dm.add("vglab-v", uuid: lvUUID("B"), block: "dm-2", deps: ["dm-7"])
        let r = await Fencer(dm: dm, logger: .init(label: "t")).fence(vg: "vglab", host: "h1", modes: [:], source: "kill_command")
        #expect(dm.calls == ["message mpatha fail_if_no_path", "error pv-crypt 2097000", "error vglab-v 8192"])
        #expect(r.complete)
    }
}
