import AOSAPI
import HostSupport
import Logging
import RPCWire
import Synchronization

/// The agent's jobs: their records (durable in `jobs.json`), the tasks that run them, the
/// concurrency slots and the shared I/O rate limit. What a job does is the agent's
/// (JobExecution.swift); this type keeps the books.
///
/// Every change of state is written before it is acted on; progress at most every
/// `checkpointInterval` seconds (a restart resumes from the last checkpoint: the writes a
/// job repeats are idempotent).
final class JobRunner: Sendable {
    struct Limits: Sendable {
        var maxConcurrent: Int
        var bytesPerSecond: UInt64
        var chunkBytes: UInt64
        var checkpointInterval: Double = 5
        /// Finished jobs kept for `list_jobs`.
        var keepFinished = 200
        var keepFinishedSeconds: Double = 7 * 86_400
        /// Unfinished copies at most (each holds an LV of the VG); more are refused `busy`.
        /// Wipes are not capped: each one is a delete that already happened.
        var maxPendingCopies = 64
    }

    struct State {
        var records: [String: JobRecord] = [:]
        var tasks: [String: Task<Void, Never>] = [:]
        /// Monotonic time and bytes when the current attempt started (for the rate).
        var attemptStart: [String: (time: Double, bytes: UInt64)] = [:]
        var lastCheckpoint: [String: Double] = [:]
        var waiters: [String: [CheckedContinuation<Void, Never>]] = [:]
        var stopped = false
    }

    let host: String
    let limits: Limits
    let clock: any JobClock
    let limiter: RateLimiter
    let slots: AsyncSemaphore
    let file: JobFile
    let logger: Logger
    /// Why `jobs.json` could not be read at start (it was moved aside), for health/logs.
    let loadProblem: String?
    private let state: Mutex<State>

    init(directory: String, host: String, limits: Limits, clock: any JobClock, logger: Logger) {
        self.host = host
        self.limits = limits
        self.clock = clock
        self.limiter = RateLimiter(bytesPerSecond: limits.bytesPerSecond, clock: clock)
        self.slots = AsyncSemaphore(max(1, limits.maxConcurrent))
        self.file = JobFile(directory: directory, host: host)
        self.logger = logger
        let (records, problem) = file.load()
        self.loadProblem = problem
        var initial = State()
        for r in records { initial.records[r.id] = r }
        self.state = Mutex(initial)
    }

    // MARK: - Records

    func record(_ id: String) -> JobRecord? { state.withLock { $0.records[id] } }

    var all: [JobRecord] { state.withLock { Array($0.records.values) }.sorted { $0.createdAt > $1.createdAt } }

    /// A new job, written to disk before anything else happens.
    func add(_ record: JobRecord) throws(StoreError) {
        try change(record.id, create: record) { _ in }
    }

    /// Forgets a job (a `pending` one whose call failed).
    func drop(_ id: String) {
        do { try change(id) { $0 = nil } } catch {
            logger.error("cannot write the job file", metadata: ["job": "\(id)", "error": "\(error)"])
        }
    }

    /// Applies `body` and writes the file; waiters are woken when the job is over.
    func update(_ id: String, _ body: (inout JobRecord) -> Void) throws(StoreError) {
        try change(id) { r in
            if var record = r {
                body(&record)
                r = record
            }
        }
    }

    /// `update`, logging a failure to write instead of throwing (the job goes on; the
    /// record on disk is older, and a restart repeats work, which is safe).
    func note(_ id: String, _ body: (inout JobRecord) -> Void) {
        do { try update(id, body) } catch {
            logger.error("cannot write the job file", metadata: ["job": "\(id)", "error": "\(error)"])
        }
    }

    /// Progress of a running job: in memory at once, on disk every `checkpointInterval`.
    func progress(_ id: String, doneBytes: UInt64, method: String? = nil) {
        let now = clock.now
        let due = state.withLock { s -> Bool in
            s.records[id]?.doneBytes = doneBytes
            if let method { s.records[id]?.method = method }
            let last = s.lastCheckpoint[id] ?? -Double.infinity
            guard now - last >= limits.checkpointInterval else { return false }
            s.lastCheckpoint[id] = now
            return true
        }
        if due { note(id) { _ in } }
    }

    /// Marks the start of an attempt (the rate is measured from here).
    func beginAttempt(_ id: String) {
        let now = clock.now
        state.withLock { s in
            if let done = s.records[id]?.doneBytes { s.attemptStart[id] = (now, done) }
        }
    }

    /// `JobInfo` of one job, with its current rate.
    func info(_ record: JobRecord) -> JobInfo {
        let now = clock.now
        let rate = state.withLock { s -> Double? in
            guard let start = s.attemptStart[record.id], now > start.time, record.doneBytes >= start.bytes else { return nil }
            return Double(record.doneBytes - start.bytes) / (now - start.time)
        }
        return record.info(host: host, rate: rate)
    }

    private func change(_ id: String, create: JobRecord? = nil, _ body: (inout JobRecord?) -> Void) throws(StoreError) {
        let over = try state.withLock { (s: inout State) throws(StoreError) -> Bool in
            var next = s.records
            if let create { next[create.id] = create }
            var r = next[id]
            body(&r)
            next[id] = r
            prune(&next)
            try file.save(Array(next.values))
            s.records = next
            return r?.isOver ?? true
        }
        if over { wake(id) }
    }

    /// Keeps the newest `keepFinished` finished jobs younger than `keepFinishedSeconds`.
    private func prune(_ records: inout [String: JobRecord]) {
        let now = clock.wallNow
        let finished = records.values.filter(\.isOver).sorted { ($0.finishedAt ?? 0) > ($1.finishedAt ?? 0) }
        for (i, r) in finished.enumerated() where i >= limits.keepFinished || now - (r.finishedAt ?? now) > limits.keepFinishedSeconds {
            records[r.id] = nil
        }
    }

    // MARK: - Tasks

    /// Runs `work` for a job in a task of its own (replacing none: one task per job).
    func launch(_ id: String, _ work: @escaping @Sendable () async -> Void) {
        state.withLock { s in
            guard !s.stopped, s.tasks[id] == nil else { return }
            s.tasks[id] = Task {
                await work()
                self.state.withLock { _ = $0.tasks.removeValue(forKey: id) }
            }
        }
    }

    /// Interrupts a job's task (user cancel, with `cancelRequested` set first; or shutdown).
    func interrupt(_ id: String) {
        state.withLock { $0.tasks[id] }?.cancel()
    }

    /// Shutdown: every task is interrupted and no new one starts; the records stay as they
    /// are on disk (running jobs resume at the next start).
    func stop() async {
        let tasks = state.withLock { s -> [Task<Void, Never>] in
            s.stopped = true
            return Array(s.tasks.values)
        }
        for t in tasks { t.cancel() }
        for t in tasks { await t.value }
    }

    /// Returns once the job is over (succeeded, cancelled, or failed for good) or gone.
    func waitUntilOver(_ id: String) async {
        await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in
            let over = state.withLock { s -> Bool in
                guard let r = s.records[id], !r.isOver else { return true }
                s.waiters[id, default: []].append(c)
                return false
            }
            if over { c.resume() }
        }
    }

    private func wake(_ id: String) {
        let waiters = state.withLock { $0.waiters.removeValue(forKey: id) ?? [] }
        for w in waiters { w.resume() }
    }

    /// Counts for `list_jobs`.
    var counts: (queued: Int64, running: Int64, failed: Int64, wipingBytes: Int64) {
        state.withLock { s in
            var c: (Int64, Int64, Int64, Int64) = (0, 0, 0, 0)
            for r in s.records.values {
                switch r.state {
                case .queued: c.0 += 1
                case .running: c.1 += 1
                case .failed: c.2 += 1
                case .succeeded, .cancelled: break
                }
                if r.kind == .wipe, !r.isOver { c.3 += Int64(clamping: r.totalBytes) }
            }
            return c
        }
    }
}
