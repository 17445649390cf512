/// A value in an LVM config file (lvm.conf, lvmlocal.conf): a number or bare word, a
/// "string", or an [array] of those.
public enum LVMConfigValue: Sendable, Hashable {
    case word(String)
    case string(String)
    case array([LVMConfigValue])

    /// The integer a word (or a string holding digits) denotes.
    public var int: Int? {
        switch self {
        case .word(let w), .string(let w): return Int(w)
        case .array: return nil
        }
    }

    /// The text of a word or a string.
    public var text: String? {
        switch self {
        case .word(let w), .string(let w): return w
        case .array: return nil
        }
    }

    /// The elements' texts of an array (a single value is an array of one).
    public var texts: [String] {
        switch self {
        case .array(let items): return items.compactMap(\.text)
        default: return text.map { [$0] } ?? []
        }
    }

    /// As the file would write it.
    public var display: String {
        switch self {
        case .word(let w): return w
        case .string(let s): return "\"\(s)\""
        case .array(let items): return "[ " + items.map(\.display).joined(separator: ", ") + " ]"
        }
    }
}

/// One `name = value` setting: its section path (`global`, `devices`…), the line it is on.
public struct LVMConfigSetting: Sendable, Hashable {
    public var section: [String]
    public var name: String
    public var value: LVMConfigValue
    public var line: Int
}

/// An LVM config file read by a TOTAL parser: any input (garbage, truncated, hostile) gives
/// the settings it could read and the problems it met, never a trap and never an endless
/// loop (every step consumes at least one character or token). Syntax: `name { … }`
/// sections, `name = value` settings, `#` comments to the end of the line, "strings" with
/// backslash escapes, [arrays]. `section/name = value` (a path as the name) is also read.
public struct LVMConfigFile: Sendable, Hashable {
    public var fileName: String
    public var settings: [LVMConfigSetting]
    /// Syntax problems as "line N: …" (the setting on such a line may be missing).
    public var problems: [String]

    /// Input beyond this many bytes is not read (a config file is a few tens of KiB).
    public static let maxBytes = 4 << 20
    /// Sections and arrays nest at most this deep; deeper input is skipped as a problem.
    static let maxDepth = 32

    public init(text: String, fileName: String) {
        self.fileName = fileName
        var bytes = Array(text.utf8.prefix(Self.maxBytes))
        if text.utf8.count > Self.maxBytes { bytes.append(UInt8(ascii: "\n")) }
        var parser = ConfigParser(tokens: ConfigLexer.tokens(bytes))
        parser.parse()
        settings = parser.settings
        problems = parser.problems
        if text.utf8.count > Self.maxBytes { problems.append("file larger than \(Self.maxBytes) bytes: the rest is not read") }
    }

    /// The last setting `section/name` (LVM uses the last one it reads).
    public func setting(_ section: String, _ name: String) -> LVMConfigSetting? {
        settings.last { $0.section == [section] && $0.name == name }
    }
}

/// LVM's view of its configuration: lvmlocal.conf overrides lvm.conf (LVM reads it as the
/// local profile on top of lvm.conf).
public struct LVMConfigFiles: Sendable {
    public var lvm: LVMConfigFile?
    public var local: LVMConfigFile?

    public init(lvm: LVMConfigFile?, local: LVMConfigFile?) {
        self.lvm = lvm
        self.local = local
    }

    /// The effective setting and the file it is in.
    public func lookup(_ section: String, _ name: String) -> (setting: LVMConfigSetting, file: String)? {
        if let local, let s = local.setting(section, name) { return (s, local.fileName) }
        if let lvm, let s = lvm.setting(section, name) { return (s, lvm.fileName) }
        return nil
    }
}

enum ConfigToken: Sendable, Hashable {
    case word(String, line: Int)
    case string(String, line: Int, closed: Bool)
    case punct(UInt8, line: Int)

    var line: Int {
        switch self {
        case .word(_, let l), .string(_, let l, _), .punct(_, let l): return l
        }
    }
}

enum ConfigLexer {
    static func isWordByte(_ b: UInt8) -> Bool {
        switch b {
        case UInt8(ascii: "{"), UInt8(ascii: "}"), UInt8(ascii: "["), UInt8(ascii: "]"), UInt8(ascii: "="),
            UInt8(ascii: ","), UInt8(ascii: "\""), UInt8(ascii: "#"), UInt8(ascii: " "), UInt8(ascii: "\t"),
            UInt8(ascii: "\n"), UInt8(ascii: "\r"):
            return false
        default: return true
        }
    }

    static func tokens(_ bytes: [UInt8]) -> [ConfigToken] {
        var out: [ConfigToken] = []
        var i = 0
        var line = 1
        let n = bytes.count
        while i < n {
            let b = bytes[i]
            switch b {
            case UInt8(ascii: "\n"):
                line += 1
                i += 1
            case UInt8(ascii: " "), UInt8(ascii: "\t"), UInt8(ascii: "\r"):
                i += 1
            case UInt8(ascii: "#"):
                while i < n, bytes[i] != UInt8(ascii: "\n") { i += 1 }
            case UInt8(ascii: "{"), UInt8(ascii: "}"), UInt8(ascii: "["), UInt8(ascii: "]"), UInt8(ascii: "="),
                UInt8(ascii: ","):
                out.append(.punct(b, line: line))
                i += 1
            case UInt8(ascii: "\""):
                let start = line
                i += 1
                var value: [UInt8] = []
                var closed = false
                while i < n {
                    let d = bytes[i]
                    i += 1
                    if d == UInt8(ascii: "\"") {
                        closed = true
                        break
                    }
                    if d == UInt8(ascii: "\\"), i < n {
                        if bytes[i] == UInt8(ascii: "\n") { line += 1 }
                        value.append(bytes[i])
                        i += 1
                        continue
                    }
                    if d == UInt8(ascii: "\n") { line += 1 }
                    value.append(d)
                }
                out.append(.string(String(decoding: value, as: UTF8.self), line: start, closed: closed))
            default:
                let s = i
                while i < n, isWordByte(bytes[i]) { i += 1 }
                out.append(.word(String(decoding: bytes[s..<i], as: UTF8.self), line: line))
            }
        }
        return out
    }
}

struct ConfigParser {
    let tokens: [ConfigToken]
    var position = 0
    var settings: [LVMConfigSetting] = []
    var problems: [String] = []

    init(tokens: [ConfigToken]) { self.tokens = tokens }

    var current: ConfigToken? { position < tokens.count ? tokens[position] : nil }

    func isPunct(_ t: ConfigToken?, _ c: Character) -> Bool {
        if case .punct(let b, _)? = t, let a = c.asciiValue { return b == a }
        return false
    }

    mutating func problem(_ line: Int, _ message: String) {
        if problems.count < 100 { problems.append("line \(line): \(message)") }
    }

    mutating func parse() {
        var sections: [String] = []
        while let token = current {
            if isPunct(token, "}") {
                position += 1
                if sections.isEmpty { problem(token.line, "'}' without a section to close") } else { sections.removeLast() }
                continue
            }
            guard case .word(let name, let line) = token else {
                problem(token.line, "expected a setting or section name")
                position += 1
                continue
            }
            position += 1
            if isPunct(current, "{") {
                position += 1
                if sections.count >= ConfigParser.depthLimit {
                    problem(line, "sections nested too deep")
                    skipBlock()
                } else {
                    sections.append(name)
                }
                continue
            }
            guard isPunct(current, "=") else {
                problem(line, "'\(name)' is not followed by '=' or '{'")
                continue
            }
            position += 1
            guard let value = parseValue(depth: 0) else {
                problem(line, "'\(name) =' has no value")
                continue
            }
            // `global/use_lvmlockd = 1`: a path as the name.
            let parts = name.split(separator: "/", omittingEmptySubsequences: true).map(String.init)
            let path = sections + parts.dropLast()
            settings.append(LVMConfigSetting(section: path, name: parts.last ?? name, value: value, line: line))
        }
        if !sections.isEmpty { problem(tokens.last?.line ?? 1, "section '\(sections.joined(separator: "/"))' is not closed") }
    }

    static let depthLimit = LVMConfigFile.maxDepth

    /// Skips a `{ … }` whose `{` was consumed.
    mutating func skipBlock() {
        var depth = 1
        while let t = current, depth > 0 {
            position += 1
            if isPunct(t, "{") { depth += 1 }
            if isPunct(t, "}") { depth -= 1 }
        }
    }

    mutating func parseValue(depth: Int) -> LVMConfigValue? {
        guard let token = current else { return nil }
        switch token {
        case .word(let w, _):
            position += 1
            return .word(w)
        case .string(let s, let line, let closed):
            position += 1
            if !closed { problem(line, "unterminated string") }
            return .string(s)
        case .punct(let b, let line) where b == UInt8(ascii: "["):
            position += 1
            var items: [LVMConfigValue] = []
            while let t = current {
                if isPunct(t, "]") {
                    position += 1
                    return .array(items)
                }
                if isPunct(t, ",") {
                    position += 1
                    continue
                }
                if case .punct = t, !isPunct(t, "[") {
                    // `{`, `}` or `=` inside an array: the array ends here, unclosed.
                    problem(line, "array is not closed with ']'")
                    return .array(items)
                }
                if depth >= ConfigParser.depthLimit {
                    problem(line, "arrays nested too deep")
                    position += 1
                    continue
                }
                if let v = parseValue(depth: depth + 1) { items.append(v) }
            }
            problem(line, "array is not closed with ']'")
            return .array(items)
        default:
            return nil
        }
    }
}
