import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// oslo.messaging's endpoint-compatibility rules (rpc/dispatcher.py): same namespace,
/// same major version, requested minor <= endpoint minor. Absent version means "1.0".
public struct RPCVersion: Sendable, Equatable, CustomStringConvertible {
    public var major: Int
    public var minor: Int

    public init(major: Int, minor: Int) { self.major = major; self.minor = minor }

    public init?(_ text: String) {
        let parts = text.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count >= 1, parts.count <= 3, let ma = Int(parts[0]) else { return nil }
        let mi = parts.count > 1 ? Int(parts[1]) : 0
        guard let mi else { return nil }
        self.major = ma
        self.minor = mi
    }

    public var description: String { "\(major).\(minor)" }

    public func canServe(_ requested: RPCVersion) -> Bool {
        requested.major == major && requested.minor <= minor
    }
}

/// Remembers the last N `_unique_id`s, like oslo's per-listener window (16 there).
/// Redelivered or duplicated requests are dropped so a retry has the effect of one.
public struct DuplicateFilter: Sendable {
    private var order: [String] = []
    private var members: Set<String> = []
    private var next = 0
    public let capacity: Int

    public init(capacity: Int = 16) {
        precondition(capacity > 0)
        self.capacity = capacity
        order.reserveCapacity(capacity)
    }

    /// Returns true when `id` was seen within the window; records it otherwise.
    public mutating func isDuplicate(_ id: String) -> Bool {
        if members.contains(id) { return true }
        if order.count < capacity {
            order.append(id)
        } else {
            members.remove(order[next])
            order[next] = id
            next = (next + 1) % capacity
        }
        members.insert(id)
        return false
    }
}

/// 32 lowercase hex digits, like Python's uuid4().hex.
///
/// The 16 random bytes come from `RandomBytes.shared`, filled from the kernel's generator
/// 4 KiB at a time: every RPC makes three of these, and two `getrandom` system calls per
/// identifier (the system generator's 8 bytes per draw) were ~5 % of the system calls per call.
public func makeUUIDHex() -> String {
    var words: (UInt64, UInt64) = (0, 0)
    withUnsafeMutableBytes(of: &words) { RandomBytes.shared.fill($0) }
    return withUnsafeMutableBytes(of: &words) { raw -> String in
        raw[6] = (raw[6] & 0x0F) | 0x40  // version 4
        raw[8] = (raw[8] & 0x3F) | 0x80  // RFC 4122 variant
        return String(unsafeUninitializedCapacity: 32) { out in
            for i in 0..<16 {
                out[2 * i] = hexDigit(raw[i] >> 4)
                out[2 * i + 1] = hexDigit(raw[i] & 0xF)
            }
            return 32
        }
    }
}

/// Bytes from the kernel's random generator, read a block at a time and each handed out once:
/// the same bytes a `getrandom` per request would give, in fewer system calls. A process that
/// forks must not use it in the child (nothing here forks without exec).
public final class RandomBytes: Sendable {
    public static let shared = RandomBytes()

    private struct Block {
        var bytes: [UInt8]
        var used: Int
    }

    private let block: Mutex<Block>
    private let blockSize: Int

    public init(blockSize: Int = 4096) {
        self.blockSize = max(16, blockSize)
        block = Mutex(Block(bytes: [UInt8](repeating: 0, count: max(16, blockSize)), used: max(16, blockSize)))
    }

    /// Fills `out` with random bytes.
    public func fill(_ out: UnsafeMutableRawBufferPointer) {
        guard out.count <= blockSize / 4 else { return Self.draw(out) }  // large requests: straight from the kernel
        block.withLock { b in
            if b.used + out.count > b.bytes.count {
                b.bytes.withUnsafeMutableBytes { Self.draw($0) }
                b.used = 0
            }
            let range = b.used..<(b.used + out.count)
            b.bytes.withUnsafeMutableBytes { src in
                let given = UnsafeMutableRawBufferPointer(rebasing: src[range])
                out.copyMemory(from: UnsafeRawBufferPointer(given))
                given.initializeMemory(as: UInt8.self, repeating: 0)  // handed out once: not kept
            }
            b.used += out.count
        }
    }

    /// The kernel's generator through /dev/urandom (the Glibc module does not export
    /// `getrandom`; once the kernel's generator is seeded, early in boot, both give the same
    /// bytes), opened for each block so that no descriptor stays open; the system generator
    /// 8 bytes at a time where the device cannot be read (a bare chroot).
    private static func draw(_ out: UnsafeMutableRawBufferPointer) {
        guard let base = out.baseAddress else { return }
        var done = 0
        let fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC)
        if fd >= 0 {
            while done < out.count {
                let n = read(fd, base + done, out.count - done)
                if n > 0 {
                    done += n
                } else if n < 0 && errno == EINTR {
                    continue
                } else {
                    break
                }
            }
            close(fd)
        }
        var g = SystemRandomNumberGenerator()
        while done < out.count {
            let word = g.next()
            withUnsafeBytes(of: word) { w in
                let k = min(8, out.count - done)
                UnsafeMutableRawBufferPointer(start: base + done, count: k).copyMemory(from: UnsafeRawBufferPointer(rebasing: w[0..<k]))
                done += k
            }
        }
    }
}

@inline(__always) private func hexDigit(_ v: UInt8) -> UInt8 { v < 10 ? 0x30 + v : 0x57 + v }
