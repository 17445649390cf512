import HostCommands
import Synchronization
import Testing

@testable import SharedLVM

/// A command that found the VG lock held by another host (after lvm2's own retries) runs again
/// after a backoff; other lock failures, and the look-alikes, reach the caller at once.
struct LockContentionTests {
    /// Fails the first `failures` runs with `stderr` (exit 5, as LVM does), then succeeds.
    final class Contended: CommandExecuting {
        let failures: Int
        let stderr: String
        let runs = Mutex(0)
        init(failures: Int, stderr: String) {
            self.failures = failures
            self.stderr = stderr
        }
        func run(_ argv: [String], timeout: Duration) async throws(CommandLaunchError) -> CommandResult {
            let n = runs.withLock {
                $0 += 1; return $0
            }
            if n <= failures { return CommandResult(argv: argv, termination: .exited(5), stderr: stderr) }
            return CommandResult(argv: argv, termination: .exited(0))
        }
    }

    static let vgHeld = """
          Retrying lock on VG vg1: held by other host
          Retrying lock on VG vg1: held by other host
          Retrying lock on VG vg1: held by other host
          VG vg1 lock failed: held by other host
        """

    static func backend(_ executor: Contended, tries: Int = 3) -> RealLVMBackend {
        RealLVMBackend(executor: executor, timeouts: .init(lockContentionBackoff: Array(repeating: .milliseconds(1), count: tries)))
    }

    @Test func vgLockHeldElsewhereIsTriedAgain() async throws {
        let executor = Contended(failures: 2, stderr: Self.vgHeld)
        try await Self.backend(executor).addTag(vg: "vg1", name: "volume-1", tag: "t1")
        #expect(executor.runs.withLock { $0 } == 3)
    }

    @Test func globalLockHeldElsewhereIsTriedAgain() async throws {
        let executor = Contended(failures: 1, stderr: "  Global lock failed: held by other host\n")
        try await Self.backend(executor).activate(vg: "vg1", name: "volume-1", mode: .exclusive)
        #expect(executor.runs.withLock { $0 } == 2)
    }

    @Test func givesUpAfterTheBackoffWithTheClassifiedError() async {
        let executor = Contended(failures: 10, stderr: Self.vgHeld)
        let error = await #expect(throws: LVMError.self) {
            try await Self.backend(executor, tries: 2).addTag(vg: "vg1", name: "volume-1", tag: "t1")
        }
        #expect(executor.runs.withLock { $0 } == 3)
        #expect(error?.code == .internal && error?.message.contains("held by other host") == true)
    }

    @Test(arguments: [
        "  LV locked by other host: vg1/volume-1\n  Failed to lock logical volume vg1/volume-1.\n",
        "  VG vg1 lock skipped: held by other host\n  Volume group \"vg1\" not found\n",
        "  VG vg1 lock failed: storage failed for sanlock leases\n",
        "  Retrying lock on VG vg1: held by other host\n  VG vg1 lock failed: error -221\n",
    ])
    func otherFailuresAreNotTriedAgain(stderr: String) async {
        let executor = Contended(failures: 10, stderr: stderr)
        await #expect(throws: LVMError.self) {
            try await Self.backend(executor).addTag(vg: "vg1", name: "volume-1", tag: "t1")
        }
        #expect(executor.runs.withLock { $0 } == 1)
        #expect(!LVMErrorClassifier.lockHeldByOtherHost(stderr))
    }
}
