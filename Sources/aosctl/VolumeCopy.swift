import AOSAPI
import ArgumentParser
import RPCWire

/// `aosctl volume copy SOURCE TARGET`: a new volume with the source's data, copied by a job.
struct VolumeCopy: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "copy", abstract: "Copy a volume into a new one (a job on a host that can read the source).",
        discussion: """
            Returns as soon as the job started (its id is printed), unless --wait is given: then it
            waits as 'aosctl jobs wait' does, with the same exit statuses.
            """)

    @Argument(help: "Volume to copy.") var source: String
    @Argument(help: "New volume (must not exist).") var target: String
    @Option(help: "Size of the new volume in GiB (default: the source's; larger is allowed).") var sizeGb: Int64?
    @Flag(help: "Read the copy back and compare SHA-256 checksums.") var verify = false
    @Option(help: "Host that copies (default: where the source is active, else any live agent).") var host: String?
    @Flag(help: "Wait for the copy to finish.") var wait = false
    @Option(help: "Volume group (default: the only one the agents serve).") var vg: String?
    @OptionGroup var global: GlobalOptions

    func validate() throws {
        if let g = sizeGb, g <= 0 || g > (1 << 20) { throw ValidationError("--size-gb must be between 1 and \(1 << 20)") }
        if let h = host, let d = global.direct, h != d { throw ValidationError("--host \(h) and --direct \(d) name different hosts") }
    }

    func run() async throws {
        try await runCommand(global) { s throws(CLIError) in
            var raw: JSONValue
            let job: JobInfo
            let vgName: String
            if let direct = global.direct {
                let v = try await s.directVG(direct, vg)
                let r = try await s.agent(
                    direct, .copyLV,
                    CopyLVRequest(vg: v, source: source, target: target, size_bytes: sizeGb.map { $0 << 30 }, verify: verify),
                    as: CopyLVResult.self)
                (raw, job, vgName) = (r.raw, r.result.job, v)
            } else {
                let r = try await s.controller(
                    .copyVolume,
                    CopyVolumeRequest(source: source, target: target, vg: vg, size_gb: sizeGb, verify: verify ? true : nil, host: host),
                    as: CopyVolumeResult.self)
                (raw, job, vgName) = (r.raw, r.result.job, r.result.vg)
            }
            guard wait else {
                let what = "\(vgName)/\(source) to \(vgName)/\(target) (\(humanSize(job.total_bytes))) on \(job.host)"
                let fresh = raw["changed"]?.boolValue ?? true
                return (
                    raw,
                    (fresh
                        ? "Copying \(what): job \(job.id) is \(job.state.rawValue)."
                        : "The copy of \(what) was already asked for: job \(job.id) is \(job.state.rawValue).")
                        + " Follow it: aosctl jobs wait \(job.id)"
                )
            }
            let (finalRaw, final) = try await s.waitForJob(job.id, host: job.host, limit: global.timeout.map { .seconds($0) })
            if case .object(var o) = raw {
                o["job"] = finalRaw
                raw = .object(o)
            }
            return try finishedJob(raw, final, json: s.json)
        }
    }
}
