import AOSAPI
import AOSAuth
import OsloRPC
import RPCWire
import Testing

/// A request as the RPC server would hand it to admission.
func context(
    _ method: String, user: String? = nil, route: RPCRoute = .directed, call: Bool = true,
    deadline: Bool = true, routingKey: String = "aos-agent.node1",
    extra: [String: JSONValue] = [:]
) -> RPCCallContext {
    RPCCallContext(
        forMethod: method, context: extra, deadline: deadline ? .now + .seconds(30) : nil, uniqueID: "u1",
        isCall: call, userID: user, route: route, routingKey: routingKey,
        msgID: call ? "m1" : nil, replyQueue: call ? "reply_x" : nil)
}

func code(_ f: RPCFailure?) -> String? { f.map { ServiceError(failure: $0).code } }
func reason(_ f: RPCFailure?) -> String? { f.flatMap { ServiceError(failure: $0).details["reason"]?.stringValue } }

@Suite struct CredentialsTests {
    let creds = Credentials()

    @Test func brokerUsersMapToRoles() {
        #expect(creds.principal(brokerUser: "aos-controller")?.role == .controller)
        #expect(creds.principal(brokerUser: "aos-admin")?.role == .admin)
        #expect(creds.principal(brokerUser: "aos-driver")?.role == .driver)
        let agent = creds.principal(brokerUser: "aos-agent-node1")
        #expect(agent?.role == .agent)
        #expect(agent?.host == "node1")
        #expect(creds.principal(brokerUser: "aos-agent-") == nil)
        #expect(creds.principal(brokerUser: "guest") == nil)
        #expect(creds.principal(brokerUser: "nova") == nil)
    }

    @Test func agentFormatWithSuffix() {
        let c = Credentials(agentUserFormat: "agent@{host}.aos")
        #expect(c.agentUser(host: "n1") == "agent@n1.aos")
        #expect(c.principal(brokerUser: "agent@n1.aos")?.host == "n1")
        #expect(c.principal(brokerUser: "agent@n1") == nil)
    }
}

@Suite struct AgentAdmissionTests {
    let admission = Admission(policy: Policies.agent(host: "node1"), configuration: AuthConfiguration())

    @Test func controllerAndAdminMayCommand() {
        #expect(admission.check(context("delete_lv", user: "aos-controller"), [:]) == nil)
        #expect(admission.check(context("activate_lv", user: "aos-admin"), [:]) == nil)
        #expect(admission.check(context("health", user: "aos-controller", route: .topic), [:]) == nil)
    }

    @Test func otherRolesAreRefused() {
        for user in ["aos-agent-node2", "aos-agent-node1", "aos-driver", "guest"] {
            let f = admission.check(context("delete_lv", user: user), [:])
            #expect(code(f) == "not_authorized", "user \(user)")
        }
        #expect(reason(admission.check(context("health", user: "guest"), [:])) == "unknown_user")
        #expect(reason(admission.check(context("health", user: "aos-agent-node2"), [:])) == "role")
    }

    @Test func unauthenticatedIsRefused() {
        #expect(reason(admission.check(context("lv_info"), [:])) == "unauthenticated")
        #expect(reason(admission.check(context("no_such_method"), [:])) == "unauthenticated")
    }

    @Test func castsAndFanoutNeverMutate() {
        for m in AgentMethod.allCases.filter(\.isMutating).map(\.rawValue) {
            #expect(reason(admission.check(context(m, user: "aos-controller", route: .fanout), [:])) == "transport", "\(m)")
            #expect(reason(admission.check(context(m, user: "aos-controller", call: false), [:])) == "transport", "\(m)")
            #expect(reason(admission.check(context(m, user: "aos-controller", route: .topic), [:])) == "transport", "\(m)")
            #expect(reason(admission.check(context(m, user: "aos-controller", deadline: false), [:])) == "transport", "\(m)")
        }
    }

    @Test func transportRulesHoldWithoutEnforcement() {
        let lax = Admission(policy: Policies.agent(host: "node1"), configuration: AuthConfiguration(enforce: false))
        #expect(lax.check(context("delete_lv", user: "guest"), [:]) == nil)
        #expect(lax.check(context("delete_lv"), [:]) == nil)
        #expect(reason(lax.check(context("delete_lv", call: false), [:])) == "transport")
        #expect(reason(lax.check(context("deactivate_lv", route: .fanout), [:])) == "transport")
    }
}

@Suite struct ControllerAdmissionTests {
    let admission = Admission(policy: Policies.controller(), configuration: AuthConfiguration())

    func announce(host: String) -> [String: JSONValue] { ["report": ["host": .string(host)], "sent_at": 1.0] }

    @Test func volumeOperationsFromDriverAndAdminOnly() {
        #expect(admission.check(context("create_volume", user: "aos-driver", route: .topic), [:]) == nil)
        #expect(admission.check(context("list_agents", user: "aos-admin", route: .topic), [:]) == nil)
        for user in ["aos-agent-node1", "aos-controller", "guest"] {
            #expect(code(admission.check(context("create_volume", user: user, route: .topic), [:])) == "not_authorized")
        }
        #expect(
            reason(admission.check(context("delete_volume", user: "aos-driver", route: .topic, call: false), [:]))
                == "transport")
    }

    @Test func anAgentAnnouncesOnlyItself() {
        let cast = { (user: String?) in context("agent_announce", user: user, route: .fanout, call: false, deadline: false) }
        #expect(admission.check(cast("aos-agent-node1"), announce(host: "node1")) == nil)
        #expect(reason(admission.check(cast("aos-agent-node1"), announce(host: "node2"))) == "arguments")
        #expect(reason(admission.check(cast("aos-driver"), announce(host: "node1"))) == "role")
        #expect(reason(admission.check(cast(nil), announce(host: "node1"))) == "unauthenticated")
        #expect(reason(admission.check(cast("aos-agent-node1"), ["report": "x"])) == "arguments")
    }

    @Test func anAgentSendsHeartbeatsOnlyForItself() {
        let cast = { (user: String?) in context("agent_heartbeat", user: user, route: .fanout, call: false, deadline: false) }
        let hb = { (host: JSONValue) -> [String: JSONValue] in
            ["host": host, "instance_id": "r", "report_sent_at": 1.0, "sent_at": 1.0]
        }
        #expect(admission.check(cast("aos-agent-node1"), hb("node1")) == nil)
        #expect(reason(admission.check(cast("aos-agent-node1"), hb("node2"))) == "arguments")
        #expect(reason(admission.check(cast("aos-agent-node1"), hb(1))) == "arguments")
        #expect(reason(admission.check(cast("aos-driver"), hb("node1"))) == "role")
        #expect(reason(admission.check(cast(nil), hb("node1"))) == "unauthenticated")
    }
}

@Suite struct SignatureTests {
    let key = SigningKey.Private()
    let args: [String: JSONValue] = ["name": "volume-1", "size_gb": 2, "note": "é\u{7f}\"\n", "l": [1, 2.5, nil, true]]
    let now = 1_800_000_000.0

    func signed(
        target: String = "aos-controller", method: String = "create_volume", args: [String: JSONValue]? = nil,
        ts: Double? = nil, nonce: String = "0123456789abcdef"
    ) -> [String: JSONValue] {
        let sig = RequestSignature.sign(
            with: key, target: target, method: method, version: "1.0",
            timestampMillis: Int64((ts ?? now) * 1000), nonce: nonce, args: args ?? self.args)
        return [RequestSignature.contextKey: sig]
    }

    func admission(enforce: Bool = true) -> Admission {
        var config = AuthConfiguration(enforce: enforce)
        config.credentials.signingKeys = [.driver: [key.publicKey]]
        let t = now
        return Admission(policy: Policies.controller(), configuration: config, wallClock: { t })
    }

    func ctx(_ extra: [String: JSONValue], method: String = "create_volume", routingKey: String = "aos-controller") -> RPCCallContext {
        var c = context(method, route: .topic, routingKey: routingKey, extra: extra)
        c.version = "1.0"
        return c
    }

    @Test func validSignatureIsTheDriver() {
        let a = admission()
        let p = try? a.identify(ctx(signed()), args).get()
        #expect(p?.role == .driver)
        #expect(a.check(ctx(signed(nonce: "00000000000000a1")), args) == nil)
    }

    @Test func tamperedRequestsAreRefused() {
        let a = admission()
        var changed = args
        changed["size_gb"] = 3
        #expect(reason(a.check(ctx(signed()), changed)) == "bad_signature")
        #expect(reason(a.check(ctx(signed(), method: "delete_volume"), args)) == "bad_signature")
        #expect(reason(a.check(ctx(signed(), routingKey: "aos-controller.other"), args)) == "bad_signature")
        let other = SigningKey.Private()
        let foreign = RequestSignature.sign(
            with: other, target: "aos-controller", method: "create_volume", version: "1.0",
            timestampMillis: Int64(now * 1000), nonce: "0123456789abcdee", args: args)
        #expect(reason(a.check(ctx([RequestSignature.contextKey: foreign]), args)) == "unknown_key")
    }

    @Test func staleAndReplayedSignaturesAreRefused() {
        let a = admission()
        #expect(reason(a.check(ctx(signed(ts: now - 120)), args)) == "clock_skew")
        #expect(reason(a.check(ctx(signed(ts: now + 120)), args)) == "clock_skew")
        let once = signed(nonce: "feedfacefeedface")
        #expect(a.check(ctx(once), args) == nil)
        #expect(reason(a.check(ctx(once), args)) == "replay")
    }

    @Test func malformedSignatureEntries() {
        let a = admission()
        let bad: [JSONValue] = [
            "x", ["key": 1], ["key": "AAAA", "ts": 1, "nonce": "0123456789abcdef", "sig": "AAAA"],
            ["key": .string(key.publicKey.base64), "ts": "1", "nonce": "0123456789abcdef", "sig": "AAAA"],
            ["key": .string(key.publicKey.base64), "ts": 1, "nonce": "XYZ", "sig": "AAAA"],
        ]
        for entry in bad {
            #expect(reason(a.check(ctx([RequestSignature.contextKey: entry]), args)) == "bad_signature", "\(entry)")
        }
    }

    @Test func keysRoundTripThroughBase64() {
        let text = key.base64
        #expect(SigningKey.Private(base64: text)?.publicKey == key.publicKey)
        #expect(SigningKey.Public(base64: key.publicKey.base64) == key.publicKey)
        #expect(SigningKey.Public(base64: "not base64") == nil)
        #expect(SigningKey.Public(base64: "AAAA") == nil)
    }

    /// The canonical bytes are Python's json.dumps(doc, sort_keys=True): checked here for the
    /// shape, and against Python itself in Tests/interop/test_authorization.py.
    @Test func canonicalFormMatchesPythonJSON() {
        let bytes = RequestSignature.signedBytes(
            target: "t", method: "m", namespace: nil, version: "1.0",
            timestampMillis: 5, nonce: "ab", args: ["b": 1, "a": "é"])
        #expect(
            String(decoding: bytes, as: UTF8.self)
                == #"["aos-rpc-sig-v1", "t", "m", null, "1.0", 5, "ab", {"a": "\u00e9", "b": 1}]"#)
    }
}
