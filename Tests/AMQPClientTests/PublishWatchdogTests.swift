import Testing

@testable import AMQPClient

#if canImport(Glibc)
import Glibc
#endif

/// The watchdog that cuts off a publish stuck on the wire (librabbitmq #780).
@Suite struct PublishWatchdogTests {
    private func socketPair() -> (Int32, Int32) {
        var fds: [Int32] = [-1, -1]
        let rc = socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0, &fds)
        precondition(rc == 0, "socketpair failed")
        return (fds[0], fds[1])
    }

    /// An armed publish past its deadline gets its socket shut down, also when the watchdog
    /// is awake from earlier publishes (it is not woken per publish any more).
    @Test func shutsDownASocketPastItsDeadline() {
        let dog = PublishWatchdog(tick: .milliseconds(20))
        let (busy, busyPeer) = socketPair()
        defer { close(busy); close(busyPeer) }
        // Keep the thread awake: publishes that finish in time.
        for _ in 0..<100 { dog.disarm(dog.arm(fd: busy, timeout: .seconds(60))) }
        let (stuck, peer) = socketPair()
        defer { close(stuck); close(peer) }
        let token = dog.arm(fd: stuck, timeout: .milliseconds(50))
        // Blocks until the watchdog shuts `stuck` down: then the peer reads end of file.
        var byte: UInt8 = 0
        let n = read(peer, &byte, 1)
        #expect(n == 0)
        dog.disarm(token)
        // The socket of the publishes that finished in time was left alone.
        var one: UInt8 = 1
        #expect(write(busy, &one, 1) == 1)
    }

    /// A publish disarmed in time is never shut down.
    @Test func leavesADisarmedSocketAlone() {
        let dog = PublishWatchdog(tick: .milliseconds(10))
        let (a, b) = socketPair()
        defer { close(a); close(b) }
        dog.disarm(dog.arm(fd: a, timeout: .milliseconds(1)))
        // A second, later deadline on another socket: once it fires, the first one's would have too.
        let (c, d) = socketPair()
        defer { close(c); close(d) }
        _ = dog.arm(fd: c, timeout: .milliseconds(30))
        var byte: UInt8 = 0
        #expect(read(d, &byte, 1) == 0)
        var one: UInt8 = 1
        #expect(write(a, &one, 1) == 1)
        #expect(read(b, &byte, 1) == 1)
    }
}
