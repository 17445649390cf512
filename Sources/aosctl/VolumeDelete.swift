import ArgumentParser
import RPCWire

/// `aosctl volume delete NAME`: remove a volume that is active nowhere.
struct VolumeDelete: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "delete", abstract: "Delete a volume (it must be inactive everywhere).")

    @Argument(help: "Volume (LV) name.") var name: String
    @Option(help: "Volume group (default: the only one the agents serve).") var vg: String?
    @Option(help: "Wipe before removing: none or zero (default: the agent's [agent] volume_clear).") var volumeClear: String?
    @Option(help: "MiB to wipe at the start (0: all; default: the agent's volume_clear_size).") var volumeClearSizeMb: Int?
    @OptionGroup var global: GlobalOptions

    func validate() throws {
        if let c = volumeClear, !["none", "zero"].contains(c) { throw ValidationError("--volume-clear must be none or zero") }
        if let m = volumeClearSizeMb, m < 0 { throw ValidationError("--volume-clear-size-mb must be >= 0") }
    }

    func run() async throws {
        try await runCommand(global) { s throws(CLIError) in
            var args: [String: JSONValue] = ["name": .string(name)]
            if let volumeClear { args["volume_clear"] = .string(volumeClear) }
            if let volumeClearSizeMb { args["volume_clear_size_mb"] = .int(Int64(volumeClearSizeMb)) }
            let r = try await s.volumeCall(
                direct: global.direct, agentMethod: "delete_lv", controllerMethod: "delete_volume",
                vg: vg, args)
            let what = "\(text(r["vg"]))/\(name)"
            return (
                r,
                r["changed"]?.boolValue == false
                    ? "Volume \(what) does not exist; nothing to delete."
                    : "Deleted volume \(what) (on \(text(r["host"])))."
            )
        }
    }
}
