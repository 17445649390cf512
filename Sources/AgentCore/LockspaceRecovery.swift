import AOSAPI
import HostSupport
import Hypervisor
import Logging
import RPCWire
import SharedLVM

/// What recovery needs from the agent, and nothing more: its identity and configuration,
/// the backends, its state and activation records, and the few agent actions a step takes.
protocol RecoveryAgent: Sendable {
    var configuration: AgentServiceConfiguration { get }
    var backend: any LVMBackend { get }
    var dm: any DeviceMapping { get }
    var hypervisor: (any Hypervisor)? { get }
    var logger: Logger { get }
    var store: ActivationStore { get }
    var state: AgentStateOwner { get }
    /// Steps of one VG run one at a time (a key no LV can have).
    var lvLocks: KeyedAsyncLock { get }
    /// `vgchange --lock-start` and the check that sanlock joined (the outcome is in `state`).
    func startLockspace(_ vg: String) async
    /// Drops an LV's activation record (another host took it, or it is gone).
    @discardableResult func forget(_ vg: String, _ name: String) -> Bool
    func noteLockspace(_ error: LVMError, vg: String)
    /// Re-reads the kill command's record of `vg`; true when the VG is fenced in this boot.
    @discardableResult func noteFenced(_ vg: String) -> Bool
    func reportStoreProblem(_ error: StoreError, vg: String, name: String)
    /// The set of active LVs changed (an announcement follows).
    func activationsChanged()
}

extension AgentService: RecoveryAgent {
    func activationsChanged() { changes.yield() }
}

/// The lockspace recovery of one VG (`aosctl recover` calls its steps one by one through
/// the agent's `recover` method; `plan` changes nothing).
///
/// The order follows what worked in the lab (lvm-lab-notes, "A host losing the shared
/// disk"): fail queued I/O before the path returns, deactivate every LV of the VG while
/// no VM uses it, drop the killed lockspace, start it again, and re-activate each LV in
/// its old mode only if no other host took it meanwhile. `RecoveryJournal` keeps what is
/// done, so a rerun after a failed step continues.
struct LockspaceRecovery: Sendable {
    let agent: any RecoveryAgent
    let vg: String

    var host: String { agent.configuration.host }
    var stateDirectory: String { agent.configuration.stateDirectory }
    var logger: Logger { agent.logger }

    /// Runs one step; steps of one VG are serialized, and the caller's deadline is checked
    /// after the wait.
    func run(_ step: RecoveryStep, force: Bool, deadline: ContinuousClock.Instant?) async throws(ServiceError) -> RecoverResult {
        let key = "\(vg)/ recovery"  // not a valid LV name: never collides with an LV's key
        await agent.lvLocks.lock(key)
        defer { agent.lvLocks.unlock(key) }
        if let deadline, ContinuousClock.now >= deadline {
            throw ServiceError(
                .expired, "the caller's deadline passed before recovery step \(step.rawValue) could run; nothing was done",
                details: ["host": .string(host), "vg": .string(vg)])
        }
        let clock = ContinuousClock()
        let start = clock.now
        logger.notice("recovery step", metadata: ["vg": "\(vg)", "step": "\(step.rawValue)"])
        var out: RecoverResult
        do {
            out = try await runStep(step, force: force)
        } catch {
            logger.error("recovery step failed", metadata: ["vg": "\(vg)", "step": "\(step.rawValue)", "error": "\(error.message)"])
            throw error
        }
        let ms = (clock.now - start) / .milliseconds(1)
        out.seconds = (ms * 10).rounded() / 10000
        if step != .plan, out.status == .ok, step != .waitPath || out.ready == true {
            var journal = currentJournal() ?? newJournal()
            if !journal.completed.contains(step) { journal.completed.append(step) }
            if step != .finish { try? journal.save(stateDirectory, vg) }
        }
        logger.notice(
            "recovery step done",
            metadata: [
                "vg": "\(vg)", "step": "\(step.rawValue)", "status": "\(out.status.rawValue)", "took_ms": "\(ms)",
                "message": "\(out.message)",
            ])
        return out
    }

    private func runStep(_ step: RecoveryStep, force: Bool) async throws(ServiceError) -> RecoverResult {
        if step != .plan, step != .waitPath, step != .finish, currentJournal()?.completed.contains(step) == true {
            return skipped(step, "already done earlier in this recovery")
        }
        if step.acts {
            let (confirmed, why) = await lossEvidence(step)
            if !confirmed, !force {
                throw ServiceError(
                    .recoveryRefused,
                    "recovery of VG \(vg) on host \(host), step \(step.rawValue) refused: \(why); nothing was done",
                    details: [
                        "host": .string(host), "vg": .string(vg), "step": .string(step.rawValue), "reason": .string(why),
                        "hint": .string(
                            "if the lockspace of \(vg) on \(host) really was lost, run: aosctl recover --host \(host) --vg \(vg) --execute --force"
                        ),
                    ])
            }
            if !confirmed {
                logger.critical(
                    "recovery step forced although the lease loss is not confirmed",
                    metadata: [
                        "vg": "\(vg)", "step": "\(step.rawValue)", "reason": "\(why)",
                    ])
            }
            // Tie the journal to this boot and this outage (a leftover is set aside).
            var journal =
                currentJournal()
                ?? {
                    if RecoveryJournal.load(stateDirectory, vg) != nil { RecoveryJournal.discard(stateDirectory, vg) }
                    return newJournal()
                }()
            if confirmed, journal.lossEvidence == nil || journal.fencedAt != fenceRecordOfThisBoot()?.fencedAt {
                journal.lossEvidence = why
            }
            saveJournal(journal)
        }
        switch step {
        case .plan: return try await plan()
        case .fence: return try await fence()
        case .waitPath: return try await waitPath()
        case .stopVMs: return try await stopVMs()
        case .deactivate: return try await deactivate()
        case .drop: return try await drop()
        case .lockStart: return try await lockStart()
        case .reactivate: return try await reactivate()
        case .startVMs: return try await startVMs()
        case .finish: return finish()
        }
    }

    // MARK: - Evidence and journal

    /// This VG's fence record of this boot, read from disk (the truth, not the agent's memory).
    func fenceRecordOfThisBoot() -> FenceRecord? {
        guard let r = try? FenceRecord.load(stateDirectory: stateDirectory, vg: vg) else { return nil }
        let boot = HostFacts.bootID()
        return r.bootID.isEmpty || boot.isEmpty || r.bootID == boot ? r : nil
    }

    /// The journal of the current recovery: written in this boot for the fence record that
    /// is on disk now (or for none). A leftover of another boot or outage is not returned.
    func currentJournal() -> RecoveryJournal? {
        guard let j = RecoveryJournal.load(stateDirectory, vg) else { return nil }
        return j.applies(boot: HostFacts.bootID(), record: fenceRecordOfThisBoot()) ? j : nil
    }

    /// A journal for the outage on disk now, in this boot.
    func newJournal() -> RecoveryJournal {
        RecoveryJournal(bootID: HostFacts.bootID(), fencedAt: fenceRecordOfThisBoot()?.fencedAt)
    }

    func saveJournal(_ journal: RecoveryJournal) {
        do { try journal.save(stateDirectory, vg) } catch {
            agent.reportStoreProblem(StoreError(message: error.message), vg: vg, name: "(recovery journal)")
        }
    }

    /// Server-side check before a step acts: does anything show that the VG's lease storage
    /// failed on this host? Evidence, strongest first: the fence record of this boot (the
    /// kill command ran: sanlock gave up the lease); this recovery's own journal, once it
    /// confirmed the loss and tore the VG down (only for the steps after that); LVM asked
    /// now (`vgs`: "storage failed/errors for sanlock leases"). The agent's remembered
    /// `lost` state alone is not evidence.
    func lossEvidence(_ step: RecoveryStep) async -> (confirmed: Bool, why: String) {
        if let r = fenceRecordOfThisBoot() {
            return (true, "the fence record of this boot (source \(r.source), fenced at \(r.fencedAt))")
        }
        if let j = currentJournal(), let e = j.lossEvidence, j.completed.contains(.deactivate), step.followsTeardown {
            return (true, "this recovery confirmed the loss (\(e)) and deactivated the VG's LVs")
        }
        do {
            let problem = try await agent.backend.lockspaceProblem(vg: vg)
            switch problem {
            case .lockStorageFailed?:
                agent.state.update { $0.observeLeaseProblem(vg, problem) }
                return (true, "LVM reports that the lease storage failed")
            case nil:
                agent.state.update { $0.observeLeaseProblem(vg, nil) }
                return (
                    false,
                    "the lockspace of \(vg) is started and works (LVM and sanlock report no lease failure) and there is no fence record"
                )
            case let other?:
                return (
                    false,
                    "the lockspace of \(vg) is \(other.rawValue), but nothing shows that its lease storage failed (no fence record, LVM reports no lease failure)"
                )
            }
        } catch {
            return (false, "cannot confirm that the lease storage failed: \(error.message)")
        }
    }

    // MARK: - Results

    /// A step failed: the message says what failed, `next_step` what to do by hand.
    func failure(_ step: RecoveryStep, _ message: String, next: String, extra: [String: JSONValue] = [:]) -> ServiceError {
        var details: [String: JSONValue] = [
            "host": .string(host), "vg": .string(vg), "step": .string(step.rawValue),
            "next_step": .string(next), "hint": .string("next: \(next)"),
        ]
        for (k, v) in extra { details[k] = v }
        return ServiceError(.recoveryFailed, "recovery of VG \(vg) on host \(host), step \(step.rawValue): \(message)", details: details)
    }

    func ok(_ step: RecoveryStep, _ message: String, changed: Bool) -> RecoverResult {
        RecoverResult(host: host, vg: vg, step: step, status: .ok, changed: changed, message: message)
    }

    func skipped(_ step: RecoveryStep, _ message: String) -> RecoverResult {
        RecoverResult(host: host, vg: vg, step: step, status: .skipped, changed: false, message: message)
    }
}

/// A value for error details (never fails: these types encode without error).
func detailJSON(_ value: some Encodable) -> JSONValue {
    (try? JSONValueEncoder().encode(value)) ?? .null
}
