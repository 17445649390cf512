import HostCommands
import Testing

/// The real runner with harmless programs (no LVM here).
struct CommandRunnerTests {
    let runner = CommandRunner()

    @Test func capturesOutputAndStatus() async throws {
        let result = try await runner.run(["sh", "-c", "echo out; echo err >&2; exit 3"], timeout: .seconds(10))
        #expect(result.termination == .exited(3))
        #expect(result.stdout == "out\n")
        #expect(result.stderr == "err\n")
        #expect(result.argv == ["sh", "-c", "echo out; echo err >&2; exit 3"])
    }

    @Test func argvIsNotAShell() async throws {
        let result = try await runner.run(["echo", "a; echo b", "$HOME"], timeout: .seconds(10))
        #expect(result.stdout == "a; echo b $HOME\n")
    }

    @Test func environmentIsPinned() async throws {
        let result = try await runner.run(["env"], timeout: .seconds(10))
        let lines = result.stdout.split(separator: "\n").map(String.init)
        #expect(lines.contains("LC_ALL=C"))
        #expect(lines.contains("LVM_SUPPRESS_FD_WARNINGS=1"))
        #expect(lines.contains("PATH=/usr/sbin:/usr/bin:/sbin:/bin"))
    }

    @Test func absolutePath() async throws {
        let result = try await runner.run(["/bin/sh", "-c", "exit 0"], timeout: .seconds(10))
        #expect(result.termination.isSuccess)
    }

    @Test func timeoutKills() async throws {
        let result = try await runner.run(["sleep", "30"], timeout: .milliseconds(300))
        #expect(result.termination == .timedOut)  // killed: a finished sleep would be a success
    }

    @Test func missingExecutable() async {
        let error = await #expect(throws: CommandLaunchError.self) {
            _ = try await runner.run(["no-such-lvm-tool"], timeout: .seconds(5))
        }
        #expect(error?.argv == ["no-such-lvm-tool"])
    }

    @Test func callerCancellationDoesNotInterruptCommand() async throws {
        let task = Task { try await runner.run(["sh", "-c", "sleep 0.3; echo done"], timeout: .seconds(10)) }
        task.cancel()
        let result = try await task.value
        #expect(result.stdout == "done\n")
    }

    @Test func stdoutLimit() async {
        let small = CommandRunner(stdoutLimit: 16)
        let error = await #expect(throws: CommandLaunchError.self) {
            _ = try await small.run(["sh", "-c", "head -c 100000 /dev/zero"], timeout: .seconds(10))
        }
        #expect(error?.argv.first == "sh")
    }
}
