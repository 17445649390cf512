import HostSupport
import Logging
import RPCWire
import SharedLVM

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

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
