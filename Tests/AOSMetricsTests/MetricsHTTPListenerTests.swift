import Testing

@testable import AOSMetrics

#if canImport(Glibc)
import Glibc
#endif

/// The /metrics listener against well-formed and hostile clients. Every wait is a blocking
/// read that ends when the server answers or closes; the server's own timeout (short here) is
/// what ends a stalled connection, and the tests only check that it did end, never how fast.
struct MetricsHTTPListenerTests {
    static let body = Array("aos_up 1\n".utf8)

    func listener(timeout: Duration = .milliseconds(300), maxRequestBytes: Int = 1024) throws -> MetricsHTTPListener {
        var limits = MetricsHTTPListener.Limits()
        limits.timeout = timeout
        limits.maxRequestBytes = maxRequestBytes
        let l = try MetricsHTTPListener(host: "127.0.0.1", port: 0, ipv6: false, limits: limits) { Self.body }
        #expect(l.start())
        return l
    }

    /// A blocking client socket connected to the listener; reads give up after 30 s (a hung
    /// server fails the test instead of hanging it).
    func connectClient(_ port: UInt16) -> Int32 {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var a = sockaddr_in()
        a.sin_family = sa_family_t(AF_INET)
        a.sin_port = port.bigEndian
        a.sin_addr.s_addr = inet_addr("127.0.0.1")
        let rc = withUnsafePointer(to: &a) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        #expect(rc == 0)
        var tv = timeval(tv_sec: 30, tv_usec: 0)
        _ = setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        return fd
    }

    func sendAll(_ fd: Int32, _ bytes: [UInt8]) {
        var off = 0
        while off < bytes.count {
            let n = bytes.withUnsafeBytes { send(fd, $0.baseAddress! + off, $0.count - off, Int32(MSG_NOSIGNAL)) }
            if n <= 0 { return }
            off += n
        }
    }

    /// Everything until the server closes (or resets) the connection.
    func readAll(_ fd: Int32) -> (text: String, timedOut: Bool) {
        var out: [UInt8] = []
        var buf = [UInt8](repeating: 0, count: 4096)
        while true {
            let n = recv(fd, &buf, buf.count, 0)
            if n > 0 {
                out += buf[0..<n]
                continue
            }
            let timedOut = n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)
            return (String(decoding: out, as: UTF8.self), timedOut)
        }
    }

    func exchange(_ port: UInt16, _ request: [UInt8], closeWrite: Bool = true) -> String {
        let fd = connectClient(port)
        defer { close(fd) }
        sendAll(fd, request)
        if closeWrite { shutdown(fd, Int32(SHUT_WR)) }
        let r = readAll(fd)
        #expect(!r.timedOut)
        return r.text
    }

    @Test func getMetricsAnswersWithTheTextFormat() throws {
        let l = try listener()
        defer { l.stop() }
        let r = exchange(l.port, Array("GET /metrics HTTP/1.1\r\nHost: x\r\nAccept: */*\r\n\r\n".utf8), closeWrite: false)
        #expect(r.hasPrefix("HTTP/1.1 200 OK\r\n"))
        #expect(r.contains("Content-Type: text/plain; version=0.0.4; charset=utf-8\r\n"))
        #expect(r.contains("Content-Length: \(Self.body.count)\r\n"))
        #expect(r.contains("Connection: close\r\n"))
        #expect(r.hasSuffix("\r\n\r\naos_up 1\n"))
        // A query string (Prometheus' scrape parameters) is fine; HEAD gets no body.
        #expect(exchange(l.port, Array("GET /metrics?x=1 HTTP/1.0\r\n\r\n".utf8)).hasSuffix("aos_up 1\n"))
        let head = exchange(l.port, Array("HEAD /metrics HTTP/1.1\r\n\r\n".utf8))
        #expect(head.hasPrefix("HTTP/1.1 200 OK\r\n") && head.hasSuffix("\r\n\r\n"))
    }

    @Test func otherMethodsPathsAndGarbageAreRefused() throws {
        let l = try listener()
        defer { l.stop() }
        #expect(exchange(l.port, Array("POST /metrics HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc".utf8)).hasPrefix("HTTP/1.1 405 "))
        #expect(exchange(l.port, Array("GET / HTTP/1.1\r\n\r\n".utf8)).hasPrefix("HTTP/1.1 404 "))
        #expect(exchange(l.port, Array("GET /metrics/../etc HTTP/1.1\r\n\r\n".utf8)).hasPrefix("HTTP/1.1 404 "))
        #expect(exchange(l.port, Array("HELLO\r\n\r\n".utf8)).hasPrefix("HTTP/1.1 400 "))
        #expect(exchange(l.port, [0, 1, 2, 0xff, 0xfe, 13, 10, 13, 10]).hasPrefix("HTTP/1.1 400 "))
        #expect(exchange(l.port, Array("GET /metrics SPDY/3\r\n\r\n".utf8)).hasPrefix("HTTP/1.1 400 "))
        #expect(exchange(l.port, Array("GET  /metrics HTTP/1.1\r\n\r\n".utf8)).hasPrefix("HTTP/1.1 400 "))
        // A client that says nothing and closes gets nothing; the listener goes on.
        #expect(exchange(l.port, []).isEmpty)
        #expect(exchange(l.port, Array("GET /metrics HTTP/1.1\r\n\r\n".utf8)).hasPrefix("HTTP/1.1 200 "))
    }

    @Test func anOversizedRequestHeadGets431() throws {
        let l = try listener(maxRequestBytes: 1024)
        defer { l.stop() }
        var big = Array("GET /metrics HTTP/1.1\r\n".utf8)
        big += Array(repeating: UInt8(ascii: "A"), count: 64 * 1024)
        #expect(exchange(l.port, big).hasPrefix("HTTP/1.1 431 "))
        #expect(exchange(l.port, Array("GET /metrics HTTP/1.1\r\n\r\n".utf8)).hasPrefix("HTTP/1.1 200 "))
    }

    @Test func aStalledClientIsDroppedAndDoesNotBlockTheListenerForGood() throws {
        let l = try listener(timeout: .milliseconds(300))
        defer { l.stop() }
        // Slowloris: half a request head, then silence, the connection kept open.
        let slow = connectClient(l.port)
        defer { close(slow) }
        sendAll(slow, Array("GET /metrics HTTP/1.1\r\nX-A: ".utf8))
        // A second client queues behind it (one connection at a time) and is served once the
        // stalled one is dropped by the server's timeout.
        let next = connectClient(l.port)
        defer { close(next) }
        sendAll(next, Array("GET /metrics HTTP/1.1\r\n\r\n".utf8))
        let dropped = readAll(slow)
        #expect(!dropped.timedOut, "the server must close a stalled connection itself")
        #expect(dropped.text.isEmpty)
        let served = readAll(next)
        #expect(!served.timedOut)
        #expect(served.text.hasPrefix("HTTP/1.1 200 "))
    }

    @Test func aClientTricklingBytesIsBoundedByTheWholeConnectionTimeout() throws {
        // A request limit far above what is sent: only the deadline can end this connection.
        let l = try listener(timeout: .milliseconds(300), maxRequestBytes: 1 << 20)
        defer { l.stop() }
        let fd = connectClient(l.port)
        defer { close(fd) }
        // One byte, then a read that waits up to 50 ms for the server's close (the pace of the
        // trickle, not a synchronisation: the loop ends when the server closes, whenever that
        // is). The deadline counts from accept, not per read, so the server does close.
        var tv = timeval(tv_sec: 0, tv_usec: 50_000)
        _ = setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        var sent = 0
        var closedByServer = false
        while sent < 100_000 {
            if send(fd, "a", 1, Int32(MSG_NOSIGNAL)) <= 0 {
                closedByServer = true
                break
            }
            sent += 1
            var b: UInt8 = 0
            let r = recv(fd, &b, 1, 0)
            if r == 0 || (r < 0 && errno != EAGAIN && errno != EWOULDBLOCK) {
                closedByServer = true
                break
            }
        }
        #expect(closedByServer, "the server must drop a trickling client")
        print("trickle: \(sent) bytes sent before the server closed")
    }

    @Test func bindingTwiceFailsWithAMessage() throws {
        let l = try listener()
        defer { l.stop() }
        #expect(throws: MetricsHTTPListener.Failure.self) {
            _ = try MetricsHTTPListener(host: "127.0.0.1", port: l.port, ipv6: false) { [] }
        }
        #expect(throws: MetricsHTTPListener.Failure.self) {
            _ = try MetricsHTTPListener(host: "localhost", port: 0, ipv6: false) { [] }
        }
    }

    @Test func requestHeadsAreClassified() {
        func c(_ s: String) -> HTTPRequestHead { HTTPRequestHead.classify(Array(s.utf8)) }
        #expect(c("GET /metrics HTTP/1.1\r\n\r\n") == .metrics(withBody: true))
        #expect(c("HEAD /metrics HTTP/1.0\r\n\r\n") == .metrics(withBody: false))
        #expect(c("DELETE /metrics HTTP/1.1\r\n\r\n") == .methodNotAllowed)
        #expect(c("get /metrics HTTP/1.1\r\n\r\n") == .badRequest)
        #expect(c("GET metrics HTTP/1.1\r\n\r\n") == .badRequest)
        #expect(c("GET /metricsx HTTP/1.1\r\n\r\n") == .notFound)
        #expect(c("GET /m\u{e9} HTTP/1.1\r\n\r\n") == .badRequest)
        #expect(HTTPRequestHead.end(of: Array("GET / HTTP/1.1\r\nA: b\r\n\r\n".utf8)) == 24)
        #expect(HTTPRequestHead.end(of: Array("GET / HTTP/1.1\r\nA: b\r\n".utf8)) == nil)
        #expect(HTTPRequestHead.end(of: Array("GET / HTTP/1.1\n\n".utf8)) == 16)
    }
}
