import AOSAPI
import Hypervisor
import Logging
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
}

/// What one recovery has done so far: `<state_dir>/recovery-<vg>.json`, so that a second
/// run after a failed step continues instead of undoing finished work.
struct RecoveryJournal: Sendable {
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
    var completed: [String] = []
    var stoppedVMs: [String] = []
    var reactivated: [JSONValue] = []
    var leftAlone: [JSONValue] = []
    var vmsStarted: [String] = []
    var vmsNotStarted: [JSONValue] = []

    static func path(_ dir: String, _ vg: String) -> String { "\(dir)/recovery-\(vg).json" }

    static func load(_ dir: String, _ vg: String) -> RecoveryJournal? {
        guard let bytes = try? DurableFile.read(path(dir, vg), limit: 16 << 20), let v = try? JSONValue.parse(bytes) else { return nil }
        func strings(_ k: String) -> [String] { (v[k]?.arrayValue ?? []).compactMap(\.stringValue) }
        return RecoveryJournal(bootID: v["boot_id"]?.stringValue ?? "", fencedAt: v["fenced_at"]?.doubleValue,
                               lossEvidence: v["loss_evidence"]?.stringValue,
                               completed: strings("completed"), stoppedVMs: strings("stopped_vms"),
                               reactivated: v["reactivated"]?.arrayValue ?? [], leftAlone: v["left_alone"]?.arrayValue ?? [],
                               vmsStarted: strings("vms_started"), vmsNotStarted: v["vms_not_started"]?.arrayValue ?? [])
    }

    var json: JSONValue {
        ["boot_id": .string(bootID), "fenced_at": fencedAt.map(JSONValue.double) ?? .null,
         "loss_evidence": lossEvidence.map(JSONValue.string) ?? .null,
         "completed": .array(completed.map(JSONValue.string)), "stopped_vms": .array(stoppedVMs.map(JSONValue.string)),
         "reactivated": .array(reactivated), "left_alone": .array(leftAlone),
         "vms_started": .array(vmsStarted.map(JSONValue.string)), "vms_not_started": .array(vmsNotStarted)]
    }

    /// Whether this journal belongs to the outage described by `record` in the boot `boot`.
    func applies(boot: String, record: FenceRecord?) -> Bool {
        !bootID.isEmpty && bootID == boot && fencedAt == record?.fencedAt
    }

    func save(_ dir: String, _ vg: String) throws(DurableFile.Failure) {
        try DurableFile.writeAtomically(Self.path(dir, vg), JSONWriter.bytes(json) + [0x0a])
    }
}

extension AgentService {
    /// A recovery step failed: the message says what failed, `next_step` what to do by hand.
    func recoveryFailure(_ step: RecoveryStep, _ vg: String, _ message: String, next: String,
                         extra: [String: JSONValue] = [:]) -> ServiceError {
        var details: [String: JSONValue] = ["host": .string(host), "vg": .string(vg), "step": .string(step.rawValue),
                                            "next_step": .string(next), "hint": .string("next: \(next)")]
        for (k, v) in extra { details[k] = v }
        return ServiceError(code: "recovery_failed", message: "recovery of VG \(vg) on host \(host), step \(step.rawValue): \(message)",
                            details: details)
    }

    /// The agent's `recover` method: runs one step for one VG. Steps are serialized per VG.
    /// The steps that change something on the host: each re-checks that the lease storage
    /// of the VG really failed before it acts.
    static let actingSteps: Set<RecoveryStep> = [.fence, .stopVMs, .deactivate, .drop, .lockStart, .reactivate, .startVMs]
    /// The steps that may run on a started lockspace: after this recovery deactivated the
    /// VG's LVs (having confirmed the loss), it drops and starts the lockspace itself.
    static let afterTeardown: Set<RecoveryStep> = [.drop, .lockStart, .reactivate, .startVMs]

    /// This VG's fence record of this boot, read from disk (the truth, not the agent's memory).
    func fenceRecordOfThisBoot(_ vg: String) -> FenceRecord? {
        guard let r = try? FenceRecord.load(stateDirectory: configuration.stateDirectory, vg: vg) else { return nil }
        let boot = HostFacts.bootID()
        return r.bootID.isEmpty || boot.isEmpty || r.bootID == boot ? r : nil
    }

    /// The journal of the current recovery: written in this boot for the fence record that
    /// is on disk now (or for none). A leftover of another boot or outage is not returned.
    func currentJournal(_ vg: String) -> RecoveryJournal? {
        guard let j = RecoveryJournal.load(configuration.stateDirectory, vg) else { return nil }
        return j.applies(boot: HostFacts.bootID(), record: fenceRecordOfThisBoot(vg)) ? j : nil
    }

    /// Server-side check before a step acts: does anything show that the VG's lease storage
    /// failed on this host? Evidence, strongest first: the fence record of this boot (the
    /// kill command ran: sanlock gave up the lease); this recovery's own journal, once it
    /// confirmed the loss and tore the VG down (only for the steps after that); LVM asked
    /// now (`vgs`: "storage failed/errors for sanlock leases"). The agent's remembered
    /// `lost` state alone is not evidence.
    func lossEvidence(_ vg: String, step: RecoveryStep) async -> (confirmed: Bool, why: String) {
        if let r = fenceRecordOfThisBoot(vg) {
            return (true, "the fence record of this boot (source \(r.source), fenced at \(r.fencedAt))")
        }
        if let j = currentJournal(vg), let e = j.lossEvidence, j.completed.contains(RecoveryStep.deactivate.rawValue),
           Self.afterTeardown.contains(step) {
            return (true, "this recovery confirmed the loss (\(e)) and deactivated the VG's LVs")
        }
        do {
            switch try await backend.lockspaceProblem(vg: vg) {
            case .lockStorageFailed?:
                runtime.withLock { $0.lockspaces[vg] = .lost }
                return (true, "LVM reports that the lease storage failed")
            case nil:
                runtime.withLock { r in if r.lockspaces[vg] == .lost { r.lockspaces[vg] = .started } }
                return (false, "the lockspace of \(vg) is started and works (LVM and sanlock report no lease failure) and there is no fence record")
            case let other?:
                return (false, "the lockspace of \(vg) is \(other.rawValue), but nothing shows that its lease storage failed (no fence record, LVM reports no lease failure)")
            }
        } catch {
            return (false, "cannot confirm that the lease storage failed: \(error.message)")
        }
    }

    func recover(vg: String, step: RecoveryStep, force: Bool = false,
                 deadline: ContinuousClock.Instant?) async throws(ServiceError) -> JSONValue {
        let key = "\(vg)/ recovery"  // not a valid LV name: never collides with an LV's key
        await lvLocks.lock(key)
        defer { lvLocks.unlock(key) }
        if let deadline, ContinuousClock.now >= deadline {
            throw .agent(.expired, "the caller's deadline passed before recovery step \(step.rawValue) could run; nothing was done",
                         host: host, vg: vg)
        }
        let clock = ContinuousClock()
        let start = clock.now
        logger.notice("recovery step", metadata: ["vg": "\(vg)", "step": "\(step.rawValue)"])
        var out: [String: JSONValue]
        do {
            out = try await runRecoveryStep(step, vg, force: force)
        } catch {
            logger.error("recovery step failed", metadata: ["vg": "\(vg)", "step": "\(step.rawValue)", "error": "\(error.message)"])
            throw error
        }
        let ms = (clock.now - start) / .milliseconds(1)
        out["step"] = .string(step.rawValue)
        out["host"] = .string(host)
        out["vg"] = .string(vg)
        out["seconds"] = .double((ms * 10).rounded() / 10000)
        if step != .plan, out["status"]?.stringValue == "ok", step != .waitPath || out["ready"]?.boolValue == true {
            var journal = currentJournal(vg) ?? newJournal(vg)
            if !journal.completed.contains(step.rawValue) { journal.completed.append(step.rawValue) }
            if step != .finish { try? journal.save(configuration.stateDirectory, vg) }
        }
        logger.notice("recovery step done", metadata: [
            "vg": "\(vg)", "step": "\(step.rawValue)", "status": "\(out["status"]?.stringValue ?? "?")",
            "took_ms": "\(ms)", "message": "\(out["message"]?.stringValue ?? "")"])
        return .object(out)
    }

    private func ok(_ message: String, changed: Bool, _ extra: [String: JSONValue] = [:]) -> [String: JSONValue] {
        var o = extra
        o["status"] = "ok"
        o["changed"] = .bool(changed)
        o["message"] = .string(message)
        return o
    }

    private func skipped(_ message: String, _ extra: [String: JSONValue] = [:]) -> [String: JSONValue] {
        var o = extra
        o["status"] = "skipped"
        o["changed"] = false
        o["message"] = .string(message)
        return o
    }

    /// A journal for the outage on disk now, in this boot.
    func newJournal(_ vg: String) -> RecoveryJournal {
        RecoveryJournal(bootID: HostFacts.bootID(), fencedAt: fenceRecordOfThisBoot(vg)?.fencedAt)
    }

    private func runRecoveryStep(_ step: RecoveryStep, _ vg: String, force: Bool) async throws(ServiceError) -> [String: JSONValue] {
        let dir = configuration.stateDirectory
        if step != .plan, step != .waitPath, step != .finish,
           currentJournal(vg)?.completed.contains(step.rawValue) == true {
            return skipped("already done earlier in this recovery")
        }
        if Self.actingSteps.contains(step) {
            let (confirmed, why) = await lossEvidence(vg, step: step)
            if !confirmed, !force {
                throw ServiceError(
                    code: "recovery_refused",
                    message: "recovery of VG \(vg) on host \(host), step \(step.rawValue) refused: \(why); nothing was done",
                    details: ["host": .string(host), "vg": .string(vg), "step": .string(step.rawValue), "reason": .string(why),
                              "hint": .string("if the lockspace of \(vg) on \(host) really was lost, run: aosctl recover --host \(host) --vg \(vg) --execute --force")])
            }
            if !confirmed {
                logger.critical("recovery step forced although the lease loss is not confirmed", metadata: [
                    "vg": "\(vg)", "step": "\(step.rawValue)", "reason": "\(why)"])
            }
            // Tie the journal to this boot and this outage (a leftover is set aside).
            var journal = currentJournal(vg) ?? {
                if RecoveryJournal.load(dir, vg) != nil { RecoveryJournal.discard(dir, vg) }
                return newJournal(vg)
            }()
            if confirmed, journal.lossEvidence == nil || journal.fencedAt != fenceRecordOfThisBoot(vg)?.fencedAt {
                journal.lossEvidence = why
            }
            do { try journal.save(dir, vg) } catch {
                reportStoreProblem(StoreError(message: error.message), vg: vg, name: "(recovery journal)")
            }
        }
        switch step {
        case .plan: return try await recoveryPlan(vg)
        case .fence: return try await recoveryFence(vg)
        case .waitPath: return try await recoveryWaitPath(vg)
        case .stopVMs: return try await recoveryStopVMs(vg)
        case .deactivate: return try await recoveryDeactivate(vg)
        case .drop: return try await recoveryDrop(vg)
        case .lockStart: return try await recoveryLockStart(vg)
        case .reactivate: return try await recoveryReactivate(vg)
        case .startVMs: return try await recoveryStartVMs(vg)
        case .finish: return recoveryFinish(vg)
        }
    }

    // MARK: - What is there

    struct LVState {
        var name: String
        var mode: LVActivationMode?
        /// "active", "failing" (error table), "absent" (no device), "unknown" (no device-mapper view).
        var device: String
        var open: Int
        var dmName: String?
    }

    /// The VG's LVs that recovery cares about: recorded by the agent, recorded by the kill
    /// command, or mapped on this host now.
    func recoveryLVs(_ vg: String) async throws(ServiceError) -> (lvs: [LVState], devices: Fencer.VGDevices?) {
        var modes: [String: LVActivationMode?] = [:]
        for r in store.all where r.vg == vg { modes[r.name] = r.mode }
        if let fenced = runtime.withLock({ $0.fenced[vg] }) {
            for a in fenced.lvs { if let name = a.lv, modes[name] == nil { modes[name] = a.mode } }
        }
        let fencer = Fencer(dm: dm, logger: logger)
        let devices: Fencer.VGDevices?
        do { devices = try await fencer.devices(of: vg) } catch {
            throw recoveryFailure(.plan, vg, "cannot list device-mapper devices: \(error)", next: "check `dmsetup info -c` on \(host)")
        }
        var mapped: [String: DMDevice] = [:]
        for (d, name) in devices?.lvs ?? [] {
            mapped[name] = d
            if modes[name] == nil { modes[name] = .some(nil) }
        }
        let haveDM = !(devices?.lvs.isEmpty ?? true) || devices?.lockLV != nil
        var out: [LVState] = []
        for name in modes.keys.sorted() {
            let mode = modes[name] ?? nil
            guard let d = mapped[name] else {
                out.append(LVState(name: name, mode: mode, device: haveDM ? "absent" : "unknown", open: 0, dmName: nil))
                continue
            }
            let failing = ((try? await dm.table(of: d.name)) ?? []).contains { $0.target == "error" }
            out.append(LVState(name: name, mode: mode, device: failing ? "failing" : "active", open: d.openCount, dmName: d.name))
        }
        return (out, devices)
    }

    /// Paths of the VG (from the fence record, else below the lock LV) and whether each can
    /// be read now.
    func pathStates(_ vg: String, _ devices: Fencer.VGDevices?) async -> [JSONValue] {
        var names = runtime.withLock { $0.fenced[vg] }?.paths.filter { $0.action != "none" }.map(\.device) ?? []
        for p in devices?.paths ?? [] where !names.contains(p.name) { names.append(p.name) }
        let all = (try? await dm.devices()) ?? []
        var out: [JSONValue] = []
        for name in names {
            guard let d = all.first(where: { $0.name == name }) else {
                out.append(["device": .string(name), "state": "absent", "readable": false])
                continue
            }
            let table = (try? await dm.table(of: name)) ?? []
            var state = "live"
            if d.suspended { state = "suspended" } else if table.contains(where: { $0.target == "error" }) { state = "failing" }
            var entry: [String: JSONValue] = ["device": .string(name), "state": .string(state), "target": .string(table.first?.target ?? "?")]
            if state == "live" {
                let r = await readable("/dev/mapper/\(name)")
                entry["readable"] = .bool(r.ok)
                if let why = r.problem { entry["problem"] = .string(why) }
            } else {
                entry["readable"] = false
            }
            out.append(.object(entry))
        }
        return out
    }

    /// Reads the first 4 KiB with O_DIRECT (not this host's page cache). Runs only on a path
    /// that is neither suspended nor failing, with a timeout; a read stuck in the kernel
    /// is left behind rather than waited for.
    func readable(_ device: String) async -> (ok: Bool, problem: String?) {
        let argv = ["dd", "if=\(device)", "of=/dev/null", "bs=4096", "count=1", "iflag=direct", "status=none"]
        do {
            let r = try await LVMCommandRunner(reapGrace: .seconds(1)).run(argv, timeout: .seconds(5))
            if r.termination.isSuccess { return (true, nil) }
            let line = r.stderr.split(separator: "\n").first.map(String.init) ?? "\(r.termination)"
            return (false, "read failed: \(line)")
        } catch {
            return (false, "cannot run dd: \(error.message)")
        }
    }

    /// nil when the lockspace works; otherwise "lost" / "not_started". Trusts the agent's
    /// own state first; asks LVM only when the agent believes all is well and no path is
    /// queued (LVM would hang then).
    func currentLockspace(_ vg: String, pathsQueued: Bool) async -> LockspaceState {
        let (known, fenced) = runtime.withLock { ($0.lockspaces[vg] ?? .notStarted, $0.fenced[vg] != nil) }
        // A queued path alone is no proof of a loss (a short blip rides through), and LVM
        // would hang on it: keep what the agent knows. A loss the kill command recorded stays
        // a loss; one the agent only inferred from an error text is asked again.
        if pathsQueued || (known == .lost && fenced) { return known }
        do {
            switch try await backend.lockspaceProblem(vg: vg) {
            case nil: return .started
            case .lockStorageFailed?:
                runtime.withLock { $0.lockspaces[vg] = .lost }
                return .lost
            default:
                runtime.withLock { if $0.lockspaces[vg] == .started { $0.lockspaces[vg] = .notStarted } }
                return .notStarted
            }
        } catch {
            noteLockspace(error, vg: vg)
            return runtime.withLock { $0.lockspaces[vg] ?? .notStarted }
        }
    }

    func lvPaths(_ vg: String, _ names: [String]) -> [String] { names.map { backend.devicePath(vg: vg, name: $0) } }

    // MARK: - Steps

    func recoveryPlan(_ vg: String) async throws(ServiceError) -> [String: JSONValue] {
        let (lvs, devices) = try await recoveryLVs(vg)
        let paths = await pathStates(vg, devices)
        let queued = paths.contains { $0["state"]?.stringValue == "suspended" }
        let state = await currentLockspace(vg, pathsQueued: queued)
        let fenced = runtime.withLock { $0.fenced[vg] }
        let failing = lvs.contains { $0.device == "failing" }
        // Only this recovery's journal counts (this boot, this fence record), and only once it
        // tore the VG down: a leftover journal alone does not make a healthy VG need recovery.
        let journal = currentJournal(vg)
        let unfinished = journal?.completed.contains(RecoveryStep.deactivate.rawValue) == true
        let needed = state != .started || fenced != nil || failing || unfinished
        var vmsJSON: JSONValue = .null
        var vmProblem: String?
        if let hypervisor {
            do {
                let uses = try await hypervisor.domains(usingAnyOf: lvPaths(vg, lvs.map(\.name)))
                vmsJSON = .array(uses.map { u in
                    ["name": .string(u.domain.name), "running": .bool(u.domain.running), "disks": .array(u.disks.map(JSONValue.string))]
                })
            } catch {
                vmProblem = error.message
            }
        }
        var reason: String
        switch (state, fenced) {
        case (.lost, .some(let f)):
            reason = "sanlock lost the lease storage; the kill command fenced the VG's I/O \(f.complete ? "completely" : "PARTIALLY") (\(f.lvs.count) LVs)"
        case (.lost, nil): reason = "sanlock lost the lease storage (no kill command ran: queued writes may land when the path returns)"
        case (.notStarted, .some): reason = "the VG was fenced after a lease loss; its lockspace is not started"
        case (.notStarted, nil): reason = "the lockspace is not started"
        case (.started, .some): reason = "the lockspace is started again, but the fence record is still there"
        case (.started, nil): reason = failing ? "LVs still have error tables" : (unfinished ? "an earlier recovery did not finish" : "healthy")
        }
        if queued { reason += "; the path is suspended (I/O queues): if the outage outlasts sanlock's lease, the kill command fences" }
        var out: [String: JSONValue] = [
            "status": "ok", "changed": false, "lockspace": .string(state.rawValue), "needs_recovery": .bool(needed),
            "reason": .string(reason), "fenced": fenced?.json ?? .null, "paths": .array(paths),
            "lvs": .array(lvs.map { l in
                ["name": .string(l.name), "mode": l.mode.map { .string($0.rawValue) } ?? .null, "device": .string(l.device),
                 "open": .int(Int64(l.open)), "device_path": .string(backend.devicePath(vg: vg, name: l.name))]
            }),
            "vms": vmsJSON, "hypervisor": .bool(hypervisor != nil),
            "steps": .array(RecoveryStep.execution.map { ["step": .string($0.rawValue), "action": .string($0.summary)] }),
            "message": .string(needed ? "recovery needed: \(reason)" : "nothing to recover: the lockspace of \(vg) is started and nothing is fenced"),
        ]
        if let vmProblem { out["vms_problem"] = .string(vmProblem) }
        if let journal { out["journal"] = journal.json }
        return out
    }

    func recoveryFence(_ vg: String) async throws(ServiceError) -> [String: JSONValue] {
        if let f = runtime.withLock({ $0.fenced[vg] }), f.complete {
            return skipped("the kill command fenced the VG at \(f.fencedAt) (\(f.lvs.count) LVs)")
        }
        let (_, devices) = try await recoveryLVs(vg)
        let paths = await pathStates(vg, devices)
        let queued = paths.contains { $0["state"]?.stringValue == "suspended" }
        guard await currentLockspace(vg, pathsQueued: queued) == .lost else {
            return skipped("the lockspace was not lost: nothing to fence")
        }
        var modes: [String: LVActivationMode] = [:]
        for r in store.all where r.vg == vg { modes[r.name] = r.mode }
        let healthy = Set(paths.filter { $0["readable"]?.boolValue == true }.compactMap { $0["device"]?.stringValue })
        let record = await Fencer(dm: dm, logger: logger).fence(vg: vg, host: host, modes: modes, source: "recovery",
                                                                healthyPaths: healthy)
        do { try record.save(stateDirectory: configuration.stateDirectory) } catch {
            reportStoreProblem(StoreError(message: error.message), vg: vg, name: "(fence record)")
        }
        _ = noteFenced(vg)
        guard record.complete else {
            let failed = (record.paths + record.lvs).filter { !$0.ok }.map { "\($0.device): \($0.detail ?? "failed")" }
            throw recoveryFailure(.fence, vg, "could not fail the I/O of: \(failed.joined(separator: "; "))",
                                  next: "load an error table into each listed device by hand (dmsetup load NAME --table '0 SECTORS error' && dmsetup resume NAME), then run recover again",
                                  extra: ["record": record.json])
        }
        return ok("failed the VG's I/O on this host: \(record.paths.count) path device(s), \(record.lvs.count) LV(s)", changed: true,
                  ["record": record.json])
    }

    func recoveryWaitPath(_ vg: String) async throws(ServiceError) -> [String: JSONValue] {
        let (_, devices) = try await recoveryLVs(vg)
        let paths = await pathStates(vg, devices)
        guard !paths.isEmpty else {
            return ok("no device-mapper path device to check", changed: false, ["ready": true, "paths": .array(paths)])
        }
        let waiting = paths.filter { $0["readable"]?.boolValue != true }
        guard waiting.isEmpty else {
            let what = waiting.map { "\($0["device"]?.stringValue ?? "?") is \($0["state"]?.stringValue ?? "?")\($0["problem"].map { " (\($0.stringValue ?? ""))" } ?? "")" }
            return ["status": "waiting", "changed": false, "ready": false, "paths": .array(paths),
                    "message": .string("the shared disk is not readable yet: \(what.joined(separator: ", "))")]
        }
        // Multipath devices the kill command switched to fail_if_no_path queue again, as configured.
        var restored: [String] = []
        for p in runtime.withLock({ $0.fenced[vg] })?.paths ?? [] where p.action == "fail_if_no_path" && p.queuedIfNoPath {
            do { try await dm.message(p.device, "queue_if_no_path"); restored.append(p.device) } catch {
                logger.warning("could not restore queue_if_no_path", metadata: ["device": "\(p.device)", "error": "\(error)"])
            }
        }
        return ok("the shared disk is readable again" + (restored.isEmpty ? "" : "; queue_if_no_path restored on \(restored.joined(separator: ", "))"),
                  changed: !restored.isEmpty, ["ready": true, "paths": .array(paths)])
    }

    func recoveryStopVMs(_ vg: String) async throws(ServiceError) -> [String: JSONValue] {
        guard let hypervisor else { return skipped("no hypervisor configured ([agent] libvirt_uri is empty): VMs are left alone") }
        let (lvs, _) = try await recoveryLVs(vg)
        let uses: [(domain: Domain, disks: [String])]
        do { uses = try await hypervisor.domains(usingAnyOf: lvPaths(vg, lvs.map(\.name))) } catch where error.kind == .unavailable {
            // No virsh here: nothing to stop through it. A VM still holding an LV open makes
            // the deactivate step stop and name it, so skipping is safe.
            return skipped("\(error.message): VMs are left alone (deactivate refuses LVs still in use)")
        } catch {
            throw recoveryFailure(.stopVMs, vg, error.message, next: "stop the VMs that use LVs of \(vg) on \(host) yourself (virsh destroy NAME), then run recover again")
        }
        var journal = currentJournal(vg) ?? newJournal(vg)
        var stopped: [String] = []
        for u in uses where u.domain.running {
            do { try await hypervisor.stop(u.domain.name) } catch {
                throw recoveryFailure(.stopVMs, vg, "cannot stop VM \(u.domain.name): \(error.message)",
                                      next: "stop VM \(u.domain.name) yourself (virsh destroy \(u.domain.name)), then run recover again")
            }
            stopped.append(u.domain.name)
            if !journal.stoppedVMs.contains(u.domain.name) { journal.stoppedVMs.append(u.domain.name) }
            do { try journal.save(configuration.stateDirectory, vg) } catch {
                reportStoreProblem(StoreError(message: error.message), vg: vg, name: "(recovery journal)")
            }
        }
        let names = uses.map(\.domain.name)
        return ok(stopped.isEmpty ? (names.isEmpty ? "no VM uses LVs of \(vg)" : "no running VM uses LVs of \(vg)")
                  : "stopped \(stopped.joined(separator: ", "))", changed: !stopped.isEmpty,
                  ["stopped": .array(stopped.map(JSONValue.string))])
    }

    func recoveryDeactivate(_ vg: String) async throws(ServiceError) -> [String: JSONValue] {
        let (lvs, devices) = try await recoveryLVs(vg)
        if let open = lvs.first(where: { $0.open > 0 && $0.device != "absent" }) {
            throw recoveryFailure(.deactivate, vg, "LV \(vg)/\(open.name) is still open (\(open.open) opener(s))",
                                  next: "find what holds /dev/\(vg)/\(open.name) (fuser -vm /dev/\(vg)/\(open.name); a VM: virsh domblklist), stop it, then run recover again")
        }
        var actions: [JSONValue] = []
        var failures: [String] = []
        let haveDM = devices.map { !$0.lvs.isEmpty || $0.lockLV != nil } ?? false
        for l in lvs {
            if haveDM {
                guard let dmName = l.dmName else { continue }
                // A failing LV: LVM only warns about the error segment; remove it below LVM.
                if l.device == "active" {
                    do {
                        try await backend.deactivate(vg: vg, name: l.name)
                        actions.append(["name": .string(l.name), "how": "lvchange -an"])
                        continue
                    } catch {
                        logger.notice("lvchange -an failed during recovery; removing the device with dmsetup",
                                      metadata: ["lv": "\(l.name)", "error": "\(error.message)"])
                    }
                }
                do {
                    try await dm.remove(dmName)
                    actions.append(["name": .string(l.name), "how": "dmsetup remove"])
                } catch {
                    failures.append("\(l.name): \(error)")
                }
            } else {
                // No device-mapper view (simulated backend): LVM is the only way.
                do {
                    let info = try await backend.lvInfo(vg: vg, name: l.name)
                    guard info.active else { continue }
                    try await backend.deactivate(vg: vg, name: l.name)
                    actions.append(["name": .string(l.name), "how": "lvchange -an"])
                } catch where error.code == .notFound {
                    continue
                } catch {
                    failures.append("\(l.name): \(error.message)")
                }
            }
        }
        guard failures.isEmpty else {
            throw recoveryFailure(.deactivate, vg, "could not deactivate: \(failures.joined(separator: "; "))",
                                  next: "deactivate those LVs by hand (dmsetup remove \(DMName.lv(vg: vg, lv: "NAME"))), then run recover again",
                                  extra: ["done": .array(actions)])
        }
        changes.yield()
        return ok(actions.isEmpty ? "no LV of \(vg) was active on this host" : "deactivated \(actions.count) LV(s)",
                  changed: !actions.isEmpty, ["deactivated": .array(actions)])
    }

    func recoveryDrop(_ vg: String) async throws(ServiceError) -> [String: JSONValue] {
        let state = await currentLockspace(vg, pathsQueued: false)
        guard state == .lost else {
            return skipped(state == .started ? "the lockspace works: dropping it would be wrong"
                           : "lvmlockd no longer holds the lockspace (the kill command's drop, or an earlier recovery)")
        }
        // After the kill command succeeded, lvmlockctl dropped the lockspace itself: sanlock
        // no longer lists it, and a second drop would only fail.
        let held: Bool
        do { held = try await backend.lockspaceStarted(vg: vg) } catch {
            throw recoveryFailure(.drop, vg, error.message, next: "run `sanlock client status` on \(host); if it lists lvm_\(vg), run `lvmlockctl --drop \(vg)`, then run recover again")
        }
        guard held else {
            runtime.withLock { $0.lockspaces[vg] = .notStarted }
            return skipped("lvmlockd already dropped the killed lockspace (the kill command's drop)")
        }
        do {
            try await backend.dropLockspace(vg: vg)
        } catch {
            throw recoveryFailure(.drop, vg, error.message, next: "run `lvmlockctl --drop \(vg)` on \(host) and read its output, then run recover again")
        }
        runtime.withLock { $0.lockspaces[vg] = .notStarted }
        return ok("dropped the killed lockspace (lvmlockctl --drop \(vg))", changed: true)
    }

    func recoveryLockStart(_ vg: String) async throws(ServiceError) -> [String: JSONValue] {
        if await currentLockspace(vg, pathsQueued: false) == .started {
            runtime.withLock { $0.lockspaces[vg] = .started }
            return skipped("the lockspace is already started")
        }
        // lvmlockd removes a dropped lockspace in the background: a lock-start right after
        // the drop can exit 0 without joining (seen in the lab). Try again a few times.
        var attempts = 0
        var (after, problem) = (LockspaceState?.none, String?.none)
        repeat {
            if attempts > 0 { try? await Task.sleep(for: .seconds(3)) }
            attempts += 1
            await startLockspace(vg)
            (after, problem) = runtime.withLock { ($0.lockspaces[vg], $0.vgProblems[vg]) }
        } while after == .notStarted && attempts < 4
        guard after == .started else {
            throw recoveryFailure(.lockStart, vg, problem ?? "the lockspace did not start",
                                  next: after == .lost ? "the lease storage still fails: check the path (multipath -ll), then run recover again"
                                      : "run `vgchange --lock-start \(vg)` on \(host) and read its output, then run recover again")
        }
        return ok("lockspace started" + (attempts > 1 ? " (attempt \(attempts))" : ""), changed: true)
    }

    func recoveryReactivate(_ vg: String) async throws(ServiceError) -> [String: JSONValue] {
        let (lvs, _) = try await recoveryLVs(vg)
        var journal = currentJournal(vg) ?? newJournal(vg)
        var reactivated: [JSONValue] = []
        var leftAlone: [JSONValue] = []
        var failures: [String] = []
        for l in lvs {
            guard let mode = l.mode else {
                leftAlone.append(["name": .string(l.name), "mode": .null, "reason": "not activated through the agent: its mode is unknown"])
                continue
            }
            guard configuration.lvNames.manages(l.name) else {
                leftAlone.append(["name": .string(l.name), "mode": .string(mode.rawValue), "code": "lv_not_managed",
                                  "reason": .string("its name matches no pattern of [agent] lv_name_pattern (\(configuration.lvNames))")])
                continue
            }
            do {
                try await backend.activate(vg: vg, name: l.name, mode: mode)
                reactivated.append(["name": .string(l.name), "mode": .string(mode.rawValue)])
                runtime.withLock { _ = $0.restoreFailures.removeValue(forKey: "\(vg)/\(l.name)") }
            } catch where error.code == .lockedByOtherHost || error.code == .incompatibleLockMode {
                // Another host took it while this one was cut off: it is theirs now.
                leftAlone.append(["name": .string(l.name), "mode": .string(mode.rawValue), "code": .string(error.code.rawValue),
                                  "reason": "another host holds it now; not taken back"])
                forget(vg, l.name)
            } catch where error.code == .notFound {
                leftAlone.append(["name": .string(l.name), "mode": .string(mode.rawValue), "code": "not_found",
                                  "reason": "the LV no longer exists"])
                forget(vg, l.name)
            } catch {
                noteLockspace(error, vg: vg)
                failures.append("\(l.name) (\(mode.rawValue)): \(error.message)")
            }
        }
        journal.reactivated = reactivated
        journal.leftAlone = leftAlone
        try? journal.save(configuration.stateDirectory, vg)
        changes.yield()
        guard failures.isEmpty else {
            throw recoveryFailure(.reactivate, vg, "could not re-activate: \(failures.joined(separator: "; "))",
                                  next: "activate them by hand (lvchange -aey|-asy \(vg)/NAME) or through aosctl volume activate, then run recover again",
                                  extra: ["reactivated": .array(reactivated), "left_alone": .array(leftAlone)])
        }
        return ok("re-activated \(reactivated.count) LV(s); \(leftAlone.count) left alone", changed: !reactivated.isEmpty,
                  ["reactivated": .array(reactivated), "left_alone": .array(leftAlone)])
    }

    func recoveryStartVMs(_ vg: String) async throws(ServiceError) -> [String: JSONValue] {
        var journal = currentJournal(vg) ?? newJournal(vg)
        guard let hypervisor else { return skipped("no hypervisor configured: VMs are left alone") }
        guard !journal.stoppedVMs.isEmpty else { return skipped("no VM was stopped by this recovery") }
        // "vg/lv" of every LV that is active here again.
        let back = Set(journal.reactivated.compactMap { $0["name"]?.stringValue }.map { "\(vg)/\($0)" })
        let all: [Domain]
        do { all = try await hypervisor.domains() } catch {
            throw recoveryFailure(.startVMs, vg, error.message, next: "start the VMs \(journal.stoppedVMs.joined(separator: ", ")) yourself (virsh start NAME)")
        }
        var started: [String] = []
        var notStarted: [JSONValue] = []
        for name in journal.stoppedVMs where !journal.vmsStarted.contains(name) {
            let disks = all.first { $0.name == name }?.disks ?? []
            // Disks on this VG that are not back (another host took them): the VM stays off.
            let missing = disks.filter { d in
                guard let lv = LVDevicePath.canonical(d), lv.hasPrefix("\(vg)/") else { return false }
                return !back.contains(lv)
            }
            guard missing.isEmpty else {
                notStarted.append(["name": .string(name), "reason": .string("its disk(s) \(missing.joined(separator: ", ")) are not active here again")])
                continue
            }
            do { try await hypervisor.start(name) } catch {
                throw recoveryFailure(.startVMs, vg, "cannot start VM \(name): \(error.message)", next: "start VM \(name) yourself (virsh start \(name))",
                                      extra: ["started": .array(started.map(JSONValue.string))])
            }
            started.append(name)
            journal.vmsStarted.append(name)
            try? journal.save(configuration.stateDirectory, vg)
        }
        journal.vmsNotStarted = notStarted
        try? journal.save(configuration.stateDirectory, vg)
        return ok("started \(started.count) VM(s)" + (notStarted.isEmpty ? "" : "; \(notStarted.count) left stopped (their disks are elsewhere now)"),
                  changed: !started.isEmpty, ["started": .array(started.map(JSONValue.string)), "not_started": .array(notStarted)])
    }

    func recoveryFinish(_ vg: String) -> [String: JSONValue] {
        let dir = configuration.stateDirectory
        let journal = currentJournal(vg)
        if journal == nil, RecoveryJournal.load(dir, vg) != nil { RecoveryJournal.discard(dir, vg) }
        let hadRecord = runtime.withLock { $0.fenced[vg] } != nil
        FenceRecord.archive(stateDirectory: dir, vg: vg, suffix: "recovered-\(Int(HostFacts.now()))")
        if journal != nil { _ = DurableFile.remove(RecoveryJournal.path(dir, vg)) }
        runtime.withLock { r in
            r.fenced[vg] = nil
            r.vgProblems[vg] = nil
        }
        changes.yield()
        let summary: [String: JSONValue] = [
            "reactivated": .array(journal?.reactivated ?? []), "left_alone": .array(journal?.leftAlone ?? []),
            "vms_started": .array((journal?.vmsStarted ?? []).map(JSONValue.string)),
            "vms_not_started": .array(journal?.vmsNotStarted ?? []),
        ]
        return ok("recovery of \(vg) finished", changed: hadRecord || journal != nil, ["result": .object(summary)])
    }

    // MARK: - Detection

    /// Reads the kill command's record for `vg` (on its notification, at boot, and on every
    /// announcement tick as a fallback). True when the VG is fenced in this boot.
    @discardableResult
    public func noteFenced(_ vg: String) -> Bool {
        guard configuration.volumeGroups.contains(vg) else { return false }
        let record: FenceRecord?
        do { record = try FenceRecord.load(stateDirectory: configuration.stateDirectory, vg: vg) } catch {
            logger.error("unreadable fence record", metadata: ["vg": "\(vg)", "error": "\(error)"])
            return false
        }
        guard let record else {
            runtime.withLock { _ = $0.fenced.removeValue(forKey: vg) }
            return false
        }
        let boot = HostFacts.bootID()
        if !record.bootID.isEmpty, !boot.isEmpty, record.bootID != boot {
            // The devices it describes died with that boot; the lockspace starts normally.
            logger.notice("fence record from an earlier boot: archived", metadata: ["vg": "\(vg)"])
            FenceRecord.archive(stateDirectory: configuration.stateDirectory, vg: vg, suffix: "earlier-boot")
            return false
        }
        let isNew = runtime.withLock { r -> Bool in
            let isNew = r.fenced[vg] != record
            r.fenced[vg] = record
            // A recovery that already started the lockspace again keeps it started.
            if isNew, r.lockspaces[vg] == .started || r.lockspaces[vg] == nil { r.lockspaces[vg] = .lost }
            return isNew
        }
        if isNew, record.source == "kill_command" {
            // A new outage: whatever an earlier recovery journaled belongs to that one.
            RecoveryJournal.discard(configuration.stateDirectory, vg)
        }
        if isNew {
            logger.critical("lockspace lost: the kill command fenced this VG's I/O; run aosctl recover", metadata: [
                "vg": "\(vg)", "complete": "\(record.complete)", "lvs": "\(record.lvs.count)", "fenced_at": "\(record.fencedAt)",
                "source": "\(record.source)"])
            changes.yield()
        }
        return true
    }

    /// All served VGs (announcement-tick fallback, and boot).
    public func checkFenceRecords() {
        for vg in configuration.volumeGroups { noteFenced(vg) }
    }
}
