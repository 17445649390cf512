import Synchronization

/// A counting semaphore for async code, FIFO: bounds the LVM commands the agent runs at once
/// (`[agent] max_concurrent_lvm`). Waiters are resumed in arrival order.
final class AsyncSemaphore: Sendable {
    private struct State {
        var available: Int
        var waiters: [CheckedContinuation<Void, Never>] = []
        var head = 0
    }

    private let state: Mutex<State>

    init(_ count: Int) {
        precondition(count > 0)
        state = Mutex(State(available: count))
    }

    func acquire() async {
        await withCheckedContinuation { (cont: CheckedContinuation<Void, Never>) in
            let ready = state.withLock { s -> Bool in
                if s.available > 0 {
                    s.available -= 1
                    return true
                }
                s.waiters.append(cont)
                return false
            }
            if ready { cont.resume() }
        }
    }

    func release() {
        let next = state.withLock { s -> CheckedContinuation<Void, Never>? in
            if s.head < s.waiters.count {
                let c = s.waiters[s.head]
                s.head += 1
                if s.head > 64 && s.head * 2 > s.waiters.count {
                    s.waiters.removeFirst(s.head)
                    s.head = 0
                }
                return c  // the slot passes straight to the waiter
            }
            s.available += 1
            return nil
        }
        next?.resume()
    }

    /// Requests waiting for a slot (for health/diagnostics).
    var waiting: Int { state.withLock { $0.waiters.count - $0.head } }
}

/// One async mutex per key (`vg/lv`): operations on one LV run one at a time, in arrival
/// order; different LVs do not wait for each other. Keys without holders take no memory.
final class KeyedAsyncLock: Sendable {
    private struct Entry {
        var waiters: [CheckedContinuation<Void, Never>] = []
    }

    private let entries = Mutex<[String: Entry]>([:])

    func lock(_ key: String) async {
        await withCheckedContinuation { (cont: CheckedContinuation<Void, Never>) in
            let acquired = entries.withLock { e -> Bool in
                if e[key] == nil {
                    e[key] = Entry()
                    return true
                }
                e[key]!.waiters.append(cont)
                return false
            }
            if acquired { cont.resume() }
        }
    }

    func unlock(_ key: String) {
        let next = entries.withLock { e -> CheckedContinuation<Void, Never>? in
            guard var entry = e[key] else { return nil }
            if entry.waiters.isEmpty {
                e[key] = nil
                return nil
            }
            let c = entry.waiters.removeFirst()
            e[key] = entry
            return c  // ownership passes to the next waiter
        }
        next?.resume()
    }

    /// Keys currently held (for tests).
    var heldKeys: Int { entries.withLock { $0.count } }
}
