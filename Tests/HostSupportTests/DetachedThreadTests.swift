import HostSupport
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// The thread runs its body and carries its name (what ps/top show), cut to the kernel's 15 bytes.
struct DetachedThreadTests {
    static func ownName() -> String {
        let fd = open("/proc/thread-self/comm", O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return "" }
        defer { close(fd) }
        var buffer = [UInt8](repeating: 0, count: 64)
        let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
        guard n > 0 else { return "" }
        return String(decoding: buffer[0..<n], as: UTF8.self).trimmingSuffixNewline()
    }

    @Test func runsTheBodyOnANamedThread() async {
        let seen = OneShot<String>()
        #expect(DetachedThread.start(name: "aos-test-thread-long-name") { seen.fulfil(Self.ownName()) })
        #expect(await seen.value() == "aos-test-thread")
    }
}

extension String {
    fileprivate func trimmingSuffixNewline() -> String { hasSuffix("\n") ? String(dropLast()) : self }
}
