/// Runs Swift tasks on a connection's I/O thread, between its polls, next to the
/// librabbitmq handle (which stays confined to that thread: tasks reach it only through
/// the connection's public API, as from any other thread).
///
/// A task that prefers it (`Task(executorPreference: connection.executor)`,
/// `withTaskExecutorPreference`) runs its non-isolated code on the I/O thread: a publish it
/// makes is queued without waking another thread, and a reply or confirm that resumes it
/// resumes it on that thread, so a round trip crosses no thread boundary in the process.
/// Only for short, non-blocking work: while such a task runs, the connection reads nothing,
/// sends no heartbeat and serves no other caller. Once the connection is closed, its tasks
/// run on the global concurrent executor.
public final class ConnectionExecutor: TaskExecutor {
    private let mailbox: Mailbox

    init(mailbox: Mailbox) { self.mailbox = mailbox }

    public func enqueue(_ job: consuming ExecutorJob) {
        let unowned = UnownedJob(job)
        if !mailbox.post(.task(unowned)) { Self.runElsewhere(unowned) }
    }

    /// Whether the caller runs on this connection's I/O thread.
    public var isCurrent: Bool { mailbox.onIOThread }

    /// For tasks left when the I/O thread has stopped.
    static func runElsewhere(_ job: UnownedJob) {
        globalConcurrentExecutor.enqueue(ExecutorJob(job))
    }
}
