import AOSAPI
import RPCWire
import Testing

/// `check_host` / `check_cluster` shapes: total decoding, the report's order, doctor's exit statuses.
@Suite struct DoctorAPITests {
    func item(_ source: String, _ host: String?, _ id: String, _ status: CheckStatus) -> ClusterCheckItem {
        ClusterCheckItem(source: source, host: host, item: CheckItem(id: id, status: status, finding: id))
    }

    @Test func findingsAreOrderedWorstFirstThenBySourceHostAndId() {
        let items = [
            item("agent", "host-b", "use_lvmlockd", .fail), item("cluster", "host-a", "clock_skew", .pass),
            item("controller", nil, "auth_enforce", .warn), item("cluster", "host-b", "agent_down", .fail),
            item("caller", nil, "broker", .pass), item("agent", "host-a", "use_lvmlockd", .fail),
            item("cluster", "host-a", "agent_stale", .warn), item("caller", nil, "controller", .fail),
        ]
        let ordered = ClusterCheckItem.ordered(items).map { "\($0.status.rawValue) \($0.source) \($0.host ?? "-") \($0.id)" }
        #expect(
            ordered == [
                "FAIL caller - controller", "FAIL cluster host-b agent_down", "FAIL agent host-a use_lvmlockd",
                "FAIL agent host-b use_lvmlockd", "WARN controller - auth_enforce", "WARN cluster host-a agent_stale",
                "PASS caller - broker", "PASS cluster host-a clock_skew",
            ])
    }

    @Test func exitStatusesAreDistinct() {
        #expect(CheckStatus.pass.exitStatus.rawValue == 0)
        #expect(CheckStatus.warn.exitStatus.rawValue == 8)
        #expect(CheckStatus.fail.exitStatus.rawValue == 9)
        let others = Set(CLIExitStatus.allCases.filter { $0 != .warnings && $0 != .failures && $0 != .ok })
        #expect(!others.contains(CheckStatus.warn.exitStatus) && !others.contains(CheckStatus.fail.exitStatus))
    }

    @Test func repliesAreDecodedTotally() throws {
        let good: JSONValue = [
            "host": "h", "host_id": 3, "backend": "real", "status": "WARN", "clock": 1.5, "elapsed_s": 0,
            "items": [["id": "x", "status": "WARN", "finding": "f", "evidence": "e", "fix": "", "blocking": false]],
        ]
        let r = try JSONValueDecoder().decode(CheckHostResult.self, from: good)
        #expect(r.items.first?.status == .warn && r.clock == 1.5)
        // Hostile or broken replies are errors, never traps.
        var bad: [JSONValue] = []
        for (key, value): (String, JSONValue) in [
            ("status", "MAYBE"), ("host_id", "3"), ("clock", "now"), ("items", [["id": "x"]]), ("host_id", .double(1e300)),
        ] {
            var o = good.objectValue ?? [:]
            o[key] = value
            bad.append(.object(o))
        }
        var missing = good.objectValue ?? [:]
        missing["clock"] = nil
        bad.append(.object(missing))
        for b in bad {
            #expect(throws: (any Error).self) { _ = try JSONValueDecoder().decode(CheckHostResult.self, from: b) }
        }
        // check_cluster: a null host (the controller's own items) and null measurements read as nil.
        let cluster: JSONValue = [
            "status": "FAIL", "clock": 2,
            "items": [["source": "controller", "host": .null, "id": "a", "status": "FAIL", "finding": "f", "evidence": "", "fix": ""]],
            "agents": [
                [
                    "host": "h", "liveness": "down", "last_seen_seconds_ago": 61, "answered": false, "host_id": .null,
                    "clock_skew_s": .null, "clock_uncertainty_s": .null, "round_trip_s": .null, "status": "FAIL",
                ]
            ],
        ]
        let c = try JSONValueDecoder().decode(CheckClusterResult.self, from: cluster)
        #expect(c.items.first?.host == nil && c.agents.first?.liveness == .down && c.agents.first?.host_id == nil)
        // And written back with every key present (null when empty), as documented.
        let written = try c.wireValue()
        #expect(written["items"]?.arrayValue?.first?["host"] == .null)
        #expect(written["agents"]?.arrayValue?.first?["clock_skew_s"] == .null)
    }
}
