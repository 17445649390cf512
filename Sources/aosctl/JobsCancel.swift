import ArgumentParser
import RPCWire

/// `aosctl jobs cancel ID`: stops a copy (a wipe cannot be cancelled).
struct JobsCancel: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "cancel", abstract: "Cancel a copy job (its unfinished target is removed; wipes cannot be cancelled).")

    @Argument(help: "Job id (or a unique prefix, as 'jobs list' shows it).") var id: String
    @Option(help: "Host that runs the job (saves asking every agent).") var host: String?
    @OptionGroup var global: GlobalOptions

    func run() async throws {
        try await runCommand(global) { s throws(CLIError) in
            let (raw, job) = try await s.fetchJob(id, host: host, method: .cancelJob)
            let text =
                job.state.isFinished
                ? "Job \(job.id) is already \(job.state.rawValue)."
                : "Cancel requested for job \(job.id) (\(job.kind.rawValue) \(job.source) -> \(job.target) on \(job.host)); 'aosctl jobs wait \(job.id)' follows it."
            return (raw, text)
        }
    }
}
