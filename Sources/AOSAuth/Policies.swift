import RPCWire

/// Who may call which method of each server, in one place (docs/security.md has the same
/// table in prose). Method names are the wire names; tests check that every method the
/// servers serve has a rule here.
public enum Policies {
    /// The agent on `host`: only the controller and the admin command it; every mutating
    /// method must be a call on `aos-agent.<host>` with a deadline.
    public static func agent(host: String) -> ServerPolicy {
        let commanders: Set<Role> = [.controller, .admin]
        var rules: [String: MethodRule] = [:]
        for m in agentMutating { rules[m] = MethodRule(roles: commanders, mutating: true, directedOnly: true) }
        for m in agentQueries { rules[m] = MethodRule(roles: commanders, mutating: false) }
        return ServerPolicy(serverName: "the agent on \(host)", rules: rules)
    }

    public static let agentMutating = [
        "create_lv", "extend_lv", "refresh_lv", "delete_lv", "activate_lv", "deactivate_lv",
        "start_lockspace", "recover",
    ]
    public static let agentQueries = ["lv_info", "list_lvs", "vg_info", "lock_status", "health"]

    /// The controller: volume operations and queries from the Cinder driver and the admin;
    /// announcements only from the agent of the host they describe.
    public static func controller() -> ServerPolicy {
        let users: Set<Role> = [.driver, .admin]
        var rules: [String: MethodRule] = [:]
        for m in controllerMutating { rules[m] = MethodRule(roles: users, mutating: true) }
        for m in controllerQueries { rules[m] = MethodRule(roles: users, mutating: false) }
        rules[announceMethod] = MethodRule(roles: [.agent], mutating: false)
        return ServerPolicy(serverName: "the controller", rules: rules, argumentCheck: announcerIsItsHost)
    }

    public static let controllerMutating = [
        "create_volume", "extend_volume", "delete_volume", "activate_volume", "deactivate_volume",
    ]
    public static let controllerQueries = ["get_volume", "list_volumes", "pool_stats", "list_agents", "lock_status"]
    public static let announceMethod = "agent_announce"

    /// An agent announces only itself: the report's host is the principal's host.
    static let announcerIsItsHost: @Sendable (Principal, String, [String: JSONValue]) -> String? = { p, method, args in
        guard method == announceMethod, p.role == .agent else { return nil }
        guard case .object(let report)? = args["report"], case .string(let host)? = report["host"] else {
            return "an announcement must name its host (report.host)"
        }
        guard host == p.host else {
            return "an agent may announce only its own host '\(p.host ?? "?")', not '\(printable(host))'"
        }
        return nil
    }
}
