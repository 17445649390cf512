import AOSAPI
import ArgumentParser
import RPCWire

/// `aosctl agents`: every agent the controller hears from (or, --direct, one agent's health).
struct AgentsList: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "agents", abstract: "List the agents: liveness, host_id, lockspaces, active LVs.")

    @OptionGroup var global: GlobalOptions

    func run() async throws {
        try await runCommand(global) { s throws(CLIError) in
            if let host = global.direct {
                let (raw, h) = try await s.agent(host, .health, NoArguments(), as: AgentHealth.self)
                return (
                    raw,
                    table(
                        ["HOST", "HOST_ID", "READY", "LOCKSPACES", "ACTIVE_LVS", "VERSION"],
                        [[h.host, String(h.host_id), h.ready ? "yes" : "no", lockspaces(h.vgs), String(h.active_lvs.count), h.version]])
                )
            }
            let (raw, r) = try await s.controller(.listAgents, ListAgentsRequest(), as: ListAgentsResult.self)
            var out =
                r.agents.isEmpty
                ? "No agent has announced itself to the controller yet.\n"
                : table(
                    ["HOST", "STATUS", "HOST_ID", "LAST_SEEN", "READY", "LOCKSPACES", "ACTIVE_LVS", "VERSION"],
                    r.agents.map { a in
                        [
                            a.host, a.status.rawValue, (a.host_id.map(String.init) ?? "-") + (a.host_id_conflict ? " (CONFLICT)" : ""),
                            "\(a.last_seen_seconds_ago)s ago", a.ready ? "yes" : "no", lockspaces(a.vgs),
                            String(a.active_lvs.count), a.version ?? "-",
                        ]
                    })
            for a in r.agents {
                for (vg, entry) in a.vgs.sorted(by: { $0.key < $1.key }) where entry.lockspace == .lost || entry.fenced != nil {
                    let fenced = entry.fenced.map { " (I/O fenced\($0.complete ? "" : " PARTIALLY"))" } ?? ""
                    out +=
                        "WARNING: host \(a.host) lost the sanlock lockspace of VG \(vg)\(fenced): run aosctl recover --host \(a.host) --vg \(vg)\n"
                }
            }
            for c in r.host_id_conflicts {
                out +=
                    "WARNING: hosts \(c.hosts.joined(separator: ", ")) all use sanlock host_id \(c.host_id): give each a unique host_id in /etc/lvm/lvmlocal.conf\n"
            }
            return (raw, out)
        }
    }
}

/// `{vg: {lockspace}}` → "vg0=started".
func lockspaces(_ vgs: [String: VGHealth]) -> String {
    vgs.isEmpty ? "-" : vgs.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value.lockspace.rawValue)" }.joined(separator: ",")
}
