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
