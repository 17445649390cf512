import RPCWire
import Testing

@testable import OsloRPC

/// The RPC metrics' labels stay bounded whatever a caller or a peer sends: a method the server
/// does not serve is `unknown`, a failure's code must look like one, and only the first
/// `maxCodes` distinct codes get their own series.
struct RPCMetricsLabelTests {
    let dispatcher = RPCDispatcher(endpoints: [
        RPCEndpoint(handlers: ["create_lv": { _, _ in .null }, "_private": { _, _ in .null }])
    ])

    @Test func methodsTheServerDoesNotServeAreUnknown() {
        #expect(RPCMetrics.label(method: "create_lv", dispatcher: dispatcher) == "create_lv")
        #expect(RPCMetrics.label(method: "_private", dispatcher: dispatcher) == "unknown")
        #expect(RPCMetrics.label(method: "volume-1234", dispatcher: dispatcher) == "unknown")
        #expect(RPCMetrics.label(method: String(repeating: "x", count: 100_000), dispatcher: dispatcher) == "unknown")
    }

    @Test func failureCodesAreTheWireCodeOrTheClassAndMustLookLikeOne() {
        let seen = RPCMetrics.CodeLabels(limit: 8)
        let coded = RPCFailure(className: "NotFound", module: "aos.exceptions", message: "m", kwargs: ["code": "not_found"])
        #expect(RPCMetrics.code(of: coded, labels: seen) == "not_found")
        #expect(RPCMetrics.code(of: RPCFailure(className: "ValueError", module: "builtins", message: "m"), labels: seen) == "ValueError")
        // A peer's failure (the controller passes on an agent's) with a code that is no label value.
        let hostile = RPCFailure(
            className: "X\"}\n", module: "m", message: "m", kwargs: ["code": .string("volume-1 {\"a\"}")])
        #expect(RPCMetrics.code(of: hostile, labels: seen) == "other")
        let long = RPCFailure(className: String(repeating: "A", count: 49), module: "m", message: "m")
        #expect(RPCMetrics.code(of: long, labels: seen) == "other")
        #expect(RPCMetrics.isLabelValue("lock_storage_failed") && !RPCMetrics.isLabelValue("") && !RPCMetrics.isLabelValue("a-b"))
    }

    @Test func distinctCodesAreCapped() {
        let seen = RPCMetrics.CodeLabels(limit: RPCMetrics.maxCodes)
        var labels = Set<String>()
        for i in 0..<(RPCMetrics.maxCodes * 3) {
            labels.insert(RPCMetrics.code(of: RPCFailure(className: "Class\(i)", module: "m", message: "m"), labels: seen))
        }
        #expect(labels.contains("other") && labels.contains("Class0") && !labels.contains("Class64"))
        #expect(labels.count == RPCMetrics.maxCodes + 1)
    }
}
