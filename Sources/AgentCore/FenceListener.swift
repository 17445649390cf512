import AMQPClient
import HostSupport
import Synchronization

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// The running agent's end of `FenceNotification`: a datagram socket in the state directory
/// whose messages (`lockspace_lost VG`) it turns into an AsyncStream of VG names.
///
/// One thread blocks in poll() on the socket and a wake-up pipe, so the agent wakes only
/// when the kill command speaks (no polling; the idle agent stays at zero CPU).
public final class FenceListener: Sendable {
    public let path: String
    public let notifications: AsyncStream<String>
    private let continuation: AsyncStream<String>.Continuation
    private let socketFD: Int32
    private let wakeRead: Int32
    private let wakeWrite: Int32
    private let closed = Mutex(false)

    public struct Failure: Error, CustomStringConvertible {
        public var description: String
    }

    public init(stateDirectory: String) throws(Failure) {
        path = FenceNotification.socketPath(stateDirectory: stateDirectory)
        guard var addr = FenceNotification.unixAddress(path) else {
            throw Failure(description: "socket path \(path) is too long for a unix socket")
        }
        let fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw Failure(description: "socket(): \(String(cString: strerror(errno)))") }
        unlink(path)  // a socket left by a previous run
        let bound = withUnsafePointer(to: &addr) { p in
            p.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        guard bound == 0 else {
            let e = String(cString: strerror(errno))
            closeFD(fd)
            throw Failure(description: "bind \(path): \(e)")
        }
        chmod(path, 0o600)  // only root (the kill command runs as root) may talk to us
        var pipeFDs: [Int32] = [0, 0]
        guard pipe(&pipeFDs) == 0 else {
            closeFD(fd)
            throw Failure(description: "pipe(): \(String(cString: strerror(errno)))")
        }
        _ = fcntl(pipeFDs[0], F_SETFD, FD_CLOEXEC)
        _ = fcntl(pipeFDs[1], F_SETFD, FD_CLOEXEC)
        socketFD = fd
        wakeRead = pipeFDs[0]
        wakeWrite = pipeFDs[1]
        (notifications, continuation) = AsyncStream.makeStream(of: String.self, bufferingPolicy: .bufferingNewest(64))
        let (sfd, wfd, cont) = (fd, pipeFDs[0], continuation)
        DetachedThread.start(name: "aos-fence-sock") { Self.loop(socketFD: sfd, wakeFD: wfd, continuation: cont) }
    }

    private static func loop(socketFD: Int32, wakeFD: Int32, continuation: AsyncStream<String>.Continuation) {
        var buffer = [UInt8](repeating: 0, count: 512)
        while true {
            var fds = [pollfd(fd: socketFD, events: Int16(POLLIN), revents: 0), pollfd(fd: wakeFD, events: Int16(POLLIN), revents: 0)]
            let n = poll(&fds, 2, -1)
            if n < 0 { if errno == EINTR { continue } else { break } }
            if fds[1].revents != 0 { break }
            if fds[0].revents & Int16(POLLIN) != 0 {
                let got = buffer.withUnsafeMutableBytes { recv(socketFD, $0.baseAddress, $0.count, Int32(MSG_DONTWAIT)) }
                guard got > 0 else { continue }
                let text = String(decoding: buffer[0..<got], as: UTF8.self)
                let parts = text.split(separator: " ", maxSplits: 1)
                if parts.count == 2, parts[0] == "lockspace_lost" { continuation.yield(String(parts[1])) }
            }
        }
        continuation.finish()
        closeFD(socketFD)
        closeFD(wakeFD)
    }

    public func close() {
        let first = closed.withLock { c -> Bool in
            defer { c = true }; return !c
        }
        guard first else { return }
        var b: UInt8 = 1
        _ = write(wakeWrite, &b, 1)
    }

    deinit {
        close()
        // The thread owns nothing but these fds; closing them after its wake-up is safe
        // because poll() already returned on the pipe (or will, on the closed write end).
        closeFD(wakeWrite)
        unlink(path)
    }
}

private func closeFD(_ fd: Int32) { _ = close(fd) }
