import AOSAPI
import Hypervisor
import RPCWire
import SharedLVM

/// The steps that take the VG down on this host: fence, wait_path, stop_vms, deactivate.
extension LockspaceRecovery {
    func fence() async throws(ServiceError) -> RecoverResult {
        if let f = agent.state.read({ $0.fenced[vg] }), f.complete {
            return skipped(.fence, "the kill command fenced the VG at \(f.fencedAt) (\(f.lvs.count) LVs)")
        }
        let (_, devices) = try await lvStates()
        let paths = await pathStates(devices)
        guard await currentLockspace(pathsQueued: paths.contains { $0.state == .suspended }) == .lost else {
            return skipped(.fence, "the lockspace was not lost: nothing to fence")
        }
        var modes: [String: LVActivationMode] = [:]
        for r in agent.store.all where r.vg == vg { modes[r.name] = r.mode }
        let healthy = Set(paths.filter(\.readable).map(\.device))
        let record = await Fencer(dm: agent.dm, logger: logger).fence(
            vg: vg, host: host, modes: modes, source: "recovery",
            healthyPaths: healthy)
        do { try record.save(stateDirectory: stateDirectory) } catch {
            agent.reportStoreProblem(StoreError(message: error.message), vg: vg, name: "(fence record)")
        }
        agent.noteFenced(vg)
        guard record.complete else {
            let failed = (record.paths + record.lvs).filter { !$0.ok }.map { "\($0.device): \($0.detail ?? "failed")" }
            throw failure(
                .fence, "could not fail the I/O of: \(failed.joined(separator: "; "))",
                next:
                    "load an error table into each listed device by hand (dmsetup load NAME --table '0 SECTORS error' && dmsetup resume NAME), then run recover again",
                extra: ["record": record.json])
        }
        var out = ok(
            .fence, "failed the VG's I/O on this host: \(record.paths.count) path device(s), \(record.lvs.count) LV(s)", changed: true)
        out.record = record.json
        return out
    }

    func waitPath() async throws(ServiceError) -> RecoverResult {
        let (_, devices) = try await lvStates()
        let paths = await pathStates(devices)
        guard !paths.isEmpty else {
            var out = ok(.waitPath, "no device-mapper path device to check", changed: false)
            out.ready = true
            out.paths = paths
            return out
        }
        let waiting = paths.filter { !$0.readable }
        guard waiting.isEmpty else {
            let what = waiting.map { "\($0.device) is \($0.state.rawValue)\($0.problem.map { " (\($0))" } ?? "")" }
            var out = RecoverResult(
                host: host, vg: vg, step: .waitPath, status: .waiting, changed: false,
                message: "the shared disk is not readable yet: \(what.joined(separator: ", "))")
            out.ready = false
            out.paths = paths
            return out
        }
        // Multipath devices the kill command switched to fail_if_no_path queue again, as configured.
        var restored: [String] = []
        for p in agent.state.read({ $0.fenced[vg] })?.paths ?? [] where p.action == "fail_if_no_path" && p.queuedIfNoPath {
            // multipathd first: the fence told it not to queue this map (disablequeueing), and it
            // would switch queueing off again at its next look.
            do { try await agent.dm.multipathdQueueing(p.device, disable: false) } catch {
                logger.notice("multipathd restorequeueing failed", metadata: ["device": "\(p.device)", "error": "\(error)"])
            }
            do { try await agent.dm.message(p.device, "queue_if_no_path"); restored.append(p.device) } catch {
                logger.warning("could not restore queue_if_no_path", metadata: ["device": "\(p.device)", "error": "\(error)"])
            }
        }
        var out = ok(
            .waitPath,
            "the shared disk is readable again"
                + (restored.isEmpty ? "" : "; queue_if_no_path restored on \(restored.joined(separator: ", "))"),
            changed: !restored.isEmpty)
        out.ready = true
        out.paths = paths
        return out
    }

    func stopVMs() async throws(ServiceError) -> RecoverResult {
        guard let hypervisor = agent.hypervisor else {
            return skipped(.stopVMs, "no hypervisor configured ([agent] libvirt_uri is empty): VMs are left alone")
        }
        let (lvs, _) = try await lvStates()
        let uses: [(domain: Domain, disks: [String])]
        do { uses = try await hypervisor.domains(usingAnyOf: devicePaths(lvs.map(\.name))) } catch  where error.kind == .unavailable {
            // No virsh here: nothing to stop through it. A VM still holding an LV open makes
            // the deactivate step stop and name it, so skipping is safe.
            return skipped(.stopVMs, "\(error.message): VMs are left alone (deactivate refuses LVs still in use)")
        } catch {
            throw failure(
                .stopVMs, error.message,
                next: "stop the VMs that use LVs of \(vg) on \(host) yourself (virsh destroy NAME), then run recover again")
        }
        var journal = currentJournal() ?? newJournal()
        var stopped: [String] = []
        for u in uses where u.domain.running {
            do { try await hypervisor.stop(u.domain.name) } catch {
                throw failure(
                    .stopVMs, "cannot stop VM \(u.domain.name): \(error.message)",
                    next: "stop VM \(u.domain.name) yourself (virsh destroy \(u.domain.name)), then run recover again")
            }
            stopped.append(u.domain.name)
            if !journal.stoppedVMs.contains(u.domain.name) { journal.stoppedVMs.append(u.domain.name) }
            saveJournal(journal)
        }
        let names = uses.map(\.domain.name)
        var out = ok(
            .stopVMs,
            stopped.isEmpty
                ? (names.isEmpty ? "no VM uses LVs of \(vg)" : "no running VM uses LVs of \(vg)")
                : "stopped \(stopped.joined(separator: ", "))", changed: !stopped.isEmpty)
        out.stopped = stopped
        return out
    }

    func deactivate() async throws(ServiceError) -> RecoverResult {
        let (lvs, devices) = try await lvStates()
        if let open = lvs.first(where: { $0.open > 0 && $0.device != .absent }) {
            throw failure(
                .deactivate, "LV \(vg)/\(open.name) is still open (\(open.open) opener(s))",
                next:
                    "find what holds /dev/\(vg)/\(open.name) (fuser -vm /dev/\(vg)/\(open.name); a VM: virsh domblklist), stop it, then run recover again"
            )
        }
        var actions: [DeactivatedLV] = []
        var failures: [String] = []
        let haveDM = devices.map { !$0.lvs.isEmpty || $0.lockLV != nil } ?? false
        for l in lvs {
            if haveDM {
                guard let dmName = l.dmName else { continue }
                // A failing LV: LVM only warns about the error segment; remove it below LVM.
                if l.device == .active {
                    do {
                        try await agent.backend.deactivate(vg: vg, name: l.name)
                        actions.append(DeactivatedLV(name: l.name, how: .lvchange))
                        continue
                    } catch {
                        logger.notice(
                            "lvchange -an failed during recovery; removing the device with dmsetup",
                            metadata: ["lv": "\(l.name)", "error": "\(error.message)"])
                    }
                }
                do {
                    try await agent.dm.remove(dmName)
                    actions.append(DeactivatedLV(name: l.name, how: .dmsetup))
                } catch {
                    failures.append("\(l.name): \(error)")
                }
            } else {
                // No device-mapper view (simulated backend): LVM is the only way.
                do {
                    let info = try await agent.backend.lvInfo(vg: vg, name: l.name)
                    guard info.active else { continue }
                    try await agent.backend.deactivate(vg: vg, name: l.name)
                    actions.append(DeactivatedLV(name: l.name, how: .lvchange))
                } catch  where error.code == .notFound {
                    continue
                } catch {
                    failures.append("\(l.name): \(error.message)")
                }
            }
        }
        guard failures.isEmpty else {
            throw failure(
                .deactivate, "could not deactivate: \(failures.joined(separator: "; "))",
                next: "deactivate those LVs by hand (dmsetup remove \(DMName.lv(vg: vg, lv: "NAME"))), then run recover again",
                extra: ["done": detailJSON(actions)])
        }
        agent.activationsChanged()
        var out = ok(
            .deactivate, actions.isEmpty ? "no LV of \(vg) was active on this host" : "deactivated \(actions.count) LV(s)",
            changed: !actions.isEmpty)
        out.deactivated = actions
        return out
    }
}
