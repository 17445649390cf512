import AOSConfig
import Logging

#if canImport(Glibc)
import Glibc
#endif

/// What every aos executable does the same way at startup: load the layered
/// configuration, log to stderr (journald), write unbuffered status lines.
/// (Closures become services through swift-service-lifecycle's own ClosureService.)
public enum ProgramConfiguration {
    public static let defaultPath = "/etc/aos/aos.conf"

    /// `--config PATH` (or /etc/aos/aos.conf when it exists), then the environment
    /// (`AOS_<SECTION>_<KEY>`), then `--set section.key=value` overrides.
    ///
    /// Says on stderr (`<program>: warning: …`, before logging is set up) where the broker
    /// password is exposed: on the command line, or in a file that others may read
    /// (`SecretExposure`).
    public static func load(
        schema: ConfigSchema, path: String?, overrides: [String],
        warn: (String) -> Void = { Console.err($0) }
    ) throws(ConfigError) -> Configuration {
        let path = path ?? (HostEnvironment.fileExists(defaultPath) ? defaultPath : nil)
        var text: String?
        if let path { text = try HostEnvironment.readTextFile(path) }
        var parsed: [ConfigOverride] = []
        for o in overrides { parsed.append(try ConfigOverride.parse(o)) }
        let config = try schema.load(
            iniText: text, fileName: path ?? "aos.conf", env: HostEnvironment.environment(),
            overrides: parsed)
        for w in SecretExposure.warnings(config, path: path) { warn("\(schema.component): warning: \(w)") }
        return config
    }
}

public enum Console {
    /// One write(2) per call: unbuffered, so whoever reads our stdout sees it at once.
    public static func out(_ text: String) { write(fd: 1, text) }

    public static func err(_ line: String) { write(fd: 2, line + "\n") }

    private static func write(fd: Int32, _ text: String) {
        let bytes = Array(text.utf8)
        bytes.withUnsafeBytes { _ = Glibc.write(fd, $0.baseAddress, $0.count) }
    }
}

/// Logs go to stderr (journald adds time and unit); returns a logger at `level`.
public func bootstrapLogging(label: String, level: Logger.Level) -> Logger {
    LoggingSystem.bootstrap { label in
        var h = StreamLogHandler.standardError(label: label)
        h.logLevel = level
        return h
    }
    var logger = Logger(label: label)
    logger.logLevel = level
    return logger
}
