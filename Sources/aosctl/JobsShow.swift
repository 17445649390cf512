import ArgumentParser
import RPCWire

/// `aosctl jobs show ID`: one job in detail.
struct JobsShow: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "show", abstract: "Show one job (any unique prefix of its id).")

    @Argument(help: "Job id (or a unique prefix, as 'jobs list' shows it).") var id: String
    @Option(help: "Host that runs the job (saves asking every agent).") var host: String?
    @OptionGroup var global: GlobalOptions

    func run() async throws {
        try await runCommand(global) { s throws(CLIError) in
            let (raw, job) = try await s.fetchJob(id, host: host)
            return (raw, jobText(job))
        }
    }
}
