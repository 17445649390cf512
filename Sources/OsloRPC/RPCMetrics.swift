import CoreMetrics
import RPCWire
import Synchronization

/// The server side's RPC metrics, recorded through swift-metrics (no-ops until a program
/// bootstraps a backend; docs/operations.md "Metrics"):
/// - `aos_rpc_requests_total{method, code}`: every request taken off the broker, by outcome;
/// - `aos_rpc_request_duration_seconds{method}`: from the work slot to the reply (dispatched ones).
///
/// Labels stay bounded whatever arrives: `method` is a method the server serves, `unknown`
/// (a name it does not serve) or `invalid` (no decodable request); `code` is `ok`, the failure's
/// `kwargs.code` or else its class (a failure may come from a peer: the controller passes on an
/// agent's), `malformed`, `duplicate` or `expired`; only the first `maxCodes` distinct codes are
/// kept, later ones count as `other`.
enum RPCMetrics {
    static let maxCodes = 64
    static let codes = CodeLabels(limit: maxCodes)

    static func label(method: String, dispatcher: RPCDispatcher) -> String {
        dispatcher.serves(method) ? method : "unknown"
    }

    static func count(method: String, code: String) {
        Counter(label: "aos_rpc_requests_total", dimensions: [("method", method), ("code", code)]).increment()
    }

    static func finished(method: String, failure: RPCFailure?, since start: ContinuousClock.Instant) {
        let elapsed = ContinuousClock.now - start
        count(method: method, code: failure.map { code(of: $0) } ?? "ok")
        Timer(label: "aos_rpc_request_duration_seconds", dimensions: [("method", method)]).recordNanoseconds(
            elapsed.components.seconds &* 1_000_000_000 &+ elapsed.components.attoseconds / 1_000_000_000)
    }

    /// The bounded `code` label of a failure.
    static func code(of f: RPCFailure, labels: CodeLabels = codes) -> String {
        let candidate: String
        if let c = f.kwargs["code"]?.stringValue, isLabelValue(c) {
            candidate = c
        } else if isLabelValue(f.className) {
            candidate = f.className
        } else {
            return "other"
        }
        return labels.admit(candidate)
    }

    /// The distinct codes given a series so far (per process), at most `limit`.
    final class CodeLabels: Sendable {
        let limit: Int
        private let seen = Mutex(Set<String>())

        init(limit: Int) { self.limit = limit }

        func admit(_ code: String) -> String {
            seen.withLock { seen in
                if seen.contains(code) { return code }
                guard seen.count < limit else { return "other" }
                seen.insert(code)
                return code
            }
        }
    }

    /// 1–48 ASCII letters, digits and underscores.
    static func isLabelValue(_ s: String) -> Bool {
        let u = s.utf8
        return !u.isEmpty && u.count <= 48
            && u.allSatisfy { ($0 >= 0x30 && $0 <= 0x39) || ($0 >= 0x41 && $0 <= 0x5a) || ($0 >= 0x61 && $0 <= 0x7a) || $0 == 0x5f }
    }
}

extension RPCDispatcher {
    /// Whether some endpoint has a public handler named `method` (any namespace or version).
    func serves(_ method: String) -> Bool {
        !method.hasPrefix("_") && endpoints.contains { $0.handlers[method] != nil }
    }
}
