import AOSConfig
import AOSMetrics
import Logging

/// Exposes a program's metrics as configured (`[agent] metrics_*` / `[controller] metrics_*`):
/// the HTTP listener, the textfile, or both; nothing (and no backend) when neither is set.
public struct MetricsExport: Sendable {
    public let settings: MetricsOptions.Settings
    /// "aos-agent" or "aos-controller": the textfile's name.
    public let program: String

    public init(settings: MetricsOptions.Settings, program: String) {
        self.settings = settings
        self.program = program
        // Bootstrapped before anything records (the services are built after this), so that no
        // metric is created on swift-metrics' no-op backend first.
        if settings.enabled { MetricsBackend.bootstrap() }
    }

    /// Runs until cancelled: every `metrics_interval` seconds `sample` (the program's periodic
    /// readings), then the textfile. Returns at once when metrics are off.
    public func run(logger: Logger, sample: @escaping @Sendable () async -> Void) async {
        guard settings.enabled else { return }
        let source = MetricsSource(registry: MetricsBackend.bootstrap())
        var listener: MetricsHTTPListener?
        if let a = settings.listen {
            do {
                let l = try MetricsHTTPListener(host: a.host, port: a.port, ipv6: a.isIPv6) { source.render() }
                if l.start() {
                    listener = l
                    logger.info("serving metrics", metadata: ["address": "\(a)", "path": "/metrics"])
                } else {
                    l.stop()
                    logger.error("cannot start the metrics listener thread", metadata: ["address": "\(a)"])
                }
            } catch {
                // Metrics are not worth refusing to serve the cloud: say so loudly and go on.
                logger.error("cannot serve metrics", metadata: ["address": "\(a)", "error": "\(error)"])
            }
        }
        defer { listener?.stop() }
        let textfile = settings.textfileDirectory.map { TextfileExporter(directory: $0, program: program) }
        var lastError: String?
        while !Task.isCancelled {
            await sample()
            if let textfile {
                do {
                    try textfile.write(source.render())
                    if lastError != nil { logger.notice("metrics textfile written again", metadata: ["path": "\(textfile.path)"]) }
                    lastError = nil
                } catch {
                    if lastError != error.message {
                        logger.error("cannot write the metrics textfile", metadata: ["path": "\(textfile.path)", "error": "\(error)"])
                    }
                    lastError = error.message
                }
            }
            do { try await Task.sleep(for: .seconds(settings.intervalSeconds)) } catch { break }
        }
    }
}
