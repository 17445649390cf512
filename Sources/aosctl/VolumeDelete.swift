import ArgumentParser
import RPCWire

/// `aosctl volume delete NAME`: remove a volume that is active nowhere.
struct VolumeDelete: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "delete", abstract: "Delete a volume (it must be inactive everywhere).")

    @Argument(help: "Volume (LV) name.") var name: String
    @Option(help: "Volume group (default: the only one the agents serve).") var vg: String?
    @Option(help: "Wipe before removing: none, zero or shred (default: the agent's [agent] volume_clear).") var volumeClear: String?
    @Option(help: "MiB to wipe at the start (0: all; default: the agent's volume_clear_size).") var volumeClearSizeMb: Int?
    @OptionGroup var global: GlobalOptions

    func validate() throws {
        if let c = volumeClear, !["none", "zero", "shred"].contains(c) {
            throw ValidationError("--volume-clear must be none, zero or shred")
        }
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
            if r["changed"]?.boolValue == false { return (r, "Volume \(what) does not exist; nothing to delete.") }
            var out = "Deleted volume \(what) (on \(text(r["host"])))."
            if let job = r["job"]?["id"]?.stringValue {
                out +=
                    " Its data is being wiped by job \(job) (\(text(r["job"]?["target"]))); the space is free once it is done: aosctl jobs wait \(job)"
            }
            return (r, out)
        }
    }
}
