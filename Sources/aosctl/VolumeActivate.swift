import ArgumentParser
import RPCWire

/// `aosctl volume activate NAME --host H --exclusive|--shared`.
struct VolumeActivate: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "activate", abstract: "Activate a volume on a host, exclusive or shared.")

    enum Mode: String, EnumerableFlag { case exclusive, shared }

    @Argument(help: "Volume (LV) name.") var name: String
    @Option(help: "Host whose agent activates it (with --direct: that host).") var host: String?
    @Flag(help: "Lock mode: --exclusive (one host) or --shared (multi-attach).") var mode: Mode = .exclusive
    @Option(help: "Volume group (default: the only one the agents serve).") var vg: String?
    @OptionGroup var global: GlobalOptions

    func validate() throws {
        if host == nil && global.direct == nil { throw ValidationError("missing --host HOST") }
        if let h = host, let d = global.direct, h != d { throw ValidationError("--host \(h) and --direct \(d) name different hosts") }
    }

    func run() async throws {
        let target = host ?? global.direct!
        try await runCommand(global) { s throws(CLIError) in
            let r = try await s.volumeCall(direct: global.direct, agentMethod: "activate_lv", controllerMethod: "activate_volume",
                                           vg: vg, host: target, ["name": .string(name), "mode": .string(mode.rawValue)])
            let what = "\(text(r["vg"]))/\(name)"
            var out = r["changed"]?.boolValue == false
                ? "Volume \(what) was already active (\(mode.rawValue)) on \(target)."
                : "Activated volume \(what) on \(target) (\(mode.rawValue))."
            if r["active_on"] != nil { out += " Active on: \(activeOnText(r["active_on"]))." }
            return (r, out)
        }
    }
}
