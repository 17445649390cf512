import AOSAPI
import RPCWire
import SharedLVM

/// How the agent learns that the kill command fenced a VG: its record on disk.
extension AgentService {
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
            state.update { _ = $0.fenced.removeValue(forKey: vg) }
            return false
        }
        let boot = HostFacts.bootID()
        if !record.bootID.isEmpty, !boot.isEmpty, record.bootID != boot {
            // The devices it describes died with that boot; the lockspace starts normally.
            logger.notice("fence record from an earlier boot: archived", metadata: ["vg": "\(vg)"])
            FenceRecord.archive(stateDirectory: configuration.stateDirectory, vg: vg, suffix: "earlier-boot")
            return false
        }
        let isNew = state.update { $0.noteFenced(vg, record) }
        if isNew, record.source == "kill_command" {
            // A new outage: whatever an earlier recovery journaled belongs to that one.
            RecoveryJournal.discard(configuration.stateDirectory, vg)
        }
        if isNew {
            logger.critical(
                "lockspace lost: the kill command fenced this VG's I/O; run aosctl recover",
                metadata: [
                    "vg": "\(vg)", "complete": "\(record.complete)", "lvs": "\(record.lvs.count)", "fenced_at": "\(record.fencedAt)",
                    "source": "\(record.source)",
                ])
            changes.yield()
        }
        return true
    }

    /// All served VGs (announcement-tick fallback, and boot).
    public func checkFenceRecords() {
        for vg in configuration.volumeGroups { noteFenced(vg) }
    }
}
