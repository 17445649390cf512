import AOSAPI
import RPCWire
import Synchronization

/// The agent calls waiting for an answer, by host. A call is ended (its task cancelled, the
/// caller given `agent_unavailable` or `agent_restarted`) when its host goes down or announces
/// another run while it waits (issue 15).
///
/// Per call this costs one registration and one removal (O(1)) and no timer: a new run is seen
/// when its report is taken (`Controller.take`), and one watcher task for all the waiting calls
/// looks every `livenessPollInterval` at the hosts that have some (down is a matter of time:
/// no event says it). The watcher runs only while a call waits, so an idle controller has none.
/// Before (until 2026-12-01) each call ran in a task group with a second child task polling its
/// own host every 200 ms.
///
/// Lock order: the controller's view first, then this registry (a call is registered, and a
/// host's calls taken out, under the view's lock, so a call can never be registered for a host
/// the view already holds as down, or for a run it already knows to be gone).
final class AgentCallWatch: Sendable {
    /// One waiting call.
    final class Waiter: Sendable {
        let host: String
        let method: String
        /// The agent run the request is addressed to (nil: the host had not announced yet).
        let instance: String?
        let sentAt: ContinuousClock.Instant
        let timeout: Duration
        fileprivate let id: UInt64
        /// Why the call was ended (set once), and the task running it.
        fileprivate let slot = Mutex<(failure: ServiceError?, task: Task<JSONValue, any Error>?)>((nil, nil))

        fileprivate init(id: UInt64, host: String, method: String, instance: String?, sentAt: ContinuousClock.Instant, timeout: Duration) {
            self.id = id
            self.host = host
            self.method = method
            self.instance = instance
            self.sentAt = sentAt
            self.timeout = timeout
        }

        /// The error the call was ended with, if it was.
        var failure: ServiceError? { slot.withLock { $0.failure } }

        /// Ends the call with `error` (the first error only): cancels its task.
        func end(_ error: ServiceError) {
            let task = slot.withLock { s -> Task<JSONValue, any Error>? in
                guard s.failure == nil else { return nil }
                s.failure = error
                return s.task
            }
            task?.cancel()
        }

        /// Starts the call's task unless the call was already ended (then returns nil).
        func start(_ make: () -> Task<JSONValue, any Error>) -> Task<JSONValue, any Error>? {
            slot.withLock { s in
                guard s.failure == nil else { return nil }
                let task = make()
                s.task = task
                return task
            }
        }
    }

    struct State {
        var waiting: [String: [UInt64: Waiter]] = [:]
        var count = 0
        var nextID: UInt64 = 0
        var watcherRunning = false
    }

    let state = Mutex(State())

    /// Calls waiting now (tests: none must be left behind).
    var count: Int { state.withLock { $0.count } }

    /// Registers a call. Returns it, and whether the caller must start the watcher.
    func register(
        host: String, method: String, instance: String?, sentAt: ContinuousClock.Instant, timeout: Duration
    ) -> (Waiter, startWatcher: Bool) {
        state.withLock { s in
            s.nextID &+= 1
            let w = Waiter(id: s.nextID, host: host, method: method, instance: instance, sentAt: sentAt, timeout: timeout)
            s.waiting[host, default: [:]][w.id] = w
            s.count += 1
            let start = !s.watcherRunning
            s.watcherRunning = true
            return (w, start)
        }
    }

    /// Removes a call (it ended, one way or another). Idempotent.
    func remove(_ w: Waiter) {
        state.withLock { s in
            guard s.waiting[w.host]?.removeValue(forKey: w.id) != nil else { return }
            s.count -= 1
            if s.waiting[w.host]?.isEmpty == true { s.waiting[w.host] = nil }
        }
    }

    /// Takes out `host`'s calls that `matching` selects (they are about to be ended).
    func takeOut(_ host: String, where matching: (Waiter) -> Bool) -> [Waiter] {
        state.withLock { s in
            guard let calls = s.waiting[host] else { return [] }
            let out = calls.values.filter(matching)
            for w in out { s.waiting[host]?[w.id] = nil }
            s.count -= out.count
            if s.waiting[host]?.isEmpty == true { s.waiting[host] = nil }
            return out
        }
    }

    /// Hosts with a waiting call; nil (and the watcher marked stopped) when there is none.
    func hostsOrStop() -> [String]? {
        state.withLock { s in
            if s.waiting.isEmpty {
                s.watcherRunning = false
                return nil
            }
            return Array(s.waiting.keys)
        }
    }
}

extension Controller {
    /// Runs `call` (one agent request to `host`) as a call the watch can end: it fails at once
    /// when the view holds `host` as down, and is ended (its task cancelled) as soon as `host`
    /// goes down or announces a new run while it waits. Cancelling the caller cancels it.
    func watched(
        _ host: String, method: String, timeout: Duration,
        _ call: @escaping @Sendable (_ instance: String?) async throws -> JSONValue
    ) async throws -> JSONValue {
        let start = now()
        let registered = view.withLock { v -> (AgentCallWatch.Waiter, Bool)? in
            guard v.liveness(of: host, now: start) != .down else { return nil }
            return watch.register(
                host: host, method: method, instance: v.agents[host]?.report.instanceID, sentAt: start, timeout: timeout)
        }
        guard let (waiter, startWatcher) = registered else { throw unavailable(host, method: method, at: start) }
        defer { watch.remove(waiter) }
        if startWatcher { startCallWatcher() }
        let instance = waiter.instance
        let executor = agentCallExecutor
        guard let task = waiter.start({ Task(executorPreference: executor) { try await call(instance) } }) else {
            throw waiter.failure ?? unavailable(host, method: method, at: now())
        }
        do {
            return try await withTaskCancellationHandler {
                try await task.value
            } onCancel: {
                task.cancel()
            }
        } catch {
            if let failure = waiter.failure { throw failure }
            throw error
        }
    }

    /// The one task that ends the waiting calls of hosts gone down (or of a run the view no
    /// longer holds) every `livenessPollInterval`, while some call waits.
    func startCallWatcher() {
        let interval = settings.livenessPollInterval
        Task { [weak self] in
            while true {
                try? await Task.sleep(for: interval)
                guard let self, self.checkWaitingCalls() else { return }
            }
        }
    }

    /// One pass of the watcher: ends the calls whose host is down or restarted. Returns false
    /// (the watcher stops) when no call waits.
    @discardableResult
    func checkWaitingCalls() -> Bool {
        let t = now()
        let ended = view.withLock { v -> [(AgentCallWatch.Waiter, restartedTo: String?)]? in
            guard let hosts = watch.hostsOrStop() else { return nil }
            var ended: [(AgentCallWatch.Waiter, restartedTo: String?)] = []
            for host in hosts {
                if v.liveness(of: host, now: t) == .down {
                    ended += watch.takeOut(host) { _ in true }.map { ($0, nil) }
                } else if let current = v.agents[host]?.report.instanceID {
                    ended += watch.takeOut(host) { $0.instance.map { $0 != current } ?? false }.map { ($0, current) }
                }
            }
            return ended
        }
        guard let ended else { return false }
        for (w, newRun) in ended { endCall(w, restartedTo: newRun, at: t) }
        return true
    }

    /// Ends a waiting call: its host went down (`restartedTo` nil) or runs another instance.
    func endCall(_ w: AgentCallWatch.Waiter, restartedTo newRun: String?, at t: ContinuousClock.Instant) {
        if let newRun, let old = w.instance {
            w.end(restarted(w.host, method: w.method, from: old, to: newRun, sentAt: w.sentAt, at: t))
        } else {
            w.end(wentDown(w.host, method: w.method, sentAt: w.sentAt, timeout: w.timeout, at: t))
        }
    }
}
