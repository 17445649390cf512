import Crypto
import FoundationEssentials
import RPCWire

/// Ed25519 keys for request signatures, in the text form config files and the Python driver
/// use: standard base64 of the raw 32-byte key.
public enum SigningKey {
    public struct Public: Sendable, Hashable, CustomStringConvertible {
        public let raw: [UInt8]

        public init?(base64 text: String) {
            guard let data = Data(base64Encoded: text.trimmingSpaces()), data.count == 32 else { return nil }
            raw = Array(data)
        }

        init(raw: [UInt8]) { self.raw = raw }

        public var base64: String { Data(raw).base64EncodedString() }
        /// A short name for logs: the first 12 characters of the base64 form.
        public var keyID: String { String(base64.prefix(12)) }
        public var description: String { keyID }
    }

    /// A private key; only signers (tests, tools) hold one. The servers only verify.
    public struct Private: Sendable {
        /// The 32-byte seed (Crypto's key type is not Sendable, so keep the bytes).
        let raw: [UInt8]

        public init() { raw = Array(Curve25519.Signing.PrivateKey().rawRepresentation) }

        public init?(base64 text: String) {
            guard let data = Data(base64Encoded: text.trimmingSpaces()), data.count == 32,
                (try? Curve25519.Signing.PrivateKey(rawRepresentation: data)) != nil
            else { return nil }
            raw = Array(data)
        }

        var key: Curve25519.Signing.PrivateKey {
            // The seed was checked when this value was made.
            (try? Curve25519.Signing.PrivateKey(rawRepresentation: raw)) ?? Curve25519.Signing.PrivateKey()
        }

        public var base64: String { Data(raw).base64EncodedString() }
        public var publicKey: Public { Public(raw: Array(key.publicKey.rawRepresentation)) }
    }
}

/// A request signature, carried in the request context under `aos_auth`:
/// `{"key": <base64 public key>, "ts": <unix ms>, "nonce": <hex>, "sig": <base64 signature>}`.
///
/// The signed bytes are the canonical JSON (sorted keys, ", " and ": " separators, ASCII
/// only — `json.dumps(x, sort_keys=True)` in Python) of
/// `["aos-rpc-sig-v1", target, method, namespace, version, ts, nonce, args]`, where target is
/// the routing key the request is published with (`aos-controller`, `aos-agent.HOST`): a
/// signed request cannot be replayed to another server, method or argument set. oslo
/// generates `_msg_id`, `_reply_q` and `_unique_id` below the driver's code, so they are not
/// covered; the nonce and the time window stop replays instead.
public struct RequestSignature: Sendable, Equatable {
    public static let contextKey = "aos_auth"
    public static let version = "aos-rpc-sig-v1"

    public var key: SigningKey.Public
    /// Unix time in milliseconds when the request was signed.
    public var timestampMillis: Int64
    public var nonce: String
    public var signature: [UInt8]

    /// The bytes a signer signs and a verifier checks.
    public static func signedBytes(
        target: String, method: String, namespace: String?, version: String?,
        timestampMillis: Int64, nonce: String, args: [String: JSONValue]
    ) -> [UInt8] {
        let doc: JSONValue = .array([
            .string(Self.version), .string(target), .string(method),
            namespace.map(JSONValue.string) ?? .null, version.map(JSONValue.string) ?? .null,
            .int(timestampMillis), .string(nonce), .object(args),
        ])
        return JSONWriter.bytes(doc)
    }

    /// Signs a request (used by tests and tools; the Python driver has its own signer).
    public static func sign(
        with key: SigningKey.Private, target: String, method: String, namespace: String? = nil,
        version: String? = nil, timestampMillis: Int64, nonce: String,
        args: [String: JSONValue]
    ) -> JSONValue {
        let bytes = signedBytes(
            target: target, method: method, namespace: namespace, version: version,
            timestampMillis: timestampMillis, nonce: nonce, args: args)
        let sig = (try? key.key.signature(for: bytes)).map { Data($0) } ?? Data()
        return [
            "key": .string(key.publicKey.base64), "ts": .int(timestampMillis), "nonce": .string(nonce),
            "sig": .string(sig.base64EncodedString()),
        ]
    }

    public enum DecodeError: Error, Equatable, CustomStringConvertible {
        case malformed(String)
        public var description: String {
            switch self {
            case .malformed(let m): return "malformed request signature (\(RequestSignature.contextKey)): \(m)"
            }
        }
    }

    /// Reads the context entry; every field is checked for type and size.
    public init(context value: JSONValue) throws(DecodeError) {
        guard case .object(let o) = value else { throw .malformed("not an object") }
        guard case .string(let k)? = o["key"], k.utf8.count <= 64, let key = SigningKey.Public(base64: k) else {
            throw .malformed("'key' is not a base64 Ed25519 public key")
        }
        guard case .int(let ts)? = o["ts"], ts > 0 else { throw .malformed("'ts' is not a positive integer (unix ms)") }
        guard case .string(let nonce)? = o["nonce"], (8...64).contains(nonce.utf8.count),
            nonce.utf8.allSatisfy({ ($0 >= 0x30 && $0 <= 0x39) || ($0 >= 0x61 && $0 <= 0x66) })
        else {
            throw .malformed("'nonce' must be 8 to 64 lowercase hex digits")
        }
        guard case .string(let s)? = o["sig"], s.utf8.count <= 128, let sig = Data(base64Encoded: s), sig.count == 64 else {
            throw .malformed("'sig' is not a base64 Ed25519 signature")
        }
        self.key = key
        self.timestampMillis = ts
        self.nonce = nonce
        self.signature = Array(sig)
    }

    /// True when the signature is valid for these request fields.
    public func isValid(
        target: String, method: String, namespace: String?, version: String?,
        args: [String: JSONValue]
    ) -> Bool {
        guard let pk = try? Curve25519.Signing.PublicKey(rawRepresentation: key.raw) else { return false }
        let bytes = Self.signedBytes(
            target: target, method: method, namespace: namespace, version: version,
            timestampMillis: timestampMillis, nonce: nonce, args: args)
        return pk.isValidSignature(signature, for: bytes)
    }
}

extension String {
    func trimmingSpaces() -> String {
        var s = Substring(self)
        while let f = s.first, f.isWhitespace { s = s.dropFirst() }
        while let l = s.last, l.isWhitespace { s = s.dropLast() }
        return String(s)
    }
}
