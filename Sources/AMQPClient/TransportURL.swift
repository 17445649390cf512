/// An OpenStack transport URL: `rabbit://user:pass@host1:5672,user:pass@host2/vhost?ssl=1`.
/// `amqp://` is accepted as a synonym (the seed's cinder.conf uses it); both mean AMQP 0-9-1.
public struct TransportURL: Sendable, Equatable, CustomStringConvertible {
    public struct Host: Sendable, Equatable {
        public var host: String
        public var port: Int
        public var username: String
        public var password: String
    }

    public var scheme: String
    public var hosts: [Host]
    public var virtualHost: String
    public var query: [String: String]

    public static let defaultPort = 5672

    /// The URL with every password replaced by `***`, for logs and errors.
    public var description: String {
        let hs = hosts.map { h -> String in
            let host = h.host.contains(":") ? "[\(h.host)]" : h.host
            return "\(h.username.isEmpty ? "" : "\(h.username):***@")\(host):\(h.port)"
        }.joined(separator: ",")
        let vh = virtualHost == "/" ? "" : percentEncodePath(virtualHost)
        let q = query.isEmpty ? "" : "?" + query.keys.sorted().map { "\($0)=\(query[$0]!)" }.joined(separator: "&")
        return "\(scheme)://\(hs)/\(vh)\(q)"
    }

    /// TLS is on with `amqps://` or `?ssl=1|true|yes` (oslo starts TLS on the given port).
    public var usesTLS: Bool {
        if scheme == "amqps" { return true }
        guard let v = query["ssl"]?.lowercased() else { return false }
        return ["1", "true", "yes", "on"].contains(v)
    }

    public init(scheme: String = "rabbit", hosts: [Host], virtualHost: String = "/", query: [String: String] = [:]) {
        self.scheme = scheme
        self.hosts = hosts
        self.virtualHost = virtualHost
        self.query = query
    }

    public init(parsing text: String) throws(TransportURLError) {
        let trimmed = text.trimmingSpaces()
        guard let schemeEnd = trimmed.range(of: "://") else {
            throw .malformed("missing '://' (expected e.g. rabbit://user:pass@host:5672/vhost)")
        }
        let rawScheme = String(trimmed[..<schemeEnd.lowerBound]).lowercased()
        // oslo: the driver is the scheme up to the first '+'.
        let scheme = String(rawScheme.split(separator: "+", maxSplits: 1).first ?? "")
        guard ["rabbit", "amqp", "amqps"].contains(scheme) else {
            throw .unsupportedScheme(rawScheme)
        }
        var rest = Substring(trimmed[schemeEnd.upperBound...])
        var queryPart: Substring = ""
        if let q = rest.firstIndex(of: "?") {
            queryPart = rest[rest.index(after: q)...]
            rest = rest[..<q]
        }
        if let f = queryPart.firstIndex(of: "#") { queryPart = queryPart[..<f] }
        var netloc = rest
        var path: Substring = ""
        // The host list ends at the first '/' that is not inside a userinfo part.
        // Passwords may contain '/' only when percent-encoded, as in any URL.
        if let slash = rest.firstIndex(of: "/") {
            netloc = rest[..<slash]
            path = rest[rest.index(after: slash)...]
        }
        var hosts: [Host] = []
        if netloc.isEmpty {
            hosts = [Host(host: "localhost", port: Self.defaultPort, username: "guest", password: "guest")]
        } else {
            for (i, part) in netloc.split(separator: ",", omittingEmptySubsequences: false).enumerated() {
                hosts.append(try Self.parseHost(part, index: i + 1))
            }
        }
        let vhost: String
        do { vhost = path.isEmpty ? "/" : try percentDecode(path) } catch { throw .malformed("virtual host: \(error.reason)") }
        var query: [String: String] = [:]
        for item in queryPart.split(separator: "&") where !item.isEmpty {
            let kv = item.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            do {
                let key = try percentDecode(kv[0])
                guard !key.isEmpty else { throw TransportURLError.malformed("empty query parameter name") }
                query[key] = kv.count > 1 ? try percentDecode(kv[1]) : ""
            } catch let e as TransportURLError {
                throw e
            } catch let e as PercentDecodingError {
                throw .malformed("query parameter: \(e.reason)")
            } catch {
                throw .malformed("query parameter")
            }
        }
        self.init(scheme: scheme, hosts: hosts, virtualHost: vhost.isEmpty ? "/" : vhost, query: query)
    }

    private static func parseHost(_ part: Substring, index: Int) throws(TransportURLError) -> Host {
        guard !part.isEmpty else { throw .malformed("host #\(index) is empty (check the commas)") }
        var user = "guest", pass = "guest"
        var hostPort = part
        if let at = part.lastIndex(of: "@") {
            let userinfo = part[..<at]
            hostPort = part[part.index(after: at)...]
            let up = userinfo.split(separator: ":", maxSplits: 1, omittingEmptySubsequences: false)
            do {
                user = try percentDecode(up[0])
                pass = up.count > 1 ? try percentDecode(up[1]) : ""
            } catch {
                throw .malformed("host #\(index): credentials: \(error.reason)")
            }
        }
        var host: Substring
        var portText: Substring?
        if hostPort.hasPrefix("[") {
            guard let close = hostPort.firstIndex(of: "]") else {
                throw .malformed("host #\(index): unterminated '[' in IPv6 address")
            }
            host = hostPort[hostPort.index(after: hostPort.startIndex)..<close]
            let after = hostPort[hostPort.index(after: close)...]
            if !after.isEmpty {
                guard after.hasPrefix(":") else { throw .malformed("host #\(index): junk after ']'") }
                portText = after.dropFirst()
            }
        } else {
            let hp = hostPort.split(separator: ":", omittingEmptySubsequences: false)
            guard hp.count <= 2 else {
                throw .malformed("host #\(index): too many ':' (put IPv6 addresses in brackets)")
            }
            host = hp[0]
            portText = hp.count == 2 ? hp[1] : nil
        }
        guard !host.isEmpty else { throw .malformed("host #\(index): host name is empty") }
        guard host.allSatisfy({ $0.isLetter || $0.isNumber || "-._:".contains($0) }) else {
            throw .malformed("host #\(index): host name has invalid characters")
        }
        var port = defaultPort
        if let portText {
            guard let p = Int(portText), (1...65535).contains(p) else {
                throw .malformed("host #\(index): port '\(portText)' is not a number in 1..65535")
            }
            port = p
        }
        return Host(host: String(host), port: port, username: user, password: pass)
    }
}

public enum TransportURLError: Error, Sendable, Equatable, CustomStringConvertible {
    case malformed(String)
    case unsupportedScheme(String)

    public var description: String {
        switch self {
        case .malformed(let m): return "invalid transport URL: \(m)"
        case .unsupportedScheme(let s):
            return "invalid transport URL: scheme '\(s)' is not supported (use rabbit:// or amqp://)"
        }
    }
}

struct PercentDecodingError: Error {
    let reason: String
}

func percentDecode(_ s: Substring) throws(PercentDecodingError) -> String {
    var out: [UInt8] = []
    var it = Array(s.utf8)[...]
    while let c = it.popFirst() {
        if c == UInt8(ascii: "%") {
            guard it.count >= 2, let hi = hexValue(it.popFirst()!), let lo = hexValue(it.popFirst()!) else {
                throw PercentDecodingError(reason: "bad percent-escape")
            }
            out.append(hi << 4 | lo)
        } else {
            out.append(c)
        }
    }
    guard let str = String(validating: out, as: UTF8.self) else {
        throw PercentDecodingError(reason: "percent-escapes are not valid UTF-8")
    }
    return str
}

private func hexValue(_ c: UInt8) -> UInt8? {
    switch c {
    case UInt8(ascii: "0")...UInt8(ascii: "9"): return c - UInt8(ascii: "0")
    case UInt8(ascii: "a")...UInt8(ascii: "f"): return c - UInt8(ascii: "a") + 10
    case UInt8(ascii: "A")...UInt8(ascii: "F"): return c - UInt8(ascii: "A") + 10
    default: return nil
    }
}

private func percentEncodePath(_ s: String) -> String {
    var out = ""
    for b in s.utf8 {
        let ch = Character(Unicode.Scalar(b))
        if b < 0x80 && (ch.isLetter || ch.isNumber || "-._~".contains(ch)) {
            out.append(ch)
        } else {
            out += "%" + String(b, radix: 16, uppercase: true).leftPad(2)
        }
    }
    return out
}

extension String {
    fileprivate func leftPad(_ n: Int) -> String { count >= n ? self : String(repeating: "0", count: n - count) + self }
    func trimmingSpaces() -> String {
        var s = Substring(self)
        while let f = s.first, f.isWhitespace { s = s.dropFirst() }
        while let l = s.last, l.isWhitespace { s = s.dropLast() }
        return String(s)
    }
}

extension StringProtocol {
    func range(of needle: String) -> Range<Index>? {
        guard !needle.isEmpty else { return nil }
        var i = startIndex
        while i < endIndex {
            if self[i...].hasPrefix(needle) { return i..<index(i, offsetBy: needle.count) }
            i = index(after: i)
        }
        return nil
    }
}
