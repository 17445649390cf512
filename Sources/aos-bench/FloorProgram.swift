import ArgumentParser
import Foundation
import RPCWire

/// bench/rpc_floor.c: found, compiled (cc + pkg-config, argv only) and run; `reliable` runs its
/// `--reliable` mode (publisher confirms, mandatory publishes, manual ack of requests: what the
/// Swift RPC path does), whose server must be started with `--reliable` too.
enum FloorProgram {
    static func ensure(next dir: URL, source: String?) throws -> URL {
        let fm = FileManager.default
        var candidates: [URL] = []
        if let source { candidates.append(URL(fileURLWithPath: source)) }
        var up = dir
        for _ in 0..<4 {
            candidates.append(up.appendingPathComponent("bench/rpc_floor.c"))
            up = up.deletingLastPathComponent()
        }
        candidates.append(URL(fileURLWithPath: fm.currentDirectoryPath).appendingPathComponent("bench/rpc_floor.c"))
        guard let src = candidates.first(where: { fm.fileExists(atPath: $0.path) }) else {
            throw ValidationError("bench/rpc_floor.c not found (pass --floor-source or --no-floor)")
        }
        var binary = dir.appendingPathComponent("rpc_floor")
        if !fm.isWritableFile(atPath: dir.path) {
            // A fresh directory of our own (not a guessable name in /tmp); compiled again each run.
            let own = fm.temporaryDirectory.appendingPathComponent("aos-bench-\(makeUUIDHex())")
            try fm.createDirectory(at: own, withIntermediateDirectories: false, attributes: [.posixPermissions: 0o700])
            binary = own.appendingPathComponent("rpc_floor")
        }
        func mtime(_ u: URL) -> Date? { (try? fm.attributesOfItem(atPath: u.path))?[.modificationDate] as? Date }
        if let b = mtime(binary), let s = mtime(src), b >= s { return binary }
        let flags = try capture("pkg-config", ["--cflags", "--libs", "librabbitmq"])
            .split(whereSeparator: { $0 == " " || $0 == "\n" || $0 == "\t" }).map(String.init)
        _ = try capture("cc", ["-O2", "-o", binary.path, src.path] + flags)
        FileHandle.standardError.write(Data("aos-bench: compiled \(src.path) into \(binary.path)\n".utf8))
        return binary
    }

    static func runClient(
        _ binary: URL, url: String, queue: String, calls: Int, warmup: Int, throughputCalls: Int,
        inFlight: Int, bodyBytes: Int, serverPID: Int32? = nil, brokerPID: Int32? = nil, reliable: Bool = false
    ) throws -> RPCBench.Figures {
        let out = try capture(
            binary.path,
            [
                "client", url, queue, String(calls), String(warmup), String(throughputCalls),
                String(inFlight), String(bodyBytes), String(serverPID ?? 0), String(brokerPID ?? 0),
            ] + (reliable ? ["--reliable"] : []), direct: true)
        guard let line = out.split(separator: "\n").first(where: { $0.hasPrefix("FLOOR ") }) else {
            throw ValidationError("rpc_floor printed no FLOOR line: \(out)")
        }
        var v: [String: Double] = [:]
        for field in line.split(separator: " ").dropFirst() {
            let kv = field.split(separator: "=", maxSplits: 1)
            if kv.count == 2 { v[String(kv[0])] = Double(kv[1]) }
        }
        guard let m = v["median_ms"], let p = v["p99_ms"], let t = v["throughput"] else {
            throw ValidationError("rpc_floor: unreadable line \(line)")
        }
        func cpu(_ key: String) -> Double? { v[key].flatMap { $0 >= 0 ? $0 : nil } }
        func perProcess(_ key: (String) -> String) -> RPCBench.PerProcess {
            RPCBench.PerProcess(
                clientSeq: cpu(key("client_seq")), serverSeq: cpu(key("server_seq")), brokerSeq: cpu(key("broker_seq")),
                clientTput: cpu(key("client_tput")), serverTput: cpu(key("server_tput")), brokerTput: cpu(key("broker_tput")))
        }
        let perCall = RPCBench.CPUPerCall(time: perProcess { "cpu_\($0)_us" }, wakeups: perProcess { "wake_\($0)" })
        return RPCBench.Figures(median: m, p99: p, throughput: t, cpu: perCall)
    }

    /// Runs a program (looked up in PATH unless `direct`), returns its stdout; fails on a non-zero exit.
    static func capture(_ program: String, _ args: [String], direct: Bool = false) throws -> String {
        let p = Process()
        if direct {
            p.executableURL = URL(fileURLWithPath: program)
            p.arguments = args
        } else {
            p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
            p.arguments = [program] + args
        }
        let out = Pipe()
        p.standardOutput = out
        try p.run()
        let data = out.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        guard p.terminationStatus == 0 else {
            throw ValidationError("\(program) failed with status \(p.terminationStatus)")
        }
        return String(decoding: data, as: UTF8.self)
    }
}
