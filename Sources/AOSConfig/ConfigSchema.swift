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

    public init(
        component: String, options: [OptionSpec], lenientSections: Set<String> = [],
        checks: [@Sendable (Configuration) -> String?] = []
    ) {
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
                option.defaultValue != .list([])
            {
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
        return ConfigSchema(
            component: component ?? self.component, options: merged,
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
    public func load(
        iniText: String?, fileName: String = "aos.conf", env: [String: String] = [:],
        overrides: [ConfigOverride] = []
    ) throws(ConfigError) -> Configuration {
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
                    problems.append(
                        .init(
                            file: fileName, line: entry.line,
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
                let message =
                    known.contains(o.section)
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
