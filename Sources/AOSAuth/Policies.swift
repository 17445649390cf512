import AOSAPI
import RPCWire

/// Who may call which method of each server: the traits of the API's method enums
/// (`AgentMethod`, `ControllerMethod`), plus the one check that needs the arguments.
/// docs/security.md has the same table in prose.
public enum Policies {
    /// The agent on `host`: only the controller and the admin command it; every mutating
    /// method must be a call on `aos-agent.<host>` with a deadline.
    public static func agent(host: String) -> ServerPolicy {
        ServerPolicy(serverName: "the agent on \(host)", methods: AgentMethod.self)
    }

    /// The controller: volume operations and queries from the Cinder driver and the admin;
    /// announcements only from the agent of the host they describe.
    public static func controller() -> ServerPolicy {
        ServerPolicy(serverName: "the controller", methods: ControllerMethod.self, argumentCheck: announcerIsItsHost)
    }

    /// An agent announces only itself: the report's host is the principal's host.
    static let announcerIsItsHost: @Sendable (Principal, String, [String: JSONValue]) -> String? = { p, method, args in
        guard p.role == .agent else { return nil }
        let named: String?
        switch method {
        case ControllerMethod.agentAnnounce.rawValue:
            guard case .object(let report)? = args["report"], case .string(let host)? = report["host"] else {
                return "an announcement must name its host (report.host)"
            }
            named = host
        case ControllerMethod.agentHeartbeat.rawValue:
            guard case .string(let host)? = args["host"] else { return "a heartbeat must name its host (host)" }
            named = host
        default: named = nil
        }
        guard let host = named else { return nil }
        guard host == p.host else {
            return "an agent may announce only its own host '\(p.host ?? "?")', not '\(printable(host))'"
        }
        return nil
    }
}
