/// Everything wrong with a configuration, each problem with where it came from.
///
/// `description` prints one problem per line, e.g.
/// `aos.conf:12: line is not 'key = value'` or
/// `environment AOS_AGENT_LVM_TIMEOUT: [agent] lvm_timeout = 'abc': not an integer`.
/// Secret values never appear in a problem's text.
public struct ConfigError: Error, Sendable, Equatable, CustomStringConvertible {
    public struct Problem: Error, Sendable, Equatable, CustomStringConvertible {
        /// The file the problem is in (nil for environment, command line or schema checks).
        public var file: String?
        /// 1-based line number within `file`.
        public var line: Int?
        /// Where the value came from when not a file: "environment AOS_X", "command line".
        public var origin: String?
        public var message: String

        public init(file: String? = nil, line: Int? = nil, origin: String? = nil, message: String) {
            self.file = file
            self.line = line
            self.origin = origin
            self.message = message
        }

        public var description: String {
            if let file {
                if let line { return "\(file):\(line): \(message)" }
                return "\(file): \(message)"
            }
            if let origin { return "\(origin): \(message)" }
            return message
        }
    }

    public var problems: [Problem]

    public init(problems: [Problem]) {
        self.problems = problems
    }

    public init(file: String? = nil, line: Int? = nil, origin: String? = nil, _ message: String) {
        self.problems = [Problem(file: file, line: line, origin: origin, message: message)]
    }

    public var description: String {
        problems.map(\.description).joined(separator: "\n")
    }
}
