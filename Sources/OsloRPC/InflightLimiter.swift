import Synchronization

/// Bounds how many requests execute at once and lets shutdown wait for them.
///
/// A task holds a slot while it runs its work; what the work returns (sending the reply)
/// runs after the slot is released. Replies being sent are bounded too (`replyLimit` of
/// them): a new request waits for a slot while that many are still going out.
final class InflightLimiter: Sendable {
    typealias After = @Sendable () async -> Void
    /// A reply phase that needs no task: it starts the reply and calls `done` (from any
    /// thread, e.g. a publish completion on the I/O thread) once it is out.
    typealias AfterCallback = @Sendable (_ done: @escaping @Sendable () -> Void) -> Void

    private struct State {
        var running = 0
        var replying = 0
        var queued: [CheckedContinuation<Void, Never>] = []

        /// Takes a slot if one is free and no task waits for one (they keep their turn).
        mutating func take(limit: Int, replyLimit: Int) -> Bool {
            guard running < limit && replying < replyLimit && queued.isEmpty else { return false }
            running += 1
            return true
        }

        /// Hands free slots to waiting tasks; returns whom to resume.
        mutating func grant(limit: Int, replyLimit: Int) -> [CheckedContinuation<Void, Never>] {
            var out: [CheckedContinuation<Void, Never>] = []
            while !queued.isEmpty, running < limit, replying < replyLimit {
                running += 1
                out.append(queued.removeFirst())
            }
            return out
        }
    }

    private let limit: Int
    private let replyLimit: Int
    private let state = Mutex(State())
    /// Started and not finished (queued, running or replying): what shutdown waits for.
    private let outstanding = IdleGate()
    private let onIdle: @Sendable () -> Void
    /// Where the tasks run (nil: the global concurrent executor).
    private let executor: (any TaskExecutor)?

    /// `replyLimit` defaults to `limit`, at least 16.
    init(
        limit: Int, replyLimit: Int? = nil, executor: (any TaskExecutor)? = nil,
        onIdle: @escaping @Sendable () -> Void = {}
    ) {
        self.limit = max(1, limit)
        self.replyLimit = max(1, replyLimit ?? max(16, limit))
        self.executor = executor
        self.onIdle = onIdle
    }

    /// Tasks waiting for a slot (their deliveries are bounded by the consumers' prefetch).
    var queuedCount: Int { state.withLock { $0.queued.count } }
    var runningCount: Int { state.withLock { $0.running } }

    /// Called from the I/O thread: never blocks, only creates a task.
    func start(_ work: @escaping @Sendable () async -> After?) {
        startTask {
            guard let after = await work() else { return nil }
            return { done in
                // The awaiting form: one more task for the reply phase.
                Task(executorPreference: self.executor) {
                    await after()
                    done()
                }
            }
        }
    }

    /// Like `start`, for a reply phase started without awaiting (`AfterCallback`): the task
    /// ends once the reply is handed on, and the reply slot is released by `done`, so a
    /// publisher confirm does not resume the task (a thread wake-up per request).
    /// `holdingSlot`: the caller took the work slot with `tryAcquire` (the task must not wait
    /// for another one).
    func startReplying(holdingSlot: Bool = false, _ work: @escaping @Sendable () async -> AfterCallback?) {
        startTask(holdingSlot: holdingSlot, work)
    }

    /// Takes a work slot now if one is free and no task waits for one (they keep their turn);
    /// never blocks. The server calls it on the I/O thread as a request arrives, so that it can
    /// ack the request right there: the task it starts then holds the slot (`holdingSlot`).
    func tryAcquire() -> Bool {
        state.withLock { $0.take(limit: limit, replyLimit: replyLimit) }
    }

    private func startTask(holdingSlot: Bool = false, _ work: @escaping @Sendable () async -> AfterCallback?) {
        _ = outstanding.enter()
        Task(executorPreference: executor) { [self] in
            if !holdingSlot { await acquire() }
            let after = await work()
            let wake = state.withLock { s -> [CheckedContinuation<Void, Never>] in
                s.running -= 1
                if after != nil { s.replying += 1 }
                return s.grant(limit: limit, replyLimit: replyLimit)
            }
            for w in wake { w.resume() }
            guard let after else { return outstanding.leave(onIdle: onIdle) }
            after { [self] in
                let wake = state.withLock { s -> [CheckedContinuation<Void, Never>] in
                    s.replying -= 1
                    return s.grant(limit: limit, replyLimit: replyLimit)
                }
                for w in wake { w.resume() }
                outstanding.leave(onIdle: onIdle)
            }
        }
    }

    private func acquire() async {
        await withCheckedContinuation { cont in
            let now = state.withLock { s -> Bool in
                if s.take(limit: limit, replyLimit: replyLimit) { return true }
                s.queued.append(cont)
                return false
            }
            if now { cont.resume() }
        }
    }

    func waitUntilIdle() async { await outstanding.waitUntilIdle() }
}
