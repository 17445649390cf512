import HostCommands
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// LVM, dmsetup, virsh and dd start with a minimal environment of their own, never the
/// agent's (which may hold AOS_DEFAULT_TRANSPORT_URL with the broker password).
struct ChildEnvironmentTests {
    @Test func childSeesOnlyTheMinimalEnvironment() async throws {
        // A variable of the project's own kind, set in this (parent) process and left set (no
        // schema reads AOS_TEST_*; one setenv, no unsetenv, keeps environ changes to a minimum
        // while other tests run).
        #expect(setenv("AOS_TEST_CHILD_ENV_PROBE", "rabbit://aos:TopSecret@ctl/", 1) == 0)
        #expect(getenv("AOS_TEST_CHILD_ENV_PROBE") != nil)
        let result = try await CommandRunner().run(["/usr/bin/env"], timeout: .seconds(10))
        #expect(result.termination.isSuccess)
        let lines = result.stdout.split(separator: "\n").map(String.init)
        let names = Set(lines.compactMap { $0.split(separator: "=", maxSplits: 1).first.map(String.init) })
        #expect(!result.stdout.contains("TopSecret"))
        #expect(names.filter { $0.hasPrefix("AOS_") }.isEmpty, "\(lines)")
        // Exactly what the runner sets (plus LVM_SYSTEM_DIR when the agent has one).
        #expect(names.subtracting(["LVM_SYSTEM_DIR"]) == ["PATH", "LC_ALL", "LVM_SUPPRESS_FD_WARNINGS"], "\(lines)")
        #expect(lines.contains("PATH=/usr/sbin:/usr/bin:/sbin:/bin"))
        #expect(lines.contains("LC_ALL=C"))
    }

    @Test func onlyLVMsConfigurationDirectoryPassesThrough() {
        let env = CommandRunner.childEnvironment(
            searchPath: "/sbin",
            inherited: [
                "LVM_SYSTEM_DIR": "/etc/lvm-alt", "AOS_DEFAULT_TRANSPORT_URL": "x",
                "HOME": "/root", "LD_PRELOAD": "/tmp/x.so", "PATH": "/tmp/evil",
            ])
        #expect(env == ["PATH": "/sbin", "LC_ALL": "C", "LVM_SUPPRESS_FD_WARNINGS": "1", "LVM_SYSTEM_DIR": "/etc/lvm-alt"])
    }
}
