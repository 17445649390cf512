import AOSAPI
import RPCWire

#if canImport(Glibc)
import Glibc
#endif

// What the job commands share: fetching one job (from the controller, or with --direct from one
// agent), waiting for it, and showing it.

/// The id as the table shows it: long ids (UUIDs) cut to their first 8 characters; any unique
/// prefix is accepted back (`fetchJob`).
func shortJobID(_ id: String) -> String { id.count > 12 ? String(id.prefix(8)) : id }

/// Bytes as Int64 from a wire Double, or nil when it is not a sane count.
private func byteCount(_ d: Double?) -> Int64? {
    guard let d, d.isFinite, d >= 0, d < 9e18 else { return nil }
    return Int64(d)
}

func jobPercent(_ j: JobInfo) -> String {
    guard j.total_bytes > 0 else { return j.state == .succeeded ? "100%" : "-" }
    let p = Double(max(0, j.done_bytes)) / Double(j.total_bytes) * 100
    return "\(Int(min(100, max(0, p)).rounded(.down)))%"
}

func rateText(_ r: Double?) -> String { byteCount(r).map { humanSize($0) + "/s" } ?? "-" }

/// "12s", "3m05s", "2h07m".
func durationText(_ s: Double?) -> String {
    guard let s, s.isFinite, s >= 0, s < 1e9 else { return "-" }
    let t = Int(s.rounded())
    if t < 60 { return "\(t)s" }
    if t < 3600 { return "\(t / 60)m\(t % 60 < 10 ? "0" : "")\(t % 60)s" }
    return "\(t / 3600)h\(t % 3600 / 60 < 10 ? "0" : "")\(t % 3600 / 60)m"
}

/// The state column: "failed (retry in 40s)" for a wipe that will be retried.
func stateText(_ j: JobInfo, now: Double) -> String {
    var s = j.state.rawValue
    if j.cancel_requested, !j.state.isFinished { s += " (cancelling)" }
    if j.state == .failed, let next = j.next_attempt_at { s += " (retry in \(durationText(max(0, next - now))))" }
    return s
}

func jobsTable(_ jobs: [JobInfo]) -> String {
    let now = wallClockSeconds()
    return table(
        ["ID", "KIND", "HOST", "VG", "STATE", "SOURCE -> TARGET", "PROGRESS", "RATE", "ETA", "ERROR"],
        jobs.map { j in
            [
                shortJobID(j.id), j.kind.rawValue, j.host, j.vg, stateText(j, now: now), "\(j.source) -> \(j.target)",
                "\(jobPercent(j)) of \(humanSize(j.total_bytes))", j.state == .running ? rateText(j.rate_bytes_per_second) : "-",
                j.state == .running ? durationText(j.eta_seconds) : "-", j.error.map { "\($0.code): \($0.message)" } ?? "-",
            ]
        })
}

/// `aosctl jobs show`: one job, a line per field.
func jobText(_ j: JobInfo) -> String {
    let now = wallClockSeconds()
    var lines: [(String, String)] = [
        ("ID", j.id), ("Kind", j.kind.rawValue), ("Host", j.host), ("VG", j.vg), ("State", stateText(j, now: now)),
        ("Source", j.source), ("Target", j.target),
        ("Progress", "\(jobPercent(j)) (\(humanSize(j.done_bytes)) of \(humanSize(j.total_bytes)))"),
        ("Rate", rateText(j.rate_bytes_per_second)), ("ETA", durationText(j.eta_seconds)),
    ]
    if let m = j.method { lines.append(("Method", m)) }
    if j.kind == .copy { lines.append(("Verify", j.verify ? "yes" : "no")) }
    if let c = j.checksum { lines.append(("SHA-256", c)) }
    lines.append(("Attempts", String(j.attempts)))
    if let n = j.next_attempt_at { lines.append(("Next attempt", "in \(durationText(max(0, n - now)))")) }
    lines.append(("Created", "\(durationText(max(0, now - j.created_at))) ago"))
    if let s = j.started_at { lines.append(("Started", "\(durationText(max(0, now - s))) ago")) }
    if let f = j.finished_at { lines.append(("Finished", "\(durationText(max(0, now - f))) ago")) }
    if let e = j.error { lines.append(("Error", "\(e.code): \(e.message)")) }
    return lines.map { "\($0.0 + ":")\(String(repeating: " ", count: max(1, 14 - $0.0.count)))\($0.1)" }.joined(separator: "\n") + "\n"
}

func wallClockSeconds() -> Double {
    var ts = timespec()
    clock_gettime(CLOCK_REALTIME, &ts)
    return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
}

/// True when the job will not change any more (a failed wipe with a retry planned will).
func isFinal(_ j: JobInfo) -> Bool { j.state.isFinished && !(j.state == .failed && j.next_attempt_at != nil) }

extension Session {
    /// Same session, each call waiting at most `timeout`.
    func with(timeout: Duration) -> Session {
        Session(options: options, settings: settings, connection: connection, client: client, timeout: timeout)
    }

    /// Job `id` (or the one job whose id starts with it) from the controller, or with --direct
    /// from that agent. `host` narrows the question to one agent.
    func fetchJob(_ id: String, host: String?, method: ControllerMethod = .jobInfo) async throws(CLIError) -> (raw: JSONValue, job: JobInfo)
    {
        do throws(CLIError) {
            return try await job(id, host: host, method: method)
        } catch let e where e.code == WireErrorCode.notFound.rawValue && id.count < 32 {
            // Maybe a short id from the table: the one job whose id starts with it.
            let jobs = try await listJobs(host: host).result.jobs.filter { $0.id.hasPrefix(id) }
            guard jobs.count == 1 else {
                if jobs.count > 1 {
                    throw CLIError(
                        .invalidArgument, "job id \(id) is ambiguous: \(jobs.map(\.id).joined(separator: ", "))")
                }
                throw e
            }
            return try await job(jobs[0].id, host: jobs[0].host, method: method)
        }
    }

    private func job(_ id: String, host: String?, method: ControllerMethod) async throws(CLIError) -> (raw: JSONValue, job: JobInfo) {
        if let direct = options.direct {
            let agentMethod: AgentMethod = method == .cancelJob ? .cancelJob : .jobInfo
            let (raw, job) = try await agent(direct, agentMethod, JobRequest(id: id), as: JobInfo.self)
            return (raw, job)
        }
        let (raw, job) = try await controller(method, ClusterJobRequest(id: id, host: host), as: JobInfo.self)
        return (raw, job)
    }

    /// Every job (the controller's merged list, or with --direct one agent's).
    func listJobs(host: String?) async throws(CLIError) -> (raw: JSONValue, result: ClusterJobsResult) {
        if let direct = options.direct {
            let (raw, r) = try await agent(direct, .listJobs, NoArguments(), as: ListJobsResult.self)
            return (
                raw,
                ClusterJobsResult(
                    jobs: r.jobs,
                    hosts: [r.host: .init(queued: r.queued, running: r.running, failed: r.failed, wiping_bytes: r.wiping_bytes)],
                    unreachable: [:])
            )
        }
        return try await controller(.listJobs, ListJobsRequest(host: host), as: ClusterJobsResult.self)
    }

    /// Polls the job every second until it is final or `limit` (the global --timeout) passed.
    /// Shows a progress bar on stderr when that is a terminal. A call that fails because an
    /// agent or the broker is away is retried (with a warning) until the limit; a cancelled
    /// task stops at once.
    func waitForJob(_ id: String, host: String?, limit: Duration?) async throws(CLIError) -> (raw: JSONValue, job: JobInfo) {
        let clock = ContinuousClock()
        let start = clock.now
        let bar = ProgressBar(enabled: isatty(2) == 1)
        defer { bar.finish() }
        var host = host
        var id = id
        var warned = false
        while true {
            var session = self
            if let limit {
                let remaining = limit - (clock.now - start)
                session = with(timeout: max(.seconds(1), min(timeout, remaining)))
            }
            var fetched: (raw: JSONValue, job: JobInfo)?
            do throws(CLIError) {
                fetched = try await session.fetchJob(id, host: host)
            } catch let e where e.status == .unreachable || e.status == .timeout {
                if let limit, clock.now - start >= limit { throw e }
                if !warned {
                    bar.finish()
                    stderrLine("aosctl: \(e.code): \(e.message) (still waiting)")
                    warned = true
                }
            }
            if let (raw, job) = fetched {
                id = job.id
                host = job.host
                bar.show(job)
                if isFinal(job) { return (raw, job) }
                if let limit, clock.now - start >= limit {
                    bar.finish()
                    throw CLIError(
                        .timedOut,
                        "job \(job.id) is still \(job.state.rawValue) after \(durationText(limit.seconds)) (\(jobPercent(job)) done); it goes on: 'aosctl jobs wait \(job.id)' again, or 'aosctl jobs cancel \(job.id)'",
                        details: ["id": .string(job.id), "host": .string(job.host), "state": .string(job.state.rawValue)])
                }
            }
            do {
                try await Task.sleep(for: .seconds(1))
            } catch {
                throw CLIError(code: "cancelled", message: "stopped waiting for job \(id)")
            }
        }
    }
}

extension Duration {
    var seconds: Double { Double(components.seconds) + Double(components.attoseconds) / 1e18 }
}

/// The outcome of a finished job as the command's result: text, or the failure to report.
func finishedJob(_ raw: JSONValue, _ j: JobInfo, json: Bool) throws(CLIError) -> (JSONValue, String) {
    switch j.state {
    case .succeeded:
        let took = j.started_at.flatMap { s in j.finished_at.map { $0 - s } }
        var text = "Job \(j.id) (\(j.kind.rawValue) \(j.source) -> \(j.target) on \(j.host)) succeeded"
        text += ": \(humanSize(j.done_bytes))" + (took.map { " in \(durationText($0))" } ?? "")
        if let c = j.checksum { text += ", SHA-256 \(c)" }
        return (raw, text + ".")
    default:
        if json { stdoutLine(JSONWriter.serialize(raw)) }
        let what = "job \(j.id) (\(j.kind.rawValue) \(j.source) -> \(j.target) on \(j.host))"
        var e =
            j.state == .cancelled
            ? CLIError(code: "cancelled", message: "\(what) was cancelled", status: .failure)
            : CLIError(
                code: j.error?.code ?? "internal", message: "\(what) failed: \(j.error?.message ?? "no error reported")")
        e.details = ["id": .string(j.id), "host": .string(j.host)]
        e.documentPrinted = json
        throw e
    }
}

/// A one-line progress bar redrawn on stderr.
final class ProgressBar {
    let enabled: Bool
    private var drawn = false

    init(enabled: Bool) { self.enabled = enabled }

    func show(_ j: JobInfo) {
        guard enabled else { return }
        let width = 30
        let frac = j.total_bytes > 0 ? min(1, max(0, Double(j.done_bytes) / Double(j.total_bytes))) : 0
        let filled = Int((frac * Double(width)).rounded(.down))
        let bar = String(repeating: "#", count: filled) + String(repeating: ".", count: width - filled)
        var line = "\r\(j.kind.rawValue) \(shortJobID(j.id)) [\(bar)] \(jobPercent(j)) \(j.state.rawValue)"
        if j.state == .running { line += "  \(rateText(j.rate_bytes_per_second))  ETA \(durationText(j.eta_seconds))" }
        let bytes = Array((line + "\u{1B}[K").utf8)
        bytes.withUnsafeBytes { _ = write(2, $0.baseAddress, $0.count) }
        drawn = true
    }

    func finish() {
        guard drawn else { return }
        drawn = false
        stderrLine("")
    }
}
