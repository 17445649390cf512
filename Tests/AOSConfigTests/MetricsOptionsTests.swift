import Testing

@testable import AOSConfig

/// `[agent] metrics_*` / `[controller] metrics_*`: off by default, numeric listen addresses only.
struct MetricsOptionsTests {
    @Test func metricsAreOffByDefault() throws {
        let agent = MetricsOptions.Settings(agent: try AgentOptions.schema.load(iniText: "[agent]\nvolume_groups = vg1\n"))
        #expect(!agent.enabled && agent.intervalSeconds == 30)
        let controller = MetricsOptions.Settings(controller: try ControllerOptions.schema.load(iniText: nil))
        #expect(!controller.enabled)
    }

    @Test func eachProgramReadsItsOwnKeys() throws {
        let ini = """
            [agent]
            volume_groups = vg1
            metrics_listen = [::1]:9468
            metrics_textfile_dir = /var/lib/prometheus/node-exporter
            metrics_interval = 5
            [controller]
            metrics_listen = 127.0.0.1:9469
            """
        let agent = MetricsOptions.Settings(agent: try AgentOptions.schema.load(iniText: ini))
        #expect(agent.listen == ListenAddress(parsing: "[::1]:9468"))
        #expect(agent.listen?.isIPv6 == true && agent.listen?.host == "::1" && agent.listen?.port == 9468)
        #expect(agent.textfileDirectory == "/var/lib/prometheus/node-exporter")
        #expect(agent.intervalSeconds == 5)
        let controller = MetricsOptions.Settings(controller: try ControllerOptions.schema.load(iniText: ini))
        #expect(controller.listen?.description == "127.0.0.1:9469")
        #expect(controller.textfileDirectory == nil)
    }

    @Test func listenAddressesMustBeNumericWithAPort() {
        for good in ["127.0.0.1:9468", "0.0.0.0:1", "[::]:9468", "[::1]:65535", " 10.0.0.5:9100 "] {
            #expect(ListenAddress(parsing: good) != nil, "\(good)")
        }
        for bad in [
            "localhost:9468", "127.0.0.1", "127.0.0.1:0", "127.0.0.1:65536", ":9468", "[::1]", "::1:9468", "1.2.3:4", "[]:1",
            "1.2.3.4444:5", "[::1]9468",
        ] {
            #expect(ListenAddress(parsing: bad) == nil, "\(bad)")
        }
        #expect(throws: ConfigError.self) {
            _ = try AgentOptions.schema.load(iniText: "[agent]\nvolume_groups = vg1\nmetrics_listen = localhost:9468\n")
        }
    }
}
