import Testing

@testable import AOSConfig

#if canImport(Glibc)
import Glibc
#endif

/// Startup warnings about where the broker password is exposed, and `[agent] lv_name_pattern`.
@Suite struct SecretExposureTests {
    @Test(arguments: [
        ("rabbit://guest:guest@localhost:5672/", true),
        ("amqp://u1@h1:5672,u2:p2@h2:5672/vhost", true),
        ("rabbit://user@host/", false),
        ("rabbit://user:@host/", false),
        ("rabbit://host:5672/", false),
        ("rabbit://u:p@ss@h/", true),
        ("not a url", false),
    ])
    func passwordDetection(url: String, has: Bool) {
        #expect(Secrets.urlHasPassword(url) == has)
    }

    static let fileWithPassword = "[DEFAULT]\ntransport_url = rabbit://aos:TopSecret@ctl:5672/aos\n"

    func load(_ ini: String?, env: [String: String] = [:], overrides: [ConfigOverride] = []) throws -> Configuration {
        try CLIOptions.schema.load(iniText: ini, fileName: "/etc/aos/aos.conf", env: env, overrides: overrides)
    }

    @Test(arguments: [
        (UInt32(0o644), "other", "every local user"),
        (UInt32(0o604), "aos", "every local user"),
        (UInt32(0o640), "users", "group 'users'"),
    ])
    func readableFileWithPasswordWarns(mode: UInt32, group: String, who: String) throws {
        let c = try load(Self.fileWithPassword)
        let w = SecretExposure.warnings(c, path: "/etc/aos/aos.conf") { _ in .init(mode: mode, group: group) }
        #expect(w.count == 1)
        let text = w.first ?? ""
        #expect(text.contains("configuration file /etc/aos/aos.conf holds the broker password"), "\(text)")
        #expect(text.contains("readable by \(who)"), "\(text)")
        #expect(text.contains("chmod 600 /etc/aos/aos.conf"), "\(text)")
        #expect(text.contains("chown root:aos /etc/aos/aos.conf && chmod 640"), "\(text)")
        #expect(!text.contains("TopSecret"))
    }

    @Test(arguments: [(UInt32(0o600), "root"), (UInt32(0o400), "root"), (UInt32(0o640), "aos")])
    func privateFileIsQuiet(mode: UInt32, group: String) throws {
        let c = try load(Self.fileWithPassword)
        #expect(SecretExposure.warnings(c, path: "/etc/aos/aos.conf") { _ in .init(mode: mode, group: group) }.isEmpty)
    }

    @Test func fileWithoutPasswordIsQuiet() throws {
        let c = try load("[DEFAULT]\ntransport_url = rabbit://ctl:5672/\n")
        #expect(SecretExposure.warnings(c, path: "/etc/aos/aos.conf") { _ in .init(mode: 0o644, group: "x") }.isEmpty)
        // The password comes from the environment: the readable file holds none.
        let e = try load(Self.fileWithPassword, env: ["AOS_DEFAULT_TRANSPORT_URL": "rabbit://aos:S@ctl/"])
        #expect(SecretExposure.warnings(e, path: "/etc/aos/aos.conf") { _ in .init(mode: 0o644, group: "x") }.isEmpty)
    }

    @Test func passwordOnTheCommandLineWarns() throws {
        let c = try load(nil, overrides: [ConfigOverride(section: "DEFAULT", key: "transport_url", value: "rabbit://aos:TopSecret@ctl/")])
        let w = SecretExposure.warnings(c, path: nil) { _ in nil }
        #expect(w.count == 1)
        #expect(w.first?.contains("command line") == true)
        #expect(w.first?.contains("AOS_DEFAULT_TRANSPORT_URL") == true)
        #expect(w.first?.contains("TopSecret") == false)
        // Without a password (user only), nothing to say.
        let quiet = try load(nil, overrides: [ConfigOverride(section: "DEFAULT", key: "transport_url", value: "rabbit://aos@ctl/")])
        #expect(SecretExposure.warnings(quiet, path: nil) { _ in nil }.isEmpty)
    }

    @Test func realFileModeIsRead() throws {
        var template = Array("/tmp/aos-conf-mode.XXXXXX".utf8CString)
        let fd = template.withUnsafeMutableBufferPointer { mkstemp($0.baseAddress!) }
        #expect(fd >= 0)
        let path = template.withUnsafeBufferPointer { String(cString: $0.baseAddress!) }
        defer { unlink(path); close(fd) }
        #expect(fchmod(fd, 0o644) == 0)
        #expect(SecretExposure.fileAccess(path)?.mode == 0o644)
        let c = try CLIOptions.schema.load(iniText: Self.fileWithPassword, fileName: path)
        #expect(SecretExposure.warnings(c, path: path).first?.contains("mode 0644") == true)
        #expect(fchmod(fd, 0o600) == 0)
        #expect(SecretExposure.warnings(c, path: path).isEmpty)
        #expect(SecretExposure.fileAccess("/nonexistent/aos.conf") == nil)
    }

    // MARK: - [agent] lv_name_pattern

    @Test func lvNamePatternDefaultsToCindersNames() throws {
        let c = try AgentOptions.schema.load(iniText: nil)
        #expect(AgentOptions.Settings(c).lvNamePatterns == ["volume-*", "_snapshot-*"])
        let two = try AgentOptions.schema.load(iniText: "[agent]\nlv_name_pattern = volume-*, scratch-?\n")
        #expect(AgentOptions.Settings(two).lvNamePatterns == ["volume-*", "scratch-?"])
        #expect(
            try AgentOptions.schema.load(iniText: nil, env: ["AOS_AGENT_LV_NAME_PATTERN": "*"])[AgentOptions.lvNamePattern] == .list(["*"]))
    }

    @Test(arguments: ["", " , ", "vg1/volume-*", "volume *"])
    func badLVNamePatternsAreRefused(value: String) {
        #expect(throws: ConfigError.self) {
            try AgentOptions.schema.load(iniText: "[agent]\nlv_name_pattern = \(value)\n")
        }
    }
}
