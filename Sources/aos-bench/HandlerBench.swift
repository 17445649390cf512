import AgentCore
import ArgumentParser
import Foundation
import RPCWire
import SimulatedLVM

/// What one request costs inside the agent, without the broker: argument decoding, the
/// checks, the simulated backend and the typed result's encoding (`AgentService.handle`).
/// Build with `-c release` for figures worth comparing.
struct HandlerBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "handlers", abstract: "Per-call cost of the agent's handlers (simulated LVM, no broker)")
    @Option(help: "LVs in the VG (list_lvs returns them all).") var lvs = 50
    @Option(help: "Calls per method (list_lvs: a tenth).") var calls = 20000
    @Flag(help: "Keep the simulated cluster in a state file, as agents sharing a VG do (aos-bench path)")
    var stateFile = false

    func run() async throws {
        let stateDir = FileManager.default.temporaryDirectory.appendingPathComponent("aos-bench-\(makeUUIDHex())").path
        try FileManager.default.createDirectory(atPath: stateDir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: stateDir) }
        let cluster = stateFile ? SimulatedCluster(stateFile: stateDir + "/cluster.json") : SimulatedCluster()
        cluster.ensureVolumeGroup("vg1", sizeBytes: 1 << 40)
        let config = AgentServiceConfiguration(
            host: "bench", hostId: 1, volumeGroups: ["vg1"], stateDirectory: stateDir, volumeClear: .none, lvNames: .all)
        let agent = try AgentService(
            configuration: config, backend: SimulatedLVMBackend(cluster: cluster, hostName: "bench", hostId: 1))
        await agent.boot()
        for i in 0..<lvs {
            _ = try await agent.handle(method: "create_lv", args: ["vg": "vg1", "name": .string("v\(i)"), "size_bytes": .int(4 << 20)])
        }
        _ = try await agent.handle(method: "activate_lv", args: ["vg": "vg1", "name": "v1", "mode": "shared"])
        let requests: [(String, [String: JSONValue])] = [
            ("health", [:]), ("lv_info", ["vg": "vg1", "name": "v1"]), ("list_lvs", ["vg": "vg1"]),
            ("activate_lv", ["vg": "vg1", "name": "v1", "mode": "shared"]),
        ]
        let clock = ContinuousClock()
        for (method, args) in requests {
            let n = method == "list_lvs" ? max(1, calls / 10) : calls
            let took = try await clock.measure {
                for _ in 0..<n { _ = try await agent.handle(method: method, args: args) }
            }
            let us = took / .microseconds(1) / Double(n)
            print("\(method): \(String(format: "%.1f", us)) µs per call (\(n) calls)")
        }
    }
}
