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
        guard let info = try await lvInfoIfPresent(r.vg, r.hidden) else { return }
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
        guard let target = try await lvInfoIfPresent(r.vg, r.hidden) else {
            // Renamed to its final name before the record said so (a restart after lvrename).
            if try await lvInfoIfPresent(r.vg, r.target) != nil, r.doneBytes >= r.totalBytes { return }
            throw ServiceError(.notFound, "the copy's target LV \(r.vg)/\(r.hidden) is gone")
        }
        let source = try await backend.lvInfo(vg: r.vg, name: r.source)
        if !source.activeLocally {
            // Shared: readable here while other hosts may read it too; held only for the copy.
            try await withLVLock(r.vg, r.source) { () async throws(LVMError) in
                try await backend.activate(vg: r.vg, name: r.source, mode: .shared)
            }
            try jobs.update(id) { $0.activatedSource = true }
        }
        if !target.activeLocally { try await backend.activate(vg: r.vg, name: r.hidden, mode: .exclusive) }
        try await chunks(id) { offset, length in
            try await backend.copyRange(vg: r.vg, source: r.source, target: r.hidden, offset: offset, length: length)
            return nil
        }
        if r.verify {
            let expected = try await backend.checksum(vg: r.vg, name: r.source, length: r.totalBytes)
            let got = try await backend.checksum(vg: r.vg, name: r.hidden, length: r.totalBytes)
            guard expected == got else {
                throw ServiceError(
                    .internal,
                    "copy of \(r.vg)/\(r.source) to \(r.target) does not verify: source SHA-256 \(expected), copy \(got)")
            }
            try jobs.update(id) { $0.checksum = got }
        }
        try await backend.deactivate(vg: r.vg, name: r.hidden)
        try await releaseSource(id)
        try await backend.renameLV(vg: r.vg, from: r.hidden, to: r.target)
        logger.info("copied LV", metadata: jobMetadata(jobs.record(id) ?? r))
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
        do { try await releaseSource(id) } catch { problem = error }
        if let problem {
            logger.error(
                "could not clean up after a copy; remove the LV by hand",
                metadata: jobMetadata(r).merging(["lv": "\(r.hidden)", "error": "\(problem)"]) { $1 })
        }
    }

    /// The LV, nil when it does not exist.
    private func lvInfoIfPresent(_ vg: String, _ name: String) async throws(LVMError) -> LogicalVolume? {
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
