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

/// What the I/O thread runs between polls: a job for the core, or a slice of a Swift task
/// that prefers the connection's executor (`ConnectionExecutor`).
enum Work: Sendable {
    case job(Job)
    case task(UnownedJob)
}

/// The only door into the I/O thread: a locked queue plus an eventfd the thread
/// polls next to the socket, so a posted job wakes it at once.
///
/// Wake-ups are batched: only the first post after the thread last looked writes the
/// eventfd (a burst of posts from 16 callers costs one wake-up), and posts made on the I/O
/// thread itself write nothing (the thread looks at the queue before it polls).
final class Mailbox: Sendable {
    private struct State {
        var work: [Work] = []
        var closing = false
    }

    private let state = Mutex(State())
    /// Set by the first post after the I/O thread's last `drainWakeups`.
    private let wakePending = Atomic<Bool>(false)
    /// The I/O thread's id, once it runs (0 before).
    private let ioThread = Atomic<UInt>(0)
    let eventFD: Int32

    init() {
        eventFD = aos_eventfd(0, Int32(EFD_NONBLOCK | EFD_CLOEXEC))
        precondition(eventFD >= 0, "eventfd failed: errno \(aos_errno())")
    }

    deinit { close(eventFD) }

    /// Called by the I/O thread when it starts.
    func registerIOThread() { ioThread.store(UInt(pthread_self()), ordering: .releasing) }

    /// Called by the I/O thread as it ends (a later thread may get the same id).
    func unregisterIOThread() { ioThread.store(0, ordering: .releasing) }

    /// Whether the caller is the I/O thread.
    var onIOThread: Bool { ioThread.load(ordering: .acquiring) == UInt(pthread_self()) }

    /// False when the connection is closing; the caller then fails the job itself.
    func post(_ job: Job) -> Bool { post(.job(job)) }

    /// False when the connection is closing; the caller then runs the task elsewhere.
    func post(_ work: Work) -> Bool {
        let ok = state.withLock { s -> Bool in
            if s.closing { return false }
            s.work.append(work)
            return true
        }
        if ok && !onIOThread && !wakePending.exchange(true, ordering: .sequentiallyConsistent) { wakeUp() }
        return ok
    }

    func beginClosing() {
        state.withLock { $0.closing = true }
        wakePending.store(true, ordering: .sequentiallyConsistent)
        wakeUp()
    }

    var isClosing: Bool { state.withLock { $0.closing } }

    /// Work is queued (the I/O thread must not block in poll then).
    var hasWork: Bool { state.withLock { !$0.work.isEmpty } }

    func take() -> [Work] {
        var batch: [Work] = []
        take(into: &batch)
        return batch
    }

    /// Swaps the queue with `batch` (emptied first, its storage kept): the I/O thread's loop
    /// passes the same array every turn, so taking work allocates nothing. (Copying the queue
    /// out and then emptying it with `keepingCapacity` allocated a fresh buffer on every take,
    /// the empty ones included: the copy still shared the old one.)
    func take(into batch: inout [Work]) {
        batch.removeAll(keepingCapacity: true)
        state.withLock { swap(&$0.work, &batch) }
    }

    func wakeUp() {
        var one: UInt64 = 1
        _ = write(eventFD, &one, 8)
    }

    /// On the I/O thread, before `take`: reads the eventfd, then lets the next post wake
    /// it again (in this order, a post racing with it is either taken now or wakes the next poll).
    /// Only the post that sets `wakePending` writes the eventfd, and it writes after setting
    /// it: so the read (one system call per loop turn) is skipped when the flag is clear,
    /// unless `signalled` (the last poll saw the eventfd readable: a write that came after a
    /// drain had cleared the flag, which would otherwise keep poll returning at once).
    func drainWakeups(signalled: Bool) {
        guard signalled || wakePending.load(ordering: .sequentiallyConsistent) else { return }
        var v: UInt64 = 0
        _ = read(eventFD, &v, 8)
        wakePending.store(false, ordering: .sequentiallyConsistent)
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
