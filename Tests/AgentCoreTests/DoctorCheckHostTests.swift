import AOSAPI
import HostCommands
import RPCWire
import SimulatedLVM
import Testing

@testable import AgentCore

/// `check_host`: the preflight check run now, the agent's clock, the check's duration.
@Suite struct DoctorCheckHostTests {
    /// A host whose lvm.conf lacks use_lvmlockd and whose commands are not installed.
    struct BareHost: PreflightHost {
        func readFile(_ path: String) -> String? { path.hasSuffix("/lvm.conf") ? "global {\n}\n" : nil }
        func exists(_ path: String) -> Bool { false }
        func run(_ argv: [String]) async -> CommandResult? { nil }
    }

    func agent(_ source: HostCheckSource, host: String = "host-a", hostId: Int = 7) throws -> AgentService {
        let sim = SimulatedCluster()
        sim.ensureVolumeGroup("vg1", sizeBytes: 1 << 30)
        var config = AgentServiceConfiguration(
            host: host, hostId: hostId, volumeGroups: ["vg1"], stateDirectory: makeTempDir(), lvNames: .all)
        config.hostCheck = source
        return try AgentService(
            configuration: config, backend: SimulatedLVMBackend(cluster: sim, hostName: host, hostId: hostId))
    }

    @Test func itRunsThePreflightCheckNowAndReportsItsClock() async throws {
        let expect = PreflightExpectations(volumeGroups: ["vg1"])
        let source = HostCheckSource(
            backend: "real", run: { await Preflight.run(host: BareHost(), expect: expect) }, wallClock: { 1_700_000_000.5 })
        // Not booted: a read-only check answers before the agent is ready.
        let a = try agent(source)
        let raw = try await a.handle(method: "check_host", args: [:])
        let r = try JSONValueDecoder().decode(CheckHostResult.self, from: raw)
        #expect(r.host == "host-a" && r.host_id == 7 && r.backend == "real")
        #expect(r.clock == 1_700_000_000.5)
        #expect(r.elapsed_s >= 0)
        #expect(r.status == .fail)
        let lockd = try #require(r.items.first { $0.id == "use_lvmlockd" })
        #expect(lockd.status == .fail && lockd.blocking && !lockd.fix.isEmpty)
        // The same items, in the same order, as `aos-agent check` prints.
        let direct = await Preflight.run(host: BareHost(), expect: expect)
        #expect(r.items == direct.items.map(\.checkItem))
    }

    @Test func theSimulatedBackendHasNothingToCheckAndMayShiftItsClock() async throws {
        let a = try agent(.simulated(wallClock: { 42 + 5 }))
        let r = try JSONValueDecoder().decode(CheckHostResult.self, from: try await a.handle(method: "check_host", args: [:]))
        #expect(r.backend == "simulated" && r.status == .pass && r.clock == 47)
        #expect(r.items.map(\.id) == ["lvm_backend"])
    }

    @Test func argumentsAreRefused() async throws {
        let a = try agent(.unconfigured)
        let e = await expectError("invalid_argument") { _ = try await a.handle(method: "check_host", args: ["vg": "vg1"]) }
        #expect(e?.details["argument"] == "vg")
    }
}
