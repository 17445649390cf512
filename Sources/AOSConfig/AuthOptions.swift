/// `[auth]`: who may command what (docs/security.md). Read by the agent and the controller.
public enum AuthOptions {
    public static let enforce = OptionSpec(
        "auth", "enforce", type: .boolean, default: .bool(true),
        help:
            "Refuse requests from senders without a role (broker user or signing key below). false only logs them: for migrating a running cloud, never for production."
    )
    public static let controllerUsers = OptionSpec(
        "auth", "controller_users", type: .list, default: .list(["aos-controller"]),
        help: "Broker users of the controllers (they command agents).")
    public static let adminUsers = OptionSpec(
        "auth", "admin_users", type: .list, default: .list(["aos-admin"]),
        help: "Broker users of operators (aosctl): may call everything.")
    public static let driverUsers = OptionSpec(
        "auth", "driver_users", type: .list, default: .list(["aos-driver"]),
        help: "Broker users of the Cinder driver, when its messages carry user_id (oslo.messaging's do not: see driver_public_keys).")
    public static let agentUserFormat = OptionSpec(
        "auth", "agent_user_format", type: .string, default: .string("aos-agent-{host}"),
        help: "Broker user of the agent on host {host}; an agent may announce only its own host.")
    public static let driverPublicKeys = OptionSpec(
        "auth", "driver_public_keys", type: .list, default: .list([]),
        help: "Ed25519 public keys (base64) whose request signatures count as the Cinder driver (aosctl auth keygen).")
    public static let adminPublicKeys = OptionSpec(
        "auth", "admin_public_keys", type: .list, default: .list([]),
        help: "Ed25519 public keys (base64) whose request signatures count as an operator (for Python tools).")
    public static let maxClockSkew = OptionSpec(
        "auth", "max_clock_skew", type: .integer(min: 1, max: 3600), default: .int(60),
        help: "Seconds a request signature's time or an announcement's sent_at may differ from this host's clock.")

    public static let options: [OptionSpec] = [
        enforce, controllerUsers, adminUsers, driverUsers, agentUserFormat, driverPublicKeys, adminPublicKeys,
        maxClockSkew,
    ]

    static let formatHasHost: @Sendable (Configuration) -> String? = { c in
        c.string(agentUserFormat).contains("{host}") ? nil : "[auth] agent_user_format must contain {host}"
    }

    public struct Settings: Sendable, Equatable {
        public var enforce: Bool
        public var controllerUsers: [String]
        public var adminUsers: [String]
        public var driverUsers: [String]
        public var agentUserFormat: String
        public var driverPublicKeys: [String]
        public var adminPublicKeys: [String]
        public var maxClockSkew: Int

        public init(_ c: Configuration) {
            enforce = c.bool(AuthOptions.enforce)
            controllerUsers = c.list(AuthOptions.controllerUsers)
            adminUsers = c.list(AuthOptions.adminUsers)
            driverUsers = c.list(AuthOptions.driverUsers)
            agentUserFormat = c.string(AuthOptions.agentUserFormat)
            driverPublicKeys = c.list(AuthOptions.driverPublicKeys)
            adminPublicKeys = c.list(AuthOptions.adminPublicKeys)
            maxClockSkew = c.int(AuthOptions.maxClockSkew)
        }
    }
}
