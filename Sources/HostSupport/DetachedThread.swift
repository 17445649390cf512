#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
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
        let rc = pthread_create(
            &tid, nil,
            { arg in
                let b = Unmanaged<Body>.fromOpaque(arg!).takeRetainedValue()
                nameCurrentThread(b.name)
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

/// Names the calling thread through /proc/thread-self/comm (what pthread_setname_np does
/// on Linux; Glibc's Swift module does not export it). The kernel keeps 15 bytes.
private func nameCurrentThread(_ name: String) {
    let fd = open("/proc/thread-self/comm", O_WRONLY | O_CLOEXEC)
    guard fd >= 0 else { return }
    defer { close(fd) }
    let bytes = Array(name.utf8.prefix(15))
    _ = bytes.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
}
