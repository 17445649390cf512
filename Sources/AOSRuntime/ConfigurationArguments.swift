import AOSConfig
import ArgumentParser

/// `--config PATH` and `--set section.key=value`: how every aos program is told where its
/// configuration is and what to override. Commands take it as an `@OptionGroup`.
public struct ConfigurationArguments: ParsableArguments {
    @Option(help: "Configuration file (default: /etc/aos/aos.conf when it exists).")
    public var config: String?

    @Option(
        name: .customLong("set"),
        help: ArgumentHelp(
            "Override one option, e.g. DEFAULT.host=cmp-1 (repeatable).",
            valueName: "section.key=value"))
    public var overrides: [String] = []

    public init() {}

    /// The layered configuration: `--set` > environment > `--config` file > defaults.
    public func load(_ schema: ConfigSchema) throws(ConfigError) -> Configuration {
        try ProgramConfiguration.load(schema: schema, path: config, overrides: overrides)
    }

    /// `load` for a program's main command: a configuration error is printed as
    /// "<program>: configuration error:" and ends the program with exit status 2.
    public func loadOrExit(_ schema: ConfigSchema, program: String) throws -> Configuration {
        do { return try load(schema) } catch {
            Console.err("\(program): configuration error:\n\(error)")
            throw ExitCode(2)
        }
    }
}
