import AMQPClient
import AOSAPI
import AOSConfig
import AOSRuntime
import ArgumentParser
import Logging
import OsloRPC
import RPCWire

#if canImport(Glibc)
import Glibc
#endif

/// Options every aosctl command takes (before or after the command name).
struct GlobalOptions: ParsableArguments {
    @Option(
        help:
            "Transport URL of the broker (rabbit:// or amqp://); overrides [DEFAULT] transport_url. Other users can read a command line: aosctl warns when this URL holds a password; keep it in the configuration file (mode 600) or in AOS_DEFAULT_TRANSPORT_URL."
    )
    var url: String?

    @Option(help: "Configuration file (default: /etc/aos/aos.conf when it exists).")
    var config: String?

    @Option(
        name: .customLong("set"),
        help: ArgumentHelp(
            "Override one option, e.g. controller.topic=aos-controller (repeatable).",
            valueName: "section.key=value"))
    var overrides: [String] = []

    @Option(help: "Seconds to wait for a reply (default: [aosctl] timeout, 60).")
    var timeout: Int?

    @Flag(help: "Print the result as JSON on stdout (messages stay on stderr).")
    var json = false

    @Option(help: ArgumentHelp("Talk to this host's agent directly instead of the controller.", valueName: "HOST"))
    var direct: String?

    /// Options that take a value, and flags: what `hoistingGlobals` may move.
    static let valued: Set<String> = ["--url", "--config", "--set", "--timeout", "--direct"]
    static let flags: Set<String> = ["--json"]

    /// Moves global options given before the command name to the end, so that
    /// `aosctl --json --direct h volume list` parses like `aosctl volume list --json --direct h`.
    static func hoistingGlobals(_ args: [String]) -> [String] {
        var leading: [String] = []
        var i = 0
        while i < args.count {
            let a = args[i]
            let name = a.split(separator: "=", maxSplits: 1).first.map(String.init) ?? a
            if flags.contains(a) {
                leading.append(a)
                i += 1
            } else if valued.contains(name) {
                leading.append(a)
                if !a.contains("="), i + 1 < args.count { leading.append(args[i + 1]); i += 1 }
                i += 1
            } else {
                break
            }
        }
        // Only when a command follows: `aosctl --json` alone still gets the parser's message.
        guard !leading.isEmpty, i < args.count else { return args }
        return Array(args[i...]) + leading
    }
}

/// A connected aosctl: configuration, broker connection and RPC client.
struct Session {
    let options: GlobalOptions
    let settings: CLIOptions.Settings
    let connection: AMQPConnection
    let client: RPCClient
    let timeout: Duration
    var json: Bool { options.json || settings.output == "json" }

    static func open(_ options: GlobalOptions) async throws(CLIError) -> Session {
        let loaded: Configuration
        do {
            loaded = try loadConfiguration(options)
        } catch {
            throw CLIError(.invalidArgument, "configuration error:\n\(error)")
        }
        let settings = CLIOptions.Settings(loaded)
        let logger = bootstrapLogging(label: "aosctl", level: Logger.Level(rawValue: settings.logLevel) ?? .warning)
        var amqp: AMQPConfiguration
        do {
            // [oslo_messaging_rabbit] ssl, ssl_ca_file, … apply here as in the daemons.
            amqp = try settings.messaging.amqpConfiguration()
        } catch {
            throw CLIError(.invalidArgument, "bad transport URL: \(error)")
        }
        amqp.connectionName = "aosctl"
        amqp.reconnectInitialDelay = .milliseconds(200)
        amqp.reconnectMaxDelay = .seconds(2)
        let connection = AMQPConnection(configuration: amqp, logger: logger)
        let timeout = Duration.seconds(options.timeout ?? settings.timeout)
        do {
            try await connection.waitUntilConnected(timeout: min(timeout, .seconds(10)))
        } catch {
            throw CLIError(
                .messagingError,
                "cannot reach the message broker \(amqp.url) (check --url / transport_url and that RabbitMQ runs): \(error)")
        }
        var flavor = QueueFlavor(options: amqp.url.query)
        flavor.durableQueues = settings.messaging.amqpDurableQueues || flavor.durableQueues
        flavor.quorumQueues = settings.messaging.rabbitQuorumQueue || flavor.quorumQueues
        return Session(
            options: options, settings: settings, connection: connection,
            client: RPCClient(connection: connection, flavor: flavor, logger: logger), timeout: timeout)
    }

    static func loadConfiguration(_ o: GlobalOptions) throws(ConfigError) -> Configuration {
        // --url and --timeout are shorthands for --set overrides (the last word wins).
        var overrides = o.overrides
        if let url = o.url { overrides.append("DEFAULT.transport_url=\(url)") }
        if let t = o.timeout { overrides.append("aosctl.timeout=\(t)") }
        return try ProgramConfiguration.load(schema: CLIOptions.schema, path: o.config, overrides: overrides)
    }

    /// Calls the controller's API (version 1.0).
    func controller(_ method: String, _ args: [String: JSONValue] = [:]) async throws(CLIError) -> JSONValue {
        try await Interrupt.waiting(mutating: ControllerMethod(rawValue: method)?.traits.mutating ?? true) { () async throws(CLIError) in
            try await callController(method, args)
        }
    }

    private func callController(_ method: String, _ args: [String: JSONValue]) async throws(CLIError) -> JSONValue {
        let topic = settings.controllerTopic
        do {
            return try await client.call(
                RPCTarget(exchange: settings.messaging.controlExchange, topic: topic),
                method: method, args: args, timeout: timeout, version: "1.0")
        } catch let e as RPCCallError {
            throw CLIError(e, calling: "the controller (topic \(topic))")
        } catch {
            throw CLIError(.internal, "\(error)")
        }
    }

    /// Calls one agent's API directly (topic aos-agent, server = host).
    func agent(_ host: String, _ method: String, _ args: [String: JSONValue] = [:]) async throws(CLIError) -> JSONValue {
        try await Interrupt.waiting(mutating: AgentMethod(rawValue: method)?.traits.mutating ?? true) { () async throws(CLIError) in
            try await callAgent(host, method, args)
        }
    }

    private func callAgent(_ host: String, _ method: String, _ args: [String: JSONValue]) async throws(CLIError) -> JSONValue {
        do {
            return try await client.call(
                RPCTarget(exchange: settings.messaging.controlExchange, topic: "aos-agent", server: host),
                method: method, args: args, timeout: timeout, version: "1.0")
        } catch let e as RPCCallError {
            var err = CLIError(e, calling: "the agent on \(host)")
            if case .undeliverable = e { err.code = "agent_unavailable" }
            throw err
        } catch {
            throw CLIError(.internal, "\(error)")
        }
    }

    /// A volume operation: through the controller (which picks or is told the host), or with
    /// --direct straight to that host's agent, whose API needs the VG and takes no host.
    func volumeCall(
        direct: String?, agentMethod: String, controllerMethod: String, vg: String?,
        host: String? = nil, _ args: [String: JSONValue]
    ) async throws(CLIError) -> JSONValue {
        var args = args
        if let direct {
            args["vg"] = .string(try await directVG(direct, vg))
            return try await agent(direct, agentMethod, args)
        }
        if let vg { args["vg"] = .string(vg) }
        if let host { args["host"] = .string(host) }
        return try await controller(controllerMethod, args)
    }

    /// With --direct: the VG to use (the given one, or the only one the agent serves).
    func directVG(_ host: String, _ vg: String?) async throws(CLIError) -> String {
        if let vg { return vg }
        let health = try await agent(host, "health")
        let vgs = (health["vgs"]?.objectValue ?? [:]).keys.sorted()
        guard vgs.count == 1 else {
            throw CLIError(
                .invalidArgument,
                "name the volume group with --vg (the agent on \(host) serves \(vgs.isEmpty ? "none" : vgs.joined(separator: ", ")))")
        }
        return vgs[0]
    }
}

/// Runs one command: opens a session, runs `body`, prints its result (JSON or human text),
/// maps errors to messages and exit codes.
func runCommand(_ options: GlobalOptions, _ body: (Session) async throws(CLIError) -> (JSONValue, String)) async throws {
    var status = CLIExitStatus.ok
    do {
        let session = try await Session.open(options)
        do {
            let (data, human) = try await body(session)
            if session.json { stdoutLine(JSONWriter.serialize(data)) } else if !human.isEmpty { stdoutText(human) }
        } catch {
            report(error, json: session.json)
            status = error.status
        }
        await session.connection.close()
    } catch {
        report(error, json: options.json)
        status = error.status
    }
    if status != .ok { throw ExitCode(status.rawValue) }
}

func report(_ e: CLIError, json: Bool) {
    if json && !e.documentPrinted { stdoutLine(JSONWriter.serialize(e.json)) }
    stderrLine("aosctl: \(e.code): \(e.message)")
    if let hint = e.details["hint"]?.stringValue, !e.message.contains(hint) { stderrLine("hint: \(hint)") }
}

func stdoutText(_ s: String) {
    let bytes = Array((s.hasSuffix("\n") ? s : s + "\n").utf8)
    bytes.withUnsafeBytes { _ = write(1, $0.baseAddress, $0.count) }
}

func stdoutLine(_ s: String) { stdoutText(s) }

func stderrLine(_ s: String) {
    let bytes = Array((s + "\n").utf8)
    bytes.withUnsafeBytes { _ = write(2, $0.baseAddress, $0.count) }
}
