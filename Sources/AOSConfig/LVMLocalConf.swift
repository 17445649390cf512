/// Reads the sanlock `host_id` from LVM's lvmlocal.conf:
///
///     local {
///         # system_id = ""
///         host_id = 11
///     }
///
/// The file uses LVM's config syntax: `name { … }` sections, `name = value` settings (numbers,
/// "strings", [arrays]), `#` comments to the end of the line.
public enum LVMLocalConf {
    /// sanlock's host_id range.
    public static let hostIDRange = 1...2000

    /// `local/host_id`, or nil when it is absent (or commented out). Throws on syntax errors,
    /// on a non-integer host_id and on one outside 1...2000, naming file and line.
    public static func hostID(fromText text: String, fileName: String = "lvmlocal.conf") throws(ConfigError) -> Int? {
        var parser = Parser(tokens: try tokenize(text, fileName: fileName), fileName: fileName)
        var found: (value: Token, line: Int)?
        try parser.parseBlock(path: []) { path, name, value in
            if path == ["local"] && name == "host_id" { found = (value, value.line) }
        }
        guard let (token, line) = found else { return nil }
        guard case .word(let text) = token.kind, let id = Int(text) else {
            throw ConfigError(file: fileName, line: line, "host_id = \(token.kind.display): not an integer")
        }
        guard hostIDRange.contains(id) else {
            throw ConfigError(
                file: fileName, line: line,
                "host_id = \(id): out of range \(hostIDRange.lowerBound)..\(hostIDRange.upperBound)")
        }
        return id
    }

    /// Reads the file at `path`; a missing file means no host_id (nil).
    public static func hostID(path: String) throws(ConfigError) -> Int? {
        guard HostEnvironment.fileExists(path) else { return nil }
        return try hostID(fromText: try HostEnvironment.readTextFile(path), fileName: path)
    }

    // MARK: - tokenizer

    struct Token {
        enum Kind {
            case word(String)  // name, number, bare value
            case string(String)  // "…"
            case punct(Character)  // { } [ ] = ,

            var display: String {
                switch self {
                case .word(let w): return "'\(w)'"
                case .string(let s): return "\"\(s)\""
                case .punct(let c): return "'\(c)'"
                }
            }
        }
        var kind: Kind
        var line: Int
    }

    static func tokenize(_ text: String, fileName: String) throws(ConfigError) -> [Token] {
        var tokens: [Token] = []
        var line = 1
        var chars = Array(text.unicodeScalars)[...]
        func isWordChar(_ c: Unicode.Scalar) -> Bool {
            !(c == "{" || c == "}" || c == "[" || c == "]" || c == "=" || c == "," || c == "\"" || c == "#"
                || c == " " || c == "\t" || c == "\n" || c == "\r")
        }
        while let c = chars.first {
            switch c {
            case "\n":
                line += 1
                chars = chars.dropFirst()
            case " ", "\t", "\r":
                chars = chars.dropFirst()
            case "#":
                while let d = chars.first, d != "\n" { chars = chars.dropFirst() }
            case "{", "}", "[", "]", "=", ",":
                tokens.append(Token(kind: .punct(Character(c)), line: line))
                chars = chars.dropFirst()
            case "\"":
                let start = line
                chars = chars.dropFirst()
                var value = String.UnicodeScalarView()
                var closed = false
                while let d = chars.first {
                    chars = chars.dropFirst()
                    if d == "\"" { closed = true; break }
                    if d == "\\", let e = chars.first { value.append(e); chars = chars.dropFirst(); continue }
                    if d == "\n" { line += 1 }
                    value.append(d)
                }
                guard closed else { throw ConfigError(file: fileName, line: start, "unterminated string") }
                tokens.append(Token(kind: .string(String(value)), line: start))
            default:
                var word = String.UnicodeScalarView()
                while let d = chars.first, isWordChar(d) {
                    word.append(d)
                    chars = chars.dropFirst()
                }
                tokens.append(Token(kind: .word(String(word)), line: line))
            }
        }
        return tokens
    }

    // MARK: - parser

    struct Parser {
        var tokens: [Token]
        var position = 0
        let fileName: String

        init(tokens: [Token], fileName: String) {
            self.tokens = tokens
            self.fileName = fileName
        }

        var current: Token? { position < tokens.count ? tokens[position] : nil }

        func fail(_ message: String, at token: Token?) -> ConfigError {
            ConfigError(file: fileName, line: token?.line ?? tokens.last?.line ?? 1, message)
        }

        /// statements until `}` (inside a section) or the end (top level).
        mutating func parseBlock(path: [String], _ setting: ([String], String, Token) -> Void) throws(ConfigError) {
            while let token = current {
                if case .punct("}") = token.kind {
                    if path.isEmpty { throw fail("'}' without a section to close", at: token) }
                    return
                }
                guard case .word(let name) = token.kind else {
                    throw fail("expected a setting or section name, found \(token.kind.display)", at: token)
                }
                position += 1
                guard let next = current else { throw fail("'\(name)' is followed by nothing", at: token) }
                switch next.kind {
                case .punct("{"):
                    position += 1
                    try parseBlock(path: path + [name], setting)
                    guard let close = current, case .punct("}") = close.kind else {
                        throw fail("section '\(name)' is not closed with '}'", at: token)
                    }
                    position += 1
                case .punct("="):
                    position += 1
                    guard let value = current else { throw fail("'\(name) =' has no value", at: next) }
                    switch value.kind {
                    case .word, .string:
                        position += 1
                        setting(path, name, value)
                    case .punct("["):
                        position += 1
                        try skipArray(opening: value)
                        setting(path, name, value)
                    default:
                        throw fail("'\(name) =' has no value", at: value)
                    }
                default:
                    throw fail("expected '=' or '{' after '\(name)', found \(next.kind.display)", at: next)
                }
            }
            // End of input: the caller of a nested block reports the unclosed section.
        }

        mutating func skipArray(opening: Token) throws(ConfigError) {
            while let token = current {
                position += 1
                if case .punct("]") = token.kind { return }
                if case .punct(let c) = token.kind, c != "," { throw fail("unexpected '\(c)' in array", at: token) }
            }
            throw fail("array is not closed with ']'", at: opening)
        }
    }
}
