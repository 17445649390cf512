import AOSAPI
import RPCWire

// The read-only methods: LVM's facts from a routed agent, joined with the controller's view
// (activations, liveness, lockspaces) — read models over `ClusterView`.

extension Controller {
    func getVolume(_ r: GetVolumeRequest, deadline: ContinuousClock.Instant?) async throws -> GetVolumeResult {
        let vg = try await resolveVG(r.vg, method: .getVolume, deadline: deadline)
        let lv = LVKey(vg: vg, name: r.name)
        if JobLVName.isJobLV(r.name) {
            // A job's LV (a deleted volume waiting for its wipe, a copy not yet complete) is no volume.
            throw ServiceError(
                .notFound, "\(lv) is not a volume: it belongs to a job (see list_jobs)",
                details: ["vg": .string(vg), "name": .string(r.name)])
        }
        let (host, a) = try await onAnyAgent(
            vg: vg, .lvInfo, LVInfoRequest(vg: vg, name: r.name), as: LVInfoResult.self,
            deadline: deadline)
        return volumeInfo(a, lv: lv, source: host)
    }

    /// One volume as the API shows it: LVM's fields from the agent, with the cluster-wide activation.
    func volumeInfo(_ agentLV: LVInfo, lv: LVKey, source: String?) -> VolumeInfo {
        VolumeInfo(
            vg: lv.vg, name: lv.name, size_bytes: agentLV.size_bytes, uuid: agentLV.uuid, attr: agentLV.attr,
            active_on: activeOn(lv), source_host: source)
    }

    func listVolumes(_ r: ListVolumesRequest, deadline: ContinuousClock.Instant?) async throws -> ListVolumesResult {
        let vg = try await resolveVG(r.vg, method: .listVolumes, deadline: deadline)
        let (host, a) = try await onAnyAgent(vg: vg, .listLVs, ListLVsRequest(vg: vg), as: ListLVsResult.self, deadline: deadline)
        let volumes = a.lvs.filter { !JobLVName.isJobLV($0.name) }.map { volumeInfo($0, lv: LVKey(vg: vg, name: $0.name), source: nil) }
            .sorted { $0.name < $1.name }
        return ListVolumesResult(vg: vg, volumes: volumes, source_host: host)
    }

    func poolStats(_ r: PoolStatsRequest, deadline: ContinuousClock.Instant?) async throws -> PoolStatsResult {
        let vg = try await resolveVG(r.vg, method: .poolStats, deadline: deadline)
        let t = now()
        let v = snapshot
        var hosts: [String: PoolStatsResult.Host] = [:]
        for h in v.agents.keys {
            let lockspace = v.lockspace(of: h, vg: vg)?.rawValue ?? "not_served"
            hosts[h] = PoolStatsResult.Host(
                status: v.liveness(of: h, now: t), lockspace: lockspace,
                hint: lockspace == "lost" ? "run: aosctl recover --host \(h) --vg \(vg)" : nil)
        }
        let activeLVs = Int64(v.activationMap(vg: vg).count)
        do {
            let (host, a) = try await onAnyAgent(vg: vg, .vgInfo, VGInfoRequest(vg: vg), as: VGInfo.self, deadline: deadline)
            var warnings: [String] = []
            if a.volume_clear == VolumeClear.none {
                warnings.append("volume_clear = none: a new volume may expose a deleted volume's data (agent on \(host))")
            }
            return PoolStatsResult(
                vg: vg, total_bytes: a.size_bytes, free_bytes: a.free_bytes, lv_count: a.lv_count,
                active_lv_count: activeLVs, available: true, source_host: host, hosts: hosts,
                wiping_bytes: a.wiping_bytes, wiping_lv_count: a.wiping_lv_count, warnings: warnings)
        } catch let e as ServiceError where e.wireCode == .agentUnavailable {
            // The scheduler asks periodically: an answer saying "no capacity now" beats an error.
            return PoolStatsResult(
                vg: vg, total_bytes: 0, free_bytes: 0, lv_count: 0, active_lv_count: activeLVs,
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
                vgs: a.report.vgs,
                active_lvs: a.report.activeLVs.sorted { $0.key < $1.key }.map {
                    ActiveLV(vg: $0.key.vg, name: $0.key.name, mode: $0.value)
                },
                restore_failures: a.report.restoreFailures,
                host_id_conflict: conflictOf[h] != nil, host_id_conflict_with: conflictOf[h])
        }
        return ListAgentsResult(
            agents: agents,
            host_id_conflicts: conflicts.sorted { $0.key < $1.key }.map {
                ListAgentsResult.HostIDConflict(host_id: Int64($0.key), hosts: $0.value)
            })
    }

    /// `lock_status`: the named agent's answer.
    func lockStatus(_ r: LockStatusRequest, deadline: ContinuousClock.Instant?) async throws -> LockStatusResult {
        try await callAgent(r.host, .lockStatus, NoArguments(), as: LockStatusResult.self, deadline: deadline)
    }
}
