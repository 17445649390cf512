import AOSAPI

/// The broker side of the trust model as data: one vhost, one user per role (one per agent
/// host) and the narrowest configure/write/read and topic permissions that let each role do
/// its job (docs/security.md explains each regex). `aosctl broker-setup` prints or applies it.
public struct BrokerSetup: Sendable, Equatable {
    public var vhost: String
    /// oslo's control_exchange, where both topics live.
    public var exchange: String
    public var agentTopic: String
    public var controllerTopic: String
    public var hosts: [String]
    public var credentials: Credentials

    public init(
        vhost: String = "aos", exchange: String = "openstack", agentTopic: String = "aos-agent",
        controllerTopic: String = "aos-controller", hosts: [String], credentials: Credentials = Credentials()
    ) {
        self.vhost = vhost
        self.exchange = exchange
        self.agentTopic = agentTopic
        self.controllerTopic = controllerTopic
        self.hosts = hosts
        self.credentials = credentials
    }

    public struct Permissions: Sendable, Equatable {
        public var configure: String
        public var write: String
        public var read: String
        /// Topic permission on the control exchange: routing keys the user may publish with.
        public var topicWrite: String
    }

    public struct Account: Sendable, Equatable {
        public var user: String
        public var role: Role
        public var host: String?
        public var permissions: Permissions
    }

    public var accounts: [Account] {
        let e = regexEscaped(exchange), a = regexEscaped(agentTopic), c = regexEscaped(controllerTopic)
        func anchored(_ parts: [String]) -> String { "^(" + parts.joined(separator: "|") + ")$" }
        var out: [Account] = []
        for user in credentials.adminUsers.sorted() {
            out.append(
                Account(
                    user: user, role: .admin, host: nil,
                    permissions: Permissions(configure: ".*", write: ".*", read: ".*", topicWrite: ".*")))
        }
        for user in credentials.controllerUsers.sorted() {
            // Own queues and reply queue; publishes to agents (topic-limited to aos-agent.<host>)
            // and replies through the default exchange.
            out.append(
                Account(
                    user: user, role: .controller, host: nil,
                    permissions: Permissions(
                        configure: anchored([e, c, c + "\\..*", c + "_fanout", c + "_fanout_.*", "reply_.*"]),
                        write: anchored([e, c, c + "\\..*", c + "_fanout_.*", "reply_.*", "amq\\.default"]),
                        read: anchored([e, c, c + "\\..*", c + "_fanout", c + "_fanout_.*", "reply_.*"]),
                        topicWrite: "^" + a + "\\..+$")))
        }
        for user in credentials.driverUsers.sorted() {
            // oslo.messaging's RPCClient: declares the exchange and its reply queue, publishes to
            // the controller's topic only, reads its replies.
            out.append(
                Account(
                    user: user, role: .driver, host: nil,
                    permissions: Permissions(
                        configure: anchored([e, "reply_.*"]), write: anchored([e]), read: anchored(["reply_.*"]),
                        topicWrite: "^" + c + "$")))
        }
        for host in hosts.sorted() {
            let h = regexEscaped(host)
            // Its own queues; announcements to the controllers' fanout exchange; replies through
            // the default exchange. No write on the control exchange: it cannot call anyone.
            out.append(
                Account(
                    user: credentials.agentUser(host: host), role: .agent, host: host,
                    permissions: Permissions(
                        configure: anchored([e, a, a + "\\." + h, a + "_fanout", a + "_fanout_.*", c + "_fanout"]),
                        write: anchored([a, a + "\\." + h, a + "_fanout_.*", c + "_fanout", "amq\\.default"]),
                        read: anchored([e, a, a + "\\." + h, a + "_fanout", a + "_fanout_.*"]),
                        topicWrite: "^$")))
        }
        return out
    }

    /// rabbitmqctl argument vectors, in order. `password(user)` gives each user's password.
    public func commands(password: (String) -> String) -> [[String]] {
        var out: [[String]] = [["add_vhost", vhost]]
        for acct in accounts {
            let p = acct.permissions
            out.append(["add_user", acct.user, password(acct.user)])
            out.append(["set_permissions", "-p", vhost, acct.user, p.configure, p.write, p.read])
            out.append(["set_topic_permissions", "-p", vhost, acct.user, exchange, p.topicWrite, ".*"])
        }
        return out
    }
}

/// Escapes regex metacharacters (host names have dots).
func regexEscaped(_ s: String) -> String {
    var out = ""
    for ch in s {
        if "\\^$.|?*+()[]{}".contains(ch) { out.append("\\") }
        out.append(ch)
    }
    return out
}
