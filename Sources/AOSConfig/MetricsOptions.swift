/// Prometheus metrics of the agent and the controller (docs/operations.md, "Metrics"): where
/// they are exposed. Each program has its own keys (`[agent] metrics_*`, `[controller]
/// metrics_*`), so one aos.conf can serve both on one host without a port clash. Both ways are
/// off by default.
public enum MetricsOptions {
    static func listen(_ section: String, port: Int) -> OptionSpec {
        OptionSpec(
            section, "metrics_listen", type: .string, default: .string(""),
            help:
                "Serve GET /metrics (Prometheus text format) on this numeric address:port, e.g. 127.0.0.1:\(port) or [::1]:\(port); empty: no HTTP listener. The listener is minimal (one connection at a time, 8 KiB requests, 5 s per connection) and has no authentication: bind it to localhost or a management network only."
        )
    }

    static func textfileDir(_ section: String, program: String) -> OptionSpec {
        OptionSpec(
            section, "metrics_textfile_dir", type: .string, default: .string(""),
            help:
                "Write \(program).prom into this directory every metrics_interval seconds (atomically: temp file + rename) for node_exporter's textfile collector (its --collector.textfile.directory, e.g. /var/lib/prometheus/node-exporter); empty: no file."
        )
    }

    static func interval(_ section: String, what: String) -> OptionSpec {
        OptionSpec(
            section, "metrics_interval", type: .integer(min: 1, max: 3600), default: .int(30),
            help: "Seconds between metric samples (\(what)) and textfile writes; used only when metrics are exposed.")
    }

    public static let agentListen = listen("agent", port: 9468)
    public static let agentTextfileDir = textfileDir("agent", program: "aos-agent")
    public static let agentInterval = interval("agent", what: "VG sizes and lockspaces by vgs, sanlock client status")
    public static let controllerListen = listen("controller", port: 9469)
    public static let controllerTextfileDir = textfileDir("controller", program: "aos-controller")
    public static let controllerInterval = interval("controller", what: "agent liveness counts")

    public static let agent: [OptionSpec] = [agentListen, agentTextfileDir, agentInterval]
    public static let controller: [OptionSpec] = [controllerListen, controllerTextfileDir, controllerInterval]

    /// `metrics_listen` must be a numeric address and a port (no name lookups at start).
    static func listenValid(_ spec: OptionSpec) -> @Sendable (Configuration) -> String? {
        { c in
            let text = c.string(spec)
            guard !text.isEmpty, ListenAddress(parsing: text) == nil else { return nil }
            return "\(spec.key) = '\(text)': expected a numeric address and port, e.g. 127.0.0.1:9468 or [::1]:9468"
        }
    }

    static let agentChecks = [listenValid(agentListen)]
    static let controllerChecks = [listenValid(controllerListen)]

    /// One program's metrics settings, typed.
    public struct Settings: Sendable, Equatable {
        /// nil: no HTTP listener.
        public var listen: ListenAddress?
        /// nil: no textfile.
        public var textfileDirectory: String?
        public var intervalSeconds: Int

        public var enabled: Bool { listen != nil || textfileDirectory != nil }

        public init(listen: ListenAddress? = nil, textfileDirectory: String? = nil, intervalSeconds: Int = 30) {
            self.listen = listen
            self.textfileDirectory = textfileDirectory
            self.intervalSeconds = intervalSeconds
        }

        public init(agent c: Configuration) { self.init(c, MetricsOptions.agent) }
        public init(controller c: Configuration) { self.init(c, MetricsOptions.controller) }

        init(_ c: Configuration, _ specs: [OptionSpec]) {
            listen = ListenAddress(parsing: c.string(specs[0]))  // checked by the schema
            let dir = c.string(specs[1])
            textfileDirectory = dir.isEmpty ? nil : dir
            intervalSeconds = c.int(specs[2])
        }
    }
}

/// A numeric listen address: `127.0.0.1:9468`, `0.0.0.0:9468`, `[::1]:9468`, `[::]:9468`.
public struct ListenAddress: Sendable, Equatable, CustomStringConvertible {
    public var host: String
    public var port: UInt16
    public var isIPv6: Bool

    public init?(parsing text: String) {
        let t = trim(text)
        if t.hasPrefix("[") {
            guard let close = t.firstIndex(of: "]") else { return nil }
            host = String(t[t.index(after: t.startIndex)..<close])
            let rest = t[t.index(after: close)...]
            guard rest.hasPrefix(":"), let p = UInt16(rest.dropFirst()), p > 0 else { return nil }
            port = p
            isIPv6 = true
            guard !host.isEmpty, host.allSatisfy({ $0.isHexDigit || $0 == ":" || $0 == "." }) else { return nil }
        } else {
            guard let colon = t.lastIndex(of: ":"), let p = UInt16(t[t.index(after: colon)...]), p > 0 else { return nil }
            host = String(t[..<colon])
            port = p
            isIPv6 = false
            let parts = host.split(separator: ".", omittingEmptySubsequences: false)
            guard parts.count == 4, parts.allSatisfy({ $0.count <= 3 && UInt8($0) != nil }) else { return nil }
        }
    }

    public var description: String { isIPv6 ? "[\(host)]:\(port)" : "\(host):\(port)" }
}
