import AOSAPI
import ArgumentParser
import RPCWire

// What several commands share: their options, and typed calls to the controller.

/// `--vg` and the global options: a command about one VG, answered by the controller or (with
/// --direct) by one agent.
struct VGOptions: ParsableArguments {
    @Option(help: "Volume group (default: the only one the agents serve).") var vg: String?
    @OptionGroup var global: GlobalOptions

    /// Runs the command: with --direct, `direct` on that host's agent with the VG to use (the
    /// given one or the only one it serves), otherwise `controller`.
    func run(
        direct: (Session, _ host: String, _ vg: String) async throws(CLIError) -> (JSONValue, String),
        controller: (Session) async throws(CLIError) -> (JSONValue, String)
    ) async throws {
        try await runCommand(global) { s throws(CLIError) in
            if let host = global.direct { return try await direct(s, host, s.directVG(host, vg)) }
            return try await controller(s)
        }
    }
}

/// A volume on one host: the name, `--host` (or the --direct host), `--vg` and the global options.
struct HostVolumeOptions: ParsableArguments {
    @Argument(help: "Volume (LV) name.") var name: String
    @Option(help: "Host whose agent does it (with --direct: that host).") var host: String?
    @Option(help: "Volume group (default: the only one the agents serve).") var vg: String?
    @OptionGroup var global: GlobalOptions

    func validate() throws {
        if host == nil && global.direct == nil { throw ValidationError("missing --host HOST") }
        if let h = host, let d = global.direct, h != d { throw ValidationError("--host \(h) and --direct \(d) name different hosts") }
    }

    /// The host that acts (validated: one of --host and --direct is given).
    var target: String { host ?? global.direct ?? "" }
}

/// A volume and a size: the name, `--size`, `--vg` and the global options.
struct SizedVolumeOptions: ParsableArguments {
    @Argument(help: "Volume (LV) name, e.g. volume-<uuid>.") var name: String
    @Option(help: "Size (for extend: the new total size): 10G, 512M, 1T, 4096B; a plain number means GiB.") var size: String
    @Option(help: "Volume group (default: the only one the agents serve).") var vg: String?
    @OptionGroup var global: GlobalOptions

    func validate() throws {
        guard parseSize(size) != nil else { throw ValidationError("--size '\(size)' is not a size like 10G, 512M or 4096B") }
    }

    /// The size in bytes (validated).
    var bytes: Int64 { parseSize(size) ?? 0 }

    /// Runs `agentMethod` on the --direct host or `controllerMethod` on the controller with the
    /// name and the size in bytes; `describe` turns the result into the human text.
    func run(agentMethod: String, controllerMethod: String, describe: @escaping (JSONValue) -> String) async throws {
        try await runCommand(global) { s throws(CLIError) in
            let r = try await s.volumeCall(
                direct: global.direct, agentMethod: agentMethod, controllerMethod: controllerMethod,
                vg: vg, ["name": .string(name), "size_bytes": .int(bytes)])
            return (r, describe(r))
        }
    }
}

extension Session {
    /// Calls the controller with a typed request and decodes its result. The raw result is
    /// returned too: `--json` prints it as received, so nothing a newer controller adds is lost.
    func controller<R: Decodable>(
        _ method: ControllerMethod, _ request: some Encodable,
        as type: R.Type
    ) async throws(CLIError) -> (raw: JSONValue, result: R) {
        let args: JSONValue
        do { args = try request.wireValue() } catch { throw CLIError(error) }
        let raw = try await controller(method.rawValue, args.objectValue ?? [:])
        return (raw, try decode(R.self, raw, from: "the controller"))
    }

    /// Calls `host`'s agent with a typed request and decodes its result (raw result as above).
    func agent<R: Decodable>(
        _ host: String, _ method: AgentMethod, _ request: some Encodable,
        as type: R.Type
    ) async throws(CLIError) -> (raw: JSONValue, result: R) {
        let args: JSONValue
        do { args = try request.wireValue() } catch { throw CLIError(error) }
        let raw = try await agent(host, method.rawValue, args.objectValue ?? [:])
        return (raw, try decode(R.self, raw, from: "the agent on \(host)"))
    }

    /// A server's result as a typed value; keys this build does not know are ignored.
    func decode<R: Decodable>(_ type: R.Type, _ raw: JSONValue, from what: String) throws(CLIError) -> R {
        do {
            return try JSONValueDecoder().decode(R.self, from: raw, rejectUnknownKeys: false)
        } catch {
            throw CLIError(.other, "unexpected reply from \(what): \(error)")
        }
    }
}
