import RPCWire
import SharedLVM
import Testing

@testable import AgentCore

/// Generated bad requests: every one must get `invalid_argument` (or `unknown_vg` for a
/// well-formed VG this agent does not serve) and no LVM command may run.
struct BadInputTests {
    struct BadRequest: CustomStringConvertible {
        var method: String
        var args: [String: JSONValue]
        var expected: String
        var description: String { "\(method) \(JSONWriter.serialize(.object(args))) -> \(expected)" }
    }

    static let valid: [String: [String: JSONValue]] = [
        "create_lv": ["vg": "vg1", "name": "v1", "size_gb": 1],
        "extend_lv": ["vg": "vg1", "name": "v1", "size_gb": 2],
        "refresh_lv": ["vg": "vg1", "name": "v1"],
        "delete_lv": ["vg": "vg1", "name": "v1"],
        "activate_lv": ["vg": "vg1", "name": "v1", "mode": "shared"],
        "deactivate_lv": ["vg": "vg1", "name": "v1"],
        "lv_info": ["vg": "vg1", "name": "v1"],
        "list_lvs": ["vg": "vg1"],
        "vg_info": ["vg": "vg1"],
        "lock_status": [:],
        "health": [:],
    ]

    static let hostileNames: [String] = [
        "--help", "-x", "-", "../x", "..", ".", "a;b", "a b", "a/b", "/dev/sda", "$(reboot)", "`id`", "x\n",
        "a|b", "a&b", "*", "~root", "", String(repeating: "a", count: 300), String(repeating: "b", count: 128),
        "snapshot1", "pvmove0", "x_tmeta", "y_rimage_0", "lvmlock", "ü", "a\u{0}b", "vol\"ume", "x'y", "a=b",
        "name with\ttab", "%s%s", "{}", "[x]", "volume-🙂",
    ]
    static let hostileVGs: [String] = [
        "--help", "-vg", "../x", "", "vg1;rm -rf /", "vg 1", String(repeating: "v", count: 300), "vg/1", ".",
    ]
    static let unservedVGs: [String] = ["vg2", "other", "VG1", "vg1-", "vg1.bak"]

    static let wrongTypes: [JSONValue] = [1, 1.5, true, ["a"], ["k": "v"], -7]
    static let badSizeBytes: [JSONValue] = [
        0, -1, .int(-GiB), .int(Int64.max), .int(Int64.min), .int(1 << 51), 1.5, 1024.0, 1e3, "1G", "1073741824",
        true, ["1"], ["n": 1],
    ]
    static let badSizeGB: [JSONValue] = [0, -1, .int(1 << 21), .int(1_048_577), 1.0, 0.5, "1", false, [1]]
    static let badModes: [JSONValue] = ["ex", "EXCLUSIVE", "", "shared ", "sh", "exclusive\n", 1, true, ["shared"]]
    static let unknownArgs: [(String, JSONValue)] = [
        ("force", true), ("Name", "x"), ("size", 1), ("__class__", "x"), ("vg ", "vg1"), ("size_mb", 10),
        ("host", "host-b"), ("", 1), ("--help", true),
    ]

    static func generate() -> [BadRequest] {
        var out: [BadRequest] = []
        func add(_ m: String, _ a: [String: JSONValue], _ e: String = "invalid_argument") {
            out.append(BadRequest(method: m, args: a, expected: e))
        }
        for (method, base) in valid.sorted(by: { $0.key < $1.key }) {
            // Missing each required argument (and null meaning missing).
            for key in base.keys where key != "mode" {
                var a = base; a[key] = nil; add(method, a)
                a[key] = .null; add(method, a)
            }
            // Wrong types for every argument.
            for key in base.keys {
                for wrong in wrongTypes + ["text"] {
                    if key.hasPrefix("size"), case .int(let n) = wrong, n > 0 { continue }  // a valid size
                    if wrong == "text" && (key == "vg" || key == "name") { continue }
                    var a = base; a[key] = wrong; add(method, a)
                }
            }
            // Unknown arguments.
            for (key, value) in unknownArgs {
                var a = base; a[key] = value; add(method, a)
            }
            if base["name"] != nil {
                for name in hostileNames {
                    var a = base; a["name"] = .string(name); add(method, a)
                }
            }
            if base["vg"] != nil {
                for vg in hostileVGs {
                    var a = base; a["vg"] = .string(vg); add(method, a)
                }
                for vg in unservedVGs {
                    var a = base; a["vg"] = .string(vg); add(method, a, "unknown_vg")
                }
            }
            if base["size_gb"] != nil {
                for s in badSizeBytes {
                    var a = base; a["size_gb"] = nil; a["size_bytes"] = s; add(method, a)
                }
                for s in badSizeGB {
                    var a = base; a["size_gb"] = s; add(method, a)
                }
                var both = base; both["size_bytes"] = .int(GiB); add(method, both)
            }
        }
        for mode in badModes { add("activate_lv", ["vg": "vg1", "name": "v1", "mode": mode]) }
        for clear in ["wipe", "", "ZERO", "none "] as [JSONValue] + [1, true] {
            add("delete_lv", ["vg": "vg1", "name": "v1", "volume_clear": clear])
        }
        for size in [-1, 1.5, "10", .int(Int64.max), true] as [JSONValue] {
            add("delete_lv", ["vg": "vg1", "name": "v1", "volume_clear_size_mb": size])
        }
        for flag in ["true", 1, 0, "yes", ["x"]] as [JSONValue] {
            add("extend_lv", ["vg": "vg1", "name": "v1", "size_gb": 2, "shared_update": flag])
        }
        // Hostile VG and LV together: the VG is reported first.
        add("create_lv", ["vg": "--help", "name": "--help", "size_gb": 1])
        return out
    }

    @Test func generatedBadRequestsRunNoLVMCommand() async throws {
        let c = Cluster()
        let a = try await c.agent("host-a", hostId: 1)
        try await a.call("create_lv", ["vg": "vg1", "name": "v1", "size_gb": 1])
        c.sim.clearCalls()
        let requests = Self.generate()
        #expect(requests.count >= 300, "only \(requests.count) generated")
        print("BadInputTests: \(requests.count) generated bad requests")
        var wrong: [String] = []
        for request in requests {
            do {
                let result = try await a.handle(method: request.method, args: request.args)
                wrong.append("\(request): succeeded with \(result)")
            } catch {
                if error.code != request.expected { wrong.append("\(request): got \(error)") }
                if error.message.isEmpty { wrong.append("\(request): empty message") }
                if error.details["host"] != "host-a" { wrong.append("\(request): no host in details") }
                // Messages never carry raw control characters.
                if error.message.unicodeScalars.contains(where: { $0.value < 0x20 }) {
                    wrong.append("\(request): control character in message \(error.message)")
                }
            }
            if !c.sim.calls.isEmpty {
                wrong.append("\(request): ran \(c.sim.calls)")
                c.sim.clearCalls()
            }
        }
        #expect(wrong.isEmpty, "\(wrong.count) of \(requests.count) wrong:\n\(wrong.prefix(20).joined(separator: "\n"))")
        // The agent still serves.
        #expect(try await a.call("lv_info", ["vg": "vg1", "name": "v1"])["size_bytes"] == .int(GiB))
    }

    @Test func messagesSayWhatIsWrong() async throws {
        let c = Cluster()
        let a = try await c.agent("host-a", hostId: 1)
        var e = await expectError("invalid_argument") { try await a.call("create_lv", ["vg": "vg1", "name": "--help", "size_gb": 1]) }
        #expect(e?.message == "create_lv: LV name \"--help\" is invalid: it must not start with '-'")
        #expect(e?.details["argument"] == "name")
        e = await expectError("invalid_argument") { try await a.call("create_lv", ["vg": "vg1", "name": "v1", "size_bytes": 1.5]) }
        #expect(e?.message == "create_lv: argument 'size_bytes' must be an integer, got a float")
        e = await expectError("invalid_argument") { try await a.call("activate_lv", ["vg": "vg1", "name": "v1", "mode": "ex"]) }
        #expect(e?.message == "activate_lv: argument 'mode' must be one of exclusive, shared, got \"ex\"")
        e = await expectError("invalid_argument") { try await a.call("lv_info", ["vg": "vg1", "name": "v1", "force": true]) }
        #expect(e?.message == "lv_info: unknown argument 'force' (accepted: name, vg)")
        e = await expectError("unknown_vg") { try await a.call("list_lvs", ["vg": "vg2"]) }
        #expect(e?.message == "volume group \"vg2\" is not served by the agent on host host-a (it serves: vg1)")
        #expect(e?.rpcFailure.className == "UnknownVg")
        e = await expectError("invalid_argument") { try await a.call("create_lv", ["vg": "vg1", "name": "v1"]) }
        #expect(e?.message.contains("'size_bytes' (integer bytes) or 'size_gb'") == true)
        e = await expectError("unknown_method") { try await a.call("format_disk", [:]) }
    }
}
