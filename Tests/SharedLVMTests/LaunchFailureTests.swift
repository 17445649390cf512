import HostCommands
import Testing

@testable import SharedLVM

/// A command that could not run at all reaches callers as LVMError `internal`, with its argv
/// (the runner itself knows nothing of LVM's error codes).
struct LaunchFailureTests {
    struct Unlaunchable: CommandExecuting {
        func run(_ argv: [String], timeout: Duration) async throws(CommandLaunchError) -> CommandResult {
            throw CommandLaunchError(message: "cannot run \(argv[0]): no such file", argv: argv)
        }
    }

    @Test func realBackendReportsInternalWithTheArgv() async {
        let backend = RealLVMBackend(executor: Unlaunchable())
        let error = await #expect(throws: LVMError.self) {
            _ = try await backend.listLVs(vg: "vol")
        }
        #expect(error?.code == .internal)
        #expect(error?.argv.first == "lvs")
        #expect(error?.message.contains("cannot run lvs") == true)
    }
}
