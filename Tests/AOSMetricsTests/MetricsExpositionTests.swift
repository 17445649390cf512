import CoreMetrics
import Prometheus
import Testing

@testable import AOSMetrics

#if canImport(Glibc)
import Glibc
#endif

/// The exposition: swift-prometheus behind swift-metrics as the programs bootstrap it, the text
/// format (types, label escaping, histogram buckets) and the textfile's atomic replacement.
struct MetricsExpositionTests {
    let registry = MetricsBackend.bootstrap()

    func text() -> String { String(decoding: MetricsSource(registry: registry).render(), as: UTF8.self) }

    @Test func countersAndGaugesRecordedThroughSwiftMetricsAppearInTheTextFormat() {
        Counter(label: "aos_test_requests_total", dimensions: [("method", "create_lv"), ("code", "ok")]).increment(by: 2)
        Gauge(label: "aos_test_free_bytes", dimensions: [("vg", "vg1")]).record(1_073_741_824)
        let t = text()
        #expect(t.contains("# TYPE aos_test_requests_total counter\n"))
        #expect(t.contains("aos_test_requests_total{method=\"create_lv\",code=\"ok\"} 2\n"))
        #expect(t.contains("# TYPE aos_test_free_bytes gauge\n"))
        #expect(t.contains("aos_test_free_bytes{vg=\"vg1\"} 1073741824"))
    }

    @Test func labelValuesAreEscaped() {
        Counter(label: "aos_test_escape_total", dimensions: [("code", "a\"b\\c\nd")]).increment()
        #expect(text().contains(#"aos_test_escape_total{code="a\"b\\c\nd"} 1"#))
    }

    @Test func timersBecomeHistogramsInSecondsWithTheConfiguredBuckets() {
        Timer(label: "aos_rpc_request_duration_seconds", dimensions: [("method", "aos_test_method")])
            .recordNanoseconds(3_000_000)  // 3 ms
        let lines = text().split(separator: "\n").filter { $0.contains("method=\"aos_test_method\"") }
        #expect(
            lines.contains { $0.hasPrefix("aos_rpc_request_duration_seconds_bucket{") && $0.contains("le=\"0.001\"") && $0.hasSuffix(" 0") }
        )
        #expect(lines.contains { $0.contains("le=\"0.005\"") && $0.hasSuffix(" 1") })
        #expect(lines.contains { $0.contains("le=\"+Inf\"") && $0.hasSuffix(" 1") })
        #expect(lines.contains { $0.hasPrefix("aos_rpc_request_duration_seconds_count{") && $0.hasSuffix(" 1") })
        #expect(lines.contains { $0.hasPrefix("aos_rpc_request_duration_seconds_sum{") && $0.hasSuffix(" 0.003") })
    }

    @Test func bootstrapIsIdempotent() {
        #expect(MetricsBackend.bootstrap() === registry)
    }

    // MARK: - Textfile

    func temporaryDirectory() -> String {
        var template = Array("/tmp/aos-metrics-test-XXXXXX".utf8CString)
        return template.withUnsafeMutableBufferPointer { String(cString: mkdtemp($0.baseAddress!)) }
    }

    func readText(_ path: String) -> String? {
        guard let f = fopen(path, "r") else { return nil }
        defer { fclose(f) }
        var out: [UInt8] = []
        var buf = [UInt8](repeating: 0, count: 4096)
        while true {
            let n = fread(&buf, 1, buf.count, f)
            if n <= 0 { break }
            out += buf[0..<n]
        }
        return String(decoding: out, as: UTF8.self)
    }

    func entries(_ dir: String) -> [String] {
        guard let d = opendir(dir) else { return [] }
        defer { closedir(d) }
        var names: [String] = []
        while let e = readdir(d) {
            let name = withUnsafeBytes(of: e.pointee.d_name) { String(decoding: $0.prefix(while: { $0 != 0 }), as: UTF8.self) }
            if name != "." && name != ".." { names.append(name) }
        }
        return names.sorted()
    }

    @Test func textfileIsReplacedAtomicallyAndReadableByTheCollector() throws {
        let dir = temporaryDirectory()
        let exporter = TextfileExporter(directory: dir, program: "aos-agent")
        #expect(exporter.path == dir + "/aos-agent.prom")
        try exporter.write(Array("aos_a 1\n".utf8))
        #expect(readText(exporter.path) == "aos_a 1\n")
        // A reader that opened the old file keeps reading the old, whole text: the new one is a
        // new inode renamed over it, never the old file truncated and rewritten.
        let old = open(exporter.path, O_RDONLY)
        defer { close(old) }
        try exporter.write(Array("aos_b 2\n".utf8))
        var buf = [UInt8](repeating: 0, count: 64)
        let n = read(old, &buf, buf.count)
        #expect(String(decoding: buf[0..<max(0, n)], as: UTF8.self) == "aos_a 1\n")
        #expect(readText(exporter.path) == "aos_b 2\n")
        // No temp file is left behind, and node_exporter (another user) may read it.
        #expect(entries(dir) == ["aos-agent.prom"])
        var st = stat()
        #expect(stat(exporter.path, &st) == 0)
        #expect(st.st_mode & 0o777 == 0o644)
        unlink(exporter.path)
        rmdir(dir)
    }

    @Test func textfileInAMissingDirectoryFailsWithAMessage() {
        let exporter = TextfileExporter(directory: "/nonexistent-aos-dir/", program: "aos-controller")
        #expect(exporter.path == "/nonexistent-aos-dir/aos-controller.prom")
        #expect(throws: (any Error).self) { try exporter.write([]) }
    }
}
