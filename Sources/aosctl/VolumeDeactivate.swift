import ArgumentParser
import RPCWire

/// `aosctl volume deactivate NAME --host H`.
struct VolumeDeactivate: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "deactivate", abstract: "Deactivate a volume on a host (releases its lock).")

    @OptionGroup var volume: HostVolumeOptions

    func run() async throws {
        let (name, target) = (volume.name, volume.target)
        try await runCommand(volume.global) { s throws(CLIError) in
            let r = try await s.volumeCall(
                direct: volume.global.direct, agentMethod: "deactivate_lv",
                controllerMethod: "deactivate_volume", vg: volume.vg, host: target, ["name": .string(name)])
            let what = "\(text(r["vg"]))/\(name)"
            let out: String
            if r["released"]?.boolValue == true {
                // The host's agent was down: nothing ran there. Say so, or an operator
                // evacuating at 3 a.m. believes the host itself let go of the LV.
                out =
                    "Released volume \(what) from \(target) (its agent is down; recorded by "
                    + "\(text(r["released_by"]))): \(target)'s agent drops the activation when it returns."
            } else if r["changed"]?.boolValue == false {
                out = "Volume \(what) was not active on \(target)."
            } else {
                out = "Deactivated volume \(what) on \(target)."
            }
            return (r, out + activeOnSuffix(r))
        }
    }
}
