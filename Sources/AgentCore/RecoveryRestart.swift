import AOSAPI
import HostSupport
import Hypervisor
import RPCWire
import SharedLVM

/// The steps that bring the VG back: drop, lock_start, reactivate, start_vms, finish.
extension LockspaceRecovery {
    func drop() async throws(ServiceError) -> RecoverResult {
        let state = await currentLockspace(pathsQueued: false)
        guard state == .lost else {
            return skipped(
                .drop,
                state == .started
                    ? "the lockspace works: dropping it would be wrong"
                    : "lvmlockd no longer holds the lockspace (the kill command's drop, or an earlier recovery)")
        }
        // After the kill command succeeded, lvmlockctl dropped the lockspace itself: sanlock
        // no longer lists it, and a second drop would only fail.
        let held: Bool
        do { held = try await agent.backend.lockspaceStarted(vg: vg) } catch {
            throw failure(
                .drop, error.message,
                next: "run `sanlock client status` on \(host); if it lists lvm_\(vg), run `lvmlockctl --drop \(vg)`, then run recover again"
            )
        }
        guard held else {
            agent.state.update { $0.lockspaces[vg] = .notStarted }
            return skipped(.drop, "lvmlockd already dropped the killed lockspace (the kill command's drop)")
        }
        do {
            try await agent.backend.dropLockspace(vg: vg)
        } catch {
            throw failure(
                .drop, error.message, next: "run `lvmlockctl --drop \(vg)` on \(host) and read its output, then run recover again")
        }
        agent.state.update { $0.lockspaces[vg] = .notStarted }
        return ok(.drop, "dropped the killed lockspace (lvmlockctl --drop \(vg))", changed: true)
    }

    /// lvmlockd removes a dropped lockspace in the background: a lock-start right after the
    /// drop can exit 0 without joining (seen in the lab), so it is tried up to four times.
    static let lockStartRetry = RetryPolicy.fixed(.seconds(3), attempts: 4)

    func lockStart() async throws(ServiceError) -> RecoverResult {
        if await currentLockspace(pathsQueued: false) == .started {
            agent.state.update { $0.lockspaces[vg] = .started }
            return skipped(.lockStart, "the lockspace is already started")
        }
        let joinedOrFailed: ((LockspaceState?, String?)) -> Bool = { $0.0 != .notStarted }
        let outcome = await Self.lockStartRetry.run(until: joinedOrFailed) {
            await agent.startLockspace(vg)
            return agent.state.read { ($0.lockspaces[vg], $0.vgProblems[vg]) }
        }
        let ((after, problem), attempts) = (outcome.value, outcome.tries)
        guard after == .started else {
            throw failure(
                .lockStart, problem ?? "the lockspace did not start",
                next: after == .lost
                    ? "the lease storage still fails: check the path (multipath -ll), then run recover again"
                    : "run `vgchange --lock-start \(vg)` on \(host) and read its output, then run recover again")
        }
        return ok(.lockStart, "lockspace started" + (attempts > 1 ? " (attempt \(attempts))" : ""), changed: true)
    }

    func reactivate() async throws(ServiceError) -> RecoverResult {
        let (lvs, _) = try await lvStates()
        let names = agent.configuration.lvNames
        var journal = currentJournal() ?? newJournal()
        var reactivated: [RecoveryLVOutcome] = []
        var leftAlone: [RecoveryLVOutcome] = []
        var failures: [String] = []
        for l in lvs {
            guard let mode = l.mode else {
                leftAlone.append(RecoveryLVOutcome(name: l.name, mode: nil, reason: "not activated through the agent: its mode is unknown"))
                continue
            }
            guard names.manages(l.name) else {
                leftAlone.append(
                    RecoveryLVOutcome(
                        name: l.name, mode: mode.wire, code: WireErrorCode.lvNotManaged.rawValue,
                        reason: "its name matches no pattern of [agent] lv_name_pattern (\(names))"))
                continue
            }
            do {
                try await agent.backend.activate(vg: vg, name: l.name, mode: mode)
                reactivated.append(RecoveryLVOutcome(name: l.name, mode: mode.wire))
                agent.state.update { _ = $0.restoreFailures.removeValue(forKey: "\(vg)/\(l.name)") }
            } catch  where error.code == .lockedByOtherHost || error.code == .incompatibleLockMode {
                // Another host took it while this one was cut off: it is theirs now.
                leftAlone.append(
                    RecoveryLVOutcome(
                        name: l.name, mode: mode.wire, code: error.code.rawValue,
                        reason: "another host holds it now; not taken back"))
                agent.forget(vg, l.name)
            } catch  where error.code == .notFound {
                leftAlone.append(
                    RecoveryLVOutcome(
                        name: l.name, mode: mode.wire, code: WireErrorCode.notFound.rawValue,
                        reason: "the LV no longer exists"))
                agent.forget(vg, l.name)
            } catch {
                agent.noteLockspace(error, vg: vg)
                failures.append("\(l.name) (\(mode.rawValue)): \(error.message)")
            }
        }
        journal.reactivated = reactivated
        journal.leftAlone = leftAlone
        try? journal.save(stateDirectory, vg)
        agent.activationsChanged()
        guard failures.isEmpty else {
            throw failure(
                .reactivate, "could not re-activate: \(failures.joined(separator: "; "))",
                next: "activate them by hand (lvchange -aey|-asy \(vg)/NAME) or through aosctl volume activate, then run recover again",
                extra: ["reactivated": detailJSON(reactivated), "left_alone": detailJSON(leftAlone)])
        }
        var out = ok(.reactivate, "re-activated \(reactivated.count) LV(s); \(leftAlone.count) left alone", changed: !reactivated.isEmpty)
        out.reactivated = reactivated
        out.left_alone = leftAlone
        return out
    }

    func startVMs() async throws(ServiceError) -> RecoverResult {
        var journal = currentJournal() ?? newJournal()
        guard let hypervisor = agent.hypervisor else { return skipped(.startVMs, "no hypervisor configured: VMs are left alone") }
        guard !journal.stoppedVMs.isEmpty else { return skipped(.startVMs, "no VM was stopped by this recovery") }
        // "vg/lv" of every LV that is active here again.
        let back = Set(journal.reactivated.map { "\(vg)/\($0.name)" })
        let all: [Domain]
        do { all = try await hypervisor.domains() } catch {
            throw failure(
                .startVMs, error.message, next: "start the VMs \(journal.stoppedVMs.joined(separator: ", ")) yourself (virsh start NAME)")
        }
        var started: [String] = []
        var notStarted: [VMNotStarted] = []
        for name in journal.stoppedVMs where !journal.vmsStarted.contains(name) {
            let disks = all.first { $0.name == name }?.disks ?? []
            // Disks on this VG that are not back (another host took them): the VM stays off.
            let missing = disks.filter { d in
                guard let lv = LVDevicePath.canonical(d), lv.hasPrefix("\(vg)/") else { return false }
                return !back.contains(lv)
            }
            guard missing.isEmpty else {
                notStarted.append(
                    VMNotStarted(name: name, reason: "its disk(s) \(missing.joined(separator: ", ")) are not active here again"))
                continue
            }
            do { try await hypervisor.start(name) } catch {
                throw failure(
                    .startVMs, "cannot start VM \(name): \(error.message)", next: "start VM \(name) yourself (virsh start \(name))",
                    extra: ["started": detailJSON(started)])
            }
            started.append(name)
            journal.vmsStarted.append(name)
            try? journal.save(stateDirectory, vg)
        }
        journal.vmsNotStarted = notStarted
        try? journal.save(stateDirectory, vg)
        var out = ok(
            .startVMs,
            "started \(started.count) VM(s)"
                + (notStarted.isEmpty ? "" : "; \(notStarted.count) left stopped (their disks are elsewhere now)"),
            changed: !started.isEmpty)
        out.started = started
        out.not_started = notStarted
        return out
    }

    func finish() -> RecoverResult {
        let journal = currentJournal()
        if journal == nil, RecoveryJournal.load(stateDirectory, vg) != nil { RecoveryJournal.discard(stateDirectory, vg) }
        let hadRecord = agent.state.read { $0.fenced[vg] } != nil
        FenceRecord.archive(stateDirectory: stateDirectory, vg: vg, suffix: "recovered-\(Int(HostFacts.now()))")
        if journal != nil { _ = DurableFile.remove(RecoveryJournal.path(stateDirectory, vg)) }
        agent.state.update { $0.recoveryFinished(vg) }
        agent.activationsChanged()
        var out = ok(.finish, "recovery of \(vg) finished", changed: hadRecord || journal != nil)
        out.result = RecoverySummary(
            reactivated: journal?.reactivated ?? [], left_alone: journal?.leftAlone ?? [],
            vms_started: journal?.vmsStarted ?? [], vms_not_started: journal?.vmsNotStarted ?? [])
        return out
    }
}
