import AOSAPI
import ArgumentParser
import RPCWire

/// `aosctl pool stats`: capacity and per-host lockspace health (what the Cinder scheduler sees).
struct PoolStats: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "stats", abstract: "Capacity, LV count and lockspace health per host.")

    @OptionGroup var options: VGOptions

    func run() async throws {
        try await options.run(
            direct: { s, host, vg throws(CLIError) in
                let (raw, r) = try await s.agent(host, .vgInfo, VGInfoRequest(vg: vg), as: VGInfo.self)
                return (
                    raw,
                    table(
                        ["VG", "SIZE", "FREE", "WIPING", "LVS", "LOCKSPACE_ON_\(host.uppercased())", "VOLUME_CLEAR"],
                        [
                            [
                                vg, humanSize(r.size_bytes), humanSize(r.free_bytes), wipingText(r.wiping_bytes, r.wiping_lv_count),
                                String(r.lv_count), r.lockspace.rawValue, r.volume_clear.rawValue,
                            ]
                        ])
                )
            },
            controller: { s throws(CLIError) in
                let (raw, r) = try await s.controller(.poolStats, PoolStatsRequest(vg: options.vg), as: PoolStatsResult.self)
                var out = table(
                    ["VG", "SIZE", "FREE", "WIPING", "LVS", "ACTIVE_LVS", "AVAILABLE"],
                    [
                        [
                            r.vg, humanSize(r.total_bytes), humanSize(r.free_bytes), wipingText(r.wiping_bytes, r.wiping_lv_count),
                            String(r.lv_count), String(r.active_lv_count), r.available ? "yes" : "no",
                        ]
                    ])
                let hosts = r.hosts.sorted { $0.key < $1.key }
                if !hosts.isEmpty {
                    out +=
                        "\n"
                        + table(["HOST", "STATUS", "LOCKSPACE"], hosts.map { [$0.key, $0.value.status.rawValue, $0.value.lockspace] })
                }
                for (h, entry) in hosts { if let hint = entry.hint { out += "WARNING: \(h): lockspace lost; \(hint)\n" } }
                for w in r.warnings { out += "WARNING: \(w)\n" }
                if let e = r.error { out += "\nNot available: \(e.message)\n" }
                return (raw, out)
            })
    }
}

/// "-" or "2 GiB (3 LVs)": deleted volumes waiting for their wipe (used, not yet free).
func wipingText(_ bytes: Int64, _ lvs: Int64) -> String {
    lvs == 0 && bytes == 0 ? "-" : "\(humanSize(bytes)) (\(lvs) LV\(lvs == 1 ? "" : "s"))"
}
