import HostSupport
import Logging
import RPCWire
import SharedLVM

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// What the kill command did to one device.
public struct FenceAction: Sendable, Hashable {
    public var device: String
    /// For LVs: the LV name; for path devices: nil.
    public var lv: String?
    /// Recorded activation mode of the LV on this host (nil: not recorded by the agent).
    public var mode: LVActivationMode?
    /// "error_table", "fail_if_no_path", "already_failing", "none".
    public var action: String
    public var ok: Bool
    public var detail: String?
    /// Multipath: whether the device queued I/O before (`queue_if_no_path`), to restore it.
    public var queuedIfNoPath: Bool = false

    var json: JSONValue {
        var o: [String: JSONValue] = ["device": .string(device), "action": .string(action), "ok": .bool(ok)]
        if let lv { o["name"] = .string(lv) }
        o["mode"] = mode.map { .string($0.rawValue) } ?? .null
        if let detail { o["detail"] = .string(detail) }
        if queuedIfNoPath { o["queue_if_no_path"] = true }
        return .object(o)
    }

    init(
        device: String, lv: String? = nil, mode: LVActivationMode? = nil, action: String, ok: Bool,
        detail: String? = nil, queuedIfNoPath: Bool = false
    ) {
        self.device = device
        self.lv = lv
        self.mode = mode
        self.action = action
        self.ok = ok
        self.detail = detail
        self.queuedIfNoPath = queuedIfNoPath
    }

    init?(json: JSONValue) {
        guard let device = json["device"]?.stringValue, let action = json["action"]?.stringValue else { return nil }
        self.init(
            device: device, lv: json["name"]?.stringValue,
            mode: json["mode"]?.stringValue.flatMap(LVActivationMode.init(rawValue:)), action: action,
            ok: json["ok"]?.boolValue ?? false, detail: json["detail"]?.stringValue,
            queuedIfNoPath: json["queue_if_no_path"]?.boolValue ?? false)
    }
}

/// The kill command's work (`aos-agent fence VG`, run by `lvmlockctl --kill VG` when sanlock
/// can no longer renew the VG's lease): make sure nothing this host queued or will write
/// to the VG reaches the disk, because another host may own those LVs within a minute.
///
/// Order matters (lab notes): first the path devices under the VG, so I/O queued there
/// (multipath `queue_if_no_path`, or a suspended device) fails instead of landing later
/// over another host's data; only then each LV (except `lvmlock`), whose table swap would
/// otherwise wait for that queued I/O. No LVM command runs: they hang or fail now.
public struct Fencer: Sendable {
    public var dm: any DeviceMapping
    public var logger: Logger
    /// Everything must be done well inside sanlock's ~40 s between the kill and its
    /// SIGTERMs/watchdog: steps not started by then are reported as not done.
    public var budget: Duration
    /// LVs failed at the same time (after the paths, which go first and one by one).
    public var parallelism: Int

    public init(dm: any DeviceMapping, logger: Logger, budget: Duration = .seconds(25), parallelism: Int = 8) {
        self.dm = dm
        self.logger = logger
        self.budget = budget
        self.parallelism = parallelism
    }

    /// The devices of `vg` on this host: its LVs (without `lvmlock`), the lock LV, and the
    /// device-mapper devices they sit on (the "paths").
    public struct VGDevices: Sendable {
        public var lvs: [(device: DMDevice, name: String)]
        public var lockLV: DMDevice?
        public var paths: [DMDevice]
        public var nonDMPaths: [String]
    }

    /// The dependencies of each named device, in the order given. A device that cannot be read
    /// (an LV removed since `dmsetup info`) has none: not a reason to give up on the others
    /// (dmsetup deps never touches the disk, so it does not hang).
    func memberDependencies(_ names: [String]) async -> [[String]] {
        var out = [[String]](repeating: [], count: names.count)
        let dm = self.dm, logger = self.logger, width = max(1, parallelism)
        await withTaskGroup(of: (Int, [String]).self) { group in
            var next = 0
            func launch() {
                let i = next, name = names[i]
                next += 1
                group.addTask {
                    do { return (i, try await dm.dependencies(of: name)) } catch {
                        logger.warning(
                            "fence: cannot read the dependencies of an LV", metadata: ["device": "\(name)", "error": "\(error)"])
                        return (i, [])
                    }
                }
            }
            while next < names.count && next < width { launch() }
            while let (i, deps) = await group.next() {
                out[i] = deps
                if next < names.count { launch() }
            }
        }
        return out
    }

    public func devices(of vg: String) async throws(DMError) -> VGDevices {
        let all = try await dm.devices()
        let lockName = DMName.lv(vg: vg, lv: "lvmlock")
        let lock = all.first { $0.name == lockName && $0.isLV }
        // LVs of the VG: same VG uuid as the lock LV (robust against odd names); without a
        // lock LV, by name.
        let members: [(DMDevice, String)] = all.compactMap { d in
            guard d.isLV, d.name != lockName, let split = DMName.split(d.name), split.vg == vg else { return nil }
            if let key = lock?.vgKey, d.vgKey != key { return nil }
            return (d, split.lv)
        }.sorted { $0.1 < $1.1 }
        // Every PV of the VG that this host maps: the devices below EVERY mapped LV of the VG
        // (the lock LV and each member), not only below `lvmlock`: a VG on two PVs with LVs
        // on the second would otherwise keep that PV's multipath device queueing, and the
        // table swap of its LVs would wait for the queued I/O (the fence fails open).
        // Device-mapper layers in between (another LV of the VG: a thin pool's data, a
        // `-real` origin; or a crypt/linear device on top of a multipath map) are walked
        // through, so the bottom-most path devices are found and failed first.
        let byBlock = Dictionary(all.map { ($0.blockDevice, $0) }, uniquingKeysWith: { a, _ in a })
        let memberNames = Set(members.map { $0.0.name })
        let vgKey = lock?.vgKey ?? members.first?.0.vgKey
        var other: [String] = []
        var seen: Set<String> = []
        // (block device, depth below the LVs): walked breadth first, sorted deepest first.
        var queue: [(String, Int)] = []
        var found: [(DMDevice, Int)] = []
        if let lock {
            for x in try await dm.dependencies(of: lock.name) where seen.insert(x).inserted { queue.append((x, 1)) }
        }
        // One `dmsetup deps` per LV, `parallelism` at a time: sanlock's clock runs while the
        // fence reads, and a host with hundreds of LVs must still reach its paths quickly.
        for deps in await memberDependencies(members.map { $0.0.name }) {
            for x in deps where seen.insert(x).inserted { queue.append((x, 1)) }
        }
        var i = 0
        while i < queue.count {
            let (block, depth) = queue[i]
            i += 1
            guard let dev = byBlock[block] else {
                // A bare disk under an LV (not under a DM path device, whose own disks are
                // its business): reported, it cannot be failed from here.
                if depth == 1 { other.append(block) }
                continue
            }
            if memberNames.contains(dev.name) { continue }
            let isOwnLayer = dev.isLV && vgKey != nil && dev.vgKey == vgKey
            if !isOwnLayer { found.append((dev, depth)) }
            // A multipath map's dependencies are its SCSI paths: failing the map is enough.
            if !isOwnLayer, (try? await dm.table(of: dev.name))?.first?.target == "multipath" { continue }
            guard depth < 8, let deps = try? await dm.dependencies(of: dev.name) else { continue }
            for x in deps where seen.insert(x).inserted { queue.append((x, depth + 1)) }
        }
        // Deepest first: the device whose queue holds the I/O fails before anything stacked on it.
        let paths = found.enumerated().sorted { ($0.element.1, -$0.offset) > ($1.element.1, -$1.offset) }.map { $0.element.0 }
        return VGDevices(lvs: members.map { (device: $0.0, name: $0.1) }, lockLV: lock, paths: paths, nonDMPaths: other)
    }

    /// Fails the VG's I/O on this host. `modes` are the agent's recorded activations.
    /// - Parameter healthyPaths: path devices that work again (recovery after the path came
    ///   back): failing them would cut the VG off for nothing, so they are left alone.
    public func fence(
        vg: String, host: String, modes: [String: LVActivationMode], source: String,
        healthyPaths: Set<String> = []
    ) async -> FenceRecord {
        let clock = ContinuousClock()
        let start = clock.now
        let deadline = start + budget
        let fencedAt = HostFacts.now()
        var paths: [FenceAction] = []
        var lvs: [FenceAction] = []
        var complete = true
        func record() -> FenceRecord {
            FenceRecord(
                vg: vg, host: host, fencedAt: fencedAt, bootID: HostFacts.bootID(), paths: paths, lvs: lvs,
                complete: complete, durationMS: Int((clock.now - start) / .milliseconds(1)), source: source)
        }
        let found: VGDevices
        do {
            found = try await devices(of: vg)
        } catch {
            logger.critical("fence: cannot list device-mapper devices", metadata: ["vg": "\(vg)", "error": "\(error)"])
            complete = false
            paths.append(FenceAction(device: "?", action: "none", ok: false, detail: "cannot list devices: \(error)"))
            return record()
        }
        for name in found.nonDMPaths {
            // A bare disk: its queued I/O cannot be failed from here (dm-multipath can); the
            // LV error tables below still stop new writes.
            paths.append(
                FenceAction(
                    device: name, action: "none", ok: true,
                    detail: "not a device-mapper device: queued I/O below it cannot be failed"))
        }
        for p in found.paths {
            if healthyPaths.contains(p.name) {
                paths.append(FenceAction(device: p.name, action: "none", ok: true, detail: "readable again: left as it is"))
                continue
            }
            guard clock.now < deadline else {
                complete = false
                paths.append(FenceAction(device: p.name, action: "none", ok: false, detail: "not attempted: time budget spent"))
                continue
            }
            paths.append(await failPath(p))
        }
        // A compute node may have hundreds of LVs, three dmsetup runs each: a few at a time
        // keeps the whole fence well inside sanlock's window.
        let width = max(1, parallelism)
        var results: [Int: FenceAction] = [:]
        await withTaskGroup(of: (Int, FenceAction).self) { group in
            var next = 0
            func startOne() {
                let i = next
                next += 1
                let (lv, name) = found.lvs[i]
                let mode = modes[name]
                group.addTask {
                    guard clock.now < deadline else {
                        return (
                            i,
                            FenceAction(
                                device: lv.name, lv: name, mode: mode, action: "none", ok: false,
                                detail: "not attempted: time budget spent")
                        )
                    }
                    return (i, await self.failLV(lv, name: name, mode: mode))
                }
            }
            while next < min(width, found.lvs.count) { startOne() }
            for await (i, action) in group {
                results[i] = action
                if next < found.lvs.count { startOne() }
            }
        }
        for i in found.lvs.indices {
            let a = results[i]!
            if !a.ok { complete = false }
            lvs.append(a)
        }
        if paths.contains(where: { !$0.ok }) { complete = false }
        let r = record()
        logger.critical(
            "fenced the VG's I/O after the loss of its sanlock lease",
            metadata: [
                "vg": "\(vg)", "complete": "\(r.complete)", "lvs": "\(lvs.count)", "paths": "\(paths.map(\.device))",
                "took_ms": "\(r.durationMS)",
            ])
        return r
    }

    private func sectors(_ table: [DMTableLine]) -> UInt64 { table.map { $0.start + $0.length }.max() ?? 0 }

    func failPath(_ p: DMDevice) async -> FenceAction {
        do {
            let table = try await dm.table(of: p.name)
            if table.allSatisfy({ $0.target == "error" }), !table.isEmpty, !p.suspended {
                return FenceAction(device: p.name, action: "already_failing", ok: true)
            }
            if table.first?.target == "multipath" {
                return try await failMultipath(p, table: table)
            }
            try await dm.replaceWithErrorTable(p.name, sectors: sectors(table))
            return FenceAction(
                device: p.name, action: "error_table", ok: true,
                detail: "was \(table.first?.target ?? "?")\(p.suspended ? ", suspended" : "")")
        } catch {
            logger.critical("fence: cannot fail the path device", metadata: ["device": "\(p.name)", "error": "\(error)"])
            return FenceAction(device: p.name, action: "error_table", ok: false, detail: "\(error)")
        }
    }

    static func queues(_ table: [DMTableLine]) -> Bool {
        table.first?.params.split(separator: " ").contains("queue_if_no_path") ?? false
    }

    /// A multipath map: keep its table (the paths come back by themselves), stop queueing.
    ///
    /// A running multipathd (`no_path_retry queue`) switches queue_if_no_path back on at its
    /// next look at the map: in the lab with real dm-multipath, the map queued again before the
    /// LV tables were swapped, the swap waited for the queued write and was killed, and the
    /// fence failed open (issue 15). So multipathd is told first (`disablequeueing`, undone
    /// by recovery's wait_path); where that fails although multipathd is installed, or the
    /// map still queues afterwards, the map gets an error table: its suspend fails the
    /// queued I/O whatever multipathd does, and multipathd cannot bring queueing back into a
    /// table that is no longer multipath (recovery then needs `multipath -r`).
    func failMultipath(_ p: DMDevice, table: [DMTableLine]) async throws(DMError) -> FenceAction {
        let queued = Self.queues(table)
        var daemon: String
        var trustMessage = true
        do {
            try await dm.multipathdQueueing(p.name, disable: true)
            daemon = "multipathd disablequeueing"
        } catch {
            // Not installed (no termination: the command could not run): nobody to switch it back.
            trustMessage = error.termination == nil
            daemon = "multipathd disablequeueing failed: \(error)"
        }
        if trustMessage {
            try await dm.message(p.name, "fail_if_no_path")
            if !Self.queues(try await dm.table(of: p.name)) {
                return FenceAction(device: p.name, action: "fail_if_no_path", ok: true, detail: daemon, queuedIfNoPath: queued)
            }
            daemon += "; still queue_if_no_path after fail_if_no_path"
        }
        logger.critical(
            "fence: multipath map may queue again; loading an error table into it",
            metadata: ["device": "\(p.name)", "why": "\(daemon)"])
        try await dm.replaceWithErrorTable(p.name, sectors: sectors(table))
        return FenceAction(
            device: p.name, action: "error_table", ok: true,
            detail: "was multipath (\(daemon)); restore it with `multipath -r` once the paths are back", queuedIfNoPath: queued)
    }

    func failLV(_ lv: DMDevice, name: String, mode: LVActivationMode?) async -> FenceAction {
        do {
            let table = try await dm.table(of: lv.name)
            if !table.isEmpty, table.allSatisfy({ $0.target == "error" }) {
                return FenceAction(device: lv.name, lv: name, mode: mode, action: "already_failing", ok: true)
            }
            try await dm.replaceWithErrorTable(lv.name, sectors: sectors(table))
            return FenceAction(
                device: lv.name, lv: name, mode: mode, action: "error_table", ok: true,
                detail: lv.openCount > 0 ? "open by \(lv.openCount)" : nil)
        } catch {
            logger.critical("fence: cannot fail the LV", metadata: ["device": "\(lv.name)", "error": "\(error)"])
            return FenceAction(device: lv.name, lv: name, mode: mode, action: "error_table", ok: false, detail: "\(error)")
        }
    }
}
