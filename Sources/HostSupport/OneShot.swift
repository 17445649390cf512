import Synchronization

/// A value set once and awaited by any number of tasks: the first `fulfil` wins, later
/// ones are dropped (a late child reap after its watchdog fired, a reply after a timeout).
///
/// `value()` waits whatever happens to the waiting task (for callers that must see the
/// outcome of work they started); `valueUnlessCancelled()` gives up when its task is
/// cancelled, and a cancelled waiter leaves the waiter list at once.
public final class OneShot<Value: Sendable>: Sendable {
    private struct State {
        var value: Value?
        var waiters: [UInt64: CheckedContinuation<Value?, Never>] = [:]
        var nextID: UInt64 = 0
    }

    private let state = Mutex(State())

    public init() {}

    /// Sets the value and wakes every waiter. Returns false if a value was set before.
    @discardableResult
    public func fulfil(_ value: Value) -> Bool {
        let waiters: [CheckedContinuation<Value?, Never>]? = state.withLock { s in
            guard s.value == nil else { return nil }
            s.value = value
            defer { s.waiters = [:] }
            return Array(s.waiters.values)
        }
        guard let waiters else { return false }
        for w in waiters { w.resume(returning: value) }
        return true
    }

    /// The value, if set.
    public var current: Value? { state.withLock { $0.value } }

    /// Waits for the value; cancellation of the waiting task does not end the wait.
    public func value() async -> Value {
        // The continuation is only ever resumed with a value when cancellable is false.
        while true {
            if let v = await wait(cancellable: false) { return v }
        }
    }

    /// Waits for the value, or throws `CancellationError` as soon as the task is cancelled.
    public func valueUnlessCancelled() async throws(CancellationError) -> Value {
        guard let v = await wait(cancellable: true) else { throw CancellationError() }
        return v
    }

    /// Waiters currently parked (for tests and diagnostics).
    public var waiting: Int { state.withLock { $0.waiters.count } }

    private func wait(cancellable: Bool) async -> Value? {
        let id = state.withLock { s -> UInt64 in
            s.nextID &+= 1
            return s.nextID
        }
        return await withTaskCancellationHandler {
            await withCheckedContinuation { (cont: CheckedContinuation<Value?, Never>) in
                let ready: (Value?, Bool) = state.withLock { s in
                    if let v = s.value { return (v, true) }
                    if cancellable && Task.isCancelled { return (nil, true) }
                    s.waiters[id] = cont
                    return (nil, false)
                }
                if ready.1 { cont.resume(returning: ready.0) }
            }
        } onCancel: {
            guard cancellable else { return }
            let cont = state.withLock { $0.waiters.removeValue(forKey: id) }
            cont?.resume(returning: nil)
        }
    }
}
