import AOSAPI
import CoreMetrics
import SharedLVM

/// The agent's periodic readings for its metrics (docs/operations.md "Metrics"), taken every
/// `[agent] metrics_interval` seconds while metrics are exposed, through swift-metrics gauges.
/// Labels are the configured VGs and fixed sets (states, job kinds): never an LV name.
/// Runs `vgs` (twice: report and lease probe) per VG and `sanlock client status` once; a
/// failing command leaves the VG's last values and sets `aos_vg_sample_ok` to 0.
extension AgentService {
    public func sampleMetrics() async {
        let vgs = configuration.volumeGroups
        let sanlock = try? await backend.lockStatus()
        Gauge(label: "aos_sanlock_status_ok").record(sanlock == nil ? 0 : 1)
        for vg in vgs {
            let joined = sanlock?.lockspace(forVG: vg).map { $0.transition == nil } ?? false
            Gauge(label: "aos_sanlock_lockspace_joined", dimensions: [("vg", vg)]).record(joined ? 1 : 0)
            // LVM's lease probe: "storage failed for sanlock leases" when renewals fail.
            var leaseOK = false
            do { leaseOK = try await backend.lockspaceProblem(vg: vg) == nil } catch {}
            Gauge(label: "aos_lockspace_lease_ok", dimensions: [("vg", vg)]).record(leaseOK ? 1 : 0)
            if let g = try? await backend.vgInfo(vg: vg) {
                Gauge(label: "aos_vg_sample_ok", dimensions: [("vg", vg)]).record(1)
                Gauge(label: "aos_vg_size_bytes", dimensions: [("vg", vg)]).record(Int64(clamping: g.sizeBytes))
                Gauge(label: "aos_vg_free_bytes", dimensions: [("vg", vg)]).record(Int64(clamping: g.freeBytes))
                Gauge(label: "aos_vg_metadata_area_size_bytes", dimensions: [("vg", vg)])
                    .record(Int64(clamping: g.metadataAreaSizeBytes))
                Gauge(label: "aos_vg_metadata_area_free_bytes", dimensions: [("vg", vg)])
                    .record(Int64(clamping: g.metadataAreaFreeBytes))
                Gauge(label: "aos_vg_lvs", dimensions: [("vg", vg)]).record(Int64(clamping: g.lvCount))
                Gauge(label: "aos_vg_missing_pvs", dimensions: [("vg", vg)]).record(Int64(clamping: g.missingPVCount))
            } else {
                Gauge(label: "aos_vg_sample_ok", dimensions: [("vg", vg)]).record(0)
            }
        }
        recordStateMetrics()
    }

    /// What the agent knows without running a command: lockspace states, readiness, held LVs, jobs.
    func recordStateMetrics() {
        let records = store.all
        let (lockspaces, ready, held, failures) = state.read {
            ($0.lockspaces, $0.ready, $0.held(records).count, $0.restoreFailures.count)
        }
        for vg in configuration.volumeGroups {
            let current = lockspaces[vg] ?? .notStarted
            for s in LockspaceState.allCases {
                Gauge(label: "aos_lockspace_state", dimensions: [("vg", vg), ("state", s.rawValue)]).record(s == current ? 1 : 0)
            }
        }
        Gauge(label: "aos_agent_ready").record(ready ? 1 : 0)
        Gauge(label: "aos_agent_active_lvs").record(held)
        Gauge(label: "aos_agent_restore_failures").record(failures)

        var count: [JobKind: [JobState: Int]] = [:]
        var done: [JobKind: UInt64] = [:]
        var total: [JobKind: UInt64] = [:]
        for r in jobs.all {
            count[r.kind, default: [:]][r.state, default: 0] += 1
            if !r.state.isFinished {
                done[r.kind, default: 0] &+= r.doneBytes
                total[r.kind, default: 0] &+= r.totalBytes
            }
        }
        for kind in JobKind.allCases {
            for s in JobState.allCases {
                Gauge(label: "aos_jobs", dimensions: [("kind", kind.rawValue), ("state", s.rawValue)])
                    .record(count[kind]?[s] ?? 0)
            }
            Gauge(label: "aos_jobs_bytes_done", dimensions: [("kind", kind.rawValue)]).record(Int64(clamping: done[kind] ?? 0))
            Gauge(label: "aos_jobs_bytes_total", dimensions: [("kind", kind.rawValue)]).record(Int64(clamping: total[kind] ?? 0))
        }
    }
}
