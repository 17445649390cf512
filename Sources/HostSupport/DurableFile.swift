#if canImport(Glibc)
import Glibc
#endif

/// Whole-file reads and crash-safe replacement, on Glibc only (no Foundation on nodes).
/// Used for the agent's activation record and the simulated cluster's shared state.
public enum DurableFile {
    public struct Failure: Error, Sendable, CustomStringConvertible {
        public var message: String
        public var description: String { message }
        public init(message: String) { self.message = message }
    }

    public static func errorText(_ code: Int32) -> String { String(cString: strerror(code)) }

    /// The file's bytes, or nil when it does not exist.
    public static func read(_ path: String, limit: Int = 64 << 20) throws(Failure) -> [UInt8]? {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        if fd < 0 {
            if errno == ENOENT { return nil }
            throw Failure(message: "cannot open \(path): \(errorText(errno))")
        }
        defer { close(fd) }
        var out: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = chunk.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) }
            if n < 0 {
                if errno == EINTR { continue }
                throw Failure(message: "cannot read \(path): \(errorText(errno))")
            }
            if n == 0 { return out }
            out.append(contentsOf: chunk[0..<n])
            if out.count > limit { throw Failure(message: "\(path) is larger than \(limit >> 20) MiB") }
        }
    }

    /// temp file + fsync + rename + fsync(directory): after a crash or power loss the
    /// file is the old or the new version, never a torn one. The temp name carries the
    /// pid so two processes replacing one file never share a temp file.
    public static func writeAtomically(_ path: String, _ bytes: [UInt8], mode: mode_t = 0o600) throws(Failure) {
        let temp = "\(path).tmp.\(getpid())"
        let fd = open(temp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode)
        guard fd >= 0 else { throw Failure(message: "cannot create \(temp): \(errorText(errno))") }
        func fail(_ what: String, _ e: Int32) -> Failure {
            close(fd)
            unlink(temp)
            return Failure(message: "cannot \(what) \(temp): \(errorText(e))")
        }
        var offset = 0
        while offset < bytes.count {
            let n = bytes.withUnsafeBytes { write(fd, $0.baseAddress! + offset, $0.count - offset) }
            if n < 0 {
                if errno == EINTR { continue }
                throw fail("write", errno)
            }
            offset += n
        }
        if fsync(fd) != 0 { throw fail("fsync", errno) }
        close(fd)
        if rename(temp, path) != 0 {
            let e = errno
            unlink(temp)
            throw Failure(message: "cannot rename \(temp) to \(path): \(errorText(e))")
        }
        let directory = path.contains("/") ? String(path[..<path.lastIndex(of: "/")!]) : "."
        let dfd = open(directory.isEmpty ? "/" : directory, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        if dfd >= 0 {
            _ = fsync(dfd)
            close(dfd)
        }
    }

    /// Removes a file; a missing file is not an error. False when it could not be removed.
    @discardableResult
    public static func remove(_ path: String) -> Bool { unlink(path) == 0 || errno == ENOENT }
}
