/// The admin CLI's options (`aosctl`): `[aosctl]`, the controller's topic, and messaging.
public enum CLIOptions {
    public static let timeout = OptionSpec(
        "aosctl", "timeout", type: .integer(min: 1), default: .int(60),
        help: "Seconds aosctl waits for a reply before it gives up (exit code 6).")
    public static let output = OptionSpec(
        "aosctl", "output", type: .choice(["table", "json"]), default: .string("table"),
        help: "Default output format (--json overrides it).")
    public static let logLevel = OptionSpec(
        "aosctl", "log_level", type: .choice(logLevels), default: .string("warning"),
        help: "Least severe log level written to stderr.")

    public static let options: [OptionSpec] = [timeout, output, logLevel]

    /// Everything `aosctl` reads: it calls the controller on `[controller] topic`.
    public static let schema = ConfigSchema(
        component: "aosctl", options: CommonOptions.all + [ControllerOptions.topic] + options,
        lenientSections: ["agent", "controller", "auth"],
        checks: [CommonOptions.sslFilesNeedSSL])

    /// The CLI's settings, typed.
    public struct Settings: Sendable, Equatable {
        public var messaging: CommonOptions.Messaging
        public var controllerTopic: String
        public var timeout: Int
        public var output: String
        public var logLevel: String

        public init(_ c: Configuration) {
            messaging = CommonOptions.Messaging(c)
            controllerTopic = c.string(ControllerOptions.topic)
            timeout = c.int(CLIOptions.timeout)
            output = c.string(CLIOptions.output)
            logLevel = c.string(CLIOptions.logLevel)
        }
    }
}

/// All programs' options together: for checking a shared aos.conf and writing the example file.
public enum AOSSchemas {
    public static let all: ConfigSchema = AgentOptions.schema
        .merging(ControllerOptions.schema)
        .merging(CLIOptions.schema, component: "aos (all programs)")
}
