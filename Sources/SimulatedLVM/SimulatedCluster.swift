import SharedLVM
import Synchronization

/// One recorded call on a simulated host, so agent tests can assert what ran
/// (or that nothing ran for bad input).
public struct SimulatedCall: Sendable, Hashable, CustomStringConvertible {
    public var host: String
    public var method: String
    public var arguments: [String]
    public var description: String { "\(host): \(method)(\(arguments.joined(separator: ", ")))" }
}

/// An in-memory shared VG used by several simulated hosts at once, with lvmlockd + sanlock
/// semantics as observed in the lab (lvm-lab-notes.md):
///
/// - LV lock conflicts fail at once with `locked_by_other_host`.
/// - ex → sh on the holder is a downgrade; sh → ex only when no other host holds the LV.
/// - plain extend while this host holds sh → `incompatible_lock_mode`; with shupdate it
///   works, and other hosts keep their old device size until they refresh.
/// - every LV operation needs the host's lockspace started (`lockspace_not_started`);
///   reports (`lvs`/`vgs`) work without it, as in real LVM.
/// - sizes are rounded up to extents; the hidden `lvmlock` LV takes 256 MiB.
///
/// The lock table and the per-host device state are kept apart on purpose: after a
/// lockspace drop a device can stay active without its lock, which is the dangerous state
/// the recovery logic must handle.
public final class SimulatedCluster: Sendable {
    struct Device: Sendable, Codable, Equatable {
        var sizeBytes: UInt64
        var open = false
    }

    struct LV: Sendable, Codable, Equatable {
        var name: String
        var uuid: String
        var extents: UInt64
        var leaseOffset: UInt64
        var exclusiveHolder: String?
        var sharedHolders: Set<String> = []
        var devices: [String: Device] = [:]
        var leaseVersion: UInt64 = 0
        /// The LV's content, per MiB block: a tag written by a test or copied; a block that is
        /// absent reads as zeros. Optional so state files of older builds still load.
        var data: [UInt64: UInt32]?
        /// `lv_tags`, in the order added (optional for older state files, like `data`).
        var tags: [String]?
        /// A COW snapshot (SimulatedSnapshots.swift): its origin, the MiB blocks of its COW area
        /// used so far, and whether it overflowed. nil for ordinary LVs.
        var snapshot: SnapshotState?

        func holders(except host: String) -> Bool {
            (exclusiveHolder.map { $0 != host } ?? false) || sharedHolders.contains { $0 != host }
        }
    }

    struct VG: Sendable, Codable, Equatable {
        var name: String
        var uuid: String
        var extentSize: UInt64
        var totalExtents: UInt64
        var lvs: [String: LV] = [:]
        var startedHosts: Set<String> = []
        var failedHosts: Set<String> = []
        var pvsPresent = true
        var nextLeaseOffset: UInt64 = 69_206_016

        static let lockLVExtentsBytes: UInt64 = 256 << 20
        var usedExtents: UInt64 {
            lvs.values.reduce(0) { $0 + $1.extents } + (Self.lockLVExtentsBytes + extentSize - 1) / extentSize
        }
        var freeExtents: UInt64 { totalExtents - min(usedExtents, totalExtents) }
    }

    struct State: Sendable {
        var vgs: [String: VG] = [:]
        var hostIds: [String: Int] = [:]
        var calls: [SimulatedCall] = []
        var random: UInt64
        /// Whether the simulated disk can zero a range itself (`blkdiscard --zeroout`).
        var zeroOffload = true
        /// Job I/O (fill, copy) fails this many more times (a failing disk, for retry tests).
        var ioFailures = 0
        /// File-backed mode: the state file's bytes that `vgs`, `hostIds` and `random` are known
        /// to hold (last read or written by this process), so an operation that finds the file
        /// unchanged decodes nothing; nil when they may differ (an operation failed halfway).
        var fileSnapshot: [UInt8]?
    }

    let state: Mutex<State>
    /// Added to every operation (demo and scale simulations); zero in tests.
    public let latency: Duration
    /// File-backed mode (`init(stateFile:)`): the cluster state shared by several processes.
    public let stateFile: String?
    /// How many recorded calls `calls` keeps at least (see there).
    public let callHistoryLimit: Int

    public init(seed: UInt64 = 0x5EED, latency: Duration = .zero, callHistoryLimit: Int = 10_000) {
        self.state = Mutex(State(random: seed))
        self.latency = latency
        self.stateFile = nil
        self.callHistoryLimit = max(1, callHistoryLimit)
    }

    /// A cluster whose state lives in `stateFile` (JSON), so several processes — e.g. two
    /// agents playing two hosts — share one simulated VG and see each other's LV locks.
    /// Every operation holds an exclusive `flock` on `<stateFile>.lock` while it loads the
    /// state, applies the change and writes it back (temp file + fsync + rename).
    /// Recorded calls stay in this process's memory. The file is created on first write.
    public init(stateFile: String, seed: UInt64 = 0x5EED, latency: Duration = .zero, callHistoryLimit: Int = 10_000) {
        self.state = Mutex(State(random: seed))
        self.latency = latency
        self.stateFile = stateFile
        self.callHistoryLimit = max(1, callHistoryLimit)
    }

    // MARK: Setup and fault hooks

    /// Adds a shared sanlock VG (as after `vgcreate --shared --lock-type sanlock`).
    public func addVolumeGroup(_ name: String, sizeBytes: UInt64, extentSizeBytes: UInt64 = 4 << 20) {
        mutate { s in
            let uuid = Self.lvmUUID(&s.random)
            s.vgs[name] = VG(name: name, uuid: uuid, extentSize: extentSizeBytes, totalExtents: sizeBytes / extentSizeBytes)
        }
    }

    /// Adds the VG unless it already exists (file-backed clusters: the first process to
    /// start creates it, later ones join). Returns true when it was created.
    @discardableResult
    public func ensureVolumeGroup(_ name: String, sizeBytes: UInt64, extentSizeBytes: UInt64 = 4 << 20) -> Bool {
        mutate { s in
            guard s.vgs[name] == nil else { return false }
            let uuid = Self.lvmUUID(&s.random)
            s.vgs[name] = VG(name: name, uuid: uuid, extentSize: extentSizeBytes, totalExtents: sizeBytes / extentSizeBytes)
            return true
        }
    }

    /// Simulates a host rebooting (or crashing and sanlock's lease expiring): every LV
    /// device of `host` disappears, its LV locks are released and its lockspaces are left.
    public func rebootHost(_ host: String) {
        mutate { s in
            for vgName in s.vgs.keys {
                var group = s.vgs[vgName]!
                group.startedHosts.remove(host)
                group.failedHosts.remove(host)
                for name in group.lvs.keys {
                    if group.lvs[name]!.exclusiveHolder == host { group.lvs[name]!.exclusiveHolder = nil }
                    group.lvs[name]!.sharedHolders.remove(host)
                    group.lvs[name]!.devices[host] = nil
                }
                s.vgs[vgName] = group
            }
        }
    }

    /// Simulates a VM holding the LV's device open on `host` (deactivate/remove → `busy`).
    /// Returns false if the LV is not active on that host.
    @discardableResult
    public func setOpen(host: String, vg: String, lv: String, _ open: Bool) -> Bool {
        mutate { s in
            guard s.vgs[vg]?.lvs[lv]?.devices[host] != nil else { return false }
            s.vgs[vg]!.lvs[lv]!.devices[host]!.open = open
            return true
        }
    }

    /// Simulates sanlock losing the host's lease storage (lvmlockctl --kill): lock requests
    /// fail, `sanlock client status` shows no change, LVs stay active. Cleared by `dropLockspace`.
    public func failLockspace(vg: String, host: String) {
        mutate { s in _ = s.vgs[vg]?.failedHosts.insert(host) }
    }

    /// Simulates the other hosts' sanlock declaring `host` dead after its lease storage
    /// failed (76–85 s in the lab): its LV locks become free for others, while its own
    /// devices stay as they were (that host cannot know).
    public func expireLeases(vg: String, host: String) {
        mutate { s in
            guard var group = s.vgs[vg] else { return }
            for name in group.lvs.keys {
                if group.lvs[name]!.exclusiveHolder == host { group.lvs[name]!.exclusiveHolder = nil }
                group.lvs[name]!.sharedHolders.remove(host)
            }
            s.vgs[vg] = group
        }
    }

    /// `lvmlockctl --drop`: forgets the host's lockspace and every lock it held; devices
    /// stay active (that is what makes drop without deactivation unsafe).
    public func dropLockspace(vg: String, host: String) {
        mutate { Self.drop(&$0, vg: vg, host: host) }
    }

    static func drop(_ s: inout State, vg: String, host: String) {
        guard var group = s.vgs[vg] else { return }
        group.failedHosts.remove(host)
        group.startedHosts.remove(host)
        for name in group.lvs.keys {
            if group.lvs[name]!.exclusiveHolder == host { group.lvs[name]!.exclusiveHolder = nil }
            group.lvs[name]!.sharedHolders.remove(host)
        }
        s.vgs[vg] = group
    }

    /// Boot wait: whether the VG's PVs are visible (to every host).
    public func setPVsPresent(vg: String, _ present: Bool) {
        mutate { s in s.vgs[vg]?.pvsPresent = present }
    }

    /// Writes `tag` over the first `bytes` of an LV (whole MiB blocks), as a tenant would.
    public func writeData(vg: String, lv: String, tag: UInt32, bytes: UInt64) {
        mutate { s in
            guard var l = s.vgs[vg]?.lvs[lv] else { return }
            var data = l.data ?? [:]
            for block in 0..<Self.blocks(bytes) { data[block] = tag }
            l.data = data
            s.vgs[vg]?.lvs[lv] = l
            Self.noteOriginWrite(&s, vg: vg, origin: lv, blocks: 0..<Self.blocks(bytes))
        }
    }

    /// The non-zero MiB blocks of an LV (block → tag); nil when there is no such LV.
    public func data(vg: String, lv: String) -> [UInt64: UInt32]? {
        mutate { s in s.vgs[vg]?.lvs[lv].map { $0.data ?? [:] } }
    }

    /// The LV's tags (nil when there is no such LV), for tests.
    public func tags(vg: String, lv: String) -> [String]? {
        mutate { s in s.vgs[vg]?.lvs[lv].map { $0.tags ?? [] } }
    }

    /// The names of the VG's LVs (without the lock LV), sorted.
    public func lvNames(vg: String) -> [String] {
        mutate { s in s.vgs[vg].map { Array($0.lvs.keys).sorted() } ?? [] }
    }

    /// Whether the disk zeroes ranges itself (default true); false makes wipes write zeros.
    public func setZeroOffload(_ supported: Bool) { mutate { $0.zeroOffload = supported } }

    /// The next `count` job I/O operations fail (`internal`, as an I/O error would).
    public func failNextIO(_ count: Int) { mutate { $0.ioFailures = count } }

    static func blocks(_ bytes: UInt64) -> UInt64 { bytes / (1 << 20) + (bytes % (1 << 20) == 0 ? 0 : 1) }

    // MARK: Inspection

    /// The calls recorded, oldest first: the most recent `callHistoryLimit` at least, and at
    /// most twice that (a long-running simulated agent must not keep every call it ever made).
    public var calls: [SimulatedCall] { state.withLock { $0.calls } }
    public func calls(host: String) -> [SimulatedCall] { calls.filter { $0.host == host } }
    public func clearCalls() { state.withLock { $0.calls = [] } }

    /// The lock table entry of an LV (who holds it, in which mode), for tests.
    public func lockHolders(vg: String, lv: String) -> (exclusive: String?, shared: Set<String>)? {
        mutate { s in
            s.vgs[vg]?.lvs[lv].map { ($0.exclusiveHolder, $0.sharedHolders) }
        }
    }

    // MARK: Internals used by SimulatedLVMBackend

    func record(_ host: String, _ method: String, _ arguments: [String]) {
        state.withLock { s in
            // Trimmed in halves, so the cost per call stays constant.
            if s.calls.count >= 2 * callHistoryLimit { s.calls.removeFirst(s.calls.count - callHistoryLimit) }
            s.calls.append(SimulatedCall(host: host, method: method, arguments: arguments))
        }
    }

    func registerHost(_ host: String, hostId: Int) {
        mutate { $0.hostIds[host] = hostId }
    }

    func hostId(_ host: String) -> Int { mutate { $0.hostIds[host] ?? 0 } }

    func withState<T: Sendable>(_ body: (inout State) throws(LVMError) -> T) throws(LVMError) -> T {
        try state.withLock { (s: inout State) throws(LVMError) -> T in
            guard let stateFile else { return try body(&s) }
            return try SimulatedStateFile.withLockedState(path: stateFile, &s, body)
        }
    }

    /// `withState` for setup hooks and inspection, which cannot fail in memory; in
    /// file-backed mode an unreadable state file is a broken test setup and traps.
    func mutate<T: Sendable>(_ body: (inout State) -> T) -> T {
        do {
            return try withState { (s: inout State) throws(LVMError) -> T in body(&s) }
        } catch {
            fatalError("simulated cluster state file \(stateFile ?? "-"): \(error)")
        }
    }

    /// LVM's UUID format: 6-4-4-4-4-4-6 characters of [A-Za-z0-9] (deterministic per seed).
    static func lvmUUID(_ random: inout UInt64) -> String {
        let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789")
        var out = ""
        for (i, length) in [6, 4, 4, 4, 4, 4, 6].enumerated() {
            if i > 0 { out.append("-") }
            for _ in 0..<length {
                // splitmix64
                random &+= 0x9E37_79B9_7F4A_7C15
                var z = random
                z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
                z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
                z ^= z >> 31
                out.append(alphabet[Int(z % UInt64(alphabet.count))])
            }
        }
        return out
    }
}
