import RPCWire
import SharedLVM
import Testing

@testable import AgentCore

/// What a request costs inside the agent (decode, checks, the simulated backend, encode),
/// without the broker: numbers printed for docs/performance.md, never asserted.
@Suite struct HandlerCostTests {
    @Test func printHandlerCost() async throws {
        let c = Cluster()
        let a = try await c.agent("host-a", hostId: 1)
        for i in 0..<50 { try await a.call("create_lv", ["vg": "vg1", "name": .string("v\(i)"), "size_bytes": .int(MiB * 4)]) }
        try await a.call("activate_lv", ["vg": "vg1", "name": "v1", "mode": "shared"])
        let requests: [(String, [String: JSONValue])] = [
            ("health", [:]), ("lv_info", ["vg": "vg1", "name": "v1"]), ("list_lvs", ["vg": "vg1"]),
            ("activate_lv", ["vg": "vg1", "name": "v1", "mode": "shared"]),
        ]
        let clock = ContinuousClock()
        for (method, args) in requests {
            let n = method == "list_lvs" ? 200 : 2000
            var results = 0
            let took = try await clock.measure {
                for _ in 0..<n { if case .object = try await a.handle(method: method, args: args) { results += 1 } }
            }
            #expect(results == n)
            let us = took / .microseconds(1) / Double(n)
            print("HandlerCost: \(method) \(String(format: "%.1f", us)) µs per call (\(n) calls)")
        }
    }
}
