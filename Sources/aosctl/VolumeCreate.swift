import ArgumentParser
import RPCWire

/// `aosctl volume create NAME --size SIZE`: a new LV, left inactive on every host.
struct VolumeCreate: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "create", abstract: "Create a volume (inactive everywhere).")

    @Argument(help: "Volume (LV) name, e.g. volume-<uuid>.") var name: String
    @Option(help: "Size: 10G, 512M, 1T, 4096B; a plain number means GiB.") var size: String
    @Option(help: "Volume group (default: the only one the agents serve).") var vg: String?
    @OptionGroup var global: GlobalOptions

    func validate() throws {
        guard parseSize(size) != nil else { throw ValidationError("--size '\(size)' is not a size like 10G, 512M or 4096B") }
    }

    func run() async throws {
        let bytes = parseSize(size)!
        try await runCommand(global) { s throws(CLIError) in
            let r = try await s.volumeCall(direct: global.direct, agentMethod: "create_lv", controllerMethod: "create_volume",
                                           vg: vg, ["name": .string(name), "size_bytes": .int(bytes)])
            let what = "\(text(r["vg"]))/\(name) (\(humanSize(r["size_bytes"])))"
            return (r, r["changed"]?.boolValue == false
                ? "Volume \(what) already exists with that size; nothing changed."
                : "Created volume \(what) on \(text(r["host"])); it is inactive on every host.")
        }
    }
}
