import AOSConfig
import HostCommands

/// The real host for `Preflight.run`: files under `root` (empty: the host's own; tests and
/// operators may point it at a copy), commands through `CommandRunner` (argv only, never a
/// shell, `LC_ALL=C`), each bounded by `timeout`.
public struct PreflightSystemHost: PreflightHost {
    public var root: String
    public var runner: CommandRunner
    public var timeout: Duration

    public init(root: String = "", runner: CommandRunner = CommandRunner(stdoutLimit: 4 << 20), timeout: Duration = .seconds(15)) {
        self.root = root
        self.runner = runner
        self.timeout = timeout
    }

    public func readFile(_ path: String) -> String? {
        let full = root + path
        guard HostEnvironment.fileExists(full) else { return nil }
        return try? HostEnvironment.readTextFile(full)
    }

    public func exists(_ path: String) -> Bool { HostEnvironment.fileExists(root + path) }

    public func run(_ argv: [String]) async -> CommandResult? {
        do { return try await runner.run(argv, timeout: timeout) } catch { return nil }
    }
}
