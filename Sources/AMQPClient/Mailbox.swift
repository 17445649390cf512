import CRabbitMQ
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// Work handed to the connection's I/O thread. `run` executes on that thread with
/// the confined core; `fail` is called instead if the connection is closed first.
struct Job: Sendable {
    let run: @Sendable (ConnectionCore) -> Void
    let fail: @Sendable (AMQPError) -> Void
}

/// The only door into the I/O thread: a locked queue plus an eventfd the thread
/// polls next to the socket, so a posted job wakes it at once.
final class Mailbox: Sendable {
    private struct State {
        var jobs: [Job] = []
        var closing = false
    }

    private let state = Mutex(State())
    let eventFD: Int32

    init() {
        eventFD = aos_eventfd(0, Int32(EFD_NONBLOCK | EFD_CLOEXEC))
        precondition(eventFD >= 0, "eventfd failed: errno \(aos_errno())")
    }

    deinit { close(eventFD) }

    /// False when the connection is closing; the caller then fails the job itself.
    func post(_ job: Job) -> Bool {
        let ok = state.withLock { s -> Bool in
            if s.closing { return false }
            s.jobs.append(job)
            return true
        }
        if ok { wakeUp() }
        return ok
    }

    func beginClosing() {
        state.withLock { $0.closing = true }
        wakeUp()
    }

    var isClosing: Bool { state.withLock { $0.closing } }

    func take() -> [Job] {
        state.withLock { s in
            let j = s.jobs
            s.jobs.removeAll(keepingCapacity: true)
            return j
        }
    }

    func wakeUp() {
        var one: UInt64 = 1
        _ = write(eventFD, &one, 8)
    }

    func drainWakeups() {
        var v: UInt64 = 0
        _ = read(eventFD, &v, 8)
    }
}

/// Connection state readable from any thread (written only by the I/O thread).
final class StatusBox: Sendable {
    private let value = Mutex(ConnectionState.connecting)
    /// Bumped whenever a connection is torn down: delivery tags are only valid on the
    /// connection that delivered them.
    let generation = Atomic<UInt64>(1)
    private let observer: (@Sendable (ConnectionState) -> Void)?

    init(observer: (@Sendable (ConnectionState) -> Void)?) { self.observer = observer }

    var current: ConnectionState { value.withLock { $0 } }

    func set(_ s: ConnectionState) {
        let changed = value.withLock { v -> Bool in
            if v == s { return false }
            v = s
            return true
        }
        if changed { observer?(s) }
    }
}
