/// One `key = value` assignment of an INI file.
public struct INIEntry: Sendable, Equatable {
    public var section: String
    public var key: String
    /// The value: trimmed, surrounding matching quotes removed, continuation lines joined by "\n".
    public var value: String
    /// 1-based line of the key.
    public var line: Int

    public init(section: String, key: String, value: String, line: Int) {
        self.section = section
        self.key = key
        self.value = value
        self.line = line
    }
}

/// A parsed INI file: every assignment in file order, and every section header.
public struct INIDocument: Sendable, Equatable {
    public var fileName: String
    /// All assignments in file order; a key given twice appears twice (the last one wins).
    public var entries: [INIEntry]
    /// Every `[section]` header in file order, with its line (a section may appear repeatedly:
    /// its contents merge, as in oslo.config).
    public var sectionHeaders: [(name: String, line: Int)] {
        headers.map { ($0.name, $0.line) }
    }

    struct Header: Sendable, Equatable {
        var name: String
        var line: Int
    }

    var headers: [Header]

    init(fileName: String, entries: [INIEntry], headers: [Header]) {
        self.fileName = fileName
        self.entries = entries
        self.headers = headers
    }

    /// Section names in order of first appearance.
    public var sections: [String] {
        var seen = Set<String>()
        return headers.compactMap { seen.insert($0.name).inserted ? $0.name : nil }
    }

    /// The effective (last) assignment of `key` in `section`.
    public func entry(section: String, key: String) -> INIEntry? {
        entries.last { $0.section == section && $0.key == key }
    }

    public func value(section: String, key: String) -> String? {
        entry(section: section, key: key)?.value
    }
}

/// A parser for oslo.config's INI dialect (oslo_config/iniparser.py):
///
/// - `[section]` headers; a section may repeat and its contents merge. Section names are
///   lower-cased except `DEFAULT`, as oslo.config does.
/// - `key = value` or `key: value` (whichever separator comes first); key and value trimmed;
///   a value wrapped in matching single or double quotes loses them.
/// - Lines starting with `#` or `;` are comments. There are no inline comments: `a = b # c`
///   has the value `b # c`.
/// - An indented line continues the previous value (joined with "\n"); a blank line ends it.
/// - Keys are case-sensitive. A key given twice: the last one wins.
public enum INIParser {
    public static func parse(_ text: String, fileName: String) throws(ConfigError) -> INIDocument {
        var entries: [INIEntry] = []
        var headers: [INIDocument.Header] = []
        var problems: [ConfigError.Problem] = []
        var section: String?
        // After a malformed header, its keys are dropped rather than reported again.
        var skippingBadSection = false
        // The assignment being accumulated (it may have continuation lines).
        var pending: (key: String, lines: [String], line: Int)?

        func flush() {
            guard let p = pending else { return }
            pending = nil
            guard let section else {
                if skippingBadSection { return }
                problems.append(
                    .init(
                        file: fileName, line: p.line,
                        message: "'\(p.key) = …' comes before any [section] header"))
                return
            }
            entries.append(
                INIEntry(
                    section: section, key: p.key,
                    value: p.lines.joined(separator: "\n"), line: p.line))
        }

        var lineNumber = 0
        var body = Substring(text)
        if body.hasPrefix("\u{FEFF}") { body = body.dropFirst() }  // UTF-8 byte order mark
        // "\r\n" is one Character in Swift: split on it as well as on "\n".
        for rawLine in body.split(omittingEmptySubsequences: false, whereSeparator: { $0 == "\n" || $0 == "\r\n" }) {
            lineNumber += 1
            let line = trimTrailing(rawLine)
            guard let first = line.first else {
                flush()  // a blank line ends a multi-line value
                continue
            }
            if first == " " || first == "\t" {
                if pending != nil {
                    pending!.lines.append(String(trimLeading(line)))
                } else {
                    problems.append(
                        .init(
                            file: fileName, line: lineNumber,
                            message: "indented line continues nothing (no 'key = value' before it)"))
                }
                continue
            }
            flush()
            if first == "[" {
                guard line.last == "]" else {
                    problems.append(
                        .init(
                            file: fileName, line: lineNumber,
                            message: "section header '\(line)' does not end with ']'"))
                    section = nil
                    skippingBadSection = true
                    continue
                }
                let name = trim(line.dropFirst().dropLast())
                guard !name.isEmpty else {
                    problems.append(.init(file: fileName, line: lineNumber, message: "empty section name '[]'"))
                    section = nil
                    skippingBadSection = true
                    continue
                }
                skippingBadSection = false
                let normalized = name == "DEFAULT" ? "DEFAULT" : name.lowercased()
                section = normalized
                headers.append(.init(name: normalized, line: lineNumber))
            } else if first == "#" || first == ";" {
                continue
            } else {
                let eq = line.firstIndex(of: "=")
                let colon = line.firstIndex(of: ":")
                let sep: Substring.Index
                switch (eq, colon) {
                case (nil, nil):
                    problems.append(.init(file: fileName, line: lineNumber, message: "line is not 'key = value'"))
                    continue
                case (let e?, nil): sep = e
                case (nil, let c?): sep = c
                case (let e?, let c?): sep = min(e, c)
                }
                let key = trim(line[..<sep])
                guard !key.isEmpty else {
                    problems.append(.init(file: fileName, line: lineNumber, message: "empty key before '\(line[sep])'"))
                    continue
                }
                var value = trim(line[line.index(after: sep)...])
                if value.count >= 2, let q = value.first, q == "\"" || q == "'", value.last == q {
                    value = String(value.dropFirst().dropLast())
                }
                pending = (String(key), [value], lineNumber)
            }
        }
        flush()
        if !problems.isEmpty { throw ConfigError(problems: problems) }
        return INIDocument(fileName: fileName, entries: entries, headers: headers)
    }
}

@inline(__always) private func isBlank(_ c: Character) -> Bool {
    c == " " || c == "\t" || c == "\r" || c == "\u{0B}" || c == "\u{0C}"
}

func trimTrailing(_ s: Substring) -> Substring {
    var end = s.endIndex
    while end > s.startIndex, isBlank(s[s.index(before: end)]) { end = s.index(before: end) }
    return s[s.startIndex..<end]
}

func trimLeading(_ s: Substring) -> Substring {
    var start = s.startIndex
    while start < s.endIndex, isBlank(s[start]) { start = s.index(after: start) }
    return s[start...]
}

func trim(_ s: Substring) -> String {
    String(trimLeading(trimTrailing(s)))
}

func trim(_ s: String) -> String {
    trim(Substring(s))
}
