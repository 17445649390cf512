import Synchronization

// The agent's two async locks: a FIFO counting semaphore and one FIFO mutex per key.
// Both hand a released slot straight to the next waiter (no barging), and both offer a
// wait that ends on task cancellation: the cancelled waiter leaves the queue at once and
// holds nothing afterwards (no leaked permit, no lock left held by nobody).

/// A FIFO queue of parked tasks, each identified by a ticket so that a cancelled one can
/// leave from the middle. Resumed with `true` when granted, `false` when cancelled.
struct WaitQueue: Sendable {
    private var order: [UInt64] = []
    private var head = 0
    private var parked: [UInt64: CheckedContinuation<Bool, Never>] = [:]

    var count: Int { parked.count }
    var isEmpty: Bool { parked.isEmpty }

    mutating func append(_ ticket: UInt64, _ cont: CheckedContinuation<Bool, Never>) {
        order.append(ticket)
        parked[ticket] = cont
    }

    /// Removes a cancelled waiter; nil when it was already granted (or never parked).
    mutating func remove(_ ticket: UInt64) -> CheckedContinuation<Bool, Never>? {
        let c = parked.removeValue(forKey: ticket)
        if parked.isEmpty { order.removeAll(keepingCapacity: true); head = 0 }
        return c
    }

    /// The longest-waiting task still parked, taken off the queue.
    mutating func popFirst() -> CheckedContinuation<Bool, Never>? {
        while head < order.count {
            let ticket = order[head]
            head += 1
            if let c = parked.removeValue(forKey: ticket) {
                compact()
                return c
            }
        }
        compact()
        return nil
    }

    private mutating func compact() {
        if head == order.count {
            order.removeAll(keepingCapacity: true)
            head = 0
        } else if head > 64 && head * 2 > order.count {
            order.removeFirst(head)
            head = 0
        }
    }
}

/// Parks the current task in a queue guarded by `mutex` unless `grantNow` succeeds; returns
/// true when granted, false when cancelled (only if `cancellable`). Shared by both locks.
func parkUnlessGranted<State: ~Copyable>(
    _ mutex: borrowing Mutex<State>, cancellable: Bool,
    grantNow: (inout State) -> Bool,
    enqueue: (inout State, UInt64, CheckedContinuation<Bool, Never>) -> Void,
    remove: @Sendable (UInt64) -> CheckedContinuation<Bool, Never>?
) async -> Bool {
    let ticket = Tickets.next()
    return await withTaskCancellationHandler {
        await withCheckedContinuation { (cont: CheckedContinuation<Bool, Never>) in
            let outcome: Bool? = mutex.withLock { s in
                if grantNow(&s) { return true }
                if cancellable && Task.isCancelled { return false }
                enqueue(&s, ticket, cont)
                return nil
            }
            if let outcome { cont.resume(returning: outcome) }
        }
    } onCancel: {
        guard cancellable else { return }
        remove(ticket)?.resume(returning: false)
    }
}

enum Tickets {
    private static let counter = Atomic<UInt64>(0)
    static func next() -> UInt64 { counter.add(1, ordering: .relaxed).newValue }
}

/// A counting semaphore for async code, FIFO: bounds the LVM commands the agent runs at once
/// (`[agent] max_concurrent_lvm`). Waiters are resumed in arrival order.
public final class AsyncSemaphore: Sendable {
    private struct State {
        var available: Int
        var waiters = WaitQueue()
    }

    private let state: Mutex<State>

    public init(_ count: Int) {
        precondition(count > 0)
        state = Mutex(State(available: count))
    }

    /// Waits for a slot, however long; cancellation does not end the wait.
    public func acquire() async {
        _ = await wait(cancellable: false)
    }

    /// Waits for a slot, or throws `CancellationError` (holding no slot) once the task is cancelled.
    public func acquireUnlessCancelled() async throws(CancellationError) {
        guard await wait(cancellable: true) else { throw CancellationError() }
    }

    private func wait(cancellable: Bool) async -> Bool {
        await parkUnlessGranted(
            state, cancellable: cancellable,
            grantNow: { s in
                guard s.available > 0 else { return false }
                s.available -= 1
                return true
            },
            enqueue: { s, ticket, cont in
                s.waiters.append(ticket, cont)
            },
            remove: { ticket in
                self.state.withLock { $0.waiters.remove(ticket) }
            })
    }

    public func release() {
        let next = state.withLock { s -> CheckedContinuation<Bool, Never>? in
            if let c = s.waiters.popFirst() { return c }  // the slot passes straight to the waiter
            s.available += 1
            return nil
        }
        next?.resume(returning: true)
    }

    /// Requests waiting for a slot (for health/diagnostics).
    public var waiting: Int { state.withLock { $0.waiters.count } }

    /// Slots free now (for tests).
    public var available: Int { state.withLock { $0.available } }
}

/// One async mutex per key (`vg/lv`): operations on one LV run one at a time, in arrival
/// order; different LVs do not wait for each other. Keys without holders take no memory.
public final class KeyedAsyncLock: Sendable {
    /// A key is in the table while held; its queue holds the tasks waiting for it.
    private let entries = Mutex<[String: WaitQueue]>([:])

    public init() {}

    /// Waits for `key`, however long; cancellation does not end the wait.
    public func lock(_ key: String) async {
        _ = await wait(key, cancellable: false)
    }

    /// Waits for `key`, or throws `CancellationError` (not holding it) once the task is cancelled.
    public func lockUnlessCancelled(_ key: String) async throws(CancellationError) {
        guard await wait(key, cancellable: true) else { throw CancellationError() }
    }

    private func wait(_ key: String, cancellable: Bool) async -> Bool {
        await parkUnlessGranted(
            entries, cancellable: cancellable,
            grantNow: { e in
                guard e[key] == nil else { return false }
                e[key] = WaitQueue()
                return true
            },
            enqueue: { e, ticket, cont in
                e[key]?.append(ticket, cont)
            },
            remove: { ticket in
                self.entries.withLock { $0[key]?.remove(ticket) }
            })
    }

    public func unlock(_ key: String) {
        let next = entries.withLock { e -> CheckedContinuation<Bool, Never>? in
            guard var queue = e[key] else { return nil }
            guard let c = queue.popFirst() else {
                e[key] = nil
                return nil
            }
            e[key] = queue
            return c  // ownership passes to the next waiter
        }
        next?.resume(returning: true)
    }

    /// Keys currently held (for tests).
    public var heldKeys: Int { entries.withLock { $0.count } }

    /// Tasks waiting for `key` (for tests).
    public func waiting(for key: String) -> Int { entries.withLock { $0[key]?.count ?? 0 } }
}
