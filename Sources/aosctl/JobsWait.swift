import ArgumentParser
import RPCWire

/// `aosctl jobs wait ID`: polls the job until it is finished; the exit status says how it ended.
struct JobsWait: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "wait", abstract: "Wait for a job to finish (progress bar on a terminal).",
        discussion: """
            Polls the job every second. Exit status: 0 when it succeeded; when it failed, the status of
            its error's code (e.g. 4 for size_conflict); 1 when it was cancelled; 6 when --timeout
            seconds passed first (the job goes on). Without --timeout it waits as long as the job runs.
            """)

    @Argument(help: "Job id (or a unique prefix, as 'jobs list' shows it).") var id: String
    @Option(help: "Host that runs the job (saves asking every agent).") var host: String?
    @OptionGroup var global: GlobalOptions

    func run() async throws {
        try await runCommand(global) { s throws(CLIError) in
            let (raw, job) = try await s.waitForJob(id, host: host, limit: global.timeout.map { .seconds($0) })
            return try finishedJob(raw, job, json: s.json)
        }
    }
}
