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
/// Two draws from the system generator (one `getrandom` each on Linux): taking the 16 bytes
/// one at a time cost 16 system calls, and every RPC makes three of these.
public func makeUUIDHex() -> String {
    var g = SystemRandomNumberGenerator()
    var words: (UInt64, UInt64) = (g.next(), g.next())
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

@inline(__always) private func hexDigit(_ v: UInt8) -> UInt8 { v < 10 ? 0x30 + v : 0x57 + v }
