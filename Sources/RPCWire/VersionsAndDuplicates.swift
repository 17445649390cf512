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
public func makeUUIDHex() -> String {
    var g = SystemRandomNumberGenerator()
    let hex = Array("0123456789abcdef".utf8)
    var bytes = [UInt8](repeating: 0, count: 32)
    for i in 0..<16 {
        var b = UInt8.random(in: 0...255, using: &g)
        if i == 6 { b = (b & 0x0F) | 0x40 }
        if i == 8 { b = (b & 0x3F) | 0x80 }
        bytes[2 * i] = hex[Int(b >> 4)]
        bytes[2 * i + 1] = hex[Int(b & 0xF)]
    }
    return String(decoding: bytes, as: UTF8.self)
}
