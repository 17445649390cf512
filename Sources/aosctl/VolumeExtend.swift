import ArgumentParser
import RPCWire

/// `aosctl volume extend NAME --size SIZE`: grow a volume; every host where it is active sees the new size.
struct VolumeExtend: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "extend", abstract: "Grow a volume to a new size.")

    @OptionGroup var volume: SizedVolumeOptions

    func run() async throws {
        let name = volume.name
        try await runCommand(volume.global) { s throws(CLIError) in
            let r = try await s.volumeCall(direct: volume.global.direct, agentMethod: "extend_lv", controllerMethod: "extend_volume",
                                           vg: volume.vg, ["name": .string(name), "size_bytes": .int(volume.bytes)])
            let what = "\(text(r["vg"]))/\(name)"
            if r["changed"]?.boolValue == false { return (r, "Volume \(what) is already \(humanSize(r["size_bytes"])); nothing changed.") }
            var out = "Extended volume \(what) to \(humanSize(r["size_bytes"])) on \(text(r["host"]))."
            let refreshed = (r["refreshed_hosts"]?.arrayValue ?? []).compactMap(\.stringValue)
            if !refreshed.isEmpty { out += " Refreshed on: \(refreshed.joined(separator: ", "))." }
            return (r, out)
        }
    }
}
