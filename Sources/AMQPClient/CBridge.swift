import CRabbitMQ

#if canImport(Glibc)
import Glibc
#endif

/// Owns C copies of strings and buffers handed to librabbitmq for the length of one call.
final class CArena {
    /// The strings of one publish (properties, exchange, routing key: a few hundred bytes) go
    /// into one block; what does not fit gets an allocation of its own. Before, each string
    /// cost two (an Array of its UTF-8, then the C copy): a dozen per publish.
    private static let blockSize = 1024
    private let block = UnsafeMutableRawPointer.allocate(byteCount: CArena.blockSize, alignment: 1)
    private var used = 0
    /// Copies that did not fit in `block`.
    private var overflow: [UnsafeMutableRawPointer] = []
    /// From strdup: freed with free.
    private var allocations: [UnsafeMutableRawPointer] = []
    private var tables: [(UnsafeMutablePointer<amqp_table_entry_t>, Int)] = []

    deinit {
        block.deallocate()
        for p in overflow { p.deallocate() }
        for p in allocations { free(p) }
        for (p, n) in tables { p.deinitialize(count: n); p.deallocate() }
    }

    func bytes(_ s: String) -> amqp_bytes_t {
        var s = s
        return s.withUTF8 { bytes(UnsafeRawBufferPointer($0)) }
    }

    /// A copy that lives as long as the arena.
    private func bytes(_ src: UnsafeRawBufferPointer) -> amqp_bytes_t {
        let n = src.count
        guard n > 0, let base = src.baseAddress else { return amqp_empty_bytes }
        let p: UnsafeMutableRawPointer
        if n <= Self.blockSize - used {
            p = block + used
            used += n
        } else {
            p = UnsafeMutableRawPointer.allocate(byteCount: n, alignment: 1)
            overflow.append(p)
        }
        p.copyMemory(from: base, byteCount: n)
        return amqp_bytes_t(len: n, bytes: p)
    }

    func cString(_ s: String) -> UnsafePointer<CChar> {
        let p = strdup(s)!
        allocations.append(UnsafeMutableRawPointer(p))
        return UnsafePointer(p)
    }

    func table(_ t: AMQPTable) -> amqp_table_t {
        guard !t.isEmpty else { return amqp_empty_table }
        let entries = UnsafeMutablePointer<amqp_table_entry_t>.allocate(capacity: t.count)
        for (i, (key, value)) in t.sorted(by: { $0.key < $1.key }).enumerated() {
            var v = amqp_field_value_t()
            switch value {
            case .bool(let b):
                v.kind = UInt8(AMQP_FIELD_KIND_BOOLEAN.rawValue)
                v.value.boolean = b ? 1 : 0
            case .int32(let i):
                v.kind = UInt8(AMQP_FIELD_KIND_I32.rawValue)
                v.value.i32 = i
            case .int64(let i):
                v.kind = UInt8(AMQP_FIELD_KIND_I64.rawValue)
                v.value.i64 = i
            case .string(let s):
                v.kind = UInt8(AMQP_FIELD_KIND_UTF8.rawValue)
                v.value.bytes = bytes(s)
            }
            (entries + i).initialize(to: amqp_table_entry_t(key: bytes(key), value: v))
        }
        tables.append((entries, t.count))
        return amqp_table_t(num_entries: Int32(t.count), entries: entries)
    }

    func properties(_ p: AMQPProperties) -> amqp_basic_properties_t {
        var props = amqp_basic_properties_t()
        var flags: UInt32 = 0
        if let v = p.contentType { props.content_type = bytes(v); flags |= UInt32(AMQP_BASIC_CONTENT_TYPE_FLAG) }
        if let v = p.contentEncoding { props.content_encoding = bytes(v); flags |= UInt32(AMQP_BASIC_CONTENT_ENCODING_FLAG) }
        if let v = p.headers { props.headers = table(v); flags |= UInt32(AMQP_BASIC_HEADERS_FLAG) }
        if let v = p.deliveryMode { props.delivery_mode = v; flags |= UInt32(AMQP_BASIC_DELIVERY_MODE_FLAG) }
        if let v = p.priority { props.priority = v; flags |= UInt32(AMQP_BASIC_PRIORITY_FLAG) }
        if let v = p.correlationID { props.correlation_id = bytes(v); flags |= UInt32(AMQP_BASIC_CORRELATION_ID_FLAG) }
        if let v = p.replyTo { props.reply_to = bytes(v); flags |= UInt32(AMQP_BASIC_REPLY_TO_FLAG) }
        if let v = p.expiration { props.expiration = bytes(v); flags |= UInt32(AMQP_BASIC_EXPIRATION_FLAG) }
        if let v = p.messageID { props.message_id = bytes(v); flags |= UInt32(AMQP_BASIC_MESSAGE_ID_FLAG) }
        if let v = p.timestamp { props.timestamp = v; flags |= UInt32(AMQP_BASIC_TIMESTAMP_FLAG) }
        if let v = p.userID { props.user_id = bytes(v); flags |= UInt32(AMQP_BASIC_USER_ID_FLAG) }
        props._flags = flags
        return props
    }
}

extension amqp_bytes_t {
    var string: String {
        guard len > 0, let b = bytes else { return "" }
        return String(decoding: UnsafeRawBufferPointer(start: b, count: len), as: UTF8.self)
    }
}

func decodeTable(_ t: amqp_table_t) -> AMQPTable {
    var out: AMQPTable = [:]
    guard t.num_entries > 0, let entries = t.entries else { return out }
    for i in 0..<Int(t.num_entries) {
        let e = entries[i]
        let key = e.key.string
        switch Int32(e.value.kind) {
        case Int32(AMQP_FIELD_KIND_BOOLEAN.rawValue): out[key] = .bool(e.value.value.boolean != 0)
        case Int32(AMQP_FIELD_KIND_I32.rawValue): out[key] = .int32(e.value.value.i32)
        case Int32(AMQP_FIELD_KIND_I64.rawValue): out[key] = .int64(e.value.value.i64)
        case Int32(AMQP_FIELD_KIND_U32.rawValue): out[key] = .int64(Int64(e.value.value.u32))
        case Int32(AMQP_FIELD_KIND_UTF8.rawValue), Int32(AMQP_FIELD_KIND_BYTES.rawValue):
            out[key] = .string(e.value.value.bytes.string)
        default: continue  // nested tables/arrays are not used by oslo
        }
    }
    return out
}

func decodeProperties(_ p: amqp_basic_properties_t) -> AMQPProperties {
    let f = p._flags
    func has(_ flag: Int32) -> Bool { f & UInt32(flag) != 0 }
    var out = AMQPProperties()
    if has(AMQP_BASIC_CONTENT_TYPE_FLAG) { out.contentType = p.content_type.string }
    if has(AMQP_BASIC_CONTENT_ENCODING_FLAG) { out.contentEncoding = p.content_encoding.string }
    if has(AMQP_BASIC_HEADERS_FLAG) { out.headers = decodeTable(p.headers) }
    if has(AMQP_BASIC_DELIVERY_MODE_FLAG) { out.deliveryMode = p.delivery_mode }
    if has(AMQP_BASIC_PRIORITY_FLAG) { out.priority = p.priority }
    if has(AMQP_BASIC_CORRELATION_ID_FLAG) { out.correlationID = p.correlation_id.string }
    if has(AMQP_BASIC_REPLY_TO_FLAG) { out.replyTo = p.reply_to.string }
    if has(AMQP_BASIC_EXPIRATION_FLAG) { out.expiration = p.expiration.string }
    if has(AMQP_BASIC_MESSAGE_ID_FLAG) { out.messageID = p.message_id.string }
    if has(AMQP_BASIC_TIMESTAMP_FLAG) { out.timestamp = p.timestamp }
    if has(AMQP_BASIC_USER_ID_FLAG) { out.userID = p.user_id.string }
    return out
}

func replyDescription(_ r: amqp_rpc_reply_t) -> (code: Int, text: String) {
    switch r.reply_type {
    case AMQP_RESPONSE_NORMAL: return (0, "ok")
    case AMQP_RESPONSE_NONE: return (0, "missing RPC reply")
    case AMQP_RESPONSE_LIBRARY_EXCEPTION:
        return (0, String(cString: amqp_error_string2(r.library_error)))
    case AMQP_RESPONSE_SERVER_EXCEPTION:
        guard let decoded = r.reply.decoded else { return (0, "undecoded server method \(r.reply.id)") }
        switch r.reply.id {
        case AOS_CONNECTION_CLOSE:
            let m = decoded.assumingMemoryBound(to: amqp_connection_close_t.self).pointee
            return (Int(m.reply_code), m.reply_text.string)
        case AOS_CHANNEL_CLOSE:
            let m = decoded.assumingMemoryBound(to: amqp_channel_close_t.self).pointee
            return (Int(m.reply_code), m.reply_text.string)
        default:
            return (0, "unexpected server method \(r.reply.id)")
        }
    default: return (0, "unknown reply type")
    }
}

extension Duration {
    var timeval: timeval {
        let c = components
        return Glibc.timeval(tv_sec: Int(c.seconds), tv_usec: Int(c.attoseconds / 1_000_000_000_000))
    }
    var milliseconds: Int {
        let c = components
        return Int(c.seconds) * 1000 + Int(c.attoseconds / 1_000_000_000_000_000)
    }
}
