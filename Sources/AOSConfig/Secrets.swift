/// Masking of secret values for errors, logs and dumps.
public enum Secrets {
    public static let mask = "***"

    /// A URL keeps everything but its passwords (`rabbit://guest:***@host:5672/`, for every host
    /// of a multi-host URL); any other non-empty secret becomes `***` entirely.
    public static func mask(_ value: String) -> String {
        guard !value.isEmpty else { return value }
        guard let schemeEnd = value.firstRange(of: "://") else { return mask }
        let scheme = value[..<schemeEnd.upperBound]
        let rest = value[schemeEnd.upperBound...]
        let segments = rest.split(separator: ",", omittingEmptySubsequences: false).map { segment -> String in
            // The userinfo ends at the segment's last '@' (a password may hold '/' or '@'):
            // over-masking a strange URL is better than leaking part of a password.
            guard let at = segment.lastIndex(of: "@") else { return String(segment) }
            let userinfo = segment[..<at]
            guard let colon = userinfo.firstIndex(of: ":") else { return String(segment) }
            return String(userinfo[..<colon]) + ":" + mask + String(segment[at...])
        }
        return String(scheme) + segments.joined(separator: ",")
    }
}
