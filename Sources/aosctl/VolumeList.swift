import ArgumentParser
import RPCWire

/// `aosctl volume list`: every volume of the VG with its size and activations.
struct VolumeList: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "list", abstract: "List the volumes of the volume group.")

    @Option(help: "Volume group (default: the only one the agents serve).") var vg: String?
    @OptionGroup var global: GlobalOptions

    func run() async throws {
        try await runCommand(global) { s throws(CLIError) in
            if let host = global.direct {
                let vg = try await s.directVG(host, vg)
                let r = try await s.agent(host, "list_lvs", ["vg": .string(vg)])
                let lvs = r["lvs"]?.arrayValue ?? []
                return (r, lvs.isEmpty ? "No volumes in \(vg).\n" : table(["NAME", "SIZE", "ACTIVE_ON_\(host.uppercased())", "MODE"], lvs.map {
                    [text($0["name"]), humanSize($0["size_bytes"]), text($0["active"]), text($0["mode"])]
                }))
            }
            var args: [String: JSONValue] = [:]
            if let vg { args["vg"] = .string(vg) }
            let r = try await s.controller("list_volumes", args)
            let vols = r["volumes"]?.arrayValue ?? []
            return (r, vols.isEmpty ? "No volumes in \(text(r["vg"])).\n" : table(["NAME", "SIZE", "ACTIVE_ON"], vols.map {
                [text($0["name"]), humanSize($0["size_bytes"]), activeOnText($0["active_on"])]
            }))
        }
    }
}
