import AOSAPI
import HostSupport
import RPCWire
import SharedLVM

#if canImport(Glibc)
import Glibc
#endif

extension RecoveryStep {
    /// What the step does, for the plan.
    var summary: String {
        switch self {
        case .plan: return "show what recovery would do"
        case .fence: return "fail the VG's queued and future I/O on this host (error tables), unless the kill command did"
        case .waitPath: return "wait until the shared disk is readable again through its path device"
        case .stopVMs: return "stop (virsh destroy) the VMs whose disks are LVs of the VG"
        case .deactivate: return "deactivate every LV of the VG on this host (dmsetup remove where LVM cannot)"
        case .drop: return "lvmlockctl --drop VG, only if lvmlockd still holds the killed lockspace"
        case .lockStart: return "vgchange --lock-start VG and check that sanlock joined"
        case .reactivate: return "re-activate each LV in its old mode, unless another host holds it now"
        case .startVMs: return "start again the VMs that were stopped, if all their disks are back"
        case .finish: return "archive the fence record and report the lockspace as started"
        }
    }

    /// The steps that change something on the host: each re-checks that the lease storage
    /// of the VG really failed before it acts.
    var acts: Bool {
        switch self {
        case .fence, .stopVMs, .deactivate, .drop, .lockStart, .reactivate, .startVMs: return true
        case .plan, .waitPath, .finish: return false
        }
    }

    /// The steps that may run on a started lockspace: after this recovery deactivated the
    /// VG's LVs (having confirmed the loss), it drops and starts the lockspace itself.
    var followsTeardown: Bool {
        switch self {
        case .drop, .lockStart, .reactivate, .startVMs: return true
        default: return false
        }
    }
}

/// What one recovery has done so far: `<state_dir>/recovery-<vg>.json`, so that a second
/// run after a failed step continues instead of undoing finished work. (Its JSON is also
/// the `journal` of the plan.)
struct RecoveryJournal: Codable, Sendable, Equatable {
    /// Moves a journal aside when a new outage begins: steps finished for an earlier loss
    /// (then completed by hand, say) must not be skipped this time.
    static func discard(_ dir: String, _ vg: String) {
        let p = path(dir, vg)
        _ = rename(p, "\(p).stale")
    }

    /// The boot and the fence record (its `fenced_at`, nil: none) this recovery belongs to:
    /// a journal of another boot or of another outage is not this recovery's.
    var bootID: String = ""
    var fencedAt: Double?
    /// What showed the lease storage failed when this recovery first acted (nil: forced, or
    /// not acted yet).
    var lossEvidence: String?
    var completed: [RecoveryStep] = []
    var stoppedVMs: [String] = []
    var reactivated: [RecoveryLVOutcome] = []
    var leftAlone: [RecoveryLVOutcome] = []
    var vmsStarted: [String] = []
    var vmsNotStarted: [VMNotStarted] = []

    init(bootID: String, fencedAt: Double?) {
        self.bootID = bootID
        self.fencedAt = fencedAt
    }

    enum CodingKeys: String, CodingKey {
        case bootID = "boot_id"
        case fencedAt = "fenced_at"
        case lossEvidence = "loss_evidence"
        case completed
        case stoppedVMs = "stopped_vms"
        case reactivated
        case leftAlone = "left_alone"
        case vmsStarted = "vms_started"
        case vmsNotStarted = "vms_not_started"
    }

    /// Lenient: a missing key is empty; a step name this build does not know is skipped.
    init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        bootID = try c.decodeIfPresent(String.self, forKey: .bootID) ?? ""
        fencedAt = try c.decodeIfPresent(Double.self, forKey: .fencedAt)
        lossEvidence = try c.decodeIfPresent(String.self, forKey: .lossEvidence)
        completed = try (c.decodeIfPresent([String].self, forKey: .completed) ?? []).compactMap(RecoveryStep.init(rawValue:))
        stoppedVMs = try c.decodeIfPresent([String].self, forKey: .stoppedVMs) ?? []
        reactivated = try c.decodeIfPresent([RecoveryLVOutcome].self, forKey: .reactivated) ?? []
        leftAlone = try c.decodeIfPresent([RecoveryLVOutcome].self, forKey: .leftAlone) ?? []
        vmsStarted = try c.decodeIfPresent([String].self, forKey: .vmsStarted) ?? []
        vmsNotStarted = try c.decodeIfPresent([VMNotStarted].self, forKey: .vmsNotStarted) ?? []
    }

    /// Every key, `null` where unknown (the file format and the plan's `journal`).
    func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(bootID, forKey: .bootID)
        try c.encode(fencedAt, forKey: .fencedAt)
        try c.encode(lossEvidence, forKey: .lossEvidence)
        try c.encode(completed, forKey: .completed)
        try c.encode(stoppedVMs, forKey: .stoppedVMs)
        try c.encode(reactivated, forKey: .reactivated)
        try c.encode(leftAlone, forKey: .leftAlone)
        try c.encode(vmsStarted, forKey: .vmsStarted)
        try c.encode(vmsNotStarted, forKey: .vmsNotStarted)
    }

    static func path(_ dir: String, _ vg: String) -> String { "\(dir)/recovery-\(vg).json" }

    static func load(_ dir: String, _ vg: String) -> RecoveryJournal? {
        guard let bytes = try? DurableFile.read(path(dir, vg), limit: 16 << 20), let v = try? JSONValue.parse(bytes) else { return nil }
        return try? JSONValueDecoder().decode(RecoveryJournal.self, from: v, rejectUnknownKeys: false)
    }

    var json: JSONValue { (try? JSONValueEncoder().encode(self)) ?? .null }

    /// Whether this journal belongs to the outage described by `record` in the boot `boot`.
    func applies(boot: String, record: FenceRecord?) -> Bool {
        !bootID.isEmpty && bootID == boot && fencedAt == record?.fencedAt
    }

    func save(_ dir: String, _ vg: String) throws(DurableFile.Failure) {
        try DurableFile.writeAtomically(Self.path(dir, vg), JSONWriter.bytes(json) + [0x0a])
    }
}
