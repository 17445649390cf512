#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

extension Secrets {
    /// Whether a transport URL carries a password (any host of a multi-host URL); the user
    /// info ends at a segment's last '@', as in `mask`.
    public static func urlHasPassword(_ value: String) -> Bool {
        guard let schemeEnd = value.firstRange(of: "://") else { return false }
        for segment in value[schemeEnd.upperBound...].split(separator: ",", omittingEmptySubsequences: false) {
            guard let at = segment.lastIndex(of: "@") else { continue }
            let userinfo = segment[..<at]
            if let colon = userinfo.firstIndex(of: ":"), userinfo.index(after: colon) < userinfo.endIndex { return true }
        }
        return false
    }
}

/// Where the broker password could leak from, said at startup by every program: a password
/// on the command line (every local user can read /proc/PID/cmdline), or in a configuration
/// file that group or others may read.
public enum SecretExposure {
    /// The group trusted with a group-readable configuration file (`chown root:aos`, mode 640).
    public static let trustedGroup = "aos"

    public struct FileAccess: Sendable, Equatable {
        /// Permission bits.
        public var mode: UInt32
        /// The file's group name (nil if unknown).
        public var group: String?

        public init(mode: UInt32, group: String?) {
            self.mode = mode
            self.group = group
        }
    }

    /// A file's permission bits and group (nil: cannot stat it).
    public static func fileAccess(_ path: String) -> FileAccess? {
        var st = stat()
        guard stat(path, &st) == 0 else { return nil }
        var group: String?
        if let g = getgrgid(st.st_gid), let name = g.pointee.gr_name { group = String(cString: name) }
        return FileAccess(mode: UInt32(st.st_mode) & 0o7777, group: group)
    }

    /// Warnings (one line each, secrets never shown) for `config`, whose file was read from
    /// `path`. `access` reads a file's mode and group (replaceable in tests).
    ///
    /// A file holding the password may be read by its owner, and by its group only when that
    /// group is `aos` (`chown root:aos`, `chmod 640`: a group of aos services only).
    public static func warnings(
        _ config: Configuration, path: String?,
        access: (String) -> FileAccess? = fileAccess
    ) -> [String] {
        let option = CommonOptions.transportURL
        guard config.schema.option(option.section, option.name) != nil,
            Secrets.urlHasPassword(config.string(option))
        else { return [] }
        let env = option.key.environmentName
        switch config.source(option) {
        case .commandLine:
            return [
                "the broker password is on the command line ([DEFAULT] transport_url from --url or --set), "
                    + "where every local user can read it (ps, /proc/PID/cmdline); put transport_url in the "
                    + "configuration file (chmod 600) or in the environment variable \(env) instead"
            ]
        case .file(let name, _):
            let file = path ?? name
            guard let info = access(file) else { return [] }
            let others = info.mode & 0o004 != 0
            let group = info.mode & 0o040 != 0 && info.group != trustedGroup
            guard others || group else { return [] }
            let who = others ? "every local user" : "group '\(info.group ?? "?")'"
            return [
                "configuration file \(file) holds the broker password ([DEFAULT] transport_url) and is readable by "
                    + "\(who) (mode \(octal(info.mode))); fix: chmod 600 \(file) (the aos services run as root), or, "
                    + "if a service must read it as another user: chown root:\(trustedGroup) \(file) && chmod 640 \(file), "
                    + "with only aos services in group \(trustedGroup)"
            ]
        case .environment, .defaultValue:
            return []
        }
    }

    static func octal(_ bits: UInt32) -> String {
        let digits = String(bits, radix: 8)
        return String(repeating: "0", count: max(0, 4 - digits.count)) + digits
    }
}
