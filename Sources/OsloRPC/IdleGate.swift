import Synchronization

/// Counts pieces of work in progress and lets callers wait until none is left (shutdown,
/// tests). Shared by the server's work slots and its reply retries.
final class IdleGate: Sendable {
    private struct State {
        var busy = 0
        var waiters: [CheckedContinuation<Void, Never>] = []
    }

    private let state = Mutex(State())

    /// Pieces of work in progress.
    var count: Int { state.withLock { $0.busy } }

    /// Starts one piece of work, unless `limit` are already in progress (false then).
    func enter(limit: Int = .max) -> Bool {
        state.withLock { s in
            guard s.busy < limit else { return false }
            s.busy += 1
            return true
        }
    }

    /// Ends one piece of work; when it was the last, runs `onIdle`, then wakes the waiters.
    func leave(onIdle: () -> Void = {}) {
        let waiters = state.withLock { s -> [CheckedContinuation<Void, Never>]? in
            s.busy -= 1
            guard s.busy == 0 else { return nil }
            defer { s.waiters = [] }
            return s.waiters
        }
        guard let waiters else { return }
        onIdle()
        for w in waiters { w.resume() }
    }

    /// Returns once no work is in progress.
    func waitUntilIdle() async {
        await withCheckedContinuation { cont in
            let idle = state.withLock { s -> Bool in
                if s.busy == 0 { return true }
                s.waiters.append(cont)
                return false
            }
            if idle { cont.resume() }
        }
    }
}
