/// Encodes `Encodable` values into a `JSONValue` tree (the form the RPC layer sends).
///
/// `nil` optionals are left out of objects (the synthesized `encodeIfPresent`), so a response
/// carries only what it has; a type that wants an explicit `null` encodes it itself. Integers
/// wider than JSON's safe 64-bit range (a `UInt64` above `Int64.max`) are a programming error
/// reported as `EncodingError`, never a trap.
public struct JSONValueEncoder: Sendable {
    public init() {}

    public func encode<T: Encodable>(_ value: T) throws -> JSONValue {
        if let v = value as? JSONValue { return v }
        let root = Slot()
        try value.encode(to: ValueEncoder(slot: root, codingPath: []))
        return root.value
    }
}

/// A place a value is written to; objects and arrays fill in as their children encode.
/// (Members and items live in stored arrays, appended in place: no copy per element.) A
/// scalar member is stored as its value, without a slot of its own: most fields are scalars.
private final class Slot {
    enum Kind { case value, object, array }

    enum Member {
        case value(JSONValue)
        case slot(Slot)

        var value: JSONValue {
            switch self {
            case .value(let v): return v
            case .slot(let s): return s.value
            }
        }
    }

    var kind = Kind.value
    private var scalar = JSONValue.null
    private var members: [(String, Member)] = []
    private var items: [Slot] = []

    /// Writing a scalar (or a whole JSONValue) replaces whatever was there.
    var content: JSONValue {
        get { value }
        set {
            kind = .value
            scalar = newValue
        }
    }

    var count: Int { items.count }

    var value: JSONValue {
        switch kind {
        case .value: return scalar
        case .object:
            var out: [String: JSONValue] = [:]
            out.reserveCapacity(members.count)
            for (k, m) in members { out[k] = m.value }  // a later write of a key wins
            return .object(out)
        case .array: return .array(items.map(\.value))
        }
    }

    func member(_ key: String) -> Slot {
        beginObject()
        let slot = Slot()
        members.append((key, .slot(slot)))
        return slot
    }

    func setMember(_ key: String, _ value: JSONValue) {
        beginObject()
        members.append((key, .value(value)))
    }

    func beginObject() {
        if kind != .object {
            kind = .object
            members = []
            // Room for a typical result's fields at once, rather than growing 1, 2, 4, 8, 16
            // (our own output, never sized by the wire).
            members.reserveCapacity(8)
        }
    }

    func beginArray() {
        if kind != .array { kind = .array; items = [] }
    }

    func appendItem() -> Slot {
        beginArray()
        let slot = Slot()
        items.append(slot)
        return slot
    }
}

private struct ValueEncoder: Encoder {
    let slot: Slot
    let codingPath: [any CodingKey]
    var userInfo: [CodingUserInfoKey: Any] { [:] }

    func container<Key: CodingKey>(keyedBy type: Key.Type) -> KeyedEncodingContainer<Key> {
        slot.beginObject()
        return KeyedEncodingContainer(KeyedEncoder<Key>(slot: slot, codingPath: codingPath))
    }

    func unkeyedContainer() -> any UnkeyedEncodingContainer {
        slot.beginArray()
        return UnkeyedEncoder(slot: slot, codingPath: codingPath)
    }

    func singleValueContainer() -> any SingleValueEncodingContainer { SingleEncoder(slot: slot, codingPath: codingPath) }
}

/// The JSON value of a scalar (nil for anything that encodes itself). `path` is built only
/// for an error: a coding path per field was two array allocations per field encoded.
private func scalar<T: Encodable>(_ value: T, path: () -> [any CodingKey]) throws -> JSONValue? {
    switch value {
    case let v as JSONValue: return v
    case let v as String: return .string(v)
    case let v as Bool: return .bool(v)
    case let v as Double: return .double(v)
    case let v as Int: return .int(Int64(v))
    case let v as Int64: return .int(v)
    case let v as Int32: return .int(Int64(v))
    case let v as UInt32: return .int(Int64(v))
    case let v as UInt64: return try integer(v, path: path())
    default: return nil
    }
}

/// Writes one value into a slot: scalars directly, everything else through its own encode(to:).
/// `path` is built only for an error or a value that encodes itself.
private func write<T: Encodable>(_ value: T, into slot: Slot, path: () -> [any CodingKey]) throws {
    if let v = try scalar(value, path: path) {
        slot.content = v
    } else {
        try value.encode(to: ValueEncoder(slot: slot, codingPath: path()))
    }
}

private func integer<I: BinaryInteger>(_ v: I, path: [any CodingKey]) throws -> JSONValue {
    guard let i = Int64(exactly: v) else {
        throw EncodingError.invalidValue(v, .init(codingPath: path, debugDescription: "\(v) does not fit a 64-bit signed integer"))
    }
    return .int(i)
}

private struct KeyedEncoder<Key: CodingKey>: KeyedEncodingContainerProtocol {
    let slot: Slot
    let codingPath: [any CodingKey]

    mutating func encodeNil(forKey key: Key) throws { slot.setMember(key.stringValue, .null) }

    // The common scalars directly (the synthesized encode(to:) calls these overloads; the
    // generic one would find the type again by dynamic casts).
    mutating func encode(_ value: String, forKey key: Key) throws { slot.setMember(key.stringValue, .string(value)) }
    mutating func encode(_ value: Bool, forKey key: Key) throws { slot.setMember(key.stringValue, .bool(value)) }
    mutating func encode(_ value: Int, forKey key: Key) throws { slot.setMember(key.stringValue, .int(Int64(value))) }
    mutating func encode(_ value: Int64, forKey key: Key) throws { slot.setMember(key.stringValue, .int(value)) }
    mutating func encode(_ value: Double, forKey key: Key) throws { slot.setMember(key.stringValue, .double(value)) }
    mutating func encode(_ value: UInt64, forKey key: Key) throws {
        slot.setMember(key.stringValue, try integer(value, path: codingPath + [key]))
    }

    mutating func encode<T: Encodable>(_ value: T, forKey key: Key) throws {
        if let v = try scalar(value, path: { codingPath + [key] }) {
            slot.setMember(key.stringValue, v)
        } else {
            try value.encode(to: ValueEncoder(slot: slot.member(key.stringValue), codingPath: codingPath + [key]))
        }
    }

    mutating func nestedContainer<NestedKey: CodingKey>(keyedBy keyType: NestedKey.Type, forKey key: Key) -> KeyedEncodingContainer<
        NestedKey
    > {
        let child = slot.member(key.stringValue)
        child.beginObject()
        return KeyedEncodingContainer(KeyedEncoder<NestedKey>(slot: child, codingPath: codingPath + [key]))
    }

    mutating func nestedUnkeyedContainer(forKey key: Key) -> any UnkeyedEncodingContainer {
        let child = slot.member(key.stringValue)
        child.beginArray()
        return UnkeyedEncoder(slot: child, codingPath: codingPath + [key])
    }

    mutating func superEncoder() -> any Encoder { ValueEncoder(slot: slot.member("super"), codingPath: codingPath) }
    mutating func superEncoder(forKey key: Key) -> any Encoder {
        ValueEncoder(slot: slot.member(key.stringValue), codingPath: codingPath + [key])
    }
}

private struct UnkeyedEncoder: UnkeyedEncodingContainer {
    let slot: Slot
    let codingPath: [any CodingKey]
    var count: Int { slot.count }

    mutating func encodeNil() throws { slot.appendItem().content = .null }

    mutating func encode<T: Encodable>(_ value: T) throws {
        let key = ListIndexKey(intValue: count)
        try write(value, into: slot.appendItem(), path: { codingPath + [key] })
    }

    mutating func nestedContainer<NestedKey: CodingKey>(keyedBy keyType: NestedKey.Type) -> KeyedEncodingContainer<NestedKey> {
        let key = ListIndexKey(intValue: count)
        let child = slot.appendItem()
        child.beginObject()
        return KeyedEncodingContainer(KeyedEncoder<NestedKey>(slot: child, codingPath: codingPath + [key]))
    }

    mutating func nestedUnkeyedContainer() -> any UnkeyedEncodingContainer {
        let key = ListIndexKey(intValue: count)
        let child = slot.appendItem()
        child.beginArray()
        return UnkeyedEncoder(slot: child, codingPath: codingPath + [key])
    }

    mutating func superEncoder() -> any Encoder { ValueEncoder(slot: slot.appendItem(), codingPath: codingPath) }
}

private struct SingleEncoder: SingleValueEncodingContainer {
    let slot: Slot
    let codingPath: [any CodingKey]

    mutating func encodeNil() throws { slot.content = .null }
    mutating func encode(_ value: Bool) throws { slot.content = .bool(value) }
    mutating func encode(_ value: String) throws { slot.content = .string(value) }
    mutating func encode(_ value: Double) throws { slot.content = .double(value) }
    mutating func encode(_ value: Float) throws { slot.content = .double(Double(value)) }
    mutating func encode(_ value: Int) throws { slot.content = .int(Int64(value)) }
    mutating func encode(_ value: Int8) throws { slot.content = .int(Int64(value)) }
    mutating func encode(_ value: Int16) throws { slot.content = .int(Int64(value)) }
    mutating func encode(_ value: Int32) throws { slot.content = .int(Int64(value)) }
    mutating func encode(_ value: Int64) throws { slot.content = .int(value) }
    mutating func encode(_ value: UInt) throws { slot.content = try integer(value, path: codingPath) }
    mutating func encode(_ value: UInt8) throws { slot.content = .int(Int64(value)) }
    mutating func encode(_ value: UInt16) throws { slot.content = .int(Int64(value)) }
    mutating func encode(_ value: UInt32) throws { slot.content = .int(Int64(value)) }
    mutating func encode(_ value: UInt64) throws { slot.content = try integer(value, path: codingPath) }
    mutating func encode<T: Encodable>(_ value: T) throws { try write(value, into: slot, path: { codingPath }) }
}
