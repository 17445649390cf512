import Testing

@testable import AOSConfig

/// Expects `body` to throw a ConfigError and returns its text ("" if it did not throw).
func configErrorText(_ body: () throws -> Void) -> String {
    do {
        try body()
        Issue.record("expected a ConfigError")
        return ""
    } catch let error as ConfigError {
        return error.description
    } catch {
        Issue.record("expected a ConfigError, got \(error)")
        return ""
    }
}

@Suite struct SchemaTests {
    let schema = AgentOptions.schema

    @Test func defaultsWhenNothingIsGiven() throws {
        let c = try schema.defaults()
        let s = AgentOptions.Settings(c)
        #expect(s.messaging.transportURL == "rabbit://guest:guest@localhost:5672/")
        #expect(s.messaging.host == HostEnvironment.hostName())
        #expect(!s.messaging.host.isEmpty)
        #expect(s.messaging.controlExchange == "openstack")
        #expect(s.volumeGroups == [])
        #expect(s.stateDir == "/var/lib/aos-agent")
        #expect(s.lvmTimeout == 120)
        #expect(s.maxConcurrentLVM == 4)
        #expect(s.announceInterval == 10)
        #expect(s.pvWaitTimeout == 300)
        #expect(s.lvmBackend == .real)
        #expect(s.lvmlocalConf == "/etc/lvm/lvmlocal.conf")
        #expect(s.logLevel == "info")
        #expect(s.volumeClear == "zero")
        #expect(s.volumeClearSizeMiB == 0)
        #expect(s.messaging.heartbeatTimeoutThreshold == 60)
        #expect(s.messaging.amqpDurableQueues == false)
        #expect(s.messaging.rabbitQuorumQueue == false)
        #expect(s.messaging.rabbitQosPrefetchCount == 0)
        #expect(s.messaging.ssl == false)
        #expect(c.source(AgentOptions.lvmTimeout) == .defaultValue)
    }

    @Test func fileValuesAreTyped() throws {
        let c = try schema.load(
            iniText: """
                [DEFAULT]
                transport_url = amqp://cinder:s3cret@ctl1:5672,cinder:s3cret@ctl2:5672/openstack
                host = compute-7

                [agent]
                volume_groups = vg_sanlock, vg_two
                lvm_backend = simulated
                max_concurrent_lvm = 8

                [oslo_messaging_rabbit]
                amqp_durable_queues = Yes
                rabbit_quorum_queue = on
                """, fileName: "aos.conf")
        let s = AgentOptions.Settings(c)
        #expect(s.messaging.transportURL == "amqp://cinder:s3cret@ctl1:5672,cinder:s3cret@ctl2:5672/openstack")
        #expect(s.messaging.host == "compute-7")
        #expect(s.volumeGroups == ["vg_sanlock", "vg_two"])
        #expect(s.lvmBackend == .simulated)
        #expect(s.maxConcurrentLVM == 8)
        #expect(s.messaging.amqpDurableQueues)
        #expect(s.messaging.rabbitQuorumQueue)
        #expect(c.source(AgentOptions.maxConcurrentLVM) == .file("aos.conf", line: 8))
    }

    @Test func precedenceCommandLineOverEnvironmentOverFileOverDefault() throws {
        let file = """
            [agent]
            lvm_timeout = 30
            announce_interval = 20
            pv_wait_timeout = 40
            """
        let env = [
            "AOS_AGENT_ANNOUNCE_INTERVAL": "21",
            "AOS_AGENT_PV_WAIT_TIMEOUT": "41",
            "AOS_TEST_AMQP_URL": "amqp://ignored",  // not an option: ignored
        ]
        let overrides = [try ConfigOverride.parse("agent.pv_wait_timeout=42")]
        let c = try schema.load(iniText: file, fileName: "aos.conf", env: env, overrides: overrides)
        #expect(c.int(AgentOptions.maxConcurrentLVM) == 4)
        #expect(c.source(AgentOptions.maxConcurrentLVM) == .defaultValue)
        #expect(c.int(AgentOptions.lvmTimeout) == 30)
        #expect(c.source(AgentOptions.lvmTimeout) == .file("aos.conf", line: 2))
        #expect(c.int(AgentOptions.announceInterval) == 21)
        #expect(c.source(AgentOptions.announceInterval) == .environment("AOS_AGENT_ANNOUNCE_INTERVAL"))
        #expect(c.int(AgentOptions.pvWaitTimeout) == 42)
        #expect(c.source(AgentOptions.pvWaitTimeout) == .commandLine)
    }

    @Test func environmentNames() {
        #expect(CommonOptions.transportURL.key.environmentName == "AOS_DEFAULT_TRANSPORT_URL")
        #expect(AgentOptions.maxConcurrentLVM.key.environmentName == "AOS_AGENT_MAX_CONCURRENT_LVM")
        #expect(CommonOptions.ssl.key.environmentName == "AOS_OSLO_MESSAGING_RABBIT_SSL")
    }

    @Test func overrideParsing() throws {
        #expect(try ConfigOverride.parse("host=n1") == ConfigOverride(section: "DEFAULT", key: "host", value: "n1"))
        #expect(
            try ConfigOverride.parse("oslo_messaging_rabbit.ssl=true")
                == ConfigOverride(section: "oslo_messaging_rabbit", key: "ssl", value: "true"))
        #expect(try ConfigOverride.parse("DEFAULT.transport_url=rabbit://a:b@c/x=y").value == "rabbit://a:b@c/x=y")
        #expect(throws: ConfigError.self) { try ConfigOverride.parse("nothing") }
        #expect(throws: ConfigError.self) { try ConfigOverride.parse("agent.=1") }
    }

    @Test func unknownOptionWithSuggestion() {
        let text = configErrorText {
            _ = try schema.load(iniText: "[agent]\n\nvolume_group = vg1\n", fileName: "aos.conf")
        }
        #expect(text == "aos.conf:3: unknown option 'volume_group' in [agent]; did you mean 'volume_groups'?")
    }

    @Test func unknownOptionWithoutSuggestion() {
        let text = configErrorText { _ = try schema.load(iniText: "[agent]\nfoo = 1\n", fileName: "aos.conf") }
        #expect(text == "aos.conf:2: unknown option 'foo' in [agent]")
    }

    @Test func optionInTheWrongSection() {
        let text = configErrorText { _ = try schema.load(iniText: "[DEFAULT]\nlvm_timeout = 5\n", fileName: "a.conf") }
        #expect(text == "a.conf:2: unknown option 'lvm_timeout' in [DEFAULT]; it belongs in [agent]")
    }

    @Test func unknownSections() {
        #expect(
            configErrorText { _ = try schema.load(iniText: "[agnet]\nx = 1\n", fileName: "a.conf") }
                == "a.conf:1: unknown section [agnet]; did you mean [agent]?")
        #expect(
            configErrorText { _ = try schema.load(iniText: "[default]\nhost = x\n", fileName: "a.conf") }
                == "a.conf:1: unknown section [default]; did you mean [DEFAULT]?")
        #expect(
            configErrorText { _ = try schema.load(iniText: "[nova]\nx = 1\n", fileName: "a.conf") }
                .hasPrefix("a.conf:1: unknown section [nova] (known: [DEFAULT], [oslo_messaging_rabbit], [agent]"))
    }

    @Test func otherProgramsSectionsAreTolerated() throws {
        let shared = """
            [DEFAULT]
            host = n1
            [agent]
            lvm_timeout = 5
            [controller]
            agent_response_timeout = 100
            some_future_option = 1
            [aosctl]
            timeout = 9
            """
        let agent = try AgentOptions.schema.load(iniText: shared)
        #expect(agent.int(AgentOptions.lvmTimeout) == 5)
        let ctl = try CLIOptions.schema.load(iniText: shared)
        #expect(ctl.int(CLIOptions.timeout) == 9)
        // The controller owns [controller]: its unknown key is an error there.
        #expect(
            configErrorText { _ = try ControllerOptions.schema.load(iniText: shared, fileName: "aos.conf") }
                == "aos.conf:7: unknown option 'some_future_option' in [controller]")
    }

    @Test(arguments: [
        ("max_concurrent_lvm = abc", "aos.conf:2: [agent] max_concurrent_lvm = 'abc': not an integer"),
        ("max_concurrent_lvm = 0", "aos.conf:2: [agent] max_concurrent_lvm = '0': must be between 1 and 64"),
        ("max_concurrent_lvm = 65", "aos.conf:2: [agent] max_concurrent_lvm = '65': must be between 1 and 64"),
        ("max_concurrent_lvm =", "aos.conf:2: [agent] max_concurrent_lvm = '': empty value, expected an integer"),
        ("lvm_timeout = 0", "aos.conf:2: [agent] lvm_timeout = '0': must be at least 1"),
        ("lvm_timeout = 1.5", "aos.conf:2: [agent] lvm_timeout = '1.5': not an integer"),
        ("lvm_backend = rael", "aos.conf:2: [agent] lvm_backend = 'rael': must be one of real, simulated (did you mean 'real'?)"),
        ("volume_clear = wipe", "aos.conf:2: [agent] volume_clear = 'wipe': must be one of none, zero, shred"),
    ])
    func badValues(line: String, expected: String) {
        #expect(configErrorText { _ = try schema.load(iniText: "[agent]\n\(line)\n", fileName: "aos.conf") } == expected)
    }

    @Test func badBoolean() {
        #expect(
            configErrorText {
                _ = try schema.load(iniText: "[oslo_messaging_rabbit]\nssl = maybe\n", fileName: "aos.conf")
            } == "aos.conf:2: [oslo_messaging_rabbit] ssl = 'maybe': not a boolean (use true or false)")
    }

    @Test func badEnvironmentAndCommandLineValuesSayWhere() {
        let text = configErrorText {
            _ = try schema.load(
                iniText: nil, env: ["AOS_AGENT_LVM_TIMEOUT": "soon"],
                overrides: [
                    ConfigOverride(section: "agent", key: "announce_interval", value: "-1"),
                    ConfigOverride(section: "agent", key: "bogus", value: "1"),
                ])
        }
        #expect(
            text == """
                command line: unknown option 'bogus' in [agent]
                environment AOS_AGENT_LVM_TIMEOUT: [agent] lvm_timeout = 'soon': not an integer
                command line: [agent] announce_interval = '-1': must be between 1 and 3600
                """)
    }

    @Test func allProblemsAtOnce() {
        let text = configErrorText {
            _ = try schema.load(iniText: "[agent]\nfoo = 1\nlvm_timeout = x\n[bar]\n", fileName: "aos.conf")
        }
        #expect(text.split(separator: "\n").count == 3)
        #expect(text.contains("aos.conf:4: unknown section [bar]"))
        #expect(text.contains("aos.conf:2: unknown option 'foo' in [agent]"))
        #expect(text.contains("aos.conf:3: [agent] lvm_timeout = 'x': not an integer"))
    }

    @Test func crossOptionChecks() {
        #expect(
            configErrorText {
                _ = try ControllerOptions.schema.load(iniText: "[controller]\nagent_stale_after = 90\n")
            } == "[controller] agent_down_after (60) must not be less than agent_stale_after (90)")
        #expect(
            configErrorText {
                _ = try AgentOptions.schema.load(iniText: "[oslo_messaging_rabbit]\nssl_ca_file = /x.pem\n")
            } == "[oslo_messaging_rabbit] ssl_ca_file given but ssl = false")
    }

    @Test func controllerAndCLIDefaults() throws {
        let c = ControllerOptions.Settings(try ControllerOptions.schema.defaults())
        #expect(c.topic == "aos-controller")
        #expect(c.agentResponseTimeout == 2888)
        #expect(c.agentStaleAfter == 30)
        #expect(c.agentDownAfter == 60)
        #expect(c.preferredHosts == [])
        let cli = CLIOptions.Settings(try CLIOptions.schema.load(iniText: "[controller]\ntopic = other\n"))
        #expect(cli.controllerTopic == "other")
        #expect(cli.timeout == 60)
        #expect(cli.output == "table")
    }

    @Test func listValues() throws {
        let c = try schema.load(iniText: "[agent]\nvolume_groups = a,, b ,\n    c\n")
        #expect(c.list(AgentOptions.volumeGroups) == ["a", "b", "c"])
    }

    @Test func transportURLSchemes() throws {
        for url in ["rabbit://a:b@h:5672/", "amqp://a:b@h/", "AMQP://h/"] {
            _ = try schema.load(iniText: nil, env: ["AOS_DEFAULT_TRANSPORT_URL": url])
        }
        let text = configErrorText {
            _ = try schema.load(iniText: "[DEFAULT]\ntransport_url = http://admin:hunter2@h/\n", fileName: "aos.conf")
        }
        #expect(text == "aos.conf:2: [DEFAULT] transport_url = 'http://admin:***@h/': URL scheme must be one of rabbit, amqp, amqps")
        #expect(!text.contains("hunter2"))
    }

    @Test func allSchemaCoversEveryProgram() throws {
        let all = AOSSchemas.all
        #expect(all.sections == ["DEFAULT", "oslo_messaging_rabbit", "agent", "auth", "controller", "aosctl"])
        #expect(all.lenientSections.isEmpty)
        #expect(
            all.options.count == CommonOptions.all.count + AgentOptions.options.count + AuthOptions.options.count
                + ControllerOptions.options.count + CLIOptions.options.count + MetricsOptions.agent.count
                + MetricsOptions.controller.count)
    }
}
