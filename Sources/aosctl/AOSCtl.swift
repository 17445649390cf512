// aosctl: the admin CLI of the shared-LVM system (docs/cli.md). Talks to the controller's RPC
// API, or with --direct HOST to one node's agent. Data on stdout, messages on stderr.
import AOSAPI
import AOSRuntime
import ArgumentParser

#if canImport(Glibc)
import Glibc
#endif

@main
struct AOSCtl: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "aosctl",
        abstract: "Admin CLI for shared-LVM volumes: agents, volumes, jobs, pool capacity and locks.",
        discussion: """
            Global options (--url, --config, --set, --timeout, --json, --direct HOST) may be given
            before or after the command. Output: tables on stdout; --json prints one JSON document.
            Exit status: 0 ok, 1 other error, 2 usage or invalid argument, 3 not found,
            4 conflict (locked by another host, size conflict, in use…), 5 unreachable (agent,
            controller or broker), 6 timeout, 7 not authorized (the broker user has no role for that);
            doctor: 8 warnings only, 9 a FAIL; audit: 10 drift found; 130 interrupted (Ctrl-C: a request
            already sent may still run).
            """,
        version: "aosctl \(ProductVersion.current)",
        subcommands: [
            AgentsList.self, VolumeCommand.self, PoolCommand.self, JobsCommand.self, LocksShow.self, Recover.self,
            BrokerSetupCommand.self, AuthCommand.self, Doctor.self, Audit.self,
        ])

    /// Parses with global options allowed before the subcommand, and maps usage errors to exit 2.
    static func main() async {
        Interrupt.install()
        let args = GlobalOptions.hoistingGlobals(Array(CommandLine.arguments.dropFirst()))
        do {
            var command = try parseAsRoot(args)
            if var asyncCommand = command as? any AsyncParsableCommand {
                try await asyncCommand.run()
            } else {
                try command.run()
            }
        } catch {
            let code = exitCode(for: error)
            if code == .success {
                exit(withError: error)  // --help, --version
            }
            if error is ExitCode { exit(withError: error) }
            // Argument parsing and validation problems are usage errors: exit 2.
            stderrLine(fullMessage(for: error))
            Glibc.exit(code == .validationFailure ? CLIExitStatus.usage.rawValue : code.rawValue)
        }
    }
}

struct VolumeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "volume", abstract: "Create, resize, copy, rename, delete, inspect, activate and deactivate volumes.",
        subcommands: [
            VolumeCreate.self, VolumeExtend.self, VolumeDelete.self, VolumeShow.self, VolumeList.self,
            VolumeActivate.self, VolumeDeactivate.self, VolumeCopy.self, VolumeRename.self,
        ])
}

struct JobsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "jobs", abstract: "The agents' long operations: volume copies and the wipes of deleted volumes.",
        subcommands: [JobsList.self, JobsShow.self, JobsWait.self, JobsCancel.self])
}

struct PoolCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "pool", abstract: "Capacity of the shared volume group.", subcommands: [PoolStats.self])
}
