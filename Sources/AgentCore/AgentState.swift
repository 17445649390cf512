import AOSAPI
import RPCWire
import SharedLVM
import Synchronization

/// An activation the agent had recorded but could not restore at boot.
public struct RestoreFailure: Sendable, Hashable {
    public var record: ActivationRecord
    /// A wire error code (`WireErrorCode` raw value).
    public var code: String
    public var message: String

    var info: RestoreFailureInfo {
        RestoreFailureInfo(vg: record.vg, name: record.name, mode: record.mode.wire, code: code, message: message)
    }
}

/// What the agent knows about itself besides LVM and its activation store: boot progress,
/// each VG's lockspace, problems, restore failures, fence records. A pure value: every
/// change is a named transition, and the health report and the admission of mutating
/// requests are computed from it (unit-tested in `AgentStateTests`). `AgentStateOwner`
/// holds the one instance of a running agent.
struct AgentState: Sendable, Equatable {
    var ready = false
    var phase = "starting"
    var lockspaces: [String: LockspaceState] = [:]
    var vgProblems: [String: String] = [:]
    var restoreFailures: [String: RestoreFailure] = [:]
    var storeProblems: [String] = []
    /// The kill command's records of this boot, per VG (the lockspace is `lost` meanwhile).
    var fenced: [String: FenceRecord] = [:]
    /// Activations released while the agent was down that a VM here still uses (kept; the
    /// operator must act): LV key → message, shown in `state_problems`.
    var releasedInUse: [String: String] = [:]
    /// The start's preflight items that were not PASS (`Preflight`), one line each.
    var preflight: [String] = []
    /// What the start's adoption reported (Adoption.swift): LV key or VG → message, shown in
    /// `state_problems` until the LV is recorded or forgotten.
    var adoption: [String: String] = [:]

    init(volumeGroups: [String] = []) {
        for vg in volumeGroups { lockspaces[vg] = .notStarted }
    }

    // MARK: - Transitions

    /// An LVM error that says something about the VG's lockspace moves it to `lost` or
    /// `not_started`. Returns the previous and the new state when it did.
    mutating func noteLVMError(_ code: LVMErrorCode, vg: String) -> (previous: LockspaceState?, now: LockspaceState)? {
        let state: LockspaceState
        switch code {
        case .lockStorageFailed, .lockspaceLost: state = .lost
        case .lockspaceNotStarted: state = .notStarted
        default: return nil
        }
        let previous = lockspaces[vg]
        lockspaces[vg] = state
        return (previous, state)
    }

    mutating func lockStarted(_ vg: String) {
        lockspaces[vg] = .started
        vgProblems[vg] = nil
    }

    mutating func lockStartFailed(_ vg: String, problem: String, lost: Bool) {
        vgProblems[vg] = problem
        lockspaces[vg] = lost ? .lost : .notStarted
    }

    /// What sanlock shows (`vg_info`): its status does not change when the lease storage
    /// fails, so a `lost` lockspace that sanlock still lists stays `lost`.
    mutating func observeLockspace(_ vg: String, sanlockJoined: Bool) -> LockspaceState {
        let s: LockspaceState = sanlockJoined ? (lockspaces[vg] == .lost ? .lost : .started) : .notStarted
        lockspaces[vg] = s
        return s
    }

    /// LVM's answer to "did the lease storage fail?" (recovery): nil = works.
    mutating func observeLeaseProblem(_ vg: String, _ problem: LVMErrorCode?) {
        switch problem {
        case .lockStorageFailed?: lockspaces[vg] = .lost
        case nil: if lockspaces[vg] == .lost { lockspaces[vg] = .started }
        default: if lockspaces[vg] == .started { lockspaces[vg] = .notStarted }
        }
    }

    /// A fence record of this boot for `vg`; true when it is new. A recovery that already
    /// started the lockspace again keeps it started.
    mutating func noteFenced(_ vg: String, _ record: FenceRecord) -> Bool {
        let isNew = fenced[vg] != record
        fenced[vg] = record
        if isNew, lockspaces[vg] == .started || lockspaces[vg] == nil { lockspaces[vg] = .lost }
        return isNew
    }

    /// The recovery of `vg` finished: no fence record, no problem.
    mutating func recoveryFinished(_ vg: String) {
        fenced[vg] = nil
        vgProblems[vg] = nil
    }

    mutating func noteStoreProblem(_ message: String) {
        storeProblems.append(message)
        if storeProblems.count > 100 { storeProblems.removeFirst(storeProblems.count - 100) }
    }

    /// The boot is done; returns the one-line summary.
    mutating func finishBoot(volumeGroups: [String], records: [ActivationRecord]) -> String {
        ready = true
        phase = "ready"
        let started = volumeGroups.filter { lockspaces[$0] == .started }.count
        let active = records.filter { restoreFailures[$0.key] == nil }.count
        return "ready: \(started)/\(volumeGroups.count) lockspaces started, \(active) LVs active, \(restoreFailures.count) restore failures"
    }

    // MARK: - Queries

    /// Why a mutating method on `vg` must be refused now: the boot is not done (`not_ready`),
    /// or sanlock lost the VG's lease storage (`lockspace_lost`: LVM commands hang on queued
    /// I/O or fail, so the agent refuses at once and says what to do). nil: admitted.
    func refusal(of method: AgentMethod, vg: String, host: String) -> ServiceError? {
        guard ready else {
            return ServiceError(
                .notReady, "the agent on host \(host) is not ready yet (\(phase)); \(method.rawValue) refused",
                details: ["host": .string(host), "phase": .string(phase)])
        }
        guard lockspaces[vg] == .lost else { return nil }
        return ServiceError(
            .lockspaceLost,
            "the sanlock lockspace of VG \(vg) on host \(host) was lost (lease storage failed)"
                + (fenced[vg] != nil ? " and its I/O on that host was fenced" : "")
                + "; \(method.rawValue) refused. Recover the host: aosctl recover --host \(host) --vg \(vg) (docs/operations.md)",
            details: [
                "host": .string(host), "vg": .string(vg), "method": .string(method.rawValue),
                "hint": .string("run: aosctl recover --host \(host) --vg \(vg)"),
            ])
    }

    /// The activations the agent holds: its records without a restore failure.
    func held(_ records: [ActivationRecord]) -> [ActivationRecord] {
        records.filter { restoreFailures[$0.key] == nil }
    }

    /// The self-report (`health`, the announcements' payload).
    func health(
        host: String, hostId: Int, version: String, instanceID: String, volumeGroups: [String],
        records: [ActivationRecord]
    ) -> AgentHealth {
        var vgs: [String: VGHealth] = [:]
        for vg in volumeGroups {
            let state = lockspaces[vg] ?? .notStarted
            var entry = VGHealth(lockspace: state, problem: vgProblems[vg])
            if let f = fenced[vg] {
                entry.fenced = FencedSummary(at: f.fencedAt, complete: f.complete, lvs: f.lvs.count, source: f.source)
            }
            if state == .lost || fenced[vg] != nil { entry.hint = "run: aosctl recover --host \(host) --vg \(vg)" }
            vgs[vg] = entry
        }
        let recordedKeys = Set(records.map(\.key))
        let adopting = adoption.keys.sorted().filter { !recordedKeys.contains($0) }.compactMap { adoption[$0] }
        let problems = releasedInUse.keys.sorted().compactMap { releasedInUse[$0] } + adopting + storeProblems.suffix(10)
        return AgentHealth(
            host: host, host_id: hostId, version: version, instance_id: instanceID, ready: ready, phase: phase, vgs: vgs,
            active_lvs: held(records).map { ActiveLV(vg: $0.vg, name: $0.name, mode: $0.mode.wire) },
            restore_failures: restoreFailures.values.sorted { $0.record < $1.record }.map(\.info),
            state_problems: problems.isEmpty ? nil : problems,
            preflight: preflight.isEmpty ? nil : preflight)
    }
}

/// The one owner of a running agent's `AgentState`: every read and transition goes through it.
final class AgentStateOwner: Sendable {
    private let mutex: Mutex<AgentState>

    init(_ state: AgentState) { mutex = Mutex(state) }

    var snapshot: AgentState { mutex.withLock { $0 } }

    func read<T: Sendable>(_ body: (AgentState) -> T) -> T { mutex.withLock { body($0) } }

    @discardableResult
    func update<T: Sendable>(_ body: (inout AgentState) -> T) -> T { mutex.withLock { body(&$0) } }
}

extension LVActivationMode {
    /// The mode as the API names it.
    var wire: LVMode {
        switch self {
        case .exclusive: return .exclusive
        case .shared: return .shared
        }
    }
}

extension LVMode {
    var lvm: LVActivationMode {
        switch self {
        case .exclusive: return .exclusive
        case .shared: return .shared
        }
    }
}
