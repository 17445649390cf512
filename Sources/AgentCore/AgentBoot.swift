import AOSAPI
import RPCWire
import SharedLVM

/// The boot sequence: for each VG wait (bounded) for its PVs, `vgchange --lock-start`,
/// verify the lockspace joined; then settle interrupted activation changes; then re-activate
/// every recorded LV in its mode, except those released while the agent was down; then adopt
/// (first start) or report (later) LVs active here that no record names; then ready.
extension AgentService {
    /// Problems are logged and reported in `health()`; they do not stop the agent.
    /// Returns early (not ready) only when the task is cancelled.
    public func boot() async {
        // Before anything writes the store: a first start adopts what is active (Adoption.swift).
        let firstStart = !store.fileExists && store.loadProblem == nil
        for vg in configuration.volumeGroups {
            if Task.isCancelled { return }
            // Fenced in this boot (the agent restarted since): the VG waits for recovery;
            // starting its lockspace now would hide LVs that still have error tables.
            if noteFenced(vg) {
                state.update { $0.lockspaces[vg] = .lost }
                logger.critical(
                    "VG fenced after a lockspace loss in this boot; not starting its lockspace (run aosctl recover)",
                    metadata: ["vg": "\(vg)"])
                continue
            }
            guard await waitForPVs(vg) else { continue }
            await startLockspace(vg)
        }
        if Task.isCancelled { return }
        await reconcileIntents()
        await restore()
        if Task.isCancelled { return }
        await adoptAtBoot(firstStart: firstStart)
        await resumeJobs()
        let records = store.all
        let summary = state.update { $0.finishBoot(volumeGroups: configuration.volumeGroups, records: records) }
        logger.notice("agent ready", metadata: ["summary": "\(summary)"])
        onStatus(summary)
        changes.yield()
    }

    private func waitForPVs(_ vg: String) async -> Bool {
        setPhase("waiting_for_pvs", status: "waiting for the PVs of \(vg)")
        let clock = ContinuousClock()
        let start = clock.now
        var lastLog = start
        var lastError: LVMError?
        while true {
            do {
                if try await backend.pvsPresent(vg: vg) {
                    logger.info("PVs present", metadata: ["vg": "\(vg)", "waited_ms": "\((clock.now - start) / .milliseconds(1))"])
                    return true
                }
                lastError = nil
            } catch {
                lastError = error
            }
            let waited = clock.now - start
            if waited >= configuration.pvWaitTimeout {
                let problem =
                    "PVs of \(vg) did not appear within \(configuration.pvWaitTimeout)" + (lastError.map { ": \($0.message)" } ?? "")
                logger.error("giving up waiting for PVs; the VG stays unavailable", metadata: ["vg": "\(vg)", "problem": "\(problem)"])
                state.update { $0.vgProblems[vg] = problem }
                return false
            }
            if clock.now - lastLog >= .seconds(10) {
                lastLog = clock.now
                logger.notice(
                    "still waiting for PVs",
                    metadata: [
                        "vg": "\(vg)", "waited_s": "\(waited.components.seconds)",
                        "timeout_s": "\(configuration.pvWaitTimeout.components.seconds)",
                        "last_error": "\(lastError.map { "\($0)" } ?? "-")",
                    ])
                onStatus("waiting for the PVs of \(vg) (\(waited.components.seconds)s)")
            }
            do { try await Task.sleep(for: configuration.pvPollInterval) } catch { return false }
        }
    }

    /// `vgchange --lock-start VG`, then checks that sanlock joined; the outcome is in the state.
    func startLockspace(_ vg: String) async {
        setPhase("starting_lockspaces", status: "starting the lockspace of \(vg)")
        let clock = ContinuousClock()
        let start = clock.now
        do {
            try await backend.lockStart(vg: vg)
            guard try await backend.lockspaceStarted(vg: vg) else {
                logger.error("lockspace did not join", metadata: ["vg": "\(vg)"])
                state.update {
                    $0.lockStartFailed(
                        vg, problem: "vgchange --lock-start \(vg) succeeded but sanlock shows no lockspace for it", lost: false)
                }
                return
            }
            logger.info("lockspace started", metadata: ["vg": "\(vg)", "took_ms": "\((clock.now - start) / .milliseconds(1))"])
            state.update { $0.lockStarted(vg) }
        } catch {
            logger.error("cannot start lockspace", metadata: ["vg": "\(vg)", "error": "\(error)"])
            state.update { $0.lockStartFailed(vg, problem: "lock start failed: \(error.message)", lost: error.code == .lockStorageFailed) }
        }
    }

    /// At start, before the restore: every intent a killed agent left is settled against
    /// what LVM shows now. Activate + the LV active here: recorded in that mode (it is held,
    /// so the controller must see it). Deactivate + the LV not active: the record goes (the
    /// caller released it; the restore must not take it back). Otherwise the command never
    /// ran: the intent is dropped and the record stays. An intent of a VG whose lockspace
    /// is not started stays (a deactivate intent then keeps its LV from being restored).
    func reconcileIntents() async {
        let pending = store.intents
        guard !pending.isEmpty else { return }
        // sanlock is the only source of the lock mode: an activation killed halfway through
        // a mode change is recorded in the mode the lock really has.
        let locks = try? await backend.lockStatus()
        for intent in pending {
            guard state.read({ $0.lockspaces[intent.vg] == .started }) else { continue }
            let active: Bool
            var held: LVActivationMode?
            do {
                let info = try await backend.lvInfo(vg: intent.vg, name: intent.name)
                active = info.active
                held = locks?.resources.first { $0.lvUUID == info.uuid }?.mode
            } catch  where error.code == .notFound {
                active = false
            } catch {
                logger.error(
                    "cannot reconcile an interrupted activation change",
                    metadata: [
                        "vg": "\(intent.vg)", "lv": "\(intent.name)", "error": "\(error)",
                    ])
                continue
            }
            do {
                switch (intent.operation, active) {
                case (.activate(let mode), true):
                    try store.set(ActivationRecord(vg: intent.vg, name: intent.name, mode: held ?? mode))
                case (.deactivate, false):
                    try store.remove(vg: intent.vg, name: intent.name)
                case (.activate, false), (.deactivate, true):
                    try store.abandon(vg: intent.vg, name: intent.name)
                }
            } catch {
                reportStoreProblem(error, vg: intent.vg, name: intent.name)
                continue
            }
            logger.notice(
                "reconciled an activation change interrupted by the agent's stop",
                metadata: [
                    "vg": "\(intent.vg)", "lv": "\(intent.name)", "intent": "\(intent.operation)", "lv_active": "\(active)",
                ])
        }
    }

    /// Re-activates every recorded LV in its mode (bounded concurrency). An LV that no longer
    /// exists is forgotten; an LV released while the agent was down (its `aos-released.<host>`
    /// tag) is settled by `settleReleased` instead; every other failure keeps the record (a
    /// later activate or deactivate settles it) and is reported in `health().restore_failures`.
    func restore() async {
        let records = store.all
        guard !records.isEmpty else { return }
        setPhase("restoring", status: "restoring \(records.count) activations")
        logger.notice("restoring activations", metadata: ["count": "\(records.count)"])
        // One lvs per VG: the LVs' tags say which activations were released while the agent
        // was down (ReleasedActivations.swift), and whether they are active and open here.
        var listed: [String: Result<[String: LogicalVolume], LVMError>] = [:]
        for vg in Set(records.map(\.vg)) where state.read({ $0.lockspaces[vg] == .started }) {
            do {
                let lvs = try await backend.listLVs(vg: vg)
                listed[vg] = .success(Dictionary(lvs.map { ($0.name, $0) }, uniquingKeysWith: { a, _ in a }))
            } catch {
                listed[vg] = .failure(error)
            }
        }
        await withTaskGroup(of: Void.self) { group in
            for record in records {
                let listing = listed[record.vg]
                group.addTask { await self.restore(record, listing: listing) }
            }
        }
    }

    private func restore(_ record: ActivationRecord, listing: Result<[String: LogicalVolume], LVMError>?) async {
        let key = record.key
        func fail(_ code: String, _ message: String) {
            logger.error(
                "could not restore activation",
                metadata: [
                    "vg": "\(record.vg)", "lv": "\(record.name)", "mode": "\(record.mode.rawValue)", "code": "\(code)",
                    "error": "\(message)",
                ])
            state.update { $0.restoreFailures[key] = RestoreFailure(record: record, code: code, message: message) }
        }
        guard configuration.volumeGroups.contains(record.vg) else {
            return fail(WireErrorCode.unknownVG.rawValue, "volume group \(record.vg) is no longer in [agent] volume_groups")
        }
        guard configuration.lvNames.manages(record.name) else {
            return fail(
                WireErrorCode.lvNotManaged.rawValue,
                "the LV's name matches no pattern of [agent] lv_name_pattern (\(configuration.lvNames)): not re-activated")
        }
        if store.intent(vg: record.vg, name: record.name)?.operation == .deactivate {
            return fail(
                WireErrorCode.deactivatePending.rawValue,
                "a deactivate was in progress when the agent stopped and could not be checked: not re-activated")
        }
        let lockspace = state.read { $0.lockspaces[record.vg] ?? .notStarted }
        guard lockspace == .started else {
            return fail(WireErrorCode.lockspaceNotStarted.rawValue, "the lockspace of \(record.vg) is \(lockspace.rawValue)")
        }
        await lvLocks.lock(key)
        defer { lvLocks.unlock(key) }
        await slots.acquire()
        defer { slots.release() }
        switch listing {
        case .success(let lvs)?:
            if let info = lvs[record.name], await settleReleased(record, info) { return }
        case .failure(let error)?:
            // Without the tags the agent cannot tell a released activation from one to restore.
            noteLockspace(error, vg: record.vg)
            return fail(error.code.rawValue, "cannot read the VG's LVs (and their release tags) to restore: \(error.message)")
        case nil:
            break
        }
        do {
            try await backend.activate(vg: record.vg, name: record.name, mode: record.mode)
            logger.info("restored activation", metadata: ["vg": "\(record.vg)", "lv": "\(record.name)", "mode": "\(record.mode.rawValue)"])
            state.update { _ = $0.restoreFailures.removeValue(forKey: key) }
        } catch  where error.code == .notFound {
            fail(WireErrorCode.notFound.rawValue, "the LV no longer exists; its record is dropped: \(error.message)")
            do { try store.remove(vg: record.vg, name: record.name) } catch {
                reportStoreProblem(error, vg: record.vg, name: record.name)
            }
        } catch {
            noteLockspace(error, vg: record.vg)
            fail(error.code.rawValue, error.message)
        }
    }
}
