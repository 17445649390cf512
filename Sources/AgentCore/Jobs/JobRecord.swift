import AOSAPI
import RPCWire
import SharedLVM

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// One job as the agent keeps it in `jobs.json`: what `JobInfo` reports, plus what a restart
/// needs to resume it (the hidden LV, the phase, what the job itself activated).
struct JobRecord: Codable, Sendable, Equatable {
    /// Before the job's LV exists under its hidden name (the call that creates the job has
    /// not finished), then ready; a record still `pending` at boot belongs to a call that
    /// never returned, and is dropped.
    enum Phase: String, Codable, Sendable {
        case pending
        case ready
    }

    var id: String
    var kind: JobKind
    var vg: String
    /// copy: the source LV; wipe: the deleted volume's name.
    var source: String
    /// copy: the final name; wipe: the hidden name.
    var target: String
    /// The LV the job writes: `aos-wipe-<id>` or `aos-copy-<id>`.
    var hidden: String
    var phase: Phase = .pending
    var state: JobState = .queued
    var totalBytes: UInt64
    var doneBytes: UInt64 = 0
    /// wipe: zero or shred.
    var clear: VolumeClear?
    /// wipe: how it cleared (`WipeMethod` raw value) once known.
    var method: String?
    /// copy: the target's size (≥ the source's).
    var sizeBytes: UInt64 = 0
    var verify = false
    var checksum: String?
    /// copy: the job activated the source (shared) itself and must deactivate it.
    var activatedSource = false
    /// copy: the COW snapshot (`aos-cow-<id>`) the copy reads, when the source was in use on
    /// this host (active exclusively here); `doneBytes` counts bytes copied from it, so a
    /// resumed copy goes on only from this same snapshot.
    var cow: String?
    var attempts: Int64 = 0
    var nextAttemptAt: Double?
    var cancelRequested = false
    var createdAt: Double
    var startedAt: Double?
    var finishedAt: Double?
    var error: ErrorSummary?

    init(id: String, kind: JobKind, vg: String, source: String, target: String, hidden: String, totalBytes: UInt64, createdAt: Double) {
        self.id = id
        self.kind = kind
        self.vg = vg
        self.source = source
        self.target = target
        self.hidden = hidden
        self.totalBytes = totalBytes
        self.createdAt = createdAt
    }

    /// Finished and not to be retried.
    var isOver: Bool { state.isFinished && nextAttemptAt == nil }

    /// The wire form; `rate` (bytes/s over the current attempt) gives the ETA.
    func info(host: String, rate: Double?) -> JobInfo {
        let remaining = totalBytes > doneBytes ? Double(totalBytes - doneBytes) : 0
        let eta = state == .running ? rate.flatMap { $0 > 0 ? remaining / $0 : nil } : nil
        return JobInfo(
            id: id, kind: kind, host: host, vg: vg, state: state, source: source, target: target,
            total_bytes: Int64(clamping: totalBytes), done_bytes: Int64(clamping: doneBytes),
            rate_bytes_per_second: state == .running ? rate : nil, eta_seconds: eta, method: method, verify: verify,
            checksum: checksum, attempts: attempts, next_attempt_at: nextAttemptAt, cancel_requested: cancelRequested,
            created_at: createdAt, started_at: startedAt, finished_at: finishedAt, error: error)
    }
}

/// `state_dir/jobs.json`: `{format, host, jobs: [JobRecord]}`, written atomically.
struct JobFile {
    static let name = "jobs.json"
    static let format: Int64 = 1
    let path: String
    let directory: String
    let host: String

    init(directory: String, host: String) {
        self.directory = directory
        self.path = directory + "/" + Self.name
        self.host = host
    }

    /// The records, or why the file could not be used (it is then moved aside).
    func load() -> (records: [JobRecord], problem: String?) {
        ActivationStore.removeTemporaries(directory: directory, prefix: Self.name + ".tmp.")
        let bytes: [UInt8]?
        do { bytes = try FileIO.read(path) } catch { return ([], "cannot read \(path): \(error.message)") }
        guard let bytes else { return ([], nil) }
        do {
            let doc = try JSONValue.parse(bytes)
            guard doc["format"]?.int64Value == Self.format, let list = doc["jobs"] else {
                throw JobFileError(message: "\(path) is not a job file of format \(Self.format)")
            }
            let records = try JSONValueDecoder().decode([JobRecord].self, from: list, rejectUnknownKeys: false)
            return (records, nil)
        } catch {
            _ = rename(path, path + ".corrupt")
            return ([], "\(path) unreadable (moved to \(Self.name).corrupt): \(error)")
        }
    }

    func save(_ records: [JobRecord]) throws(StoreError) {
        let list: JSONValue
        do { list = try JSONValueEncoder().encode(records.sorted { $0.createdAt < $1.createdAt }) } catch {
            throw StoreError(message: "cannot encode the job records: \(error)")
        }
        let doc: JSONValue = .object(["format": .int(Self.format), "host": .string(host), "jobs": list])
        try FileIO.writeAtomically(path, Array((JSONWriter.serialize(doc) + "\n").utf8), directory: directory)
    }
}

struct JobFileError: Error, CustomStringConvertible {
    var message: String
    var description: String { message }
}
