import AOSAPI
import RPCWire

// The read-only methods: LVM's facts from a routed agent, joined with the controller's view
// (activations, liveness, lockspaces) — read models over `ClusterView`.

extension Controller {
    func getVolume(_ r: GetVolumeRequest, deadline: ContinuousClock.Instant?) async throws -> GetVolumeResult {
        let vg = try await resolveVG(r.vg, method: .getVolume, deadline: deadline)
        let lv = LVKey(vg: vg, name: r.name)
        let (host, a) = try await onAnyAgent(vg: vg, .lvInfo, ["vg": .string(vg), "name": .string(r.name)], deadline: deadline)
        return volumeInfo(a, lv: lv, source: host)
    }

    /// One volume as the API shows it: the agent's LV fields, with the cluster-wide activation.
    func volumeInfo(_ agentLV: JSONValue, lv: LVKey, source: String?) -> VolumeInfo {
        VolumeInfo(vg: lv.vg, name: lv.name, size_bytes: agentLV["size_bytes"]?.int64Value, uuid: agentLV["uuid"]?.stringValue,
                   attr: agentLV["attr"]?.stringValue, active_on: activeOn(lv), source_host: source)
    }

    func listVolumes(_ r: ListVolumesRequest, deadline: ContinuousClock.Instant?) async throws -> ListVolumesResult {
        let vg = try await resolveVG(r.vg, method: .listVolumes, deadline: deadline)
        let (host, a) = try await onAnyAgent(vg: vg, .listLVs, ["vg": .string(vg)], deadline: deadline)
        let items = a.arrayValue ?? a["lvs"]?.arrayValue ?? a["volumes"]?.arrayValue ?? []
        let volumes = items.compactMap { item -> VolumeInfo? in
            guard let name = item["name"]?.stringValue else { return nil }
            return volumeInfo(item, lv: LVKey(vg: vg, name: name), source: nil)
        }.sorted { $0.name < $1.name }
        return ListVolumesResult(vg: vg, volumes: volumes, source_host: host)
    }

    func poolStats(_ r: PoolStatsRequest, deadline: ContinuousClock.Instant?) async throws -> PoolStatsResult {
        let vg = try await resolveVG(r.vg, method: .poolStats, deadline: deadline)
        let t = now()
        let v = snapshot
        var hosts: [String: PoolStatsResult.Host] = [:]
        for h in v.agents.keys {
            let lockspace = v.lockspace(of: h, vg: vg) ?? "not_served"
            hosts[h] = PoolStatsResult.Host(status: v.liveness(of: h, now: t), lockspace: lockspace,
                                           hint: lockspace == "lost" ? "run: aosctl recover --host \(h) --vg \(vg)" : nil)
        }
        let activeLVs = Int64(v.activationMap(vg: vg).count)
        do {
            let (host, a) = try await onAnyAgent(vg: vg, .vgInfo, ["vg": .string(vg)], deadline: deadline)
            return PoolStatsResult(vg: vg, total_bytes: a["size_bytes"]?.int64Value ?? a["total_bytes"]?.int64Value ?? 0,
                                   free_bytes: a["free_bytes"]?.int64Value ?? 0, lv_count: a["lv_count"]?.int64Value ?? 0,
                                   active_lv_count: activeLVs, available: true, source_host: host, hosts: hosts)
        } catch let e as ServiceError where e.wireCode == .agentUnavailable {
            // The scheduler asks periodically: an answer saying "no capacity now" beats an error.
            return PoolStatsResult(vg: vg, total_bytes: 0, free_bytes: 0, lv_count: 0, active_lv_count: activeLVs,
                                   available: false, source_host: nil, hosts: hosts,
                                   error: ErrorSummary(code: e.code, message: e.message))
        }
    }

    func listAgents() -> ListAgentsResult {
        let t = now()
        let v = snapshot
        let conflicts = v.hostIDConflicts(now: t)
        var conflictOf: [String: [String]] = [:]
        for hosts in conflicts.values { for h in hosts { conflictOf[h] = hosts.filter { $0 != h } } }
        let agents = v.agents.sorted { $0.key < $1.key }.map { h, a in
            ListAgentsResult.Agent(
                host: h, status: v.liveness(of: h, now: t),
                last_seen_seconds_ago: ((t - a.lastSeen).secondsValue * 10).rounded() / 10,
                host_id: a.report.hostID.map { Int64($0) }, version: a.report.version, ready: a.report.ready,
                // The agent's own per-VG entries (lockspace, fenced, hint…) pass through.
                vgs: a.report.raw["vgs"]?.objectValue ?? a.report.lockspaces.mapValues { ["lockspace": .string($0)] },
                active_lvs: a.report.activeLVs.sorted { $0.key < $1.key }.map {
                    ListAgentsResult.Agent.ActiveLV(vg: $0.key.vg, name: $0.key.name, mode: $0.value)
                },
                restore_failures: a.report.restoreFailures,
                host_id_conflict: conflictOf[h] != nil, host_id_conflict_with: conflictOf[h])
        }
        return ListAgentsResult(agents: agents, host_id_conflicts: conflicts.sorted { $0.key < $1.key }.map {
            ListAgentsResult.HostIDConflict(host_id: Int64($0.key), hosts: $0.value)
        })
    }

    /// `lock_status`: the named agent's answer, passed through.
    func lockStatus(_ r: LockStatusRequest, deadline: ContinuousClock.Instant?) async throws -> JSONValue {
        try await callAgent(r.host, .lockStatus, [:], deadline: deadline)
    }
}
