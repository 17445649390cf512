import RPCWire

/// An optional result field that is always on the wire: `null` when there is no value
/// (`lv_info.mode`, `lock_status.daemon`…), where a plain optional would be left out.
/// Decoding takes an absent key and `null` alike as nil.
@propertyWrapper
public struct AlwaysPresent<Value: Codable & Sendable & Equatable>: Codable, Sendable, Equatable {
    public var wrappedValue: Value?

    public init(wrappedValue: Value?) { self.wrappedValue = wrappedValue }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.singleValueContainer()
        wrappedValue = c.decodeNil() ? nil : try c.decode(Value.self)
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.singleValueContainer()
        if let wrappedValue { try c.encode(wrappedValue) } else { try c.encodeNil() }
    }
}

extension KeyedDecodingContainer {
    /// The synthesized `init(from:)` asks for an `AlwaysPresent` field with `decode`, which
    /// would refuse an absent or null key: this overload reads it as optional instead.
    public func decode<V>(_ type: AlwaysPresent<V>.Type, forKey key: Key) throws -> AlwaysPresent<V> {
        AlwaysPresent(wrappedValue: try decodeIfPresent(V.self, forKey: key))
    }
}
