import HostSupport
import Subprocess

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// How a command ended. `timedOut` means the runner killed it (SIGKILL) after its timeout.
public enum CommandTermination: Sendable, Hashable, CustomStringConvertible {
    case exited(Int32)
    case signaled(Int32)
    case timedOut

    public var isSuccess: Bool { self == .exited(0) }

    public var description: String {
        switch self {
        case .exited(let code): return "exit \(code)"
        case .signaled(let signal): return "signal \(signal)"
        case .timedOut: return "timed out"
        }
    }
}

/// A command that could not run at all: missing executable, spawn failure, output over its
/// limit. (A non-zero exit is a `CommandResult`, not this.)
public struct CommandLaunchError: Error, Sendable, Hashable, CustomStringConvertible {
    public var message: String
    public var argv: [String]

    public init(message: String, argv: [String] = []) {
        self.message = message
        self.argv = argv
    }

    public var description: String { argv.isEmpty ? message : "\(message) [\(argv.joined(separator: " "))]" }
}

/// What a finished command produced.
public struct CommandResult: Sendable, Hashable {
    public var argv: [String]
    public var termination: CommandTermination
    public var stdout: String
    public var stderr: String

    public init(argv: [String], termination: CommandTermination, stdout: String = "", stderr: String = "") {
        self.argv = argv
        self.termination = termination
        self.stdout = stdout
        self.stderr = stderr
    }
}

/// Runs one command given as argv. The seam between the LVM backend, device-mapper and
/// hypervisor code and the OS: tests inject a scripted executor (LVMTestSupport) that
/// records argv and returns canned results.
///
/// A non-zero exit is a normal result, not an error; implementations throw only when the
/// command could not run at all (missing executable, spawn failure).
public protocol CommandExecuting: Sendable {
    func run(_ argv: [String], timeout: Duration) async throws(CommandLaunchError) -> CommandResult
}

/// Runs commands (lvm, dmsetup, virsh, dd) through swift-subprocess: argv only (never a
/// shell), a minimal explicit environment (`childEnvironment`: `LC_ALL=C` so the error texts
/// the LVM error classifier knows are in English), and a timeout after which the child is
/// sent SIGKILL.
public struct CommandRunner: CommandExecuting {
    /// Variables of the agent's own environment that reach its children, when set: LVM's
    /// configuration directory (an operator's alternative to /etc/lvm). Nothing else is
    /// inherited: the agent's environment may hold secrets (AOS_DEFAULT_TRANSPORT_URL with
    /// the broker password) that LVM, dmsetup, virsh or dd have no business seeing.
    public static let passedThrough = ["LVM_SYSTEM_DIR"]

    /// The whole environment of a child: PATH = `searchPath`, `LC_ALL=C`,
    /// `LVM_SUPPRESS_FD_WARNINGS=1` (LVM would complain about inherited descriptors), and the
    /// `passedThrough` variables found in `inherited`.
    public static func childEnvironment(searchPath: String, inherited: [String: String]) -> [String: String] {
        var env = ["PATH": searchPath, "LC_ALL": "C", "LVM_SUPPRESS_FD_WARNINGS": "1"]
        for name in passedThrough {
            if let value = inherited[name] { env[name] = value }
        }
        return env
    }

    /// Executables are looked up here, not in the agent's inherited PATH: systemd units and
    /// operators' shells differ, and LVM tools live in sbin.
    public var searchPath: String
    /// Large enough for `lvs` of a VG with tens of thousands of LVs (~500 bytes each).
    public var stdoutLimit: Int
    public var stderrLimit: Int
    /// After SIGKILL, how long to wait for the child to be reaped before reporting
    /// `timed_out` anyway: a process stuck in uninterruptible I/O (a queued multipath
    /// device) cannot die until the I/O returns, and the caller must not hang with it.
    public var reapGrace: Duration

    public init(
        searchPath: String = "/usr/sbin:/usr/bin:/sbin:/bin",
        stdoutLimit: Int = 64 << 20,
        stderrLimit: Int = 1 << 20,
        reapGrace: Duration = .seconds(5)
    ) {
        self.searchPath = searchPath
        self.stdoutLimit = stdoutLimit
        self.stderrLimit = stderrLimit
        self.reapGrace = reapGrace
    }

    public func run(_ argv: [String], timeout: Duration) async throws(CommandLaunchError) -> CommandResult {
        guard let program = argv.first, !program.isEmpty else {
            throw CommandLaunchError(message: "empty command")
        }
        // First result wins; a late reap after the watchdog fired is dropped.
        let outcome = OneShot<Result<CommandResult, CommandLaunchError>>()
        let runner = self
        // A started LVM command runs to completion or to its timeout even if our caller is
        // cancelled: killing lvcreate halfway because an RPC caller gave up helps no one.
        // Hence an unstructured task (it does not inherit cancellation).
        let work = Task {
            let result = await runner.spawnWithTimeout(argv: argv, timeout: timeout)
            outcome.fulfil(result)
        }
        let watchdog = Task {
            try? await Task.sleep(for: timeout + runner.reapGrace)
            if !Task.isCancelled {
                outcome.fulfil(
                    .success(
                        CommandResult(
                            argv: argv, termination: .timedOut,
                            stderr: "child not reaped after SIGKILL")))
            }
        }
        let result = await outcome.value()
        watchdog.cancel()
        _ = work
        return try result.get()
    }

    private func spawnWithTimeout(argv: [String], timeout: Duration) async -> Result<CommandResult, CommandLaunchError> {
        let program = argv[0]
        let searchPath = self.searchPath
        let stdoutLimit = self.stdoutLimit, stderrLimit = self.stderrLimit

        return await withTaskGroup(of: Step.self) { group in
            group.addTask {
                let executable: Executable = program.contains("/") ? .path(.init(program)) : .name(program)
                var inherited: [String: String] = [:]
                for name in CommandRunner.passedThrough {
                    if let value = getenv(name) { inherited[name] = String(cString: value) }
                }
                var variables: [Environment.Key: String] = [:]
                for (k, v) in CommandRunner.childEnvironment(searchPath: searchPath, inherited: inherited) {
                    if let key = Environment.Key(rawValue: k) { variables[key] = v }
                }
                let environment = Environment.custom(variables)
                var options = PlatformOptions()
                options.teardownSequence = []  // the sequence always ends in SIGKILL; nothing before it
                let arguments = Arguments(Array(argv.dropFirst()))
                do {
                    let r = try await Subprocess.run(
                        executable, arguments: arguments, environment: environment,
                        platformOptions: options, input: .none,
                        output: .bytes(limit: stdoutLimit), error: .bytes(limit: stderrLimit)
                    )
                    let termination: CommandTermination
                    switch r.terminationStatus {
                    case .exited(let code): termination = .exited(code)
                    case .signaled(let signal): termination = .signaled(signal)
                    }
                    return .finished(
                        .success(
                            CommandResult(
                                argv: argv, termination: termination,
                                stdout: String(decoding: r.standardOutput, as: UTF8.self),
                                stderr: String(decoding: r.standardError, as: UTF8.self))))
                } catch {
                    return .finished(.failure(CommandLaunchError(message: "cannot run \(program): \(error)", argv: argv)))
                }
            }
            group.addTask {
                do { try await Task.sleep(for: timeout) } catch { return .cancelled }
                return .timerFired
            }
            var timedOut = false
            while let step = await group.next() {
                switch step {
                case .timerFired:
                    // Cancelling the run makes swift-subprocess apply the teardown: SIGKILL.
                    timedOut = true
                    group.cancelAll()
                case .cancelled:
                    continue
                case .finished(let result):
                    group.cancelAll()
                    if timedOut {
                        let stderr = (try? result.get().stderr) ?? ""
                        return .success(CommandResult(argv: argv, termination: .timedOut, stderr: stderr))
                    }
                    return result
                }
            }
            return .failure(CommandLaunchError(message: "command runner lost its result", argv: argv))
        }
    }

    private enum Step: Sendable {
        case finished(Result<CommandResult, CommandLaunchError>)
        case timerFired
        case cancelled
    }
}
