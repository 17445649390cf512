import AOSAPI
import RPCWire
import SharedLVM

/// The job side of the agent's API: the wipe that `delete_lv` starts, `copy_lv`, and the
/// job queries; plus resuming recorded jobs at boot and stopping them at shutdown.
extension AgentService {
    /// `delete_lv` with clearing: the job is recorded, the LV renamed out of the volume
    /// namespace (the volume is gone under its name from here on), and the wipe starts.
    func startWipe(_ lv: LVRef, info: LogicalVolume, clear: VolumeClear, clearMiB: UInt64) async throws(ServiceError) -> JobInfo {
        let id = makeUUIDHex()
        let hidden = JobLVName.wipe(id)
        let bytes = clearMiB > 0 ? min(clearMiB << 20, info.sizeBytes) : info.sizeBytes
        var record = JobRecord(
            id: id, kind: .wipe, vg: lv.vg, source: lv.name, target: hidden, hidden: hidden, totalBytes: bytes,
            createdAt: jobs.clock.wallNow)
        record.clear = clear
        try recordJob(record)
        do {
            try await backend.renameLV(vg: lv.vg, from: lv.name, to: hidden)
        } catch {
            jobs.drop(id)
            noteLockspace(error, vg: lv.vg)
            throw .lvm(error, operation: "delete_lv (rename for the wipe)", host: host, vg: lv.vg, lv: lv.name)
        }
        jobs.note(id) { $0.phase = .ready }
        logger.info(
            "deleted volume renamed for its wipe",
            metadata: ["vg": "\(lv.vg)", "lv": "\(lv.name)", "hidden": "\(hidden)", "job": "\(id)", "clear": "\(clear.rawValue)"])
        launchJob(id)
        return jobs.info(jobs.record(id) ?? record)
    }

    /// `copy_lv`: the target is created under its hidden name, then the copy runs as a job.
    func copyLV(_ source: LVRef, target: LVRef, size: UInt64?, verify: Bool) async throws(ServiceError) -> CopyLVResult {
        let vg = source.vg
        if let same = jobs.all.first(where: {
            $0.kind == .copy && $0.vg == vg && $0.source == source.name && $0.target == target.name
                && $0.state != .failed && $0.state != .cancelled
        }) {
            return CopyLVResult(host: host, job: jobs.info(same), changed: false)
        }
        let pending = jobs.all.filter { $0.kind == .copy && !$0.isOver }.count
        guard pending < jobs.limits.maxPendingCopies else {
            throw ServiceError(
                .busy,
                "the agent on host \(host) has \(pending) copies queued or running (at most \(jobs.limits.maxPendingCopies)); try again later",
                details: ["host": .string(host), "pending_copies": .int(Int64(pending))])
        }
        let from = try await lvm("copy_lv", vg, source.name) { () async throws(LVMError) in
            try await backend.lvInfo(vg: vg, name: source.name)
        }
        let wanted = size ?? from.sizeBytes
        guard wanted >= from.sizeBytes else {
            throw ServiceError(
                .sizeConflict,
                "copy_lv \(source) → \(target.name): the target must be at least the source's \(from.sizeBytes) bytes, not \(wanted)",
                details: [
                    "host": .string(host), "vg": .string(vg), "lv": .string(target.name),
                    "source_size_bytes": .int(Int64(clamping: from.sizeBytes)), "requested_size_bytes": .int(Int64(clamping: wanted)),
                ])
        }
        if try await lvExists(vg, target.name, operation: "copy_lv") {
            throw ServiceError(
                .alreadyExists, "copy_lv: the target \(target) exists already; a copy makes a new LV",
                details: ["host": .string(host), "vg": .string(vg), "lv": .string(target.name)])
        }
        let id = makeUUIDHex()
        var record = JobRecord(
            id: id, kind: .copy, vg: vg, source: source.name, target: target.name, hidden: JobLVName.copy(id),
            totalBytes: from.sizeBytes, createdAt: jobs.clock.wallNow)
        record.sizeBytes = wanted
        record.verify = verify
        try recordJob(record)
        do {
            _ = try await backend.createLV(vg: vg, name: record.hidden, sizeBytes: wanted, activate: false)
        } catch {
            jobs.drop(id)
            noteLockspace(error, vg: vg)
            throw .lvm(error, operation: "copy_lv (create the target)", host: host, vg: vg, lv: target.name)
        }
        jobs.note(id) { $0.phase = .ready }
        logger.info(
            "copy started",
            metadata: ["vg": "\(vg)", "source": "\(source.name)", "target": "\(target.name)", "job": "\(id)", "bytes": "\(from.sizeBytes)"])
        launchJob(id)
        return CopyLVResult(host: host, job: jobs.info(jobs.record(id) ?? record), changed: true)
    }

    private func lvExists(_ vg: String, _ name: String, operation: String) async throws(ServiceError) -> Bool {
        do {
            _ = try await backend.lvInfo(vg: vg, name: name)
            return true
        } catch  where error.code == .notFound {
            return false
        } catch {
            noteLockspace(error, vg: vg)
            throw .lvm(error, operation: operation, host: host, vg: vg, lv: name)
        }
    }

    func listJobs() -> ListJobsResult {
        let c = jobs.counts
        return ListJobsResult(
            host: host, jobs: jobs.all.map { jobs.info($0) }, queued: c.queued, running: c.running, failed: c.failed,
            wiping_bytes: c.wipingBytes)
    }

    func jobInfo(_ id: String) throws(ServiceError) -> JobInfo {
        jobs.info(try job(id))
    }

    /// Asks a copy to stop; its task removes the half-written target and marks it cancelled.
    func cancelJob(_ id: String) throws(ServiceError) -> JobInfo {
        let r = try job(id)
        guard r.kind == .copy else {
            throw ServiceError(
                .busy, "job \(id) is the wipe of a deleted volume; it cannot be cancelled (the data must not stay)",
                details: ["host": .string(host), "job": .string(id)])
        }
        guard !r.isOver else { return jobs.info(r) }
        try recordJobChange(id) { $0.cancelRequested = true }
        jobs.interrupt(id)
        launchJob(id)  // a job without a task (not resumed yet) finishes its cancel now; else a no-op
        return jobs.info(jobs.record(id) ?? r)
    }

    private func job(_ id: String) throws(ServiceError) -> JobRecord {
        guard let r = jobs.record(id) else {
            throw ServiceError(
                .notFound, "the agent on host \(host) has no job '\(JSONValue.printable(id))'",
                details: ["host": .string(host), "job": .string(id)])
        }
        return r
    }

    private func recordJob(_ record: JobRecord) throws(ServiceError) {
        do { try jobs.add(record) } catch {
            throw ServiceError(
                .internal, "cannot record the job on host \(host): \(error.message); nothing was done",
                details: ["host": .string(host)])
        }
    }

    private func recordJobChange(_ id: String, _ body: (inout JobRecord) -> Void) throws(ServiceError) {
        do { try jobs.update(id, body) } catch {
            throw ServiceError(
                .internal, "cannot record the job change on host \(host): \(error.message)", details: ["host": .string(host)])
        }
    }

    // MARK: - Boot and shutdown

    /// At boot, after the lockspaces: jobs recorded by an earlier run continue. A `pending`
    /// one belongs to a call that never finished (its caller saw it fail): it is dropped, and
    /// a copy's half-created target removed.
    func resumeJobs() async {
        if let problem = jobs.loadProblem {
            logger.critical("job file unreadable; starting without jobs", metadata: ["problem": "\(problem)"])
        }
        for r in jobs.all where !r.isOver {
            if r.phase == .pending {
                let exists = (try? await backend.lvInfo(vg: r.vg, name: r.hidden)) != nil
                if r.kind == .wipe, exists {
                    jobs.note(r.id) { $0.phase = .ready }  // the rename happened
                } else {
                    if r.kind == .copy, exists { try? await backend.removeLV(vg: r.vg, name: r.hidden) }
                    jobs.drop(r.id)
                    logger.notice("dropped a job whose call never finished", metadata: jobMetadata(r))
                    continue
                }
            }
            if r.state == .running { jobs.note(r.id) { $0.state = .queued } }
            logger.notice("resuming job", metadata: jobMetadata(r))
            launchJob(r.id)
        }
    }

    /// Shutdown: running jobs stop between chunks and resume at the next start.
    public func stopJobs() async { await jobs.stop() }

    /// Tests: returns once the job is over.
    public func waitForJob(_ id: String) async { await jobs.waitUntilOver(id) }
}
