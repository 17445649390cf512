#if canImport(Glibc)
import Glibc
#endif

/// One line of `/proc/PID/maps`: `start-end perms offset major:minor inode [path]`.
public struct ProcMapping: Sendable, Equatable {
    public var start: UInt
    public var end: UInt
    public var readable: Bool
    public var writable: Bool
    public var executable: Bool
    /// `s` (shared) rather than `p` (private).
    public var shared: Bool
    public var offset: UInt64
    /// `major:minor` as the kernel prints it (hex).
    public var device: String
    public var inode: UInt64
    /// Empty for anonymous mappings; may contain spaces, and ends in " (deleted)" when the file
    /// was removed or replaced after it was mapped.
    public var path: String

    public var size: UInt { end - start }

    public init(
        start: UInt, end: UInt, readable: Bool, writable: Bool, executable: Bool, shared: Bool, offset: UInt64,
        device: String, inode: UInt64, path: String
    ) {
        (self.start, self.end) = (start, end)
        (self.readable, self.writable, self.executable, self.shared) = (readable, writable, executable, shared)
        (self.offset, self.device, self.inode, self.path) = (offset, device, inode, path)
    }
}

/// `/proc/PID/maps` and `/proc/PID/status`, parsed totally: a line that is not what the kernel
/// writes is skipped, never trapped on.
public enum ProcMaps {
    /// The mappings of a maps text, in order; malformed lines are left out.
    public static func parse(_ text: String) -> [ProcMapping] {
        text.split(separator: "\n", omittingEmptySubsequences: true).compactMap { parseLine($0) }
    }

    /// One line, or nil if it is not `hex-hex perms hex hex:hex decimal[ path]` with start < end.
    /// The first five fields are separated by single spaces; the kernel pads before the path,
    /// and everything after that padding is the path (spaces included).
    public static func parseLine(_ line: Substring) -> ProcMapping? {
        var rest = line
        func field() -> Substring? {
            guard let space = rest.firstIndex(of: " ") else {
                defer { rest = rest[rest.endIndex...] }
                return rest.isEmpty ? nil : rest
            }
            let f = rest[..<space]
            rest = rest[rest.index(after: space)...]
            return f.isEmpty ? nil : f
        }
        guard let range = field(), let perms = field(), let offsetText = field(), let dev = field(),
            let inodeText = field()
        else { return nil }
        let bounds = range.split(separator: "-", omittingEmptySubsequences: false)
        guard bounds.count == 2, let start = hex(bounds[0]), let end = hex(bounds[1]), start < end else { return nil }
        let p = Array(perms.utf8)
        guard p.count == 4,
            p[0] == UInt8(ascii: "r") || p[0] == UInt8(ascii: "-"),
            p[1] == UInt8(ascii: "w") || p[1] == UInt8(ascii: "-"),
            p[2] == UInt8(ascii: "x") || p[2] == UInt8(ascii: "-"),
            p[3] == UInt8(ascii: "p") || p[3] == UInt8(ascii: "s")
        else { return nil }
        guard offsetText.utf8.count <= 16, let offset = UInt64(offsetText, radix: 16), hexDigitsOnly(offsetText) else {
            return nil
        }
        let devParts = dev.split(separator: ":", omittingEmptySubsequences: false)
        guard devParts.count == 2, devParts.allSatisfy({ !$0.isEmpty && $0.utf8.count <= 8 && hexDigitsOnly($0) }) else {
            return nil
        }
        guard inodeText.utf8.allSatisfy({ $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9") }),
            let inode = UInt64(inodeText)
        else { return nil }
        let path = rest.drop(while: { $0 == " " })
        return ProcMapping(
            start: start, end: end, readable: p[0] == UInt8(ascii: "r"), writable: p[1] == UInt8(ascii: "w"),
            executable: p[2] == UInt8(ascii: "x"), shared: p[3] == UInt8(ascii: "s"), offset: offset,
            device: String(dev), inode: inode, path: String(path))
    }

    /// The mappings of the executable `executablePath` (inode `executableInode`): its code,
    /// read-only data, the relocated RELRO and its writable segment (with lld that segment also
    /// holds `.rodata`, ICU's data table among it: 1.8 MB the agent touched at start and reads
    /// no more). Identified by path and inode both (a " (deleted)" suffix ignored on either
    /// side), never an anonymous mapping (the heap, the stacks, `.bss`).
    public static func executableMappings(
        _ mappings: [ProcMapping], executablePath: String, executableInode: UInt64
    ) -> [ProcMapping] {
        let exe = withoutDeleted(executablePath)
        guard executableInode != 0, !exe.isEmpty else { return [] }
        return mappings.filter {
            $0.inode == executableInode && !$0.path.isEmpty && withoutDeleted($0.path) == exe
        }
    }

    /// A `/proc/PID/status` field in kB (`VmRSS:    24012 kB`), or nil.
    public static func statusKilobytes(_ field: String, in text: String) -> Int? {
        for line in text.split(separator: "\n") {
            guard let colon = line.firstIndex(of: ":"), line[..<colon] == field else { continue }
            let value = line[line.index(after: colon)...].split(omittingEmptySubsequences: true) { $0 == " " || $0 == "\t" }
            guard value.count == 2, value[1] == "kB", let kb = Int(value[0]), kb >= 0 else { return nil }
            return kb
        }
        return nil
    }

    static func withoutDeleted(_ path: String) -> String {
        let suffix = " (deleted)"
        return path.hasSuffix(suffix) ? String(path.dropLast(suffix.count)) : path
    }

    static func hexDigitsOnly(_ s: Substring) -> Bool {
        s.utf8.allSatisfy {
            ($0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9")) || ($0 >= UInt8(ascii: "a") && $0 <= UInt8(ascii: "f"))
                || ($0 >= UInt8(ascii: "A") && $0 <= UInt8(ascii: "F"))
        }
    }

    static func hex(_ s: Substring) -> UInt? {
        guard !s.isEmpty, s.utf8.count <= 16, hexDigitsOnly(s) else { return nil }
        return UInt(s, radix: 16)
    }
}

/// Releasing the pages of the process's own executable that only start-up needed: after start,
/// `madvise(MADV_PAGEOUT)` over its executable's mappings. A hint that never changes contents
/// (unlike `MADV_DONTNEED`, which would drop the relocation pass's writes to the RELRO pages
/// and the data segment's): the kernel drops the clean file pages nothing else maps, a page
/// touched again is read back in, and a page this process wrote (private, now anonymous)
/// stays (no swap) or goes to swap like any other.
public enum StartupPages {
    /// What one release did.
    public struct Outcome: Sendable, Equatable {
        public var mappings: Int = 0
        public var bytesAdvised: UInt = 0
        /// The first `madvise` error (errno), if any.
        public var failureCode: Int32?
        /// The kernel does not take the hint here (EINVAL: before Linux 5.4; ENOSYS; EPERM).
        public var unsupported: Bool = false
        public var rssBeforeKB: Int?
        public var rssAfterKB: Int?
        public var rssFileBeforeKB: Int?
        public var rssFileAfterKB: Int?

        public init() {}

        /// The first error's text (strerror).
        public var failureText: String? { failureCode.map { DurableFile.errorText($0) } }
    }

    /// `MADV_PAGEOUT` (Linux 5.4, include/uapi/asm-generic/mman-common.h); not in every libc's headers.
    static let madvPageout: Int32 = 21

    /// Pages out this process's executable's read-only mappings. Never throws: a process whose
    /// maps cannot be read releases nothing.
    public static func release() -> Outcome {
        var outcome = Outcome()
        let before = status()
        outcome.rssBeforeKB = before.flatMap { ProcMaps.statusKilobytes("VmRSS", in: $0) }
        outcome.rssFileBeforeKB = before.flatMap { ProcMaps.statusKilobytes("RssFile", in: $0) }
        guard let exe = executable(), let maps = text("/proc/self/maps", limit: 16 << 20) else { return outcome }
        for m in ProcMaps.executableMappings(ProcMaps.parse(maps), executablePath: exe.path, executableInode: exe.inode) {
            guard let address = UnsafeMutableRawPointer(bitPattern: m.start) else { continue }
            if madvise(address, Int(clamping: m.size), madvPageout) == 0 {
                outcome.mappings += 1
                outcome.bytesAdvised += m.size
                continue
            }
            let code = errno
            if outcome.failureCode == nil { outcome.failureCode = code }
            if code == EINVAL || code == ENOSYS || code == EPERM {
                outcome.unsupported = true
                break
            }
        }
        let after = status()
        outcome.rssAfterKB = after.flatMap { ProcMaps.statusKilobytes("VmRSS", in: $0) }
        outcome.rssFileAfterKB = after.flatMap { ProcMaps.statusKilobytes("RssFile", in: $0) }
        return outcome
    }

    /// The executable's path (as the kernel prints it in maps) and inode.
    static func executable() -> (path: String, inode: UInt64)? {
        var buffer = [CChar](repeating: 0, count: 4097)
        let n = buffer.withUnsafeMutableBufferPointer { b -> Int in
            guard let base = b.baseAddress else { return -1 }
            return readlink("/proc/self/exe", base, b.count - 1)
        }
        guard n > 0, n < buffer.count else { return nil }
        let path = String(decoding: buffer[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self)
        var st = stat()
        guard stat("/proc/self/exe", &st) == 0 else { return nil }
        return (path, UInt64(st.st_ino))
    }

    static func status() -> String? { text("/proc/self/status", limit: 1 << 20) }

    static func text(_ path: String, limit: Int) -> String? {
        guard let bytes = try? DurableFile.read(path, limit: limit) else { return nil }
        return String(decoding: bytes, as: UTF8.self)
    }
}
