import AOSAPI
import HostSupport
import Logging
import RPCWire
import SharedLVM

/// How a job's run ended.
enum JobOutcome: Sendable {
    /// Nothing more to do (succeeded, cancelled, failed for good, or the agent is stopping).
    case over
    /// A wipe failed; try again at `next_attempt_at`.
    case retry
}

/// The user asked to cancel (`cancel_job`), as opposed to the agent stopping.
struct JobCancelled: Error {}

/// Running the jobs: a task per job waits for its retry time and a slot, then does the work
/// in chunks. A stopping agent interrupts the tasks and leaves the records as they are, so the
/// next start resumes them.
extension AgentService {
    /// Backoff of a failed wipe: 10 s, doubling, at most 10 min.
    static let wipeRetry = RetryPolicy(initial: .seconds(10), maximum: .seconds(600))

    func launchJob(_ id: String) {
        jobs.launch(id) { await self.driveJob(id) }
    }

    private func driveJob(_ id: String) async {
        while let record = jobs.record(id), !record.isOver {
            if let next = record.nextAttemptAt, !record.cancelRequested {
                do { try await jobs.clock.sleep(seconds: next - jobs.clock.wallNow) } catch { return }
            }
            do { try await jobs.slots.acquireUnlessCancelled() } catch {
                if jobs.record(id)?.cancelRequested == true { await finishCancelled(id) }
                return
            }
            let outcome = await attempt(id)
            jobs.slots.release()
            if case .over = outcome { return }
        }
    }

    /// One attempt, from the recorded progress to the end.
    private func attempt(_ id: String) async -> JobOutcome {
        guard let record = jobs.record(id) else { return .over }
        if record.cancelRequested {
            await finishCancelled(id)
            return .over
        }
        let now = jobs.clock.wallNow
        jobs.note(id) {
            $0.state = .running
            $0.attempts += 1
            $0.nextAttemptAt = nil
            if $0.startedAt == nil { $0.startedAt = now }
        }
        jobs.beginAttempt(id)
        logger.info("job started", metadata: jobMetadata(record))
        do {
            switch record.kind {
            case .wipe: try await wipe(id)
            case .copy: try await copy(id)
            }
            let end = jobs.clock.wallNow
            jobs.note(id) {
                $0.state = .succeeded
                $0.finishedAt = end
                $0.error = nil
                $0.doneBytes = $0.totalBytes
            }
            logger.info("job succeeded", metadata: jobMetadata(jobs.record(id) ?? record))
            return .over
        } catch {
            if jobs.record(id)?.cancelRequested == true {
                await finishCancelled(id)
                return .over
            }
            if Task.isCancelled {
                // The agent is stopping: resume at the next start from the last checkpoint.
                jobs.note(id) { $0.state = .queued }
                return .over
            }
            return await failed(id, record, error)
        }
    }

    private func failed(_ id: String, _ record: JobRecord, _ error: any Error) async -> JobOutcome {
        let summary = Self.summary(error)
        let now = jobs.clock.wallNow
        switch record.kind {
        case .wipe:
            // The data must go: keep trying, visibly.
            let attempts = jobs.record(id)?.attempts ?? 1
            let delay = Self.wipeRetry.delay(afterFailures: Int(clamping: attempts))
            let next = now + Double(delay.components.seconds)
            jobs.note(id) {
                $0.state = .failed
                $0.error = summary
                $0.nextAttemptAt = next
            }
            logger.error(
                "wipe failed; will retry",
                metadata: jobMetadata(record).merging(["error": "\(summary.message)", "retry_in_s": "\(delay.components.seconds)"]) { $1 })
            return .retry
        case .copy:
            logger.error("copy failed", metadata: jobMetadata(record).merging(["error": "\(summary.message)"]) { $1 })
            await cleanUpCopy(id)
            jobs.note(id) {
                $0.state = .failed
                $0.error = summary
                $0.finishedAt = now
            }
            return .over
        }
    }

    private func finishCancelled(_ id: String) async {
        await cleanUpCopy(id)
        let now = jobs.clock.wallNow
        jobs.note(id) {
            $0.state = .cancelled
            $0.finishedAt = now
            $0.nextAttemptAt = nil
        }
        logger.notice("job cancelled", metadata: ["job": "\(id)"])
    }

    static func summary(_ error: any Error) -> ErrorSummary {
        switch error {
        case let e as ServiceError: return ErrorSummary(code: e.code, message: e.message)
        case let e as LVMError: return ErrorSummary(code: e.code.rawValue, message: e.message)
        default: return ErrorSummary(code: WireErrorCode.internal.rawValue, message: "\(error)")
        }
    }

    func jobMetadata(_ r: JobRecord) -> [String: Logger.MetadataValue] {
        [
            "job": "\(r.id)", "kind": "\(r.kind.rawValue)", "vg": "\(r.vg)", "source": "\(r.source)", "target": "\(r.target)",
            "done_bytes": "\(r.doneBytes)", "total_bytes": "\(r.totalBytes)",
        ]
    }

    // MARK: - Chunks

    /// Walks the job's range from its recorded progress in chunks: each waits for the rate
    /// limit, runs `body(offset, length)`, and records progress. Stops at a cancel.
    private func chunks(_ id: String, weight: UInt64 = 1, _ body: (UInt64, UInt64) async throws -> String?) async throws {
        guard let record = jobs.record(id) else { return }
        var offset = record.doneBytes
        // Under a low rate limit, smaller chunks (about a second each, whole MiB) keep the
        // progress moving and the limit smooth.
        let limit = jobs.limits.bytesPerSecond
        let chunk = limit > 0 ? min(jobs.limits.chunkBytes, max(1 << 20, (limit >> 20) << 20)) : jobs.limits.chunkBytes
        while offset < record.totalBytes {
            try Task.checkCancellation()
            if jobs.record(id)?.cancelRequested == true { throw JobCancelled() }
            let length = min(chunk, record.totalBytes - offset)
            try await jobs.limiter.wait(for: length * weight)
            let method = try await body(offset, length)
            offset += length
            jobs.progress(id, doneBytes: offset, method: method)
        }
    }

    // MARK: - Wipe

    private func wipe(_ id: String) async throws {
        guard let r = jobs.record(id) else { return }
        // Gone: removed before the record said so (a restart after lvremove).
        guard let info = try await jobLVInfo(r.vg, r.hidden) else { return }
        // Exclusive: proof that no other host has the old volume's device open.
        if !info.activeLocally { try await backend.activate(vg: r.vg, name: r.hidden, mode: .exclusive) }
        let shred = r.clear == .shred
        try await chunks(id, weight: shred ? 2 : 1) { offset, length in
            if shred {
                _ = try await backend.fillRange(vg: r.vg, name: r.hidden, offset: offset, length: length, fill: .random)
                _ = try await backend.fillRange(vg: r.vg, name: r.hidden, offset: offset, length: length, fill: .zeros)
                return WipeMethod.shred.rawValue
            }
            // Once the device said it cannot zero a range itself, write zeros from then on.
            let known = jobs.record(id)?.method == WipeMethod.writeZeros.rawValue
            let used = try await backend.fillRange(
                vg: r.vg, name: r.hidden, offset: offset, length: length, fill: known ? .zeros : .zeroOffload)
            return (used == .zeroOffload ? WipeMethod.zeroout : WipeMethod.writeZeros).rawValue
        }
        try await backend.deactivate(vg: r.vg, name: r.hidden)
        try await backend.removeLV(vg: r.vg, name: r.hidden)
        logger.info("wiped and removed the LV of a deleted volume", metadata: jobMetadata(jobs.record(id) ?? r))
    }

    // MARK: - Copy

    private func copy(_ id: String) async throws {
        guard let r = jobs.record(id) else { return }
        guard let target = try await jobLVInfo(r.vg, r.hidden) else {
            // Renamed to its final name before the record said so (a restart after lvrename).
            if try await jobLVInfo(r.vg, r.target) != nil, r.doneBytes >= r.totalBytes { return }
            throw ServiceError(.notFound, "the copy's target LV \(r.vg)/\(r.hidden) is gone")
        }
        let reader = try await copyReader(id)
        if !target.activeLocally { try await backend.activate(vg: r.vg, name: r.hidden, mode: .exclusive) }
        do {
            try await chunks(id) { offset, length in
                try await backend.copyRange(vg: r.vg, source: reader, target: r.hidden, offset: offset, length: length)
                return nil
            }
        } catch {
            // Reads of an overflowed snapshot fail: say why rather than "Input/output error".
            if !(error is CancellationError), !(error is JobCancelled), let problem = await cowProblem(id) { throw problem }
            throw error
        }
        if r.verify {
            let expected = try await backend.checksum(vg: r.vg, name: reader, length: r.totalBytes)
            let got = try await backend.checksum(vg: r.vg, name: r.hidden, length: r.totalBytes)
            guard expected == got else {
                throw ServiceError(
                    .internal,
                    "copy of \(r.vg)/\(reader) to \(r.target) does not verify: source SHA-256 \(expected), copy \(got)")
            }
            try jobs.update(id) { $0.checksum = got }
        }
        // Valid at the end: every block read came from the point in time (an overflow is final).
        if let problem = await cowProblem(id) { throw problem }
        try await backend.deactivate(vg: r.vg, name: r.hidden)
        try await dropCOW(id)
        try await releaseSource(id)
        try await backend.renameLV(vg: r.vg, from: r.hidden, to: r.target)
        logger.info("copied LV", metadata: jobMetadata(jobs.record(id) ?? r))
    }

    /// What the copy reads: a COW snapshot of the source when the source is in use on this host
    /// (active exclusively here: a VM may write it), else the source itself, activated shared
    /// for the copy where it is not active here.
    ///
    /// A copy that recorded a COW snapshot goes on from its progress only while that snapshot
    /// is there and valid (an agent restart; a host reboot after which the origin is active
    /// again, with its snapshot); otherwise the bytes copied so far belong to a point in time
    /// that is gone, and the copy starts over from a new one.
    private func copyReader(_ id: String) async throws -> String {
        guard let r = jobs.record(id) else { throw ServiceError(.notFound, "job \(id) is gone") }
        if let cow = r.cow {
            if let snap = try await jobLVInfo(r.vg, cow), snap.activeLocally, !snap.snapshotInvalid {
                logger.info("copy goes on from its COW snapshot", metadata: jobMetadata(r).merging(["cow": "\(cow)"]) { $1 })
                return cow
            }
            try await dropCOW(id)
            try jobs.update(id) { $0.doneBytes = 0 }
            logger.notice(
                "copy starts over: its COW snapshot is gone, inactive or invalid (the bytes copied were of that point in time)",
                metadata: jobMetadata(r).merging(["cow": "\(cow)"]) { $1 })
        }
        let source = try await backend.lvInfo(vg: r.vg, name: r.source)
        if source.activeLocally {
            guard try await backend.lockStatus().resource(lvUUID: source.uuid)?.mode == .exclusive else { return r.source }
            let cow = JobLVName.cow(id)
            let cowBytes = COWSnapshot.cowBytes(originBytes: source.sizeBytes)
            // Recorded first: whatever happens next, a failure or a restart finds it and removes it.
            try jobs.update(id) {
                $0.cow = cow
                $0.doneBytes = 0
            }
            _ = try await withLVLock(r.vg, r.source) { () async throws(LVMError) in
                try await backend.createSnapshot(vg: r.vg, origin: r.source, name: cow, cowBytes: cowBytes)
            }
            logger.info(
                "copy reads a COW snapshot: the source is in use on this host",
                metadata: jobMetadata(r).merging(["cow": "\(cow)", "cow_bytes": "\(cowBytes)"]) { $1 })
            return cow
        }
        // Shared: readable here while other hosts may read it too; held only for the copy.
        try await withLVLock(r.vg, r.source) { () async throws(LVMError) in
            try await backend.activate(vg: r.vg, name: r.source, mode: .shared)
        }
        try jobs.update(id) { $0.activatedSource = true }
        return r.source
    }

    /// Why the copy's COW snapshot cannot be trusted (overflowed or gone); nil when it can, or
    /// when the copy reads no snapshot.
    private func cowProblem(_ id: String) async -> ServiceError? {
        guard let r = jobs.record(id), let cow = r.cow else { return nil }
        let snap: LogicalVolume?
        do { snap = try await jobLVInfo(r.vg, cow) } catch {
            return ServiceError(.internal, "cannot check the copy's COW snapshot \(r.vg)/\(cow): \(error.message)")
        }
        guard let snap else {
            return ServiceError(.internal, "the copy's COW snapshot \(r.vg)/\(cow) disappeared while the copy ran")
        }
        guard snap.snapshotInvalid else { return nil }
        return ServiceError(
            .busy,
            "copy of \(r.vg)/\(r.source) (in use on \(host)) discarded: the volume was written more than its COW snapshot "
                + "\(cow) holds (\(snap.sizeBytes) bytes) while the copy ran, so the snapshot became invalid. "
                + "Retry when the volume is written less, or detach it",
            details: [
                "host": .string(host), "vg": .string(r.vg), "lv": .string(r.source), "cow_bytes": .int(Int64(clamping: snap.sizeBytes)),
            ])
    }

    /// Removes the copy's COW snapshot, if it has one. Only where it is active: a snapshot left
    /// inactive (the host rebooted) is activated with its origin, exclusively, for the removal
    /// (that lock proves no other host has the origin, and so the snapshot, active), then the
    /// origin is deactivated again.
    private func dropCOW(_ id: String) async throws {
        guard let r = jobs.record(id), let cow = r.cow else { return }
        let gone = try await withLVLock(r.vg, r.source) { () async throws(LVMError) -> Bool in
            let snap: LogicalVolume
            do throws(LVMError) { snap = try await backend.lvInfo(vg: r.vg, name: cow) } catch {
                if error.code == .notFound { return true }
                throw error
            }
            let activated = !snap.activeLocally
            if activated { try await backend.activate(vg: r.vg, name: r.source, mode: .exclusive) }
            try await backend.removeSnapshot(vg: r.vg, name: cow)
            if activated { try await backend.deactivate(vg: r.vg, name: r.source) }
            return true
        }
        if gone { try jobs.update(id) { $0.cow = nil } }
    }

    /// Deactivates the source if the job activated it.
    private func releaseSource(_ id: String) async throws {
        guard let r = jobs.record(id), r.activatedSource else { return }
        try await withLVLock(r.vg, r.source) { () async throws(LVMError) in
            try await backend.deactivate(vg: r.vg, name: r.source)
        }
        try jobs.update(id) { $0.activatedSource = false }
    }

    /// A cancelled or failed copy leaves nothing: its hidden LV goes, the source is released.
    func cleanUpCopy(_ id: String) async {
        guard let r = jobs.record(id), r.kind == .copy else { return }
        try? await backend.deactivate(vg: r.vg, name: r.hidden)
        var problem: (any Error)?
        do { try await backend.removeLV(vg: r.vg, name: r.hidden) } catch {
            if error.code != .notFound { problem = error }
        }
        do { try await dropCOW(id) } catch { problem = error }
        do { try await releaseSource(id) } catch { problem = error }
        if let problem {
            logger.error(
                "could not clean up after a copy; remove the LV (and its COW snapshot) by hand",
                metadata: jobMetadata(r).merging(["lv": "\(r.hidden)", "cow": "\(r.cow ?? "-")", "error": "\(problem)"]) { $1 })
        }
    }

    /// The LV, nil when it does not exist; other errors stay LVM's (a job retries them).
    private func jobLVInfo(_ vg: String, _ name: String) async throws(LVMError) -> LogicalVolume? {
        do { return try await backend.lvInfo(vg: vg, name: name) } catch {
            if error.code == .notFound { return nil }
            throw error
        }
    }

    /// Runs LVM work on an LV an RPC may also touch, under that LV's lock.
    private func withLVLock<T>(_ vg: String, _ name: String, _ body: () async throws(LVMError) -> T) async throws(LVMError) -> T {
        let key = LVRef(vg: vg, name: name).description
        await lvLocks.lock(key)
        defer { lvLocks.unlock(key) }
        return try await body()
    }
}
