import AOSAPI
import AOSAuth
import Logging
import OsloRPC
import RPCWire

/// The agent's oslo RPC endpoint: one handler per `AgentMethod`, version 1.0, no namespace.
/// Handlers pass the caller's deadline (from the message TTL) down so the service can refuse
/// work the caller gave up on after waiting for its LV or a slot.
public enum AgentRPC {
    public static let topic = "aos-agent"
    public static let version = RPCVersion(major: 1, minor: 0)
    /// Default topic announcements go to (`[agent] controller_topic`):
    /// `fanoutCast(topic: announceTopic, method: announceMethod)`.
    public static let announceTopic = "aos-controller"
    public static let announceMethod = "agent_announce"
    /// The short announcement between full ones (`AnnouncementPlanner`).
    public static let heartbeatMethod = "agent_heartbeat"
    /// Context key a caller sets to the `instance_id` it expects (from announcements).
    public static let instanceContextKey = "aos_agent_instance"

    public static func endpoint(_ service: AgentService) -> RPCEndpoint {
        var handlers: [String: RPCHandler] = [:]
        for method in AgentMethod.allCases {
            let name = method.rawValue
            handlers[name] = { ctx, args in
                if let expected = ctx.context[instanceContextKey]?.stringValue, expected != service.instanceID {
                    throw ServiceError(
                        .agentRestarted,
                        "\(name) was sent to an earlier run of the agent on \(service.host) and was not executed; retry it",
                        details: [
                            "host": .string(service.host), "method": .string(name),
                            "expected_instance": .string(expected), "instance": .string(service.instanceID),
                        ])
                }
                return try await service.handle(method: name, args: args, deadline: ctx.deadline)
            }
        }
        return RPCEndpoint(namespace: nil, version: version, handlers: handlers)
    }

    /// Who may call this agent and how (AOSAuth.Policies.agent): the controller and the
    /// admin only; state changes only as calls on `aos-agent.<host>` with a deadline.
    public static func admission(host: String, auth: AuthConfiguration, logger: Logger) -> Admission {
        Admission(
            policy: Policies.agent(host: host), configuration: auth,
            onEvent: { event in
                logAdmission(event, logger: logger)
            })
    }
}

/// Refusals are logged by the RPC server; here the migration mode's "would refuse" and, at
/// debug level, who was admitted.
func logAdmission(_ event: AdmissionEvent, logger: Logger) {
    switch event {
    case .admitted(let principal, let method):
        logger.debug("request admitted", metadata: ["method": "\(method)", "principal": "\(principal)"])
    case .refused:
        break
    case .wouldRefuse(let method, let message):
        logger.warning(
            "[auth] enforce = false: this request would be refused",
            metadata: [
                "method": "\(method)", "reason": "\(message)",
            ])
    }
}
