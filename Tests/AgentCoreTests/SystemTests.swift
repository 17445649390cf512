import HostSupport
import LVMTestSupport
import RPCWire
import SharedLVM
import SimulatedLVM
import Testing

@testable import AgentCore
@testable import SimulatedLVM

#if canImport(Glibc)
import Glibc
#endif

struct SDNotifyTests {
    /// Binds a datagram socket (a path, or an abstract name when it starts with '@').
    func bindDatagram(_ name: String) -> Int32 {
        let fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue), 0)
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        var bytes = Array(name.utf8)
        let abstract = bytes.first == UInt8(ascii: "@")
        if abstract { bytes[0] = 0 }
        withUnsafeMutableBytes(of: &address.sun_path) { $0.copyBytes(from: bytes) }
        let length = MemoryLayout<sockaddr_un>.offset(of: \sockaddr_un.sun_path)! + bytes.count + (abstract ? 0 : 1)
        let rc = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(length)) }
        }
        #expect(rc == 0, "bind \(name): errno \(errno)")
        return fd
    }

    func receive(_ fd: Int32) -> String {
        var buffer = [UInt8](repeating: 0, count: 4096)
        let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, Int32(MSG_DONTWAIT)) }
        return n > 0 ? String(decoding: buffer[0..<n], as: UTF8.self) : ""
    }

    @Test func sendsToAPathSocket() {
        let path = makeTempDir() + "/notify"
        let fd = bindDatagram(path)
        defer { close(fd) }
        let notifier = SystemdNotifier(environment: ["NOTIFY_SOCKET": path])
        #expect(notifier.notify("READY=1\nSTATUS=ready"))
        #expect(receive(fd) == "READY=1\nSTATUS=ready")
    }

    @Test func sendsToAnAbstractSocket() {
        let name = "@aos-agent-test-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        let fd = bindDatagram(name)
        defer { close(fd) }
        #expect(SystemdNotifier(socketPath: name).notify("STATUS=x"))
        #expect(receive(fd) == "STATUS=x")
    }

    @Test func withoutNotifySocketItDoesNothing() {
        let n = SystemdNotifier(environment: [:])
        #expect(!n.isEnabled)
        #expect(!n.notify("READY=1"))
        #expect(!SystemdNotifier(environment: ["NOTIFY_SOCKET": "/nonexistent/dir/sock"]).notify("READY=1"))
    }
}

/// The file-backed simulated cluster: separate `SimulatedCluster` objects on one state file
/// behave like one cluster (what two agent processes rely on).
struct FileBackedClusterTests {
    func twoViews() -> (SimulatedCluster, SimulatedCluster, String) {
        let file = makeTempDir() + "/cluster.json"
        let one = SimulatedCluster(stateFile: file)
        let two = SimulatedCluster(stateFile: file)
        #expect(one.ensureVolumeGroup("vol", sizeBytes: 1 << 30))
        #expect(!two.ensureVolumeGroup("vol", sizeBytes: 1 << 30))
        return (one, two, file)
    }

    @Test func locksAreSeenAcrossInstances() async throws {
        let (one, two, file) = twoViews()
        let a = SimulatedLVMBackend(cluster: one, hostName: "host-a", hostId: 1)
        let b = SimulatedLVMBackend(cluster: two, hostName: "host-b", hostId: 2)
        try await a.lockStart(vg: "vol")
        try await b.lockStart(vg: "vol")
        _ = try await a.createLV(vg: "vol", name: "lv1", sizeBytes: 8 << 20, activate: false)
        try await a.activate(vg: "vol", name: "lv1", mode: .exclusive)
        let e = await #expect(throws: LVMError.self) { try await b.activate(vg: "vol", name: "lv1", mode: .shared) }
        #expect(e?.code == .lockedByOtherHost)
        #expect(two.lockHolders(vg: "vol", lv: "lv1")?.exclusive == "host-a")
        // A host_id clash is seen too.
        let clash = SimulatedLVMBackend(cluster: SimulatedCluster(stateFile: file), hostName: "host-c", hostId: 1)
        let e2 = await #expect(throws: LVMError.self) { try await clash.lockStart(vg: "vol") }
        #expect(e2?.message.contains("host_id 1") == true)
        // Calls are recorded per instance.
        #expect(one.calls.allSatisfy { $0.host == "host-a" })
        #expect(readFile(file)?.contains("\"lv1\"") == true)
    }

    @Test func concurrentWritersLoseNoUpdate() async throws {
        let (one, two, _) = twoViews()
        let a = SimulatedLVMBackend(cluster: one, hostName: "host-a", hostId: 1)
        let b = SimulatedLVMBackend(cluster: two, hostName: "host-b", hostId: 2)
        try await a.lockStart(vg: "vol")
        try await b.lockStart(vg: "vol")
        try await withThrowingTaskGroup(of: Void.self) { group in
            for i in 0..<20 {
                group.addTask { _ = try await a.createLV(vg: "vol", name: "a\(i)", sizeBytes: 4 << 20, activate: false) }
                group.addTask { _ = try await b.createLV(vg: "vol", name: "b\(i)", sizeBytes: 4 << 20, activate: true) }
            }
            try await group.waitForAll()
        }
        #expect(try await a.listLVs(vg: "vol").count == 40)
        #expect(try await a.lockStatus().resources.isEmpty)
        #expect(try await b.lockStatus().resources.count == 20)
    }

    @Test func rebootHostReleasesEverything() async throws {
        let (one, _, _) = twoViews()
        let a = SimulatedLVMBackend(cluster: one, hostName: "host-a", hostId: 1)
        try await a.lockStart(vg: "vol")
        _ = try await a.createLV(vg: "vol", name: "lv1", sizeBytes: 8 << 20, activate: true)
        one.rebootHost("host-a")
        #expect(try await a.lockspaceStarted(vg: "vol") == false)
        #expect(try await a.deviceSize(vg: "vol", name: "lv1") == nil)
        #expect(one.lockHolders(vg: "vol", lv: "lv1")?.exclusive == nil)
    }

    /// An operation decodes the file only when it differs from what this process last read
    /// or wrote: one that failed after changing the state halfway must not leave its change
    /// behind as if it were the file's.
    @Test func aFailedOperationLeavesNothingBehind() {
        let (one, two, _) = twoViews()
        let e = #expect(throws: LVMError.self) {
            try one.withState { (s: inout SimulatedCluster.State) throws(LVMError) -> Int in
                s.hostIds["ghost"] = 42
                throw LVMError(code: .internal, message: "failed halfway")
            }
        }
        #expect(e?.message == "failed halfway")
        #expect(one.hostId("ghost") == 0)  // the file's state again, not the half-done change
        #expect(two.hostId("ghost") == 0)
        // A change that succeeds is the file's, and another view sees it.
        one.registerHost("host-z", hostId: 7)
        #expect(one.hostId("host-z") == 7)
        #expect(two.hostId("host-z") == 7)
    }

    @Test(arguments: LVMBehaviourSuite.scenarios)
    func behaviourSuite(_ scenario: LVMBehaviourScenario) async throws {
        let (one, two, _) = twoViews()
        let a = SimulatedLVMBackend(cluster: one, hostName: "compute-1", hostId: 1)
        let b = SimulatedLVMBackend(cluster: two, hostName: "compute-2", hostId: 2)
        try await a.lockStart(vg: "vol")
        try await b.lockStart(vg: "vol")
        let hosts = LVMBehaviourHosts(a: a, b: b, vg: "vol") { lv, open in
            one.setOpen(host: "compute-1", vg: "vol", lv: lv, open)
        }
        try await scenario.run(hosts)
        #expect(try await b.listLVs(vg: "vol").isEmpty)
    }
}
