import AOSAPI
import ArgumentParser
import RPCWire

/// `aosctl jobs list`: every agent's jobs (copies, wipes), newest first.
struct JobsList: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "list", abstract: "List the agents' jobs (copies and wipes), newest first.")

    @Option(help: "Only this host's jobs.") var host: String?
    @OptionGroup var global: GlobalOptions

    func run() async throws {
        try await runCommand(global) { s throws(CLIError) in
            let (raw, r) = try await s.listJobs(host: host)
            var out = r.jobs.isEmpty ? "No jobs.\n" : jobsTable(r.jobs)
            let waiting = r.hosts.values.reduce(Int64(0)) { $0 + $1.wiping_bytes }
            if waiting > 0 { out += "Deleted volumes waiting for their wipe: \(humanSize(waiting)) (used, not yet free).\n" }
            for (h, e) in r.unreachable.sorted(by: { $0.key < $1.key }) {
                out += "\(h): not asked or no answer (\(e.code): \(e.message)); its jobs are missing above.\n"
            }
            return (raw, out)
        }
    }
}
