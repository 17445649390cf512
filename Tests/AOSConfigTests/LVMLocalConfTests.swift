import Testing

@testable import AOSConfig

@Suite struct LVMLocalConfTests {
    @Test func readsHostID() throws {
        let text = """
            # This is a local configuration file template for the LVM tools
            local {
            \t# system_id = ""
            \t# host_id = 7
            \tsystem_id = "node-a"   # trailing comment
            \textra_system_ids = [ "a", "b" ]
            \thost_id = 11
            }
            """
        #expect(try LVMLocalConf.hostID(fromText: text) == 11)
    }

    @Test func compactSyntax() throws {
        #expect(try LVMLocalConf.hostID(fromText: "local{host_id=2000}") == 2000)
        #expect(try LVMLocalConf.hostID(fromText: "global { x = 1 }\nlocal {\n host_id = 1\n}\n") == 1)
    }

    @Test func absentMeansNil() throws {
        #expect(try LVMLocalConf.hostID(fromText: "") == nil)
        #expect(try LVMLocalConf.hostID(fromText: "local {\n    # host_id = 11\n}\n") == nil)
        #expect(try LVMLocalConf.hostID(fromText: "#local {\n#  host_id = 11\n#}\n") == nil)
        // host_id outside `local` is not LVM's setting.
        #expect(try LVMLocalConf.hostID(fromText: "global {\n host_id = 3\n}\n") == nil)
        #expect(try LVMLocalConf.hostID(path: "/nonexistent/lvmlocal.conf") == nil)
    }

    @Test(arguments: [
        ("local {\n  host_id = 0\n}\n", "lvmlocal.conf:2: host_id = 0: out of range 1..2000"),
        ("local {\n  host_id = 2001\n}\n", "lvmlocal.conf:2: host_id = 2001: out of range 1..2000"),
        ("local {\n  host_id = -4\n}\n", "lvmlocal.conf:2: host_id = -4: out of range 1..2000"),
        ("local {\n\n  host_id = eleven\n}\n", "lvmlocal.conf:3: host_id = 'eleven': not an integer"),
        ("local {\n  host_id = \"11\"\n}\n", "lvmlocal.conf:2: host_id = \"11\": not an integer"),
        ("local {\n  host_id = 11\n", "lvmlocal.conf:1: section 'local' is not closed with '}'"),
        ("local {\n  host_id 11\n}\n", "lvmlocal.conf:2: expected '=' or '{' after 'host_id', found '11'"),
        ("local {\n  host_id =\n}\n", "lvmlocal.conf:3: 'host_id =' has no value"),
        ("}\n", "lvmlocal.conf:1: '}' without a section to close"),
        ("local {\n  system_id = \"x\n}\n", "lvmlocal.conf:2: unterminated string"),
    ])
    func errors(text: String, expected: String) {
        #expect(configErrorText { _ = try LVMLocalConf.hostID(fromText: text) } == expected)
    }
}
