/// Parsed `sanlock client status`: which lockspaces this host has joined and which
/// LV locks it holds, with their mode. This is the only place the lock mode is visible
/// (`SH` = shared, a lease version number = exclusive).
///
/// ```
/// daemon b83efaba-0b75-4b30-9b61-9d78195468c3.cn-193980.
/// p 1010 lvmlockd
/// s lvm_vol:212:/dev/mapper/vol-lvmlock:0
/// r lvm_vol:i2gjby-VEc6-APGD-x9if-ldk2-oxxI-XOwExz:/dev/mapper/vol-lvmlock:77594624:4 p 1010
/// r lvm_vol:PDHtUW-8i1O-ECi4-cxmj-pSAF-hZs2-MVqmcF:/dev/mapper/vol-lvmlock:70254592:SH p 1010
/// ```
public struct SanlockStatus: Sendable, Hashable {
    public struct Lockspace: Sendable, Hashable {
        /// sanlock lockspace name, `lvm_<vg>` for lvmlockd.
        public var name: String
        /// The VG, from the lease device `/dev/mapper/<vg>-lvmlock` when present (the
        /// lockspace name may differ from the VG name: the seed shows `lvm_sanlock` on VG `vol`).
        public var vg: String
        public var hostId: Int
        public var path: String
        public var offset: UInt64
        /// `ADD`/`REM` while joining/leaving; nil when settled.
        public var transition: String?

        public init(name: String, vg: String, hostId: Int, path: String, offset: UInt64, transition: String? = nil) {
            self.name = name
            self.vg = vg
            self.hostId = hostId
            self.path = path
            self.offset = offset
            self.transition = transition
        }
    }

    public struct Resource: Sendable, Hashable {
        public var lockspace: String
        /// The resource name; for LV locks it is the LV UUID (`GLLK`/`VGLK` for global/VG locks).
        public var lvUUID: String
        public var path: String
        public var offset: UInt64
        public var mode: LVActivationMode
        /// Lease version for exclusive locks.
        public var leaseVersion: UInt64?
        public var pid: Int32?

        public init(
            lockspace: String, lvUUID: String, path: String, offset: UInt64,
            mode: LVActivationMode, leaseVersion: UInt64? = nil, pid: Int32? = nil
        ) {
            self.lockspace = lockspace
            self.lvUUID = lvUUID
            self.path = path
            self.offset = offset
            self.mode = mode
            self.leaseVersion = leaseVersion
            self.pid = pid
        }
    }

    public var daemon: String?
    public var lockspaces: [Lockspace]
    public var resources: [Resource]

    public init(daemon: String? = nil, lockspaces: [Lockspace] = [], resources: [Resource] = []) {
        self.daemon = daemon
        self.lockspaces = lockspaces
        self.resources = resources
    }

    public func lockspace(forVG vg: String) -> Lockspace? {
        lockspaces.first { $0.vg == vg }
    }

    /// The lock this host holds on an LV, by LV UUID.
    public func resource(lvUUID: String) -> Resource? {
        resources.first { $0.lvUUID == lvUUID }
    }

    /// Parses the text; lines it does not understand are skipped (sanlock versions add
    /// line kinds), but a malformed `s`/`r` line is an error: silently dropping a held
    /// lock would make the agent forget it.
    public static func parse(_ text: String) throws(LVMError) -> SanlockStatus {
        var status = SanlockStatus()
        for rawLine in text.split(whereSeparator: \.isNewline) {
            let line = rawLine.trimmingWhitespace()
            if line.hasPrefix("daemon ") {
                status.daemon = String(line.dropFirst(7))
            } else if line.hasPrefix("s ") {
                status.lockspaces.append(try parseLockspace(String(line.dropFirst(2))))
            } else if line.hasPrefix("r ") {
                status.resources.append(try parseResource(String(line.dropFirst(2))))
            }
        }
        return status
    }

    private static func malformed(_ line: String) -> LVMError {
        LVMError(code: .internal, message: "cannot parse sanlock status line \"\(line)\"")
    }

    private static func parseLockspace(_ body: String) throws(LVMError) -> Lockspace {
        let words = body.split(separator: " ").map(String.init)
        guard let spec = words.first else { throw malformed(body) }
        let parts = splitUnescaped(spec)
        guard parts.count >= 4, let hostId = Int(parts[1]), let offset = UInt64(parts[3]) else {
            throw malformed(body)
        }
        return Lockspace(
            name: parts[0], vg: vgName(lockspace: parts[0], path: parts[2]), hostId: hostId,
            path: parts[2], offset: offset, transition: words.count > 1 ? words[1] : nil
        )
    }

    private static func parseResource(_ body: String) throws(LVMError) -> Resource {
        // "<ls>:<name>:<path>:<offset>[:<path>:<offset>...]:<SH|lver> p <pid>"
        let words = body.split(separator: " ").map(String.init)
        guard let spec = words.first else { throw malformed(body) }
        let parts = splitUnescaped(spec)
        guard parts.count >= 5, let offset = UInt64(parts[3]), let modeField = parts.last else {
            throw malformed(body)
        }
        var pid: Int32?
        if let p = words.firstIndex(of: "p"), p + 1 < words.count { pid = Int32(words[p + 1]) }
        if modeField == "SH" {
            return Resource(
                lockspace: parts[0], lvUUID: parts[1], path: parts[2], offset: offset,
                mode: .shared, pid: pid)
        }
        guard let version = UInt64(modeField) else { throw malformed(body) }
        return Resource(
            lockspace: parts[0], lvUUID: parts[1], path: parts[2], offset: offset,
            mode: .exclusive, leaseVersion: version, pid: pid)
    }

    /// sanlock escapes ':' inside paths as "\:".
    private static func splitUnescaped(_ text: String) -> [String] {
        var parts: [String] = []
        var current = ""
        var escaped = false
        for ch in text {
            if escaped {
                current.append(ch)
                escaped = false
            } else if ch == "\\" {
                escaped = true
            } else if ch == ":" {
                parts.append(current)
                current = ""
            } else {
                current.append(ch)
            }
        }
        parts.append(current)
        return parts
    }

    /// `/dev/mapper/<vg>-lvmlock` with device-mapper's escaping ('-' in names doubled).
    static func vgName(lockspace: String, path: String) -> String {
        let prefix = "/dev/mapper/", suffix = "-lvmlock"
        if path.hasPrefix(prefix), path.hasSuffix(suffix), path.count > prefix.count + suffix.count {
            let escaped = String(path.dropFirst(prefix.count).dropLast(suffix.count))
            return escaped.replacing("--", with: "-")
        }
        return lockspace.hasPrefix("lvm_") ? String(lockspace.dropFirst(4)) : lockspace
    }
}

extension StringProtocol {
    func trimmingWhitespace() -> String {
        var s = Substring(self)
        while let f = s.first, f.isWhitespace { s = s.dropFirst() }
        while let l = s.last, l.isWhitespace { s = s.dropLast() }
        return String(s)
    }
}
