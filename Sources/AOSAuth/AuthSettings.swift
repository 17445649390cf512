import AOSAPI
import AOSConfig

extension AuthConfiguration {
    public struct InvalidKey: Error, CustomStringConvertible {
        public var option: String
        public var index: Int
        public var description: String {
            "[auth] \(option): entry \(index + 1) is not a base64 Ed25519 public key (32 bytes; see 'aosctl auth keygen')"
        }
    }

    /// From `[auth]`; a malformed key is a startup error, not a silently ignored entry.
    public init(_ s: AuthOptions.Settings) throws(InvalidKey) {
        func keys(_ texts: [String], _ option: String) throws(InvalidKey) -> [SigningKey.Public] {
            var out: [SigningKey.Public] = []
            for (i, t) in texts.enumerated() {
                guard let k = SigningKey.Public(base64: t) else { throw InvalidKey(option: option, index: i) }
                out.append(k)
            }
            return out
        }
        let credentials = Credentials(
            controllerUsers: Set(s.controllerUsers), adminUsers: Set(s.adminUsers), driverUsers: Set(s.driverUsers),
            agentUserFormat: s.agentUserFormat,
            signingKeys: [
                .driver: try keys(s.driverPublicKeys, "driver_public_keys"),
                .admin: try keys(s.adminPublicKeys, "admin_public_keys"),
            ])
        self.init(enforce: s.enforce, credentials: credentials, maxClockSkew: .seconds(s.maxClockSkew))
    }
}
