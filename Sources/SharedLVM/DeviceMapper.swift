/// Device-mapper, below LVM: what fencing and recovery use when LVM itself cannot act.
///
/// After sanlock loses a VG's lease storage, LVM commands hang (queued I/O) or fail (failing
/// I/O), and `lvchange -an` fails while the disk is unreadable. `dmsetup` still works: it
/// only talks to the kernel, never to the disk. So the kill command and the recovery steps
/// that must work during an outage go through this interface, not through `LVMBackend`.
import HostCommands

/// One mapped device as `dmsetup info -c` reports it.
public struct DMDevice: Sendable, Hashable {
    public var name: String
    /// "LVM-<32 VG uuid chars><32 LV uuid chars>[-layer]" for LVs; other subsystems differ.
    public var uuid: String
    /// Kernel block device name, e.g. "dm-3".
    public var blockDevice: String
    public var suspended: Bool
    public var openCount: Int

    public init(name: String, uuid: String, blockDevice: String, suspended: Bool = false, openCount: Int = 0) {
        self.name = name
        self.uuid = uuid
        self.blockDevice = blockDevice
        self.suspended = suspended
        self.openCount = openCount
    }

    public var isLV: Bool { uuid.hasPrefix("LVM-") }

    /// "LVM-" plus the VG's uuid: the same for every LV of one VG, whatever its name.
    public var vgKey: Substring? { isLV && uuid.utf8.count >= 36 ? uuid.prefix(36) : nil }
}

/// One line of `dmsetup table`: `start length target params…`.
public struct DMTableLine: Sendable, Hashable {
    public var start: UInt64
    public var length: UInt64
    public var target: String
    public var params: String

    public init(start: UInt64, length: UInt64, target: String, params: String = "") {
        self.start = start
        self.length = length
        self.target = target
        self.params = params
    }
}

public struct DMError: Error, Sendable, Hashable, CustomStringConvertible {
    public var message: String
    public var argv: [String]
    public var stderr: String
    public var termination: CommandTermination?

    public init(message: String, argv: [String] = [], stderr: String = "", termination: CommandTermination? = nil) {
        self.message = message
        self.argv = argv
        self.stderr = stderr
        self.termination = termination
    }

    public var description: String {
        var s = message
        if !argv.isEmpty { s += " [\(argv.joined(separator: " "))" + (termination.map { ": \($0)" } ?? "") + "]" }
        return s
    }
}

public protocol DeviceMapping: Sendable {
    /// Every mapped device of this host.
    func devices() async throws(DMError) -> [DMDevice]
    /// Kernel names of the block devices `name` maps onto ("dm-0", "vda", "sdb").
    func dependencies(of name: String) async throws(DMError) -> [String]
    /// The live table.
    func table(of name: String) async throws(DMError) -> [DMTableLine]
    /// Loads an `error` table of `sectors` and resumes: queued and future I/O fails.
    func replaceWithErrorTable(_ name: String, sectors: UInt64) async throws(DMError)
    /// `dmsetup message NAME 0 TEXT` (multipath: `fail_if_no_path`, `queue_if_no_path`).
    func message(_ name: String, _ text: String) async throws(DMError)
    /// `dmsetup remove`: deactivates a device without LVM (no lock is touched).
    func remove(_ name: String) async throws(DMError)
    /// multipathd's own switch for a map: `multipathd disablequeueing map NAME` (`disable`) or
    /// `restorequeueing`. A running multipathd with `no_path_retry queue` switches
    /// queue_if_no_path back on at its next look at the map (seen in the lab within seconds
    /// of a `dmsetup message … fail_if_no_path`) unless told so. Throws with a nil
    /// `termination` when multipathd is not installed.
    func multipathdQueueing(_ name: String, disable: Bool) async throws(DMError)
}

extension DeviceMapping {
    public func multipathdQueueing(_ name: String, disable: Bool) async throws(DMError) {
        throw DMError(message: "no multipathd on this host")
    }
}

/// LVM's device-mapper naming: `<vg>-<lv>` with every '-' inside either name doubled.
public enum DMName {
    public static func lv(vg: String, lv: String) -> String { escape(vg) + "-" + escape(lv) }

    static func escape(_ s: String) -> String {
        var out = ""
        for c in s { out.append(c); if c == "-" { out.append("-") } }
        return out
    }

    /// Splits an LV device name into VG and LV names; nil when it is not of that form.
    public static func split(_ name: String) -> (vg: String, lv: String)? {
        let chars = Array(name)
        var i = 0
        var vg = ""
        while i < chars.count {
            if chars[i] == "-" {
                if i + 1 < chars.count, chars[i + 1] == "-" { vg.append("-"); i += 2; continue }
                let rest = String(chars[(i + 1)...])
                guard !vg.isEmpty, !rest.isEmpty else { return nil }
                var lv = ""
                var j = rest.startIndex
                while j < rest.endIndex {
                    let c = rest[j]
                    lv.append(c)
                    let next = rest.index(after: j)
                    if c == "-" {
                        guard next < rest.endIndex, rest[next] == "-" else { return nil }  // a layer suffix: not an LV
                        j = rest.index(after: next)
                    } else {
                        j = next
                    }
                }
                return (vg, lv)
            }
            vg.append(chars[i])
            i += 1
        }
        return nil
    }
}

/// `dmsetup` by argv, through the same runner as LVM (LC_ALL=C, timeout, SIGKILL).
public struct DMSetup: DeviceMapping {
    public var executor: any CommandExecuting
    public var timeout: Duration

    public init(executor: any CommandExecuting = CommandRunner(), timeout: Duration = .seconds(10)) {
        self.executor = executor
        self.timeout = timeout
    }

    public static func infoArgv() -> [String] {
        ["dmsetup", "info", "-c", "--noheadings", "--separator", "|", "-o", "name,uuid,blkdevname,suspended,open"]
    }

    public func devices() async throws(DMError) -> [DMDevice] {
        let out = try await run(Self.infoArgv())
        return Self.parseInfo(out)
    }

    public func dependencies(of name: String) async throws(DMError) -> [String] {
        Self.parseDeps(try await run(["dmsetup", "deps", "-o", "blkdevname", try Self.checked(name)]))
    }

    public func table(of name: String) async throws(DMError) -> [DMTableLine] {
        Self.parseTable(try await run(["dmsetup", "table", try Self.checked(name)]))
    }

    public func replaceWithErrorTable(_ name: String, sectors: UInt64) async throws(DMError) {
        let name = try Self.checked(name)
        guard sectors > 0 else { throw DMError(message: "cannot load an error table of 0 sectors into \(name)") }
        _ = try await run(["dmsetup", "load", name, "--table", "0 \(sectors) error"])
        _ = try await run(["dmsetup", "resume", name])
    }

    public func message(_ name: String, _ text: String) async throws(DMError) {
        _ = try await run(["dmsetup", "message", try Self.checked(name), "0", text])
    }

    public func remove(_ name: String) async throws(DMError) {
        _ = try await run(["dmsetup", "remove", try Self.checked(name)])
    }

    public func multipathdQueueing(_ name: String, disable: Bool) async throws(DMError) {
        let argv = ["multipathd", disable ? "disablequeueing" : "restorequeueing", "map", try Self.checked(name)]
        // multipathd's client prints "ok" or "fail" (older ones exit 0 either way).
        let out = try await run(argv)
        let reply = out.split(separator: "\n").first.map { $0.trimmedDMField() } ?? ""
        guard reply != "fail" else { throw DMError(message: "multipathd refused: fail", argv: argv, termination: .exited(1)) }
    }

    /// Names come from dmsetup's own output, but one that looks like an option must never
    /// reach an argv.
    static func checked(_ name: String) throws(DMError) -> String {
        guard !name.isEmpty, !name.hasPrefix("-"), !name.utf8.contains(where: { $0 < 0x20 || $0 == 0x7f }), name.utf8.count <= 127 else {
            throw DMError(message: "refusing the device-mapper name \"\(name)\"")
        }
        return name
    }

    private func run(_ argv: [String]) async throws(DMError) -> String {
        let r: CommandResult
        do { r = try await executor.run(argv, timeout: timeout) } catch {
            throw DMError(message: error.message, argv: argv)
        }
        guard r.termination.isSuccess else {
            let firstLine = r.stderr.split(separator: "\n").first.map(String.init) ?? ""
            throw DMError(
                message: firstLine.isEmpty ? "\(argv[0]) \(argv[1]) failed (\(r.termination))" : firstLine,
                argv: argv, stderr: r.stderr, termination: r.termination)
        }
        return r.stdout
    }

    // MARK: - Parsing (dmsetup 1.02.185 output)

    /// `name|uuid|dm-3|Active|1` per line; "No devices found" when there are none. The name
    /// is taken from the left and the last three fields from the right, so a '|' in a
    /// non-LVM device's name does not shift the fields.
    static func parseInfo(_ text: String) -> [DMDevice] {
        var out: [DMDevice] = []
        for raw in text.split(separator: "\n") {
            let line = raw.trimmedDMField()
            let fields = line.split(separator: "|", omittingEmptySubsequences: false).map(String.init)
            guard fields.count >= 5 else { continue }
            let n = fields.count
            let name = fields[0...(n - 5)].joined(separator: "|")
            out.append(
                DMDevice(
                    name: name, uuid: fields[n - 4], blockDevice: fields[n - 3],
                    suspended: fields[n - 2].lowercased().hasPrefix("suspend"),
                    openCount: Int(fields[n - 1]) ?? 0))
        }
        return out
    }

    /// ` 1 dependencies\t: (dm-0)` or `2 dependencies : (sda) (sdb)`.
    static func parseDeps(_ text: String) -> [String] {
        var out: [String] = []
        var current: String?
        for c in text {
            switch c {
            case "(": current = ""
            case ")": if let d = current, !d.isEmpty { out.append(d) }; current = nil
            default: current?.append(c)
            }
        }
        return out
    }

    static func parseTable(_ text: String) -> [DMTableLine] {
        text.split(separator: "\n").compactMap { line in
            let parts = line.split(separator: " ", maxSplits: 3, omittingEmptySubsequences: true)
            guard parts.count >= 3, let start = UInt64(parts[0]), let length = UInt64(parts[1]) else { return nil }
            return DMTableLine(
                start: start, length: length, target: String(parts[2]),
                params: parts.count > 3 ? String(parts[3]) : "")
        }
    }
}

extension Substring {
    func trimmedDMField() -> Substring {
        var s = self
        while let f = s.first, f == " " || f == "\t" || f == "\r" { s = s.dropFirst() }
        while let l = s.last, l == " " || l == "\t" || l == "\r" { s = s.dropLast() }
        return s
    }
}

/// A host without device-mapper (the simulated backend, demos): nothing is mapped.
public struct NoDeviceMapper: DeviceMapping {
    public init() {}
    public func devices() async throws(DMError) -> [DMDevice] { [] }
    public func dependencies(of name: String) async throws(DMError) -> [String] { [] }
    public func table(of name: String) async throws(DMError) -> [DMTableLine] {
        throw DMError(message: "no device-mapper device \(name) on this (simulated) host")
    }
    public func replaceWithErrorTable(_ name: String, sectors: UInt64) async throws(DMError) {
        throw DMError(message: "no device-mapper device \(name) on this (simulated) host")
    }
    public func message(_ name: String, _ text: String) async throws(DMError) {
        throw DMError(message: "no device-mapper device \(name) on this (simulated) host")
    }
    public func remove(_ name: String) async throws(DMError) {
        throw DMError(message: "no device-mapper device \(name) on this (simulated) host")
    }
}
