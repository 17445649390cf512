import CRabbitMQ
import Dispatch
import HostSupport
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// librabbitmq 0.11 can block forever inside amqp_basic_publish when the broker
/// stops reading (upstream #780). While a publish is on the wire this watchdog
/// holds its deadline; if it passes, it shuts the socket down so the write fails
/// and the I/O thread rebuilds the connection. One thread per process, parked on
/// a semaphore whenever nothing is armed, so an idle process stays idle.
///
/// Arming does not wake the thread while it is awake: it looks every `tick` and parks only
/// after a tick in which nothing was armed. A process that publishes steadily therefore
/// costs the thread one wake-up per tick instead of one per publish (a semaphore signal and
/// a thread wake-up on the publish path: measured in docs/performance.md), and a publish
/// stuck on the wire is cut off within its timeout plus one tick.
final class PublishWatchdog: Sendable {
    static let shared = PublishWatchdog()

    private struct Armed {
        var fd: Int32
        var deadline: ContinuousClock.Instant
    }

    private struct State {
        var nextToken: UInt64 = 1
        var armed: [UInt64: Armed] = [:]
        var threadStarted = false
        var parked = false
        /// Something was armed since the thread last looked.
        var armedSinceTick = false
    }

    private let state = Mutex(State())
    private let wake = DispatchSemaphore(value: 0)
    private let tick: Duration

    init(tick: Duration = .milliseconds(200)) { self.tick = tick }

    /// Returns a token to pass to `disarm`. Cheap: a lock and a dictionary insert (and a
    /// semaphore signal only when the thread is parked).
    func arm(fd: Int32, timeout: Duration) -> UInt64 {
        let (token, start, signal) = state.withLock { s -> (UInt64, Bool, Bool) in
            let t = s.nextToken
            s.nextToken += 1
            s.armed[t] = Armed(fd: fd, deadline: .now + timeout)
            s.armedSinceTick = true
            let start = !s.threadStarted
            s.threadStarted = true
            let signal = s.parked
            s.parked = false
            return (t, start, signal)
        }
        if start { startThread() }
        if signal { wake.signal() }
        return token
    }

    /// Once this returns, the watchdog will not touch the fd: shutdown happens under
    /// the same lock, so the caller may close the socket safely afterwards.
    func disarm(_ token: UInt64) {
        _ = state.withLock { $0.armed.removeValue(forKey: token) }
    }

    /// Whether the thread is parked (tests).
    var isParked: Bool { state.withLock { $0.parked } }

    private func startThread() {
        DetachedThread.start(name: "amqp-watchdog") { self.loop() }
    }

    private func loop() {
        let tickMicros = useconds_t(clamping: max(1, tick.components.seconds * 1_000_000 + tick.components.attoseconds / 1_000_000_000_000))
        while true {
            let now = ContinuousClock.now
            let park = state.withLock { s -> Bool in
                for (t, a) in s.armed where a.deadline <= now {
                    _ = shutdown(a.fd, Int32(SHUT_RDWR))
                    s.armed.removeValue(forKey: t)
                }
                if s.armed.isEmpty && !s.armedSinceTick { s.parked = true }
                s.armedSinceTick = false
                return s.parked
            }
            if park { wake.wait() } else { usleep(tickMicros) }
        }
    }
}
