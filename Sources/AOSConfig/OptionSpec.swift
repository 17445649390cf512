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
    case (let l?, let h?): return ", \(l)..\(h)"
    case (let l?, nil): return ", at least \(l)"
    case (nil, let h?): return ", at most \(h)"
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

    public init(
        _ section: String, _ name: String, type: OptionType, default defaultValue: ConfigValue,
        secret: Bool = false, help: String, defaultText: String? = nil
    ) {
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
