import ArgumentParser
import RPCWire

/// `aosctl volume extend NAME --size SIZE`: grow a volume; every host where it is active sees the new size.
struct VolumeExtend: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "extend", abstract: "Grow a volume to a new size.")

    @Argument(help: "Volume (LV) name.") var name: String
    @Option(help: "New total size: 20G, 1T, …; a plain number means GiB.") var size: String
    @Option(help: "Volume group (default: the only one the agents serve).") var vg: String?
    @OptionGroup var global: GlobalOptions

    func validate() throws {
        guard parseSize(size) != nil else { throw ValidationError("--size '\(size)' is not a size like 20G, 512M or 4096B") }
    }

    func run() async throws {
        let bytes = parseSize(size)!
        try await runCommand(global) { s throws(CLIError) in
            let r = try await s.volumeCall(direct: global.direct, agentMethod: "extend_lv", controllerMethod: "extend_volume",
                                           vg: vg, ["name": .string(name), "size_bytes": .int(bytes)])
            let what = "\(text(r["vg"]))/\(name)"
            if r["changed"]?.boolValue == false { return (r, "Volume \(what) is already \(humanSize(r["size_bytes"])); nothing changed.") }
            var out = "Extended volume \(what) to \(humanSize(r["size_bytes"])) on \(text(r["host"]))."
            let refreshed = (r["refreshed_hosts"]?.arrayValue ?? []).compactMap(\.stringValue)
            if !refreshed.isEmpty { out += " Refreshed on: \(refreshed.joined(separator: ", "))." }
            return (r, out)
        }
    }
}
