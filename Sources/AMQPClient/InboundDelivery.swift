/// A delivery being read frame by frame (`ConnectionCore.pump`): the fields of its
/// basic.deliver, then its properties and size from the content header, then its body as the
/// body frames come. A body above the consumer's `maxBodyBytes` is not kept: only its first
/// and last `keptBytes` bytes, so what a message costs here is bounded by the consumer's limit
/// whatever size it announces.
struct InboundDelivery {
    let consumerTag: String
    let deliveryTag: UInt64
    let exchange: String
    let routingKey: String
    let redelivered: Bool
    /// nil: keep any body whole (only for consumers of our own, bounded traffic).
    let maxBodyBytes: Int?
    let keptBytes: Int
    /// Set by the content header.
    private(set) var properties: AMQPProperties?
    private(set) var bodySize = 0
    private(set) var received = 0
    /// The body, or its first `keptBytes` bytes when it is not kept whole.
    private(set) var head: [UInt8] = []
    /// The latest bytes of a body not kept whole: between `keptBytes` and twice that.
    private var tail: [UInt8] = []
    private var keepsWhole = true

    init(
        consumerTag: String, deliveryTag: UInt64, exchange: String, routingKey: String, redelivered: Bool,
        maxBodyBytes: Int?, keptBytes: Int
    ) {
        self.consumerTag = consumerTag
        self.deliveryTag = deliveryTag
        self.exchange = exchange
        self.routingKey = routingKey
        self.redelivered = redelivered
        self.maxBodyBytes = maxBodyBytes.map { max(0, $0) }
        self.keptBytes = max(0, keptBytes)
    }

    mutating func begin(properties: AMQPProperties, bodySize: Int) {
        self.properties = properties
        self.bodySize = max(0, bodySize)
        keepsWhole = maxBodyBytes.map { self.bodySize <= $0 } ?? true
        // The announced size is the sender's word: reserve no more than the limit allows.
        head.reserveCapacity(keepsWhole ? min(self.bodySize, maxBodyBytes ?? (1 << 20)) : keptBytes)
    }

    var isComplete: Bool { properties != nil && received == bodySize }

    /// Takes the next body frame's bytes; false when they go past the announced size.
    mutating func append(_ bytes: UnsafeRawBufferPointer) -> Bool {
        guard bytes.count <= bodySize - received else { return false }
        received += bytes.count
        if keepsWhole {
            head.append(contentsOf: bytes)
            return true
        }
        if head.count < keptBytes { head.append(contentsOf: bytes.prefix(keptBytes - head.count)) }
        tail.append(contentsOf: bytes.suffix(keptBytes))
        if tail.count > 2 * keptBytes { tail.removeFirst(tail.count - keptBytes) }
        return true
    }

    /// The last `keptBytes` bytes of a body not kept whole; empty for one kept whole.
    var tailBytes: [UInt8] { keepsWhole ? [] : Array(tail.suffix(keptBytes)) }
}
