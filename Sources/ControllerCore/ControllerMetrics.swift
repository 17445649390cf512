import AOSAPI
import CoreMetrics

/// The controller's periodic readings for its metrics (docs/operations.md "Metrics"), taken
/// every `[controller] metrics_interval` seconds while metrics are exposed: agents by liveness
/// and host_id collisions. Announcements received are `aos_rpc_requests_total{method="agent_announce"}`.
extension Controller {
    public func sampleMetrics() {
        let t = now()
        let (counts, conflicts) = view.withLock { v in
            var c: [Liveness: Int] = [:]
            for host in v.agents.keys { c[v.liveness(of: host, now: t), default: 0] += 1 }
            return (c, v.hostIDConflicts(now: t).count)
        }
        for s in Liveness.allCases {
            Gauge(label: "aos_controller_agents", dimensions: [("state", s.rawValue)]).record(counts[s] ?? 0)
        }
        Gauge(label: "aos_controller_host_id_conflicts").record(conflicts)
    }
}
