import AOSAPI
import HostCommands
import RPCWire
import SharedLVM

/// What is there: the VG's LVs and path devices on this host, the lockspace, and the plan.
extension LockspaceRecovery {
    struct LVState {
        var name: String
        var mode: LVActivationMode?
        var device: LVDeviceState
        var open: Int
        var dmName: String?
    }

    /// The VG's LVs that recovery cares about: recorded by the agent, recorded by the kill
    /// command, or mapped on this host now.
    func lvStates() async throws(ServiceError) -> (lvs: [LVState], devices: Fencer.VGDevices?) {
        var modes: [String: LVActivationMode?] = [:]
        for r in agent.store.all where r.vg == vg { modes[r.name] = r.mode }
        if let fenced = agent.state.read({ $0.fenced[vg] }) {
            for a in fenced.lvs { if let name = a.lv, modes[name] == nil { modes[name] = a.mode } }
        }
        let fencer = Fencer(dm: agent.dm, logger: logger)
        let devices: Fencer.VGDevices?
        do { devices = try await fencer.devices(of: vg) } catch {
            throw failure(.plan, "cannot list device-mapper devices: \(error)", next: "check `dmsetup info -c` on \(host)")
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
                out.append(LVState(name: name, mode: mode, device: haveDM ? .absent : .unknown, open: 0, dmName: nil))
                continue
            }
            let failing = ((try? await agent.dm.table(of: d.name)) ?? []).contains { $0.target == "error" }
            out.append(LVState(name: name, mode: mode, device: failing ? .failing : .active, open: d.openCount, dmName: d.name))
        }
        return (out, devices)
    }

    /// Paths of the VG (from the fence record, else below the lock LV) and whether each can
    /// be read now.
    func pathStates(_ devices: Fencer.VGDevices?) async -> [PathState] {
        var names = agent.state.read { $0.fenced[vg] }?.paths.filter { $0.action != "none" }.map(\.device) ?? []
        for p in devices?.paths ?? [] where !names.contains(p.name) { names.append(p.name) }
        let all = (try? await agent.dm.devices()) ?? []
        var out: [PathState] = []
        for name in names {
            guard let d = all.first(where: { $0.name == name }) else {
                out.append(PathState(device: name, state: .absent, readable: false))
                continue
            }
            let table = (try? await agent.dm.table(of: name)) ?? []
            var entry = PathState(device: name, state: .live, target: table.first?.target ?? "?", readable: false)
            if d.suspended { entry.state = .suspended } else if table.contains(where: { $0.target == "error" }) { entry.state = .failing }
            if entry.state == .live {
                let r = await readable("/dev/mapper/\(name)")
                entry.readable = r.ok
                entry.problem = r.problem
            }
            out.append(entry)
        }
        return out
    }

    /// Reads the first 4 KiB with O_DIRECT (not this host's page cache). Runs only on a path
    /// that is neither suspended nor failing, with a timeout; a read stuck in the kernel
    /// is left behind rather than waited for.
    func readable(_ device: String) async -> (ok: Bool, problem: String?) {
        let argv = ["dd", "if=\(device)", "of=/dev/null", "bs=4096", "count=1", "iflag=direct", "status=none"]
        do {
            let r = try await CommandRunner(reapGrace: .seconds(1)).run(argv, timeout: .seconds(5))
            if r.termination.isSuccess { return (true, nil) }
            let line = r.stderr.split(separator: "\n").first.map(String.init) ?? "\(r.termination)"
            return (false, "read failed: \(line)")
        } catch {
            return (false, "cannot run dd: \(error.message)")
        }
    }

    /// The lockspace as far as it can be known now. Trusts the agent's own state first;
    /// asks LVM only when the agent believes all is well and no path is queued (LVM would
    /// hang then).
    func currentLockspace(pathsQueued: Bool) async -> LockspaceState {
        let (known, fenced) = agent.state.read { ($0.lockspaces[vg] ?? .notStarted, $0.fenced[vg] != nil) }
        // A queued path alone is no proof of a loss (a short blip rides through), and LVM
        // would hang on it: keep what the agent knows. A loss the kill command recorded stays
        // a loss; one the agent only inferred from an error text is asked again.
        if pathsQueued || (known == .lost && fenced) { return known }
        do {
            switch try await agent.backend.lockspaceProblem(vg: vg) {
            case nil: return .started
            case .lockStorageFailed?:
                agent.state.update { $0.lockspaces[vg] = .lost }
                return .lost
            default:
                agent.state.update { if $0.lockspaces[vg] == .started { $0.lockspaces[vg] = .notStarted } }
                return .notStarted
            }
        } catch {
            agent.noteLockspace(error, vg: vg)
            return agent.state.read { $0.lockspaces[vg] ?? .notStarted }
        }
    }

    func devicePaths(_ names: [String]) -> [String] { names.map { agent.backend.devicePath(vg: vg, name: $0) } }

    /// `plan`: what recovery would do, and whether it is needed. Changes nothing.
    func plan() async throws(ServiceError) -> RecoverResult {
        let (lvs, devices) = try await lvStates()
        let paths = await pathStates(devices)
        let queued = paths.contains { $0.state == .suspended }
        let state = await currentLockspace(pathsQueued: queued)
        let fenced = agent.state.read { $0.fenced[vg] }
        let failing = lvs.contains { $0.device == .failing }
        // Only this recovery's journal counts (this boot, this fence record), and only once it
        // tore the VG down: a leftover journal alone does not make a healthy VG need recovery.
        let journal = currentJournal()
        let unfinished = journal?.completed.contains(.deactivate) == true
        let needed = state != .started || fenced != nil || failing || unfinished
        var out = ok(.plan, "", changed: false)
        if let hypervisor = agent.hypervisor {
            do {
                let uses = try await hypervisor.domains(usingAnyOf: devicePaths(lvs.map(\.name)))
                out.vms = uses.map { RecoveryVM(name: $0.domain.name, running: $0.domain.running, disks: $0.disks) }
            } catch {
                out.vms_problem = error.message
            }
        }
        var reason: String
        switch (state, fenced) {
        case (.lost, .some(let f)):
            reason =
                "sanlock lost the lease storage; the kill command fenced the VG's I/O \(f.complete ? "completely" : "PARTIALLY") (\(f.lvs.count) LVs)"
        case (.lost, nil): reason = "sanlock lost the lease storage (no kill command ran: queued writes may land when the path returns)"
        case (.notStarted, .some): reason = "the VG was fenced after a lease loss; its lockspace is not started"
        case (.notStarted, nil): reason = "the lockspace is not started"
        case (.started, .some): reason = "the lockspace is started again, but the fence record is still there"
        case (.started, nil):
            reason = failing ? "LVs still have error tables" : (unfinished ? "an earlier recovery did not finish" : "healthy")
        }
        if queued { reason += "; the path is suspended (I/O queues): if the outage outlasts sanlock's lease, the kill command fences" }
        out.lockspace = state
        out.needs_recovery = needed
        out.reason = reason
        out.fenced = fenced?.json
        out.paths = paths
        out.lvs = lvs.map { l in
            RecoveryLV(
                name: l.name, mode: l.mode?.wire, device: l.device, open: l.open,
                device_path: agent.backend.devicePath(vg: vg, name: l.name))
        }
        out.hypervisor = agent.hypervisor != nil
        out.steps = RecoveryStep.execution.map { PlannedStep(step: $0, action: $0.summary) }
        out.message = needed ? "recovery needed: \(reason)" : "nothing to recover: the lockspace of \(vg) is started and nothing is fenced"
        out.journal = journal?.json
        return out
    }
}
