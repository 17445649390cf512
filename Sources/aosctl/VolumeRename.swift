import ArgumentParser
import RPCWire

/// `aosctl volume rename NAME NEW_NAME`: rename a volume that is active nowhere (what Cinder's
/// manage does to an LV made outside Cinder).
struct VolumeRename: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "rename", abstract: "Rename a volume (it must be inactive everywhere; both names in the agents' lv_name_pattern).")

    @Argument(help: "Volume (LV) name.") var name: String
    @Argument(help: "The new name.") var newName: String
    @Option(help: "Volume group (default: the only one the agents serve).") var vg: String?
    @OptionGroup var global: GlobalOptions

    func run() async throws {
        try await runCommand(global) { s throws(CLIError) in
            let r = try await s.volumeCall(
                direct: global.direct, agentMethod: "rename_lv", controllerMethod: "rename_volume", vg: vg,
                ["name": .string(name), "new_name": .string(newName)])
            let vg = text(r["vg"])
            if r["changed"]?.boolValue == false {
                return (r, "Volume \(vg)/\(newName) exists and \(vg)/\(name) does not: renamed before; nothing to do.")
            }
            return (r, "Renamed volume \(vg)/\(name) to \(vg)/\(newName) (on \(text(r["host"]))).")
        }
    }
}
