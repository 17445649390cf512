import ArgumentParser
import RPCWire

/// `aosctl pool stats`: capacity and per-host lockspace health (what the Cinder scheduler sees).
struct PoolStats: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "stats", abstract: "Capacity, LV count and lockspace health per host.")

    @Option(help: "Volume group (default: the only one the agents serve).") var vg: String?
    @OptionGroup var global: GlobalOptions

    func run() async throws {
        try await runCommand(global) { s throws(CLIError) in
            if let host = global.direct {
                let vg = try await s.directVG(host, vg)
                let r = try await s.agent(host, "vg_info", ["vg": .string(vg)])
                return (r, table(["VG", "SIZE", "FREE", "LVS", "LOCKSPACE_ON_\(host.uppercased())"],
                                 [[vg, humanSize(r["size_bytes"]), humanSize(r["free_bytes"]), text(r["lv_count"]), text(r["lockspace"])]]))
            }
            var args: [String: JSONValue] = [:]
            if let vg { args["vg"] = .string(vg) }
            let r = try await s.controller("pool_stats", args)
            var out = table(["VG", "SIZE", "FREE", "LVS", "ACTIVE_LVS", "AVAILABLE"],
                            [[text(r["vg"]), humanSize(r["total_bytes"]), humanSize(r["free_bytes"]), text(r["lv_count"]),
                              text(r["active_lv_count"]), text(r["available"])]])
            let hosts = r["hosts"]?.objectValue ?? [:]
            if !hosts.isEmpty {
                out += "\n" + table(["HOST", "STATUS", "LOCKSPACE"], hosts.keys.sorted().map {
                    [$0, text(hosts[$0]?["status"]), text(hosts[$0]?["lockspace"])]
                })
            }
            for h in hosts.keys.sorted() { if let hint = hosts[h]?["hint"]?.stringValue { out += "WARNING: \(h): lockspace lost; \(hint)\n" } }
            if let e = r["error"] { out += "\nNot available: \(text(e["message"]))\n" }
            return (r, out)
        }
    }
}
