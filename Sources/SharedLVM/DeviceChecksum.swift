import Crypto
import HostSupport

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// SHA-256 of the start of a block device, read on a thread of its own (a whole LV takes
/// minutes; the cooperative pool must not wait on disk reads). Used by a copy's `verify`.
enum DeviceChecksum {
    static func sha256(path: String, length: UInt64) async throws(LVMError) -> String {
        let result: Result<String, LVMError> = await withCheckedContinuation { continuation in
            let started = DetachedThread.start(name: "aos-checksum") {
                continuation.resume(returning: digest(path: path, length: length))
            }
            if !started {
                continuation.resume(returning: .failure(LVMError(code: .internal, message: "cannot start a thread to read \(path)")))
            }
        }
        return try result.get()
    }

    private static func digest(path: String, length: UInt64) -> Result<String, LVMError> {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else {
            let code: LVMErrorCode = errno == ENOENT ? .notActive : .internal
            return .failure(LVMError(code: code, message: "cannot open \(path): \(DurableFile.errorText(errno))"))
        }
        defer { close(fd) }
        // Drop this host's cached pages first: another host may have written the shared LV.
        _ = posix_fadvise(fd, 0, 0, Int32(POSIX_FADV_DONTNEED))
        var hasher = SHA256()
        var buffer = [UInt8](repeating: 0, count: 4 << 20)
        var remaining = length
        while remaining > 0 {
            let want = Int(min(UInt64(buffer.count), remaining))
            let got = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, want) }
            if got < 0 {
                if errno == EINTR { continue }
                return .failure(LVMError(code: .internal, message: "cannot read \(path): \(DurableFile.errorText(errno))"))
            }
            if got == 0 {
                return .failure(LVMError(code: .internal, message: "\(path) ended \(remaining) bytes before the \(length) to check"))
            }
            hasher.update(data: buffer[0..<got])
            remaining -= UInt64(got)
        }
        return .success(hasher.finalize().map { byte in hex(byte) }.joined())
    }

    private static func hex(_ byte: UInt8) -> String {
        let digits = Array("0123456789abcdef")
        return String([digits[Int(byte >> 4)], digits[Int(byte & 0xf)]])
    }
}
