/// The controller's options (`aos-controller`): `[controller]` plus the common messaging options.
public enum ControllerOptions {
    public static let topic = OptionSpec(
        "controller", "topic", type: .string, default: .string("aos-controller"),
        help: "RPC topic the controller listens on (the Cinder driver, nova and aosctl call it there).")
    public static let agentResponseTimeout = OptionSpec(
        "controller", "agent_response_timeout", type: .integer(min: 1), default: .int(2888),
        help: "Seconds the controller waits for an agent's reply before the request fails (as the driver's agent_response_timeout).")
    public static let agentStaleAfter = OptionSpec(
        "controller", "agent_stale_after", type: .integer(min: 1), default: .int(30),
        help: "Seconds without an announcement after which an agent is shown as stale.")
    public static let agentDownAfter = OptionSpec(
        "controller", "agent_down_after", type: .integer(min: 1), default: .int(60),
        help: "Seconds without an announcement after which an agent counts as down and gets no new requests.")
    public static let preferredHosts = OptionSpec(
        "controller", "preferred_hosts", type: .list, default: .list([]),
        help: "Hosts preferred, in order, for requests that any host can serve (e.g. create, extend); empty: any live agent.")
    public static let logLevel = OptionSpec(
        "controller", "log_level", type: .choice(logLevels), default: .string("info"),
        help: "Least severe log level written.")

    public static let maxRequestBytes = OptionSpec(
        "controller", "max_request_bytes", type: .integer(min: 4096, max: 64 << 20), default: .int(1 << 20),
        help:
            "Largest request body the controller takes (announcements of hosts with many LVs are the largest); a larger one is refused with a ValueError."
    )

    public static let dispatchOnConnectionThread = OptionSpec(
        "controller", "dispatch_on_connection_thread", type: .boolean, default: .bool(false),
        help:
            "Run each request, and the agent calls it makes, on the broker connection's I/O thread instead of the shared thread pool: no thread hand-off per message. Safe (no handler blocks a thread) and cheaper (counted: ~30 % fewer system calls and context switches, 10-20 % less CPU), but the Cinder driver's calls measured no faster and their p99 higher (docs/performance.md)."
    )

    public static let options: [OptionSpec] = [
        topic, agentResponseTimeout, agentStaleAfter, agentDownAfter, preferredHosts, logLevel, maxRequestBytes,
        dispatchOnConnectionThread,
    ]

    static let downAfterStale: @Sendable (Configuration) -> String? = { c in
        c.int(agentDownAfter) >= c.int(agentStaleAfter)
            ? nil
            : "[controller] agent_down_after (\(c.int(agentDownAfter))) must not be less than agent_stale_after (\(c.int(agentStaleAfter)))"
    }

    /// Everything `aos-controller` reads. Other programs' sections in the same file are tolerated.
    public static let schema = ConfigSchema(
        component: "aos-controller", options: CommonOptions.all + options + MetricsOptions.controller + AuthOptions.options,
        lenientSections: ["agent", "aosctl"],
        checks: [CommonOptions.sslFilesNeedSSL, downAfterStale, AuthOptions.formatHasHost] + MetricsOptions.controllerChecks)

    /// The controller's settings, typed.
    public struct Settings: Sendable, Equatable {
        public var messaging: CommonOptions.Messaging
        public var auth: AuthOptions.Settings
        public var maxRequestBytes: Int
        public var topic: String
        public var agentResponseTimeout: Int
        public var agentStaleAfter: Int
        public var agentDownAfter: Int
        public var preferredHosts: [String]
        public var logLevel: String
        public var dispatchOnConnectionThread: Bool

        public init(_ c: Configuration) {
            messaging = CommonOptions.Messaging(c)
            auth = AuthOptions.Settings(c)
            maxRequestBytes = c.int(ControllerOptions.maxRequestBytes)
            topic = c.string(ControllerOptions.topic)
            agentResponseTimeout = c.int(ControllerOptions.agentResponseTimeout)
            agentStaleAfter = c.int(ControllerOptions.agentStaleAfter)
            agentDownAfter = c.int(ControllerOptions.agentDownAfter)
            preferredHosts = c.list(ControllerOptions.preferredHosts)
            logLevel = c.string(ControllerOptions.logLevel)
            dispatchOnConnectionThread = c.bool(ControllerOptions.dispatchOnConnectionThread)
        }
    }
}
