import ArgumentParser
import RPCWire

/// `aosctl volume deactivate NAME --host H`.
struct VolumeDeactivate: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "deactivate", abstract: "Deactivate a volume on a host (releases its lock).")

    @Argument(help: "Volume (LV) name.") var name: String
    @Option(help: "Host whose agent deactivates it (with --direct: that host).") var host: String?
    @Option(help: "Volume group (default: the only one the agents serve).") var vg: String?
    @OptionGroup var global: GlobalOptions

    func validate() throws {
        if host == nil && global.direct == nil { throw ValidationError("missing --host HOST") }
        if let h = host, let d = global.direct, h != d { throw ValidationError("--host \(h) and --direct \(d) name different hosts") }
    }

    func run() async throws {
        let target = host ?? global.direct!
        try await runCommand(global) { s throws(CLIError) in
            let r = try await s.volumeCall(direct: global.direct, agentMethod: "deactivate_lv",
                                           controllerMethod: "deactivate_volume", vg: vg, host: target, ["name": .string(name)])
            let what = "\(text(r["vg"]))/\(name)"
            var out = r["changed"]?.boolValue == false ? "Volume \(what) was not active on \(target)."
                : "Deactivated volume \(what) on \(target)."
            if r["active_on"] != nil { out += " Active on: \(activeOnText(r["active_on"]))." }
            return (r, out)
        }
    }
}
