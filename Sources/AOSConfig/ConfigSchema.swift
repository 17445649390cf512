/// The type of an option's value, with its constraints.
public enum OptionType: Sendable, Equatable {
    case string
    /// A transport URL or similar: a string whose scheme must be one of `schemes`.
    case url(schemes: [String])
    case integer(min: Int? = nil, max: Int? = nil)
    case float(min: Double? = nil, max: Double? = nil)
    /// true/false, yes/no, on/off, 1/0 (any case), as oslo.config.
    case boolean
    /// Comma-separated strings (items trimmed, empty items dropped), as oslo.config's ListOpt.
    case list
    /// One of the given strings (case-sensitive).
    case choice([String])

    /// "integer, 1..64" — for help texts and the example file.
    public var summary: String {
        switch self {
        case .string: return "string"
        case .url(let schemes): return "URL (\(schemes.map { $0 + "://" }.joined(separator: ", ")))"
        case .integer(let lo, let hi): return "integer" + rangeText(lo, hi)
        case .float(let lo, let hi): return "float" + rangeText(lo, hi)
        case .boolean: return "boolean"
        case .list: return "comma-separated list"
        case .choice(let values): return "one of " + values.joined(separator: ", ")
        }
    }
}

private func rangeText<T: Comparable & CustomStringConvertible>(_ lo: T?, _ hi: T?) -> String {
    switch (lo, hi) {
    case let (l?, h?): return ", \(l)..\(h)"
    case let (l?, nil): return ", at least \(l)"
    case let (nil, h?): return ", at most \(h)"
    case (nil, nil): return ""
    }
}

/// A typed option value.
public enum ConfigValue: Sendable, Equatable, CustomStringConvertible {
    case string(String)
    case int(Int)
    case float(Double)
    case bool(Bool)
    case list([String])

    /// The value as it would be written in the INI file.
    public var description: String {
        switch self {
        case .string(let s): return s
        case .int(let i): return String(i)
        case .float(let d): return String(d)
        case .bool(let b): return b ? "true" : "false"
        case .list(let items): return items.joined(separator: ", ")
        }
    }
}

/// Identifies an option: `[section] name`.
public struct OptionKey: Hashable, Sendable, CustomStringConvertible {
    public var section: String
    public var name: String

    public init(_ section: String, _ name: String) {
        self.section = section
        self.name = name
    }

    public var description: String { "[\(section)] \(name)" }

    /// `AOS_<SECTION>_<NAME>`, upper-cased: `AOS_DEFAULT_TRANSPORT_URL`, `AOS_AGENT_LVM_TIMEOUT`.
    public var environmentName: String {
        "AOS_" + (section + "_" + name).uppercased().map { $0 == "-" || $0 == "." ? "_" : $0 }.map(String.init).joined()
    }
}

/// The declaration of one option.
public struct OptionSpec: Sendable {
    public var key: OptionKey
    public var type: OptionType
    public var defaultValue: ConfigValue
    /// Secret values (passwords, URLs with passwords) are masked in errors and dumps.
    public var secret: Bool
    public var help: String
    /// Shown instead of the default in help and the example file when the default is computed
    /// (e.g. "the system host name").
    public var defaultText: String?

    public var section: String { key.section }
    public var name: String { key.name }

    public init(_ section: String, _ name: String, type: OptionType, default defaultValue: ConfigValue,
                secret: Bool = false, help: String, defaultText: String? = nil) {
        self.key = OptionKey(section, name)
        self.type = type
        self.defaultValue = defaultValue
        self.secret = secret
        self.help = help
        self.defaultText = defaultText
    }

    /// The value for display: secrets masked (URLs keep all but their passwords).
    public func display(_ value: ConfigValue) -> String {
        guard secret else { return value.description }
        return Secrets.mask(value.description)
    }

    /// Parses a raw (file, environment or command-line) value; the error text names the option
    /// and never shows a secret value in clear.
    public func parse(_ raw: String) -> Result<ConfigValue, ConfigError.Problem> {
        let text = trim(raw)
        func bad(_ why: String) -> Result<ConfigValue, ConfigError.Problem> {
            let shown = secret ? Secrets.mask(text) : text
            return .failure(.init(message: "\(key) = '\(shown)': \(why)"))
        }
        switch type {
        case .string:
            return .success(.string(text))
        case .url(let schemes):
            if text.isEmpty { return bad("empty URL (expected e.g. \(schemes.first ?? "rabbit")://user:password@host:5672/)") }
            guard let range = text.firstRange(of: "://") else {
                return bad("not a URL (expected e.g. \(schemes.first ?? "rabbit")://user:password@host:5672/)")
            }
            let scheme = text[..<range.lowerBound].lowercased()
            guard schemes.contains(scheme) else {
                return bad("URL scheme must be one of \(schemes.joined(separator: ", "))")
            }
            return .success(.string(text))
        case .integer(let lo, let hi):
            guard let i = Int(text.hasPrefix("+") ? String(text.dropFirst()) : text) else {
                return bad(text.isEmpty ? "empty value, expected an integer" : "not an integer")
            }
            if let lo, i < lo { return bad(hi.map { "must be between \(lo) and \($0)" } ?? "must be at least \(lo)") }
            if let hi, i > hi { return bad(lo.map { "must be between \($0) and \(hi)" } ?? "must be at most \(hi)") }
            return .success(.int(i))
        case .float(let lo, let hi):
            guard let d = Double(text), d.isFinite else {
                return bad(text.isEmpty ? "empty value, expected a number" : "not a number")
            }
            if let lo, d < lo { return bad(hi.map { "must be between \(lo) and \($0)" } ?? "must be at least \(lo)") }
            if let hi, d > hi { return bad(lo.map { "must be between \($0) and \(hi)" } ?? "must be at most \(hi)") }
            return .success(.float(d))
        case .boolean:
            switch text.lowercased() {
            case "true", "yes", "on", "1": return .success(.bool(true))
            case "false", "no", "off", "0": return .success(.bool(false))
            default: return bad("not a boolean (use true or false)")
            }
        case .list:
            let items = text.split(whereSeparator: { $0 == "," || $0 == "\n" }).map { trim($0) }.filter { !$0.isEmpty }
            return .success(.list(items))
        case .choice(let values):
            guard values.contains(text) else {
                var why = "must be one of \(values.joined(separator: ", "))"
                if let close = closest(to: text, in: values) { why += " (did you mean '\(close)'?)" }
                return bad(why)
            }
            return .success(.string(text))
        }
    }
}

/// A command-line override, e.g. from `--set agent.lvm_timeout=60`.
public struct ConfigOverride: Sendable, Equatable {
    public var section: String
    public var key: String
    public var value: String

    public init(section: String, key: String, value: String) {
        self.section = section
        self.key = key
        self.value = value
    }

    /// Parses `section.key=value`; a bare `key=value` means `[DEFAULT]`.
    public static func parse(_ text: String) throws(ConfigError) -> ConfigOverride {
        guard let eq = text.firstIndex(of: "=") else {
            throw ConfigError(origin: "command line", "override '\(text)' is not 'section.key=value'")
        }
        let lhs = trim(text[..<eq])
        let value = String(text[text.index(after: eq)...])
        var section = "DEFAULT"
        var key = lhs
        if let dot = lhs.lastIndex(of: ".") {
            section = trim(lhs[..<dot])
            key = trim(lhs[lhs.index(after: dot)...])
        }
        guard !key.isEmpty, !section.isEmpty else {
            throw ConfigError(origin: "command line", "override '\(text)' is not 'section.key=value'")
        }
        return ConfigOverride(section: section == "DEFAULT" ? section : section.lowercased(), key: key, value: value)
    }
}

/// Where an effective value came from.
public enum ValueSource: Sendable, Equatable, CustomStringConvertible {
    case defaultValue
    case file(String, line: Int)
    case environment(String)
    case commandLine

    public var description: String {
        switch self {
        case .defaultValue: return "default"
        case .file(let name, let line): return "\(name):\(line)"
        case .environment(let name): return "environment \(name)"
        case .commandLine: return "command line"
        }
    }
}

/// A set of option declarations: what one program reads from the configuration.
public struct ConfigSchema: Sendable {
    /// Program name, for messages ("aos-agent").
    public var component: String
    public private(set) var options: [OptionSpec]
    /// Sections other programs own (one aos.conf may serve them all): their unknown keys are
    /// ignored here, though the options of theirs this schema declares are still checked.
    public var lenientSections: Set<String>
    /// Checks across options; each returns a problem text, or nil when fine.
    public var checks: [@Sendable (Configuration) -> String?]

    private var index: [OptionKey: Int]

    public init(component: String, options: [OptionSpec], lenientSections: Set<String> = [],
                checks: [@Sendable (Configuration) -> String?] = []) {
        self.component = component
        self.options = []
        self.index = [:]
        self.lenientSections = lenientSections
        self.checks = checks
        var envNames: [String: OptionKey] = [:]
        for option in options {
            // Schemas are static declarations: a clash is a programming error.
            precondition(index[option.key] == nil, "option \(option.key) declared twice in \(component)")
            if let other = envNames[option.key.environmentName] {
                preconditionFailure("options \(other) and \(option.key) share \(option.key.environmentName)")
            }
            envNames[option.key.environmentName] = option.key
            if case .failure(let p) = option.parse(option.defaultValue.description), option.defaultText == nil,
               option.defaultValue != .list([]) {
                preconditionFailure("default of \(option.key) does not parse: \(p.message)")
            }
            index[option.key] = self.options.count
            self.options.append(option)
        }
    }

    /// This schema plus `other`'s options (a shared option is kept once) and checks.
    public func merging(_ other: ConfigSchema, component: String? = nil) -> ConfigSchema {
        var merged = options
        for o in other.options where index[o.key] == nil { merged.append(o) }
        let sections = Set(merged.map(\.section))
        return ConfigSchema(component: component ?? self.component, options: merged,
                            lenientSections: lenientSections.union(other.lenientSections).subtracting(sections),
                            checks: checks + other.checks)
    }

    public func option(_ section: String, _ name: String) -> OptionSpec? {
        index[OptionKey(section, name)].map { options[$0] }
    }

    /// Section names in declaration order.
    public var sections: [String] {
        var seen = Set<String>()
        return options.compactMap { seen.insert($0.section).inserted ? $0.section : nil }
    }

    /// Builds the effective configuration: command-line overrides > environment
    /// (`AOS_<SECTION>_<KEY>`) > file > defaults. Every problem found is reported at once.
    ///
    /// - Parameters:
    ///   - iniText: the configuration file's text (nil or "" when there is no file).
    ///   - fileName: used in messages and value sources.
    ///   - env: the process environment; only `AOS_<SECTION>_<KEY>` names of declared options
    ///     are read (others, like AOS_TEST_*, are ignored).
    ///   - overrides: command-line values, applied in order (the last wins).
    public func load(iniText: String?, fileName: String = "aos.conf", env: [String: String] = [:],
                     overrides: [ConfigOverride] = []) throws(ConfigError) -> Configuration {
        var raw: [OptionKey: (text: String, source: ValueSource)] = [:]
        var problems: [ConfigError.Problem] = []
        let known = Set(sections)

        if let iniText, !iniText.isEmpty {
            let doc = try INIParser.parse(iniText, fileName: fileName)
            var reportedSections = Set<String>()
            for header in doc.headers where !known.contains(header.name) && !lenientSections.contains(header.name) {
                guard reportedSections.insert(header.name).inserted else { continue }
                problems.append(.init(file: fileName, line: header.line, message: unknownSectionMessage(header.name)))
            }
            for entry in doc.entries {
                let key = OptionKey(entry.section, entry.key)
                if index[key] != nil {
                    raw[key] = (entry.value, .file(fileName, line: entry.line))
                } else if known.contains(entry.section) && !lenientSections.contains(entry.section) {
                    problems.append(.init(file: fileName, line: entry.line,
                                          message: unknownOptionMessage(entry.key, in: entry.section)))
                }
                // else: an unknown section (reported above) or another program's section.
            }
        }
        for option in options {
            let name = option.key.environmentName
            if let value = env[name] { raw[option.key] = (value, .environment(name)) }
        }
        for o in overrides {
            let key = OptionKey(o.section, o.key)
            guard index[key] != nil else {
                let message = known.contains(o.section)
                    ? unknownOptionMessage(o.key, in: o.section) : unknownSectionMessage(o.section)
                problems.append(.init(origin: "command line", message: message))
                continue
            }
            raw[key] = (o.value, .commandLine)
        }

        var values: [OptionKey: Configuration.Entry] = [:]
        for option in options {
            guard let (text, source) = raw[option.key] else {
                values[option.key] = .init(value: option.defaultValue, source: .defaultValue)
                continue
            }
            switch option.parse(text) {
            case .success(let v):
                values[option.key] = .init(value: v, source: source)
            case .failure(var p):
                switch source {
                case .file(let f, let line): p.file = f; p.line = line
                case .environment(let n): p.origin = "environment \(n)"
                case .commandLine: p.origin = "command line"
                case .defaultValue: break
                }
                problems.append(p)
                values[option.key] = .init(value: option.defaultValue, source: .defaultValue)
            }
        }
        if !problems.isEmpty { throw ConfigError(problems: problems) }
        let config = Configuration(schema: self, values: values)
        let failed = checks.compactMap { $0(config) }
        if !failed.isEmpty { throw ConfigError(problems: failed.map { .init(message: $0) }) }
        return config
    }

    /// The configuration from defaults (and environment and overrides) only.
    public func defaults(env: [String: String] = [:], overrides: [ConfigOverride] = []) throws(ConfigError) -> Configuration {
        try load(iniText: nil, env: env, overrides: overrides)
    }

    func unknownSectionMessage(_ section: String) -> String {
        var message = "unknown section [\(section)]"
        let candidates = sections + lenientSections.sorted()
        if let close = closest(to: section, in: candidates) {
            message += "; did you mean [\(close)]?"
        } else if section.lowercased() == "default" {
            message += "; did you mean [DEFAULT]?"
        } else {
            message += " (known: " + candidates.map { "[\($0)]" }.joined(separator: ", ") + ")"
        }
        return message
    }

    func unknownOptionMessage(_ key: String, in section: String) -> String {
        var message = "unknown option '\(key)' in [\(section)]"
        let here = options.filter { $0.section == section }.map(\.name)
        if let elsewhere = options.first(where: { $0.name == key && $0.section != section }) {
            message += "; it belongs in [\(elsewhere.section)]"
        } else if let close = closest(to: key, in: here) {
            message += "; did you mean '\(close)'?"
        }
        return message
    }
}

/// The effective configuration: a value and its source for every option of the schema.
public struct Configuration: Sendable {
    public struct Entry: Sendable, Equatable {
        public var value: ConfigValue
        public var source: ValueSource
    }

    public let schema: ConfigSchema
    public let values: [OptionKey: Entry]

    init(schema: ConfigSchema, values: [OptionKey: Entry]) {
        self.schema = schema
        self.values = values
    }

    /// The value of an option of the schema. Asking for an undeclared option is a programming error.
    public subscript(_ option: OptionSpec) -> ConfigValue {
        guard let entry = values[option.key] else {
            preconditionFailure("\(option.key) is not declared in the \(schema.component) schema")
        }
        return entry.value
    }

    public func source(_ option: OptionSpec) -> ValueSource {
        values[option.key]?.source ?? .defaultValue
    }

    public func string(_ option: OptionSpec) -> String {
        if case .string(let s) = self[option] { return s }
        preconditionFailure("\(option.key) is not a string option")
    }

    public func int(_ option: OptionSpec) -> Int {
        if case .int(let i) = self[option] { return i }
        preconditionFailure("\(option.key) is not an integer option")
    }

    public func double(_ option: OptionSpec) -> Double {
        switch self[option] {
        case .float(let d): return d
        case .int(let i): return Double(i)
        default: preconditionFailure("\(option.key) is not a float option")
        }
    }

    public func bool(_ option: OptionSpec) -> Bool {
        if case .bool(let b) = self[option] { return b }
        preconditionFailure("\(option.key) is not a boolean option")
    }

    public func list(_ option: OptionSpec) -> [String] {
        if case .list(let l) = self[option] { return l }
        preconditionFailure("\(option.key) is not a list option")
    }

    /// One row per option, in schema order, secrets masked: for `--print-config --json` and such.
    public func dumpEntries() -> [(section: String, key: String, value: String, source: ValueSource, secret: Bool)] {
        schema.options.map { o in
            let e = values[o.key] ?? Entry(value: o.defaultValue, source: .defaultValue)
            return (o.section, o.name, o.display(e.value), e.source, o.secret)
        }
    }

    /// The effective configuration as INI text (readable back), each value preceded by a
    /// comment saying where it came from. Secrets are masked.
    public func dump() -> String {
        var out = "# Effective configuration of \(schema.component) (secrets masked).\n"
        var currentSection: String?
        for row in dumpEntries() {
            if row.section != currentSection {
                out += "\n[\(row.section)]\n"
                currentSection = row.section
            }
            out += "# \(row.key): \(row.source)\n"
            out += "\(row.key) =" + (row.value.isEmpty ? "" : " " + row.value.replacingNewlines(with: "\n    ")) + "\n"
        }
        return out
    }
}

extension String {
    func replacingNewlines(with replacement: String) -> String {
        split(separator: "\n", omittingEmptySubsequences: false).joined(separator: replacement)
    }
}

// MARK: - did-you-mean

/// The candidate closest to `word` by edit distance, when close enough to be a likely typo.
func closest(to word: String, in candidates: [String]) -> String? {
    let w = Array(word.lowercased())
    var best: (String, Int)?
    for c in candidates {
        let d = editDistance(w, Array(c.lowercased()))
        if d < (best?.1 ?? Int.max) { best = (c, d) }
    }
    guard let (candidate, distance) = best, distance > 0 || candidate != word else { return nil }
    let limit = max(1, min(3, max(w.count, candidate.count) / 3))
    return distance <= limit ? candidate : nil
}

/// Optimal-string-alignment distance: insertions, deletions, substitutions and adjacent
/// transpositions ("agnet" → "agent") each cost 1.
func editDistance(_ a: [Character], _ b: [Character]) -> Int {
    if a.isEmpty { return b.count }
    if b.isEmpty { return a.count }
    var d = Array(repeating: Array(repeating: 0, count: b.count + 1), count: a.count + 1)
    for i in 0...a.count { d[i][0] = i }
    for j in 0...b.count { d[0][j] = j }
    for i in 1...a.count {
        for j in 1...b.count {
            let cost = a[i - 1] == b[j - 1] ? 0 : 1
            d[i][j] = min(d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + cost)
            if i > 1, j > 1, a[i - 1] == b[j - 2], a[i - 2] == b[j - 1] {
                d[i][j] = min(d[i][j], d[i - 2][j - 2] + 1)
            }
        }
    }
    return d[a.count][b.count]
}
