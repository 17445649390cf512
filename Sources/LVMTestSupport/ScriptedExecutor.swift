import HostCommands
import SharedLVM
import Synchronization

/// A `CommandExecuting` for tests: records every argv and answers from a script of canned
/// results, so backend tests assert the exact commands without device-mapper.
///
/// Responses match on an argv prefix (first match wins; `once` responses are consumed).
/// An argv with no matching response gets `fallback` (default: exit 0, empty output).
public final class ScriptedCommandExecutor: CommandExecuting {
    public struct Response: Sendable {
        public var prefix: [String]
        public var result: CommandTermination
        public var stdout: String
        public var stderr: String
        public var once: Bool

        public init(prefix: [String], exit status: Int32 = 0, stdout: String = "", stderr: String = "", once: Bool = false) {
            self.prefix = prefix
            self.result = .exited(status)
            self.stdout = stdout
            self.stderr = stderr
            self.once = once
        }

        public init(prefix: [String], termination: CommandTermination, stdout: String = "", stderr: String = "", once: Bool = false) {
            self.prefix = prefix
            self.result = termination
            self.stdout = stdout
            self.stderr = stderr
            self.once = once
        }
    }

    private struct State {
        var responses: [Response] = []
        var calls: [[String]] = []
        var timeouts: [Duration] = []
    }
    private let state = Mutex(State())
    private let fallback: CommandTermination

    public init(_ responses: [Response] = [], fallback: CommandTermination = .exited(0)) {
        self.fallback = fallback
        state.withLock { $0.responses = responses }
    }

    /// Adds a response (checked before earlier ones, so a test can override a default).
    public func on(_ prefix: [String], exit status: Int32 = 0, stdout: String = "", stderr: String = "", once: Bool = false) {
        let response = Response(prefix: prefix, exit: status, stdout: stdout, stderr: stderr, once: once)
        state.withLock { $0.responses.insert(response, at: 0) }
    }

    /// Every argv run so far, in order.
    public var calls: [[String]] { state.withLock { $0.calls } }
    /// The timeout each call was given, in order.
    public var timeouts: [Duration] { state.withLock { $0.timeouts } }

    public func reset() {
        state.withLock {
            $0.calls = []; $0.timeouts = []
        }
    }

    public func run(_ argv: [String], timeout: Duration) async throws(CommandLaunchError) -> CommandResult {
        let fallback = self.fallback
        return state.withLock { s in
            s.calls.append(argv)
            s.timeouts.append(timeout)
            guard let index = s.responses.firstIndex(where: { argv.starts(with: $0.prefix) }) else {
                return CommandResult(argv: argv, termination: fallback)
            }
            let response = s.responses[index]
            if response.once { s.responses.remove(at: index) }
            return CommandResult(argv: argv, termination: response.result, stdout: response.stdout, stderr: response.stderr)
        }
    }
}
