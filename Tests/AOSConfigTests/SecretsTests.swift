import Testing

@testable import AOSConfig

@Suite struct SecretsTests {
    @Test(arguments: [
        ("rabbit://guest:guest@localhost:5672/", "rabbit://guest:***@localhost:5672/"),
        ("amqp://u1:p1@h1:5672,u2:p2@h2:5672/vhost", "amqp://u1:***@h1:5672,u2:***@h2:5672/vhost"),
        ("rabbit://user@host/", "rabbit://user@host/"),
        ("rabbit://host:5672/", "rabbit://host:5672/"),
        ("rabbit://u:pa/ss@h/", "rabbit://u:***@h/"),
        ("rabbit://u:p@ss@h/v", "rabbit://u:***@h/v"),
        ("plainpassword", "***"),
        ("", ""),
    ])
    func masking(input: String, expected: String) {
        #expect(Secrets.mask(input) == expected)
    }

    @Test func dumpShowsSourcesAndMasksSecrets() throws {
        let c = try AgentOptions.schema.load(
            iniText: "[DEFAULT]\ntransport_url = rabbit://cinder:TopSecret@ctl:5672/\n[agent]\nvolume_groups = vg1, vg2\n",
            fileName: "/etc/aos/aos.conf", env: ["AOS_AGENT_LVM_TIMEOUT": "99"],
            overrides: [ConfigOverride(section: "DEFAULT", key: "host", value: "n9")])
        let dump = c.dump()
        #expect(!dump.contains("TopSecret"))
        #expect(dump.contains("# transport_url: /etc/aos/aos.conf:2\ntransport_url = rabbit://cinder:***@ctl:5672/\n"))
        #expect(dump.contains("# host: command line\nhost = n9\n"))
        #expect(dump.contains("# lvm_timeout: environment AOS_AGENT_LVM_TIMEOUT\nlvm_timeout = 99\n"))
        #expect(dump.contains("# volume_groups: /etc/aos/aos.conf:4\nvolume_groups = vg1, vg2\n"))
        #expect(dump.contains("# state_dir: default\nstate_dir = /var/lib/aos-agent\n"))
        #expect(dump.contains("# ssl_ca_file: default\nssl_ca_file =\n"))
        // The dump reads back as the same configuration.
        let again = try AgentOptions.schema.load(iniText: dump.replacingOccurrences("rabbit://cinder:***@", "rabbit://cinder:x@"))
        #expect(AgentOptions.Settings(again).lvmTimeout == 99)
        #expect(AgentOptions.Settings(again).volumeGroups == ["vg1", "vg2"])
        #expect(c.dumpEntries().first { $0.key == "transport_url" }?.secret == true)
    }

    @Test func secretNeverInErrors() {
        let text = configErrorText {
            _ = try AgentOptions.schema.load(iniText: nil, env: ["AOS_DEFAULT_TRANSPORT_URL": "no-scheme-Hunter2"])
        }
        #expect(
            text
                == "environment AOS_DEFAULT_TRANSPORT_URL: [DEFAULT] transport_url = '***': not a URL (expected e.g. rabbit://user:password@host:5672/)"
        )
    }
}

extension String {
    func replacingOccurrences(_ target: String, _ replacement: String) -> String {
        split(separator: target, omittingEmptySubsequences: false).joined(separator: replacement)
    }
}
