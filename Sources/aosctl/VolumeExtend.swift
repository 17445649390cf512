import ArgumentParser
import RPCWire

/// `aosctl volume extend NAME --size SIZE`: grow a volume; every host where it is active sees the new size.
struct VolumeExtend: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "extend", abstract: "Grow a volume to a new size.")

    @OptionGroup var volume: SizedVolumeOptions

    func run() async throws {
        let name = volume.name
        try await volume.run(agentMethod: "extend_lv", controllerMethod: "extend_volume") { r in
            let what = "\(text(r["vg"]))/\(name)"
            if r["changed"]?.boolValue == false { return "Volume \(what) is already \(humanSize(r["size_bytes"])); nothing changed." }
            let refreshed = (r["refreshed_hosts"]?.arrayValue ?? []).compactMap(\.stringValue)
            return "Extended volume \(what) to \(humanSize(r["size_bytes"])) on \(text(r["host"]))."
                + (refreshed.isEmpty ? "" : " Refreshed on: \(refreshed.joined(separator: ", ")).")
        }
    }
}
