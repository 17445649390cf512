import ArgumentParser
import RPCWire

/// `aosctl volume show NAME`: size and where the volume is active, in which mode.
struct VolumeShow: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "show", abstract: "Show a volume: size, where it is active and how.")

    @Argument(help: "Volume (LV) name.") var name: String
    @Option(help: "Volume group (default: the only one the agents serve).") var vg: String?
    @OptionGroup var global: GlobalOptions

    func run() async throws {
        try await runCommand(global) { s throws(CLIError) in
            let r: JSONValue
            if let host = global.direct {
                let vg = try await s.directVG(host, vg)
                r = try await s.agent(host, "lv_info", ["vg": .string(vg), "name": .string(name)])
                return (
                    r,
                    table(
                        ["FIELD", "VALUE"],
                        [
                            ["volume", "\(text(r["vg"]))/\(text(r["name"]))"], ["size", humanSize(r["size_bytes"])],
                            ["active on \(host)", text(r["active"])], ["mode on \(host)", text(r["mode"])],
                            ["device", text(r["device_path"])], ["uuid", text(r["uuid"])],
                        ])
                )
            }
            var args: [String: JSONValue] = ["name": .string(name)]
            if let vg { args["vg"] = .string(vg) }
            r = try await s.controller("get_volume", args)
            return (
                r,
                table(
                    ["FIELD", "VALUE"],
                    [
                        ["volume", "\(text(r["vg"]))/\(text(r["name"]))"],
                        ["size", "\(humanSize(r["size_bytes"])) (\(text(r["size_bytes"])) bytes)"],
                        ["active on", activeOnText(r["active_on"])], ["uuid", text(r["uuid"])],
                    ])
            )
        }
    }
}
