import ArgumentParser
import RPCWire

/// `aosctl locks --host H`: the sanlock lockspaces and LV locks held on one host.
struct LocksShow: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "locks", abstract: "Show sanlock's lockspaces and LV locks on a host.")

    @Option(help: "Host to ask (with --direct: that host).") var host: String?
    @OptionGroup var global: GlobalOptions

    func validate() throws {
        if host == nil && global.direct == nil { throw ValidationError("missing --host HOST") }
    }

    func run() async throws {
        let target = host ?? global.direct!
        try await runCommand(global) { s throws(CLIError) in
            let r =
                global.direct != nil
                ? try await s.agent(target, "lock_status")
                : try await s.controller("lock_status", ["host": .string(target)])
            let spaces = r["lockspaces"]?.arrayValue ?? []
            let locks = r["locks"]?.arrayValue ?? []
            var out = "Host \(target) (host_id \(text(r["host_id"]))):\n"
            out +=
                spaces.isEmpty
                ? "No lockspace joined.\n"
                : table(
                    ["LOCKSPACE", "VG", "HOST_ID", "STATE"],
                    spaces.map {
                        [
                            text($0["name"]), text($0["vg"]), text($0["host_id"]),
                            text($0["transition"]) == "-" ? "joined" : text($0["transition"]),
                        ]
                    })
            out +=
                "\n"
                + (locks.isEmpty
                    ? "No LV locks held.\n"
                    : table(
                        ["VOLUME", "MODE", "LV_UUID"],
                        locks.map { l in
                            [
                                l["name"]?.stringValue.map { "\(text(l["vg"]))/\($0)" } ?? "(unknown LV)", text(l["mode"]),
                                text(l["lv_uuid"]),
                            ]
                        }))
            return (r, out)
        }
    }
}
