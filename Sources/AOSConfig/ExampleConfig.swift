extension ConfigSchema {
    /// An example configuration file: every option commented out with its default, preceded
    /// by its help, type and environment variable (the style of oslo-config-generator).
    /// config/aos.conf.example is `AOSSchemas.all.exampleINI()`; a test keeps them equal.
    public func exampleINI() -> String {
        var out = """
            # aos.conf: configuration of aos-agent, aos-controller and aosctl (one file may serve all).
            #
            # Generated from the option schemas in Sources/AOSConfig; do not edit by hand:
            #   AOS_WRITE_EXAMPLE_CONFIG=1 swift test --filter AOSConfigTests.ExampleConfigTests
            #
            # Every option is shown commented out with its default. Precedence: command line
            # (--set section.key=value) > environment (AOS_<SECTION>_<KEY>) > this file > defaults.
            # Syntax as oslo.config: `key = value`, `#` or `;` comment lines, indented lines continue
            # a value. Unknown sections and options are errors.

            """
        var currentSection: String?
        for option in options {
            if option.section != currentSection {
                out += "\n[\(option.section)]\n"
                currentSection = option.section
            }
            out += "\n"
            for line in wrap(option.help, width: 76) { out += "# \(line)\n" }
            var facts = "# Type: \(option.type.summary)."
            if option.secret { facts += " Secret: masked in logs and dumps." }
            out += facts + "\n"
            out += "# Environment: \(option.key.environmentName)\n"
            let shownDefault = option.defaultText.map { "<\($0)>" } ?? option.defaultValue.description
            out += "#\(option.name) =" + (shownDefault.isEmpty ? "" : " \(shownDefault)") + "\n"
        }
        return out
    }
}

/// Greedy word wrap.
func wrap(_ text: String, width: Int) -> [String] {
    var lines: [String] = []
    var current = ""
    for word in text.split(separator: " ") {
        if current.isEmpty {
            current = String(word)
        } else if current.count + 1 + word.count <= width {
            current += " " + word
        } else {
            lines.append(current)
            current = String(word)
        }
    }
    if !current.isEmpty { lines.append(current) }
    return lines
}
