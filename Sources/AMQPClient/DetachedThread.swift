import CRabbitMQ
#if canImport(Glibc)
import Glibc
#endif

/// A named, detached OS thread for a loop that blocks in the kernel (poll, a C library
/// call): the Swift concurrency pool must never be parked on such calls. Used for the AMQP
/// I/O loop, the publish watchdog and the agent's kill-command listener.
public enum DetachedThread {
    private final class Body: Sendable {
        let name: String
        let run: @Sendable () -> Void
        init(_ name: String, _ run: @escaping @Sendable () -> Void) { self.name = name; self.run = run }
    }

    /// Starts `body` on a new thread named `name` (at most 15 bytes show in ps/top).
    /// Returns false when the thread could not be created (errno-style code in the log of the caller).
    @discardableResult
    public static func start(name: String, _ body: @escaping @Sendable () -> Void) -> Bool {
        let box = Unmanaged.passRetained(Body(name, body))
        var tid = pthread_t()
        let rc = pthread_create(&tid, nil, { arg in
            let b = Unmanaged<Body>.fromOpaque(arg!).takeRetainedValue()
            _ = b.name.withCString { aos_set_thread_name($0) }
            b.run()
            return nil
        }, box.toOpaque())
        guard rc == 0 else {
            box.release()
            return false
        }
        pthread_detach(tid)
        return true
    }
}
