import AOSAPI
import RPCWire

// The five state changes (docs/rpc-api.md): create and delete on any live agent of the VG,
// extend where the activation map says (ExtendPlan), activate/deactivate on the named host
// (a deactivate on a host whose agent is down is recorded by a live agent: releaseVolume).

extension Controller {
    func activeOn(_ lv: LVKey) -> [ActiveOn] {
        view.withLock { $0.activations(of: lv) }.map { ActiveOn(host: $0.host, mode: $0.mode) }
    }

    func createVolume(_ r: CreateVolumeRequest, deadline: ContinuousClock.Instant?) async throws -> CreateVolumeResult {
        let vg = try await resolveVG(r.vg, method: .createVolume, deadline: deadline)
        let (host, a) = try await onAnyAgent(
            vg: vg, .createLV, CreateLVRequest(vg: vg, name: r.name, size_bytes: r.bytes),
            as: CreateLVResult.self, deadline: deadline)
        logger.info("volume created", metadata: ["lv": "\(vg)/\(r.name)", "host": "\(host)", "size_bytes": "\(a.size_bytes)"])
        return CreateVolumeResult(vg: vg, name: r.name, size_bytes: a.size_bytes, changed: a.changed, host: host)
    }

    func deleteVolume(_ r: DeleteVolumeRequest, deadline: ContinuousClock.Instant?) async throws -> DeleteVolumeResult {
        let vg = try await resolveVG(r.vg, method: .deleteVolume, deadline: deadline)
        let lv = LVKey(vg: vg, name: r.name)
        let t = now()
        let active = view.withLock { v in v.activations(of: lv).filter { v.liveness(of: $0.host, now: t) != .down } }
        if !active.isEmpty {
            throw ServiceError(
                .busy, "volume \(lv) is active \(describe(active)): deactivate it there before deleting it",
                details: [
                    "vg": .string(vg), "name": .string(r.name), "holder_host": .string(active[0].host),
                    "holders": holders(active),
                ])
        }
        let request = DeleteLVRequest(vg: vg, name: r.name, volume_clear: r.volume_clear, volume_clear_size_mb: r.volume_clear_size_mb)
        let host: String, a: DeleteLVResult
        do {
            (host, a) = try await onAnyAgent(vg: vg, .deleteLV, request, as: DeleteLVResult.self, deadline: deadline)
        } catch let e as ServiceError {
            throw enrichConflict(e, lv: lv, target: nil, action: "delete")
        }
        view.withLock { $0.recordDeleted(lv) }
        logger.info(
            "volume deleted",
            metadata: ["lv": "\(lv)", "host": "\(host)", "changed": "\(a.changed)", "wipe_job": "\(a.job?.id ?? "none")"])
        return DeleteVolumeResult(vg: vg, name: r.name, changed: a.changed, host: host, job: a.job)
    }

    func extendVolume(_ r: ExtendVolumeRequest, deadline: ContinuousClock.Instant?) async throws -> ExtendVolumeResult {
        let vg = try await resolveVG(r.vg, method: .extendVolume, deadline: deadline)
        let name = r.name
        let lv = LVKey(vg: vg, name: name)
        let t = now()
        let (acts, plan) = view.withLock { v in
            let acts = v.activations(of: lv)
            return (
                acts,
                ExtendPlan.plan(
                    activations: acts, preferred: settings.preferredHosts,
                    isDown: { v.liveness(of: $0, now: t) == .down })
            )
        }
        let base = ExtendLVRequest(vg: vg, name: name, size_bytes: r.bytes)
        var host: String
        var a: ExtendLVResult
        var refreshed: [String] = []
        do {
            switch plan {
            case .holderDown(let h):
                throw ServiceError(
                    .agentUnavailable,
                    "volume \(lv) is active \(describe(acts)), and the agent on \(h) is down: it could not see the new size. Deactivate it there (or bring the agent back) and retry",
                    details: ["vg": .string(vg), "name": .string(name), "host": .string(h)])
            case .anyHost:
                (host, a) = try await onAnyAgent(vg: vg, .extendLV, base, as: ExtendLVResult.self, deadline: deadline)
            case .onHolder(let h):
                host = h
                a = try await callAgent(h, .extendLV, base, as: ExtendLVResult.self, deadline: deadline)
            case .sharedUpdate(let primary, let others):
                host = primary
                var shared = base
                shared.shared_update = true
                a = try await callAgent(primary, .extendLV, shared, as: ExtendLVResult.self, deadline: deadline)
                var failures: [String: JSONValue] = [:]
                for h in others {
                    do {
                        _ = try await callAgent(
                            h, .refreshLV, RefreshLVRequest(vg: vg, name: name), as: RefreshLVResult.self,
                            deadline: deadline)
                        refreshed.append(h)
                    } catch let e as ServiceError {
                        failures[h] = ["code": .string(e.code), "message": .string(e.message)]
                    }
                }
                if !failures.isEmpty {
                    throw ServiceError(
                        .refreshFailed,
                        "volume \(lv) was extended on \(primary), but \(failures.keys.sorted().joined(separator: ", ")) could not refresh it and still see the old size; retry the extend (it is idempotent) or run 'lvchange --refresh \(lv)' there",
                        details: [
                            "vg": .string(vg), "name": .string(name), "host": .string(primary),
                            "size_bytes": .int(a.size_bytes), "failures": .object(failures),
                            "refreshed_hosts": .array(refreshed.map(JSONValue.string)),
                        ])
                }
            }
        } catch let e as ServiceError {
            throw enrichConflict(e, lv: lv, target: nil, action: "extend")
        }
        if a.refreshed, !refreshed.contains(host) { refreshed.insert(host, at: 0) }
        logger.info("volume extended", metadata: ["lv": "\(lv)", "host": "\(host)", "size_bytes": "\(a.size_bytes)"])
        return ExtendVolumeResult(
            vg: vg, name: name, size_bytes: a.size_bytes, changed: a.changed, host: host,
            refreshed_hosts: refreshed, active_on: activeOn(lv))
    }

    func activateVolume(_ r: ActivateVolumeRequest, deadline: ContinuousClock.Instant?) async throws -> ActivateVolumeResult {
        let mode = r.mode ?? .exclusive
        let vg = try await resolveVG(r.vg, method: .activateVolume, deadline: deadline)
        let lv = LVKey(vg: vg, name: r.name)
        let a: ActivateLVResult
        do {
            a = try await callAgent(
                r.host, .activateLV, ActivateLVRequest(vg: vg, name: r.name, mode: mode), as: ActivateLVResult.self,
                deadline: deadline)
        } catch let e as ServiceError {
            throw enrichConflict(e, lv: lv, target: r.host, action: "activate \(mode.rawValue)")
        }
        view.withLock { $0.recordActivation(lv, host: r.host, mode: mode) }
        logger.info("volume activated", metadata: ["lv": "\(lv)", "host": "\(r.host)", "mode": "\(mode.rawValue)"])
        return ActivateVolumeResult(
            vg: vg, name: r.name, host: r.host, mode: mode, changed: a.changed,
            active_on: activeOn(lv))
    }

    func deactivateVolume(_ r: DeactivateVolumeRequest, deadline: ContinuousClock.Instant?) async throws -> DeactivateVolumeResult {
        let vg = try await resolveVG(r.vg, method: .deactivateVolume, deadline: deadline)
        let lv = LVKey(vg: vg, name: r.name)
        if view.withLock({ [t = now()] in $0.liveness(of: r.host, now: t) }) == .down {
            return try await releaseVolume(r, lv: lv, deadline: deadline)
        }
        let a: DeactivateLVResult
        do {
            a = try await callAgent(
                r.host, .deactivateLV, DeactivateLVRequest(vg: vg, name: r.name), as: DeactivateLVResult.self,
                deadline: deadline)
        } catch let e as ServiceError where e.wireCode == .agentUnavailable {
            // The agent went down while the call waited: whatever it did, the release is safe.
            guard view.withLock({ [t = now()] in $0.liveness(of: r.host, now: t) }) == .down else { throw e }
            return try await releaseVolume(r, lv: lv, deadline: deadline)
        }
        view.withLock { $0.recordActivation(lv, host: r.host, mode: nil) }
        logger.info("volume deactivated", metadata: ["lv": "\(lv)", "host": "\(r.host)"])
        return DeactivateVolumeResult(
            vg: vg, name: r.name, host: r.host, changed: a.changed,
            active_on: activeOn(lv))
    }

    /// `deactivate_volume` on a host whose agent is down (nova's evacuate detaches from a dead
    /// host): a live agent of the VG records the release in the VG (`release_lv`: the LV tag
    /// `aos-released.<host>`), so that host's agent does not restore the activation when it
    /// returns, and the activation map forgets it. Nothing runs on the dead host: if it still
    /// holds the LV lock, sanlock keeps refusing other hosts until its lease expires.
    func releaseVolume(
        _ r: DeactivateVolumeRequest, lv: LVKey, deadline: ContinuousClock.Instant?
    ) async throws -> DeactivateVolumeResult {
        let down = unavailable(r.host, method: AgentMethod.deactivateLV.rawValue, at: now())
        let by: String, a: ReleaseLVResult
        do {
            (by, a) = try await onAnyAgent(
                vg: lv.vg, .releaseLV, ReleaseLVRequest(vg: lv.vg, name: lv.name, host: r.host), as: ReleaseLVResult.self,
                deadline: deadline)
        } catch let e as ServiceError where e.wireCode == .agentUnavailable {
            var details = down.details
            details["release_error"] = .string(e.message)
            throw ServiceError(
                .agentUnavailable,
                "\(down.message), and no live agent of volume group \(lv.vg) could record the release of its activation of \(lv.name): \(e.message)",
                details: details)
        }
        let wasActive = view.withLock { $0.activations(of: lv).contains { $0.host == r.host } }
        view.withLock { $0.recordActivation(lv, host: r.host, mode: nil) }
        logger.warning(
            "volume released on a host whose agent is down: recorded, not executed",
            metadata: ["lv": "\(lv)", "host": "\(r.host)", "recorded_by": "\(by)", "tag_added": "\(a.changed)"])
        return DeactivateVolumeResult(
            vg: lv.vg, name: lv.name, host: r.host, changed: a.changed || wasActive, active_on: activeOn(lv), released: true,
            released_by: by)
    }

    func holders(_ acts: [Activation]) -> JSONValue {
        .array(acts.map { ["host": .string($0.host), "mode": .string($0.mode.rawValue)] })
    }

    /// A lock conflict error names the host(s) holding the LV, when the activation map knows them.
    func enrichConflict(_ e: ServiceError, lv: LVKey, target: String?, action: String) -> ServiceError {
        guard e.wireCode == .lockedByOtherHost || e.wireCode == .incompatibleLockMode else { return e }
        let others = view.withLock { $0.activations(of: lv) }.filter { $0.host != target }
        guard let first = others.first else { return e }
        var out = e
        out.details["holder_host"] = .string(first.host)
        out.details["holder_mode"] = .string(first.mode.rawValue)
        out.details["holders"] = holders(others)
        out.details["agent_message"] = .string(e.message)
        let whereText = target.map { " on \($0)" } ?? ""
        let hint =
            others.contains { $0.mode == .exclusive }
            ? "deactivate it on \(others.map(\.host).joined(separator: ", ")) first, or use shared mode on every host for multi-attach"
            : "it is shared there: deactivate it on those hosts first, or activate it shared here too"
        out.details["hint"] = .string(hint)
        out.message = "cannot \(action) volume \(lv)\(whereText): it is active \(describe(others)) (\(hint))"
        return out
    }
}
