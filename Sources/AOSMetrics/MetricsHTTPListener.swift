import HostSupport
import Synchronization

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// A minimal HTTP/1.x listener for Prometheus scrapes: `GET /metrics` (and `HEAD`), nothing else.
///
/// Bounded on purpose, since anyone who can reach the port can talk to it: one thread, one
/// connection at a time (a listen backlog of 16 waits in the kernel), a request head of at most
/// `maxRequestBytes` (a larger one gets 431), and `timeout` for a whole connection from accept to
/// the last byte written (a slow or silent client is dropped, a slow reader too). Every
/// response closes the connection. No body is read; no header is interpreted.
public final class MetricsHTTPListener: Sendable {
    public struct Limits: Sendable {
        public var maxRequestBytes = 8192
        public var timeout: Duration = .seconds(5)
        public var backlog: Int32 = 16
        public init() {}
    }

    public struct Failure: Error, Sendable, CustomStringConvertible {
        public var message: String
        public var description: String { message }
    }

    /// The bound port (useful with port 0 in tests).
    public let port: UInt16
    private let listenFD: Int32
    /// A pipe: `stop()` writes to `wakeWriteFD`, the serving thread polls `wakeFD`.
    private let wakeFD: Int32
    private let wakeWriteFD: Int32
    private let limits: Limits
    private let render: @Sendable () -> [UInt8]
    private let stopped = Atomic<Bool>(false)
    /// Set when the serving thread runs: it closes the listening socket; otherwise deinit does.
    private let serving = Atomic<Bool>(false)
    /// Connections served, for tests and the debug log.
    private let served = Atomic<Int>(0)

    /// Binds and listens on a numeric `host` (IPv4 or IPv6, e.g. "127.0.0.1", "::1") and `port`
    /// (0: any free port); `start()` serves.
    public init(
        host: String, port: UInt16, ipv6: Bool, limits: Limits = Limits(), render: @escaping @Sendable () -> [UInt8]
    ) throws(Failure) {
        self.limits = limits
        self.render = render
        let fd = socket(ipv6 ? AF_INET6 : AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw Failure(message: "socket: \(DurableFile.errorText(errno))") }
        var one: Int32 = 1
        _ = setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        func fail(_ what: String) -> Failure {
            let e = errno
            close(fd)
            return Failure(message: "\(what) \(ipv6 ? "[\(host)]" : host):\(port): \(DurableFile.errorText(e))")
        }
        var rc: Int32
        if ipv6 {
            var a = sockaddr_in6()
            a.sin6_family = sa_family_t(AF_INET6)
            a.sin6_port = port.bigEndian
            guard inet_pton(AF_INET6, host, &a.sin6_addr) == 1 else {
                close(fd)
                throw Failure(message: "not a numeric IPv6 address: \(host)")
            }
            rc = withUnsafePointer(to: &a) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in6>.size)) }
            }
        } else {
            var a = sockaddr_in()
            a.sin_family = sa_family_t(AF_INET)
            a.sin_port = port.bigEndian
            guard inet_pton(AF_INET, host, &a.sin_addr) == 1 else {
                close(fd)
                throw Failure(message: "not a numeric IPv4 address: \(host)")
            }
            rc = withUnsafePointer(to: &a) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
            }
        }
        guard rc == 0 else { throw fail("cannot bind") }
        guard listen(fd, limits.backlog) == 0 else { throw fail("cannot listen on") }
        var bound = sockaddr_storage()
        var len = socklen_t(MemoryLayout<sockaddr_storage>.size)
        _ = withUnsafeMutablePointer(to: &bound) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &len) }
        }
        self.port = withUnsafePointer(to: &bound) { p in
            ipv6
                ? p.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) { UInt16(bigEndian: $0.pointee.sin6_port) }
                : p.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { UInt16(bigEndian: $0.pointee.sin_port) }
        }
        var wake: [Int32] = [-1, -1]
        guard pipe(&wake) == 0 else { throw fail("pipe for") }
        for w in wake { _ = fcntl(w, F_SETFD, FD_CLOEXEC) }
        listenFD = fd
        wakeFD = wake[0]
        wakeWriteFD = wake[1]
    }

    deinit {
        if !serving.load(ordering: .acquiring) { close(listenFD) }
        close(wakeFD)
        close(wakeWriteFD)
    }

    /// Serves on a thread of its own until `stop()`. False when the thread could not start.
    @discardableResult
    public func start() -> Bool {
        DetachedThread.start(name: "aos-metrics") { [self] in self.serve() }
    }

    /// Stops accepting (a connection being served finishes within `timeout`) and closes the socket.
    public func stop() {
        guard !stopped.exchange(true, ordering: .acquiringAndReleasing) else { return }
        var one: UInt8 = 1
        _ = write(wakeWriteFD, &one, 1)
    }

    public var connectionsServed: Int { served.load(ordering: .acquiring) }

    private func serve() {
        // The port is released as soon as serving ends; the pipe lives as long as the object
        // (`stop()` may still write to it).
        serving.store(true, ordering: .releasing)
        defer { close(listenFD) }
        while !stopped.load(ordering: .acquiring) {
            var fds = [
                pollfd(fd: listenFD, events: Int16(POLLIN), revents: 0), pollfd(fd: wakeFD, events: Int16(POLLIN), revents: 0),
            ]
            let n = poll(&fds, 2, -1)
            if n < 0 {
                if errno == EINTR { continue }
                return
            }
            if fds[1].revents != 0 { return }
            guard fds[0].revents & Int16(POLLIN) != 0 else { continue }
            let conn = accept(listenFD, nil, nil)
            guard conn >= 0 else {
                // Out of descriptors or memory: the pending connection stays readable, so pause
                // (or stop) instead of spinning; EAGAIN, EINTR, ECONNABORTED: poll again.
                if errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM {
                    var w = pollfd(fd: wakeFD, events: Int16(POLLIN), revents: 0)
                    _ = poll(&w, 1, 100)
                }
                continue
            }
            _ = fcntl(conn, F_SETFD, FD_CLOEXEC)
            _ = fcntl(conn, F_SETFL, fcntl(conn, F_GETFL) | O_NONBLOCK)
            handle(conn)
            close(conn)
            served.add(1, ordering: .releasing)
        }
    }

    /// One connection: read the request head within the deadline, answer, close.
    private func handle(_ fd: Int32) {
        let deadline = ContinuousClock.now + limits.timeout
        var head: [UInt8] = []
        head.reserveCapacity(1024)
        var chunk = [UInt8](repeating: 0, count: 2048)
        while HTTPRequestHead.end(of: head) == nil {
            if head.count > limits.maxRequestBytes {
                send(fd, Self.response(status: "431 Request Header Fields Too Large", body: "request too large\n"), deadline)
                // Read what the client still sends (bounded, until the deadline): closing with
                // unread bytes would reset the connection before the client reads the answer.
                drain(fd, deadline)
                return
            }
            guard wait(fd, for: Int16(POLLIN), until: deadline) else { return }  // too slow: drop it
            let got = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if got < 0 {
                if errno == EINTR || errno == EAGAIN { continue }
                return
            }
            if got == 0 { return }  // closed before a whole head
            head.append(contentsOf: chunk[0..<got])
        }
        switch HTTPRequestHead.classify(head) {
        case .metrics(let withBody):
            let body = render()
            var r = Array(
                "HTTP/1.1 200 OK\r\nContent-Type: \(MetricsSource.contentType)\r\nContent-Length: \(body.count)\r\nConnection: close\r\n\r\n"
                    .utf8)
            if withBody { r += body }
            send(fd, r, deadline)
        case .notFound:
            send(fd, Self.response(status: "404 Not Found", body: "only /metrics is served here\n"), deadline)
        case .methodNotAllowed:
            send(fd, Self.response(status: "405 Method Not Allowed", body: "only GET\n", extra: "Allow: GET, HEAD\r\n"), deadline)
        case .badRequest:
            send(fd, Self.response(status: "400 Bad Request", body: "bad request\n"), deadline)
        }
    }

    static func response(status: String, body: String, extra: String = "") -> [UInt8] {
        Array(
            "HTTP/1.1 \(status)\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: \(body.utf8.count)\r\n\(extra)Connection: close\r\n\r\n\(body)"
                .utf8)
    }

    /// Writes all of `bytes` before the deadline, or gives up.
    private func send(_ fd: Int32, _ bytes: [UInt8], _ deadline: ContinuousClock.Instant) {
        var offset = 0
        while offset < bytes.count {
            guard wait(fd, for: Int16(POLLOUT), until: deadline) else { return }
            let n = bytes.withUnsafeBytes { Glibc.send(fd, $0.baseAddress! + offset, $0.count - offset, Int32(MSG_NOSIGNAL)) }
            if n < 0 {
                if errno == EINTR || errno == EAGAIN { continue }
                return
            }
            offset += n
        }
        _ = shutdown(fd, Int32(SHUT_WR))
    }

    private func drain(_ fd: Int32, _ deadline: ContinuousClock.Instant) {
        var left = 1 << 20
        var buf = [UInt8](repeating: 0, count: 4096)
        while left > 0, wait(fd, for: Int16(POLLIN), until: deadline) {
            let n = buf.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if n < 0, errno == EINTR || errno == EAGAIN { continue }
            if n <= 0 { return }
            left -= n
        }
    }

    /// Polls `fd` for `events` until `deadline` or `stop()`; false when it did not become ready.
    private func wait(_ fd: Int32, for events: Int16, until deadline: ContinuousClock.Instant) -> Bool {
        while true {
            let left = deadline - ContinuousClock.now
            guard left > .zero, !stopped.load(ordering: .acquiring) else { return false }
            let ms = Int32(clamping: max(1, left.components.seconds * 1000 + left.components.attoseconds / 1_000_000_000_000_000))
            var fds = [pollfd(fd: fd, events: events, revents: 0), pollfd(fd: wakeFD, events: Int16(POLLIN), revents: 0)]
            let n = poll(&fds, 2, ms)
            if n < 0 {
                if errno == EINTR { continue }
                return false
            }
            if n == 0 { continue }  // the loop checks the deadline again
            if fds[1].revents != 0 { return false }
            return fds[0].revents & (events | Int16(POLLERR) | Int16(POLLHUP)) != 0
        }
    }
}

/// What a request head asks for; pure, for the tests.
enum HTTPRequestHead: Equatable {
    case metrics(withBody: Bool)
    case notFound
    case methodNotAllowed
    case badRequest

    /// The index just past the blank line ending the head, if it has arrived.
    static func end(of bytes: [UInt8]) -> Int? {
        guard bytes.count >= 4 else { return nil }
        for i in 3..<bytes.count where bytes[i] == 10 {
            if bytes[i - 1] == 13, bytes[i - 2] == 10, bytes[i - 3] == 13 { return i + 1 }
        }
        // Bare LF line ends (tolerated by most servers).
        for i in 1..<bytes.count where bytes[i] == 10 && bytes[i - 1] == 10 { return i + 1 }
        return nil
    }

    static func classify(_ head: [UInt8]) -> HTTPRequestHead {
        let lineEnd = head.firstIndex(of: 10) ?? head.count
        var line = head[0..<lineEnd]
        if line.last == 13 { line = line.dropLast() }
        // Printable ASCII only: anything else is not HTTP.
        guard !line.isEmpty, line.allSatisfy({ $0 >= 0x20 && $0 < 0x7f }) else { return .badRequest }
        let parts = line.split(separator: 0x20, omittingEmptySubsequences: false)
        guard parts.count == 3 else { return .badRequest }
        let method = String(decoding: parts[0], as: UTF8.self)
        let target = String(decoding: parts[1], as: UTF8.self)
        let version = String(decoding: parts[2], as: UTF8.self)
        guard version == "HTTP/1.1" || version == "HTTP/1.0", !method.isEmpty, target.hasPrefix("/") else { return .badRequest }
        guard method.allSatisfy({ $0.isUppercase }) else { return .badRequest }
        let path = target.split(separator: "?", maxSplits: 1, omittingEmptySubsequences: false).first.map(String.init) ?? ""
        guard path == "/metrics" else { return .notFound }
        switch method {
        case "GET": return .metrics(withBody: true)
        case "HEAD": return .metrics(withBody: false)
        default: return .methodNotAllowed
        }
    }
}
