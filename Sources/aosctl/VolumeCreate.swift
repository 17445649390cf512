import ArgumentParser
import RPCWire

/// `aosctl volume create NAME --size SIZE`: a new LV, left inactive on every host.
struct VolumeCreate: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "create", abstract: "Create a volume (inactive everywhere).")

    @OptionGroup var volume: SizedVolumeOptions

    func run() async throws {
        let name = volume.name
        try await volume.run(agentMethod: "create_lv", controllerMethod: "create_volume") { r in
            let what = "\(text(r["vg"]))/\(name) (\(humanSize(r["size_bytes"])))"
            return r["changed"]?.boolValue == false
                ? "Volume \(what) already exists with that size; nothing changed."
                : "Created volume \(what) on \(text(r["host"])); it is inactive on every host."
        }
    }
}
