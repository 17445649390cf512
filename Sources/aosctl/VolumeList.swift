import AOSAPI
import ArgumentParser
import RPCWire

/// `aosctl volume list`: every volume of the VG with its size and activations.
struct VolumeList: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "list", abstract: "List the volumes of the volume group.")

    @OptionGroup var options: VGOptions

    func run() async throws {
        try await options.run(
            direct: { s, host, vg throws(CLIError) in
                let (raw, r) = try await s.agent(host, .listLVs, ListLVsRequest(vg: vg), as: ListLVsResult.self)
                return (
                    raw,
                    r.lvs.isEmpty
                        ? "No volumes in \(vg).\n"
                        : table(
                            ["NAME", "SIZE", "ACTIVE_ON_\(host.uppercased())", "MODE"],
                            r.lvs.map {
                                [$0.name, humanSize($0.size_bytes), $0.active ? "yes" : "no", $0.mode?.rawValue ?? "-"]
                            })
                )
            },
            controller: { s throws(CLIError) in
                let (raw, r) = try await s.controller(.listVolumes, ListVolumesRequest(vg: options.vg), as: ListVolumesResult.self)
                return (
                    raw,
                    r.volumes.isEmpty
                        ? "No volumes in \(r.vg).\n"
                        : table(
                            ["NAME", "SIZE", "ACTIVE_ON"],
                            r.volumes.map {
                                [$0.name, humanSize($0.size_bytes), activeOnText($0.active_on)]
                            })
                )
            })
    }
}
