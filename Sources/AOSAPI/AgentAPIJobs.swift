import RPCWire

// The agent's jobs (docs/agent.md, "Jobs"): work too long for an RPC (a copy of a whole LV, the
// wipe of a deleted one) runs in the agent after the call returned, under a concurrency and an
// I/O rate limit, recorded durably so a restart resumes it. The controller's job methods carry
// the same `JobInfo`.

/// What a job does.
public enum JobKind: String, WireEnum {
    /// Clears a deleted volume's data, then removes its LV (`delete_lv` with `volume_clear`).
    case wipe
    /// Copies one LV into a new one (`copy_lv`).
    case copy
}

/// Where a job is. `succeeded` and `cancelled` are final, and so is `failed` unless
/// `next_attempt_at` is set: a failed wipe stays `failed` (visible, counted) and is retried then.
public enum JobState: String, WireEnum {
    case queued
    case running
    case succeeded
    case failed
    case cancelled

    /// No more work will happen without a retry (`next_attempt_at` says whether one will).
    public var isFinished: Bool { self == .succeeded || self == .failed || self == .cancelled }
}

/// How a wipe cleared the data (reported, as operators ask "was it really wiped?").
public enum WipeMethod: String, WireEnum {
    /// The device zeroed the range itself (`blkdiscard --zeroout`: WRITE SAME / WRITE ZEROES).
    case zeroout
    /// Zeros written with direct I/O (the device has no zeroing offload).
    case writeZeros = "write_zeros"
    /// Random data, then zeros, written with direct I/O (`volume_clear = shred`).
    case shred
}

/// One job as the agent reports it. Times are seconds since the epoch (wall clock: they are
/// shown to people and compared across hosts); `rate_bytes_per_second` and `eta_seconds` are
/// null until the job has moved.
public struct JobInfo: APIResponse, Equatable {
    public var id: String
    public var kind: JobKind
    public var host: String
    public var vg: String
    public var state: JobState
    /// copy: the source LV; wipe: the name the volume had before its delete.
    public var source: String
    /// copy: the LV being written (its final name); wipe: the hidden name the LV carries
    /// until it is removed (outside `lv_name_pattern`, so it is never a volume again).
    public var target: String
    public var total_bytes: Int64
    public var done_bytes: Int64
    @AlwaysPresent public var rate_bytes_per_second: Double?
    @AlwaysPresent public var eta_seconds: Double?
    /// wipe: how the data was cleared (`zeroout`, `write_zeros`, `shred`); null before it ran.
    @AlwaysPresent public var method: String?
    /// copy: whether the copied range is read back and compared (`verify` of `copy_lv`).
    public var verify: Bool
    /// copy with `verify`: the SHA-256 of the copied range, once verified.
    @AlwaysPresent public var checksum: String?
    public var attempts: Int64
    @AlwaysPresent public var next_attempt_at: Double?
    public var cancel_requested: Bool
    public var created_at: Double
    @AlwaysPresent public var started_at: Double?
    @AlwaysPresent public var finished_at: Double?
    @AlwaysPresent public var error: ErrorSummary?

    public init(
        id: String, kind: JobKind, host: String, vg: String, state: JobState, source: String, target: String,
        total_bytes: Int64, done_bytes: Int64, rate_bytes_per_second: Double? = nil, eta_seconds: Double? = nil,
        method: String? = nil, verify: Bool = false, checksum: String? = nil, attempts: Int64 = 0,
        next_attempt_at: Double? = nil, cancel_requested: Bool = false, created_at: Double, started_at: Double? = nil,
        finished_at: Double? = nil, error: ErrorSummary? = nil
    ) {
        self.id = id
        self.kind = kind
        self.host = host
        self.vg = vg
        self.state = state
        self.source = source
        self.target = target
        self.total_bytes = total_bytes
        self.done_bytes = done_bytes
        self.rate_bytes_per_second = rate_bytes_per_second
        self.eta_seconds = eta_seconds
        self.method = method
        self.verify = verify
        self.checksum = checksum
        self.attempts = attempts
        self.next_attempt_at = next_attempt_at
        self.cancel_requested = cancel_requested
        self.created_at = created_at
        self.started_at = started_at
        self.finished_at = finished_at
        self.error = error
    }
}

/// `copy_lv`: copies `source` into a new LV `target` of `size_bytes` (default: the source's
/// size; larger is allowed, smaller is not). The target exists under a hidden name until the
/// copy is complete, so a half-copied LV never carries the target's name. `verify` reads the
/// copied range back and compares checksums. Run on a host that can read the source: where it
/// is active, or any host when it is inactive everywhere (the agent activates it shared).
public struct CopyLVRequest: APIRequest, Equatable {
    public var vg: String
    public var source: String
    public var target: String
    public var size_bytes: Int64?
    public var verify: Bool?

    public init(vg: String, source: String, target: String, size_bytes: Int64? = nil, verify: Bool? = nil) {
        self.vg = vg
        self.source = source
        self.target = target
        self.size_bytes = size_bytes
        self.verify = verify
    }
}

/// `copy_lv` → the job (`changed: false` when the same copy was already under way or done).
public struct CopyLVResult: APIResponse, Equatable {
    public var host: String
    public var job: JobInfo
    public var changed: Bool

    public init(host: String, job: JobInfo, changed: Bool) {
        self.host = host
        self.job = job
        self.changed = changed
    }
}

/// `job_info`, `cancel_job`: one job by id.
public struct JobRequest: APIRequest, Equatable {
    public var id: String
    public init(id: String) { self.id = id }
}

public typealias JobInfoRequest = JobRequest
public typealias CancelJobRequest = JobRequest

/// `list_jobs` → this agent's jobs: every unfinished one and the recently finished (newest
/// first), with the counts an operator alerts on.
public struct ListJobsResult: APIResponse, Equatable {
    public var host: String
    public var jobs: [JobInfo]
    public var queued: Int64
    public var running: Int64
    public var failed: Int64
    /// Bytes of deleted volumes still waiting to be wiped (counted as used by the VG).
    public var wiping_bytes: Int64

    public init(host: String, jobs: [JobInfo], queued: Int64, running: Int64, failed: Int64, wiping_bytes: Int64) {
        self.host = host
        self.jobs = jobs
        self.queued = queued
        self.running = running
        self.failed = failed
        self.wiping_bytes = wiping_bytes
    }
}

/// `delete_lv` → `{host, vg, name, changed, job}`: `job` is the wipe that clears and removes
/// the LV (the volume is already gone under its name), null when it was removed at once.
public struct DeleteLVResult: APIResponse, Equatable {
    public var host: String
    public var vg: String
    public var name: String
    public var changed: Bool
    @AlwaysPresent public var job: JobInfo?

    public init(host: String, vg: String, name: String, changed: Bool, job: JobInfo? = nil) {
        self.host = host
        self.vg = vg
        self.name = name
        self.changed = changed
        self.job = job
    }
}

/// The names a job gives the LVs it works on: outside every volume pattern (`volume-*`), so
/// Cinder never sees them and no name is ever reused while a job holds it.
public enum JobLVName {
    public static let wipePrefix = "aos-wipe-"
    public static let copyPrefix = "aos-copy-"
    /// A copy's short-lived COW snapshot of a source in use on the copying host.
    public static let cowPrefix = "aos-cow-"

    /// A deleted volume's LV while it waits for its wipe.
    public static func wipe(_ jobID: String) -> String { wipePrefix + jobID }
    /// A copy's target until the copy is complete.
    public static func copy(_ jobID: String) -> String { copyPrefix + jobID }
    /// The COW snapshot a copy reads from while its source is in use on the copying host.
    public static func cow(_ jobID: String) -> String { cowPrefix + jobID }
    /// True for an LV a job holds (never listed as a volume).
    public static func isJobLV(_ name: String) -> Bool {
        name.hasPrefix(wipePrefix) || name.hasPrefix(copyPrefix) || name.hasPrefix(cowPrefix)
    }
    /// The id of the job whose LV this is; nil for any other name.
    public static func jobID(_ name: String) -> String? {
        for prefix in [wipePrefix, copyPrefix, cowPrefix] where name.hasPrefix(prefix) {
            let id = name.dropFirst(prefix.count)
            return id.isEmpty ? nil : String(id)
        }
        return nil
    }
}
