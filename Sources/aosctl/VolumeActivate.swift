import ArgumentParser
import RPCWire

/// `aosctl volume activate NAME --host H --exclusive|--shared`.
struct VolumeActivate: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "activate", abstract: "Activate a volume on a host, exclusive or shared.")

    enum Mode: String, EnumerableFlag { case exclusive, shared }

    @OptionGroup var volume: HostVolumeOptions
    @Flag(help: "Lock mode: --exclusive (one host) or --shared (multi-attach).") var mode: Mode = .exclusive

    func run() async throws {
        let (name, target) = (volume.name, volume.target)
        try await runCommand(volume.global) { s throws(CLIError) in
            let r = try await s.volumeCall(
                direct: volume.global.direct, agentMethod: "activate_lv", controllerMethod: "activate_volume",
                vg: volume.vg, host: target, ["name": .string(name), "mode": .string(mode.rawValue)])
            let what = "\(text(r["vg"]))/\(name)"
            let out =
                r["changed"]?.boolValue == false
                ? "Volume \(what) was already active (\(mode.rawValue)) on \(target)."
                : "Activated volume \(what) on \(target) (\(mode.rawValue))."
            return (r, out + activeOnSuffix(r))
        }
    }
}
