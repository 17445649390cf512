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

/// `<state_dir>/lockspace-lost-<vg>.json`: written by the kill command at the moment sanlock
/// gave up the VG's lease, read by the agent (detection) and by recovery (what to restore).
public struct FenceRecord: Sendable, Hashable {
    public var vg: String
    public var host: String
    /// Unix time of the kill.
    public var fencedAt: Double
    /// The kernel's boot id: a record from an earlier boot describes devices that are gone.
    public var bootID: String
    public var paths: [FenceAction]
    public var lvs: [FenceAction]
    /// Every queued and future write of the VG on this host fails now.
    public var complete: Bool
    public var durationMS: Int
    /// "kill_command" (lvmlockctl ran us) or "recovery" (recovery fenced before the path returned).
    public var source: String

    public static func fileName(vg: String) -> String { "lockspace-lost-\(vg).json" }
    public static func path(stateDirectory: String, vg: String) -> String { "\(stateDirectory)/\(fileName(vg: vg))" }

    public var json: JSONValue {
        [
            "format": 1, "vg": .string(vg), "host": .string(host), "fenced_at": .double(fencedAt), "boot_id": .string(bootID),
            "paths": .array(paths.map(\.json)), "lvs": .array(lvs.map(\.json)), "complete": .bool(complete),
            "duration_ms": .int(Int64(durationMS)), "source": .string(source),
        ]
    }

    public init(
        vg: String, host: String, fencedAt: Double, bootID: String, paths: [FenceAction], lvs: [FenceAction],
        complete: Bool, durationMS: Int, source: String
    ) {
        self.vg = vg
        self.host = host
        self.fencedAt = fencedAt
        self.bootID = bootID
        self.paths = paths
        self.lvs = lvs
        self.complete = complete
        self.durationMS = durationMS
        self.source = source
    }

    public init?(json: JSONValue) {
        guard let vg = json["vg"]?.stringValue, let at = json["fenced_at"]?.doubleValue else { return nil }
        self.init(
            vg: vg, host: json["host"]?.stringValue ?? "", fencedAt: at, bootID: json["boot_id"]?.stringValue ?? "",
            paths: (json["paths"]?.arrayValue ?? []).compactMap(FenceAction.init(json:)),
            lvs: (json["lvs"]?.arrayValue ?? []).compactMap(FenceAction.init(json:)),
            complete: json["complete"]?.boolValue ?? false,
            durationMS: Int(json["duration_ms"]?.int64Value ?? 0), source: json["source"]?.stringValue ?? "kill_command")
    }

    /// Reads the record of `vg`, nil when there is none (or it cannot be parsed: logged by the caller).
    public static func load(stateDirectory: String, vg: String) throws(DurableFile.Failure) -> FenceRecord? {
        guard let bytes = try DurableFile.read(path(stateDirectory: stateDirectory, vg: vg), limit: 16 << 20) else { return nil }
        guard let value = try? JSONValue.parse(bytes), let r = FenceRecord(json: value) else {
            throw DurableFile.Failure(message: "\(path(stateDirectory: stateDirectory, vg: vg)) is not a fence record")
        }
        return r
    }

    public func save(stateDirectory: String) throws(DurableFile.Failure) {
        try DurableFile.writeAtomically(Self.path(stateDirectory: stateDirectory, vg: vg), JSONWriter.bytes(json) + [0x0a])
    }

    /// Moves the record aside (kept for the post-mortem), e.g. once recovery finished.
    public static func archive(stateDirectory: String, vg: String, suffix: String) {
        let from = path(stateDirectory: stateDirectory, vg: vg)
        _ = rename(from, "\(from).\(suffix)")
    }
}

public enum HostFacts {
    /// /proc/sys/kernel/random/boot_id, or "" where it cannot be read.
    public static func bootID() -> String {
        guard let bytes = try? DurableFile.read("/proc/sys/kernel/random/boot_id", limit: 128) else { return "" }
        return String(decoding: bytes, as: UTF8.self).filter { !$0.isWhitespace }
    }

    public static func now() -> Double {
        var t = timespec()
        clock_gettime(CLOCK_REALTIME, &t)
        return Double(t.tv_sec) + Double(t.tv_nsec) / 1e9
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
                // Keep the multipath table (the paths come back by themselves); stop queueing.
                let queued = table.first?.params.split(separator: " ").contains("queue_if_no_path") ?? false
                try await dm.message(p.name, "fail_if_no_path")
                return FenceAction(device: p.name, action: "fail_if_no_path", ok: true, queuedIfNoPath: queued)
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

/// The fence command tells a running agent at once through a datagram on
/// `<state_dir>/agent.sock`; the record file is the truth (an agent started later reads it).
public enum FenceNotification {
    public static func socketPath(stateDirectory: String) -> String { "\(stateDirectory)/agent.sock" }

    /// Best effort: false when no agent listens.
    @discardableResult
    public static func send(stateDirectory: String, vg: String) -> Bool {
        let fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue), 0)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        guard var addr = unixAddress(socketPath(stateDirectory: stateDirectory)) else { return false }
        let message = Array("lockspace_lost \(vg)".utf8)
        let sent = withUnsafePointer(to: &addr) { p in
            p.withMemoryRebound(to: sockaddr.self, capacity: 1) { sa in
                message.withUnsafeBytes {
                    sendto(fd, $0.baseAddress, $0.count, Int32(MSG_DONTWAIT), sa, socklen_t(MemoryLayout<sockaddr_un>.size))
                }
            }
        }
        return sent == message.count
    }

    static func unixAddress(_ path: String) -> sockaddr_un? {
        var addr = sockaddr_un()
        addr.sun_family = sa_family_t(AF_UNIX)
        let bytes = Array(path.utf8)
        guard bytes.count < MemoryLayout.size(ofValue: addr.sun_path) else { return nil }
        withUnsafeMutableBytes(of: &addr.sun_path) { raw in
            for (i, b) in bytes.enumerated() { raw[i] = b }
            raw[bytes.count] = 0
        }
        return addr
    }
}
