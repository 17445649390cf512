import HostSupport

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// What the kernel says about a block device in sysfs.
enum BlockDeviceInfo {
    /// Whether the device zeroes ranges itself (`queue/write_zeroes_max_bytes` > 0). Without
    /// it, `BLKZEROOUT` (blkdiscard --zeroout) still succeeds: the kernel writes zero pages.
    /// nil when it cannot be told (no such device node, no sysfs).
    static func hasWriteZeroesOffload(_ path: String) -> Bool? {
        var st = stat()
        guard stat(path, &st) == 0, (st.st_mode & S_IFMT) == S_IFBLK else { return nil }
        let dev = UInt64(st.st_rdev)
        // glibc's gnu_dev_major/minor encoding (the macros are not visible to Swift).
        let major = ((dev >> 8) & 0xfff) | ((dev >> 32) & ~UInt64(0xfff))
        let minor = (dev & 0xff) | ((dev >> 12) & ~UInt64(0xff))
        let file = "/sys/dev/block/\(major):\(minor)/queue/write_zeroes_max_bytes"
        guard let bytes = try? DurableFile.read(file, limit: 64),
            let value = UInt64(String(decoding: bytes.filter { $0 >= 0x30 && $0 <= 0x39 }, as: UTF8.self))
        else { return nil }
        return value > 0
    }
}
