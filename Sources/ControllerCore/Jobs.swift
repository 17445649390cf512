import AOSAPI
import RPCWire

// The job methods (docs/rpc-api.md): `copy_volume` starts a copy on a host that can read the
// source; `list_jobs`, `job_info` and `cancel_job` ask the agents, which own their jobs.

/// Where a copy runs, decided from the activation map of the source (pure; see docs/rpc-api.md).
public enum CopyPlan: Sendable, Equatable {
    /// Inactive everywhere and no host named: any live agent serving the VG.
    case anyHost
    /// This host (the named one, or the host holding the source). An exclusive holder is the
    /// only host that can read the source, and it copies from a short-lived COW snapshot of it
    /// (a point-in-time copy of a volume in use there; docs/agent.md, "Jobs").
    case on(String)
    /// The source is active exclusively on a host that is not the named one.
    case heldElsewhere(holder: String)
    /// Every host holding the source is down: nothing can read it now.
    case holderDown(String)

    public static func plan(
        activations: [Activation], requested: String?, preferred: [String],
        isDown: (String) -> Bool
    ) -> CopyPlan {
        if activations.isEmpty { return requested.map { .on($0) } ?? .anyHost }
        if let ex = activations.first(where: { $0.mode == .exclusive }) {
            if let requested, requested != ex.host { return .heldElsewhere(holder: ex.host) }
            return isDown(ex.host) ? .holderDown(ex.host) : .on(ex.host)
        }
        // Shared: any host may read it (the agent activates it shared where it is not active).
        if let requested { return .on(requested) }
        let live = activations.map(\.host).filter { !isDown($0) }.sorted { a, b in
            (preferred.firstIndex(of: a) ?? preferred.count, a) < (preferred.firstIndex(of: b) ?? preferred.count, b)
        }
        return live.first.map { .on($0) } ?? .anyHost
    }
}

extension Controller {
    func copyVolume(_ r: CopyVolumeRequest, deadline: ContinuousClock.Instant?) async throws -> CopyVolumeResult {
        let vg = try await resolveVG(r.vg, method: .copyVolume, deadline: deadline)
        let lv = LVKey(vg: vg, name: r.source)
        let t = now()
        let (acts, plan) = view.withLock { v in
            let acts = v.activations(of: lv)
            return (
                acts,
                CopyPlan.plan(
                    activations: acts, requested: r.host, preferred: settings.preferredHosts,
                    isDown: { v.liveness(of: $0, now: t) == .down })
            )
        }
        let request = CopyLVRequest(vg: vg, source: r.source, target: r.target, size_bytes: r.bytes, verify: r.verify)
        switch plan {
        case .heldElsewhere, .holderDown: throw refusal(plan, lv: lv, acts: acts, requested: r.host)
        case .anyHost, .on: break
        }
        let host: String, a: CopyLVResult
        do {
            switch plan {
            case .anyHost:
                (host, a) = try await onAnyAgent(vg: vg, .copyLV, request, as: CopyLVResult.self, deadline: deadline)
            case .on(let h):
                if acts.isEmpty, !view.withLock({ $0.candidates(vg: vg, preferred: [], now: t) }).contains(h) {
                    throw ServiceError(
                        .agentUnavailable,
                        "copy_volume: the agent on \(h) cannot copy in volume group \(vg) (it is down, not ready, or its lockspace is not started); name another host or none",
                        details: ["host": .string(h), "vg": .string(vg)])
                }
                host = h
                a = try await callAgent(h, .copyLV, request, as: CopyLVResult.self, deadline: deadline)
            case .heldElsewhere, .holderDown:
                throw refusal(plan, lv: lv, acts: acts, requested: r.host)  // refused above
            }
        } catch let e as ServiceError {
            throw enrichConflict(e, lv: lv, target: r.host, action: "copy")
        }
        logger.info(
            "volume copy started",
            metadata: [
                "lv": "\(lv)", "target": "\(r.target)", "host": "\(host)", "job": "\(a.job.id)", "changed": "\(a.changed)",
            ])
        return CopyVolumeResult(vg: vg, source: r.source, target: r.target, host: host, changed: a.changed, job: a.job)
    }

    /// Why a copy cannot run where the activation map says it would have to.
    func refusal(_ plan: CopyPlan, lv: LVKey, acts: [Activation], requested: String?) -> ServiceError {
        switch plan {
        case .heldElsewhere(let holder):
            return ServiceError(
                .lockedByOtherHost,
                "cannot copy volume \(lv) on \(requested ?? holder): it is active \(describe(acts)), so only \(holder) can read it; copy there (host \(holder), or no host) or deactivate it first",
                details: [
                    "vg": .string(lv.vg), "name": .string(lv.name), "host": .string(requested ?? holder),
                    "holder_host": .string(holder), "holder_mode": "exclusive", "holders": holders(acts),
                ])
        case .holderDown(let h):
            return ServiceError(
                .agentUnavailable,
                "volume \(lv) is active \(describe(acts)), and the agent on \(h) is down: no other host may read it. Bring the agent back (or recover the host) and retry",
                details: ["vg": .string(lv.vg), "name": .string(lv.name), "host": .string(h)])
        case .anyHost, .on:
            return ServiceError(.internal, "copy_volume: no refusal for \(plan)")
        }
    }

    /// The hosts a job question goes to: the named one, or every agent not down (by name).
    func jobHosts(_ host: String?) -> (ask: [String], down: [String]) {
        if let host { return ([host], []) }
        let t = now()
        let v = snapshot
        let hosts = v.agents.keys.sorted()
        return (hosts.filter { v.liveness(of: $0, now: t) != .down }, hosts.filter { v.liveness(of: $0, now: t) == .down })
    }

    func listJobs(_ r: ListJobsRequest, deadline: ContinuousClock.Instant?) async throws -> ClusterJobsResult {
        let (ask, down) = jobHosts(r.host)
        var unreachable: [String: ErrorSummary] = [:]
        for h in down {
            let e = unavailable(h, method: AgentMethod.listJobs.rawValue, at: now())
            unreachable[h] = ErrorSummary(code: e.code, message: e.message)
        }
        let answers = await withTaskGroup(of: (String, Result<ListJobsResult, ServiceError>).self) { group in
            for h in ask {
                group.addTask { [self] in
                    do {
                        return (h, .success(try await callAgent(h, .listJobs, NoArguments(), as: ListJobsResult.self, deadline: deadline)))
                    } catch let e as ServiceError {
                        return (h, .failure(e))
                    } catch {
                        return (h, .failure(ServiceError(.internal, "list_jobs on \(h): \(error)")))
                    }
                }
            }
            var out: [(String, Result<ListJobsResult, ServiceError>)] = []
            for await a in group { out.append(a) }
            return out
        }
        var jobs: [JobInfo] = []
        var counts: [String: ClusterJobsResult.HostCounts] = [:]
        for (h, answer) in answers {
            switch answer {
            case .success(let l):
                jobs += l.jobs
                counts[h] = .init(queued: l.queued, running: l.running, failed: l.failed, wiping_bytes: l.wiping_bytes)
            case .failure(let e):
                unreachable[h] = ErrorSummary(code: e.code, message: e.message)
            }
        }
        if let h = r.host, let e = unreachable[h] {
            // One host asked and it did not answer: that is the call's failure, not an empty list.
            throw ServiceError(code: e.code, message: e.message, details: ["host": .string(h)])
        }
        jobs.sort { ($0.created_at, $0.id) > ($1.created_at, $1.id) }
        return ClusterJobsResult(jobs: jobs, hosts: counts, unreachable: unreachable)
    }

    /// `job_info`: the named host's answer, or the first agent that knows the id.
    func jobInfo(_ r: ClusterJobRequest, deadline: ContinuousClock.Instant?) async throws -> JobInfo {
        try await locateJob(r, deadline: deadline).1
    }

    /// `cancel_job`: on the host that runs the job (found as `job_info` does).
    func cancelJob(_ r: ClusterJobRequest, deadline: ContinuousClock.Instant?) async throws -> JobInfo {
        var host = r.host ?? ""
        if r.host == nil { host = try await locateJob(r, deadline: deadline).0 }
        let job = try await callAgent(host, .cancelJob, JobRequest(id: r.id), as: JobInfo.self, deadline: deadline)
        logger.info("job cancel requested", metadata: ["job": "\(r.id)", "host": "\(host)", "state": "\(job.state.rawValue)"])
        return job
    }

    /// Asks every live agent (or the named one) for job `id` at once; the first that knows it
    /// wins. None knows it: `not_found`, unless some host could not be asked (then its error:
    /// the job may be there).
    func locateJob(_ r: ClusterJobRequest, deadline: ContinuousClock.Instant?) async throws -> (String, JobInfo) {
        let request = JobRequest(id: r.id)
        if let h = r.host {
            return (h, try await callAgent(h, .jobInfo, request, as: JobInfo.self, deadline: deadline))
        }
        let (ask, down) = jobHosts(nil)
        var failures: [(String, ServiceError)] = []
        let found: (String, JobInfo)? = await withTaskGroup(of: (String, Result<JobInfo, ServiceError>).self) { group in
            for h in ask {
                group.addTask { [self] in
                    do {
                        return (h, .success(try await callAgent(h, .jobInfo, request, as: JobInfo.self, deadline: deadline)))
                    } catch let e as ServiceError {
                        return (h, .failure(e))
                    } catch {
                        return (h, .failure(ServiceError(.internal, "job_info on \(h): \(error)")))
                    }
                }
            }
            defer { group.cancelAll() }
            for await (h, answer) in group {
                switch answer {
                case .success(let job): return (h, job)
                case .failure(let e) where e.wireCode == .notFound: continue
                case .failure(let e): failures.append((h, e))
                }
            }
            return nil
        }
        if let found { return found }
        for h in down { failures.append((h, unavailable(h, method: AgentMethod.jobInfo.rawValue, at: now()))) }
        failures.sort { $0.0 < $1.0 }
        let asked = ask.filter { h in !failures.contains { $0.0 == h } }
        if let (h, first) = failures.first.map({ ($0.0, $0.1) }) {
            var e = first
            e.message =
                "job \(r.id) was not found on \(asked.isEmpty ? "any host" : asked.joined(separator: ", ")), and \(failures.map(\.0).joined(separator: ", ")) could not be asked (it may be there): \(first.message)"
            e.details["host"] = .string(h)
            e.details["id"] = .string(r.id)
            throw e
        }
        throw ServiceError(
            .notFound,
            "no agent knows job \(r.id) (asked: \(asked.isEmpty ? "none: no live agent" : asked.joined(separator: ", ")); finished jobs are kept 7 days)",
            details: ["id": .string(r.id)])
    }
}
