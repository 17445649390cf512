import CoreMetrics
import HostSupport
import Prometheus

/// The one place a program turns metrics on: swift-prometheus becomes swift-metrics' backend,
/// so what OsloRPC, SharedLVM, AgentCore and ControllerCore record through CoreMetrics lands in
/// `registry`. Until `bootstrap()` runs (tests, aosctl) every metric is swift-metrics' no-op.
public enum MetricsBackend {
    /// Bucket bounds of the duration histograms (swift-metrics timers), by metric name.
    /// RPC methods range from a cached read (~1 ms) to an LVM change under a busy lockspace
    /// (tens of seconds); LVM commands from 0.1 s to a lock start (up to minutes).
    public static let durationBuckets: [String: [Duration]] = [
        "aos_rpc_request_duration_seconds": [
            .milliseconds(1), .milliseconds(5), .milliseconds(10), .milliseconds(25), .milliseconds(50),
            .milliseconds(100), .milliseconds(250), .milliseconds(500), .seconds(1), .milliseconds(2500), .seconds(5),
            .seconds(10), .seconds(30), .seconds(60), .seconds(120), .seconds(300),
        ],
        "aos_lvm_command_duration_seconds": [
            .milliseconds(50), .milliseconds(100), .milliseconds(250), .milliseconds(500), .seconds(1),
            .milliseconds(2500), .seconds(5), .seconds(10), .seconds(30), .seconds(60), .seconds(120), .seconds(300),
        ],
    ]

    private static let shared: PrometheusCollectorRegistry = {
        let registry = PrometheusCollectorRegistry()
        var factory = PrometheusMetricsFactory(registry: registry)
        factory.durationHistogramBuckets = durationBuckets
        MetricsSystem.bootstrap(factory)
        return registry
    }()

    /// Makes swift-prometheus the process's metrics backend (once; later calls return the same
    /// registry) and returns the registry to expose.
    @discardableResult
    public static func bootstrap() -> PrometheusCollectorRegistry { shared }
}

/// The text a scrape or the textfile gets: the registry in Prometheus' text format (0.0.4).
public struct MetricsSource: Sendable {
    public let registry: PrometheusCollectorRegistry

    public init(registry: PrometheusCollectorRegistry) { self.registry = registry }

    public func render() -> [UInt8] { registry.emitToBuffer() }

    public static let contentType = "text/plain; version=0.0.4; charset=utf-8"
}

/// node_exporter's textfile collector: `<directory>/<program>.prom`, replaced atomically (temp
/// file in the same directory, fsync, rename), so the collector never reads a torn file. The
/// temp name (`<program>.prom.tmp.<pid>`) does not end in `.prom`: the collector skips it.
public struct TextfileExporter: Sendable {
    public let path: String

    public init(directory: String, program: String) {
        path = (directory.hasSuffix("/") ? directory : directory + "/") + program + ".prom"
    }

    public func write(_ text: [UInt8]) throws(DurableFile.Failure) {
        try DurableFile.writeAtomically(path, text, mode: 0o644)
    }
}
