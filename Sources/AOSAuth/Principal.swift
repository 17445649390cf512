import AOSAPI

/// Who sent a request, established from something the sender cannot forge.
public struct Principal: Sendable, Equatable, CustomStringConvertible {
    public enum Evidence: Sendable, Equatable {
        /// The AMQP `user_id` property: RabbitMQ refuses a message whose user_id is not the
        /// publisher's login, so it names the broker user that sent it.
        case brokerUser(String)
        /// A valid Ed25519 signature over the request by a configured key (oslo.messaging
        /// cannot set user_id, so the Python driver signs instead).
        case signature(keyID: String)
    }

    public var role: Role
    /// For `.agent`: the host whose agent this is.
    public var host: String?
    public var evidence: Evidence

    public init(role: Role, host: String? = nil, evidence: Evidence) {
        self.role = role
        self.host = host
        self.evidence = evidence
    }

    public var description: String {
        let who: String
        switch evidence {
        case .brokerUser(let u): who = "broker user '\(u)'"
        case .signature(let k): who = "key \(k)"
        }
        return host.map { "\(role) of \($0) (\(who))" } ?? "\(role) (\(who))"
    }
}

/// Maps broker users and signing keys to roles. Built from `[auth]` (see AOSConfig's
/// `AuthOptions`); a pure value so servers and tests share it.
public struct Credentials: Sendable, Equatable {
    public var controllerUsers: Set<String>
    public var adminUsers: Set<String>
    public var driverUsers: Set<String>
    /// The broker user of host H's agent: this text with `{host}` replaced by H.
    public var agentUserFormat: String
    /// Ed25519 public keys (raw 32 bytes) allowed to sign requests, by role.
    public var signingKeys: [Role: [SigningKey.Public]]

    public init(
        controllerUsers: Set<String> = ["aos-controller"], adminUsers: Set<String> = ["aos-admin"],
        driverUsers: Set<String> = ["aos-driver"], agentUserFormat: String = "aos-agent-{host}",
        signingKeys: [Role: [SigningKey.Public]] = [:]
    ) {
        self.controllerUsers = controllerUsers
        self.adminUsers = adminUsers
        self.driverUsers = driverUsers
        self.agentUserFormat = agentUserFormat
        self.signingKeys = signingKeys
    }

    /// The broker user host `host`'s agent logs in as.
    public func agentUser(host: String) -> String {
        agentUserFormat.replacing("{host}", with: host)
    }

    /// The role of a broker user, or nil for a user this deployment does not know.
    public func principal(brokerUser user: String) -> Principal? {
        let evidence = Principal.Evidence.brokerUser(user)
        if adminUsers.contains(user) { return Principal(role: .admin, evidence: evidence) }
        if controllerUsers.contains(user) { return Principal(role: .controller, evidence: evidence) }
        if driverUsers.contains(user) { return Principal(role: .driver, evidence: evidence) }
        if let host = agentHost(fromUser: user) { return Principal(role: .agent, host: host, evidence: evidence) }
        return nil
    }

    /// Inverts `agentUserFormat`: "aos-agent-{host}" and "aos-agent-node1" give "node1".
    func agentHost(fromUser user: String) -> String? {
        guard let marker = agentUserFormat.firstRange(of: "{host}") else { return nil }
        let prefix = agentUserFormat[..<marker.lowerBound], suffix = agentUserFormat[marker.upperBound...]
        guard user.count > prefix.count + suffix.count, user.hasPrefix(prefix), user.hasSuffix(suffix) else { return nil }
        let host = String(user.dropFirst(prefix.count).dropLast(suffix.count))
        return host.isEmpty ? nil : host
    }

    /// The role a signing key belongs to, when it is configured.
    public func role(ofKey key: SigningKey.Public) -> Role? {
        for (role, keys) in signingKeys.sorted(by: { $0.key.rawValue < $1.key.rawValue }) where keys.contains(key) {
            return role
        }
        return nil
    }
}
