// Benchmark commands: numbers, not assertions (docs/performance.md).
//   aos-bench rpc --url amqp://guest:guest@127.0.0.1:5672/
// starts an `aos-rpc-peer serve` process next to this binary, measures its idle
// RSS, then sequential round trips (median, p99) and throughput with N in flight, alternated
// with the C floor (bench/rpc_floor.c) on the same broker.
//   aos-bench scale --url URL --agents 2000 --interval 10
// plays N agents announcing to an aos-controller next to this binary (ScaleBench below).
import AMQPClient
import AOSAPI
import AOSAuth
import ArgumentParser
import Foundation
import Logging
import OsloRPC
import RPCWire
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

@main
struct Bench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "aos-bench", abstract: "Benchmarks",
        subcommands: [RPCBench.self, WireBench.self, PublishBench.self, AdmissionBench.self, ScaleBench.self])
}

struct RPCBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "rpc", abstract: "RPC round-trip latency, throughput and server RSS, next to the C floor",
        discussion: """
            Starts `aos-rpc-peer serve` and, unless --no-floor, the C floor (bench/rpc_floor.c, \
            compiled next to this binary when missing): the same request/reply on bare \
            librabbitmq. The C and Swift runs alternate on the same broker, --rounds times, and \
            each round prints Swift/C ratios.
            """)
    @Option(help: "Transport URL of a broker to use") var url: String
    @Option(help: "Sequential calls to time") var calls = 5000
    @Option(help: "Warm-up calls") var warmup = 500
    @Option(help: "Calls in flight for the throughput run") var concurrency = 16
    @Option(help: "Calls for the throughput run") var throughputCalls = 20000
    @Option(help: "Seconds to let the server settle before reading its idle RSS") var settle = 3.0
    @Option(help: "Run the server with authorization: admit only this broker user (the URL's user)")
    var admitUser: String?
    @Flag(inversion: .prefixedNo, help: "Run the C floor (bench/rpc_floor.c) in the same run") var floor = true
    @Option(help: "C floor and Swift runs, alternated") var rounds = 2
    @Option(help: "bench/rpc_floor.c (default: found above this binary or in the current directory)")
    var floorSource: String?

    func run() async throws {
        LoggingSystem.bootstrap { label in
            var h = StreamLogHandler.standardError(label: label)
            h.logLevel = .warning
            return h
        }
        let tag = makeUUIDHex().prefix(8)
        let topic = "aos-bench-\(tag)"
        let here = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
        let server = try startChild(
            here.appendingPathComponent("aos-rpc-peer"),
            ["serve", "--url", url, "--topic", topic, "--log-level", "warning"]
                + (admitUser.map { ["--admit-user", $0] } ?? []))
        defer { server.terminate(); server.waitUntilExit() }
        // The floor's request body is as long as the Swift ping request, so both move the same bytes.
        let bodyBytes = RPCRequest(
            method: "ping", msgID: makeUUIDHex(), replyQueue: "reply_\(makeUUIDHex())",
            uniqueID: makeUUIDHex()
        ).encodeBody().count
        var floorServer: Process?
        var floorBinary: URL?
        let floorQueue = "aos-bench-floor-\(tag)"
        if floor {
            let binary = try FloorProgram.ensure(next: here, source: floorSource)
            floorBinary = binary
            floorServer = try startChild(binary, ["server", url, floorQueue])
        }
        defer { if let f = floorServer { f.terminate(); f.waitUntilExit() } }
        try await Task.sleep(for: .seconds(settle))
        let idleRSS = rssKB(pid: server.processIdentifier)

        let conn = AMQPConnection(
            configuration: try AMQPConfiguration(url: TransportURL(parsing: url)),
            logger: Logger(label: "bench"))
        let client = RPCClient(connection: conn, logger: Logger(label: "bench"))
        let target = RPCTarget(topic: topic)
        for _ in 0..<warmup { _ = try await client.call(target, method: "ping", timeout: .seconds(10)) }

        var rows: [(c: Figures?, swift: Figures)] = []
        for round in 1...max(1, rounds) {
            var c: Figures?
            if let floorBinary {
                c = try FloorProgram.runClient(
                    floorBinary, url: url, queue: floorQueue, calls: calls, warmup: warmup,
                    throughputCalls: throughputCalls, inFlight: concurrency, bodyBytes: bodyBytes)
            }
            let swift = try await measureSwift(client, target)
            rows.append((c, swift))
            print("round \(round):")
            if let c {
                print(
                    "  C floor (librabbitmq, \(bodyBytes)-byte body): median \(fmt(c.median)) ms, p99 \(fmt(c.p99)) ms, \(Int(c.throughput)) calls/s with \(concurrency) in flight"
                )
            }
            print(
                "  Swift RPCClient -> RPCServer:            median \(fmt(swift.median)) ms, p99 \(fmt(swift.p99)) ms, \(Int(swift.throughput)) calls/s with \(concurrency) in flight"
            )
            if let c {
                print(
                    "  Swift/C: median \(ratio(swift.median, c.median)), p99 \(ratio(swift.p99, c.p99)), throughput \(Int((swift.throughput / c.throughput * 100).rounded())) % of C"
                )
            }
        }
        let loadedRSS = rssKB(pid: server.processIdentifier)
        await conn.close()

        print(
            "sequential: \(calls) calls per run, \(warmup) warm-up; concurrent: \(throughputCalls / concurrency * concurrency) calls with \(concurrency) in flight"
        )
        print("server RSS: idle \(fmt(Double(idleRSS) / 1024)) MB, after load \(fmt(Double(loadedRSS) / 1024)) MB")
        if rows.count > 1, rows.allSatisfy({ $0.c != nil }) {
            let m = rows.map { $0.swift.median / $0.c!.median }, p = rows.map { $0.swift.p99 / $0.c!.p99 }
            let t = rows.map { $0.swift.throughput / $0.c!.throughput * 100 }
            print("Swift/C over \(rows.count) rounds: median \(fmtRange(m, "x")), p99 \(fmtRange(p, "x")), throughput \(fmtRange(t, " %"))")
        }
    }

    struct Figures {
        var median: Double
        var p99: Double
        var throughput: Double
    }

    func measureSwift(_ client: RPCClient, _ target: RPCTarget) async throws -> Figures {
        var samples: [Double] = []
        samples.reserveCapacity(calls)
        let clock = ContinuousClock()
        for _ in 0..<calls {
            let t = clock.now
            _ = try await client.call(target, method: "ping", timeout: .seconds(10))
            samples.append(ms(clock.now - t))
        }
        samples.sort()
        let median = samples[samples.count / 2]
        let p99 = samples[min(samples.count - 1, Int(Double(samples.count) * 0.99))]

        let perWorker = throughputCalls / concurrency
        let t0 = clock.now
        try await withThrowingTaskGroup(of: Void.self) { group in
            for _ in 0..<concurrency {
                group.addTask {
                    for _ in 0..<perWorker { _ = try await client.call(target, method: "ping", timeout: .seconds(30)) }
                }
            }
            try await group.waitForAll()
        }
        let elapsed = clock.now - t0
        return Figures(median: median, p99: p99, throughput: Double(perWorker * concurrency) / (ms(elapsed) / 1000))
    }

    func ratio(_ a: Double, _ b: Double) -> String { String(format: "%.2fx", a / b) }
    func fmtRange(_ v: [Double], _ unit: String) -> String {
        let f = unit == "x" ? "%.2f" : "%.0f"
        return String(format: f, v.min() ?? 0) + "–" + String(format: f, v.max() ?? 0) + unit
    }
}

/// Starts a child (argv only, no shell) and waits for its READY line on stdout.
func startChild(
    _ executable: URL, _ arguments: [String], environment: [String: String]? = nil,
    stderr: Pipe? = nil
) throws -> Process {
    let p = Process()
    p.executableURL = executable
    p.arguments = arguments
    if let environment { p.environment = environment }
    let out = Pipe()
    p.standardOutput = out
    if let stderr { p.standardError = stderr }
    try p.run()
    var buffer = Data()
    while !String(decoding: buffer, as: UTF8.self).contains("READY") {
        let chunk = out.fileHandleForReading.availableData
        if chunk.isEmpty {
            p.terminate()
            throw ValidationError("\(executable.lastPathComponent) exited before READY")
        }
        buffer.append(chunk)
    }
    return p
}

func ms(_ d: Duration) -> Double { Double(d.components.seconds) * 1000 + Double(d.components.attoseconds) / 1e15 }
func fmt(_ v: Double) -> String { String(format: "%.3f", v) }

func rssKB(pid: Int32, field: String = "VmRSS:") -> Int {
    guard let s = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8) else { return -1 }
    for line in s.split(separator: "\n") where line.hasPrefix(field) {
        let parts = line.split(separator: " ", omittingEmptySubsequences: true)
        return parts.count > 1 ? Int(parts[1]) ?? -1 : -1
    }
    return -1
}

/// bench/rpc_floor.c: found, compiled (cc + pkg-config, argv only) and run.
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
        inFlight: Int, bodyBytes: Int
    ) throws -> RPCBench.Figures {
        let out = try capture(
            binary.path,
            [
                "client", url, queue, String(calls), String(warmup), String(throughputCalls),
                String(inFlight), String(bodyBytes),
            ], direct: true)
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
        return RPCBench.Figures(median: m, p99: p, throughput: t)
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

struct WireBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "wire", abstract: "Encode/decode cost of oslo messages")
    @Option var iterations = 20000

    func run() async throws {
        let req = RPCRequest(
            method: "activate_lv", args: ["vg": "vol", "name": "volume-0d6c493f-697f-48d5-a2dd-8d7aa2c5542c", "mode": "exclusive"],
            msgID: makeUUIDHex(), replyQueue: "reply_\(makeUUIDHex())", uniqueID: makeUUIDHex(),
            context: ["request_id": "req-1", "user_id": "u1"])
        let body = req.encodeBody()
        let clock = ContinuousClock()
        var t = clock.now
        for _ in 0..<iterations { _ = req.encodeBody() }
        let enc = clock.now - t
        t = clock.now
        for _ in 0..<iterations { _ = try RPCRequest.decode(body: body, contentType: "application/json") }
        let dec = clock.now - t
        print("request body \(body.count) bytes: encode \(us(enc / iterations)) us, decode \(us(dec / iterations)) us")
    }
    func us(_ d: Duration) -> String {
        String(format: "%.1f", Double(d.components.attoseconds) / 1e12 + Double(d.components.seconds) * 1e6)
    }
}

struct PublishBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "publish", abstract: "Publish + confirm round trip to the broker")
    @Option var url: String
    @Option var count = 5000

    func run() async throws {
        let conn = AMQPConnection(configuration: try AMQPConfiguration(url: TransportURL(parsing: url)), logger: Logger(label: "bench"))
        let q = "aos-bench-\(makeUUIDHex().prefix(8))"
        try await conn.declare(queue: QueueDeclaration(name: q, autoDelete: true, arguments: ["x-max-length": .int(10)]))
        var samples: [Double] = []
        let clock = ContinuousClock()
        for _ in 0..<count {
            let t = clock.now
            try await conn.publish(Array("x".utf8), exchange: "", routingKey: q)
            let d = clock.now - t
            samples.append(Double(d.components.attoseconds) / 1e15 + Double(d.components.seconds) * 1e3)
        }
        samples.sort()
        print(String(format: "publish+confirm: median %.3f ms, p99 %.3f ms", samples[samples.count / 2], samples[samples.count * 99 / 100]))
        try await conn.deleteQueue(q)
        await conn.close()
    }
}

/// `aos-bench admission`: the cost of the trust check per request, without broker noise:
/// a broker-user request (the Swift callers' path) and a signed one (the Python driver's).
struct AdmissionBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "admission",
        abstract: "Cost of authorization per request (user_id and Ed25519 paths)")
    @Option var iterations = 20000

    func run() async throws {
        let args: [String: JSONValue] = ["vg": "vol", "name": "volume-0d6c493f-697f-48d5-a2dd-8d7aa2c5542c", "mode": "exclusive"]
        let key = SigningKey.Private()
        var config = AuthConfiguration()
        config.credentials.signingKeys = [.admin: [key.publicKey]]
        let admission = Admission(policy: Policies.agent(host: "h1"), configuration: config)
        let byUser = RPCCallContext(
            forMethod: "activate_lv", deadline: .now + .seconds(3600), isCall: true,
            userID: "aos-controller", route: .directed, routingKey: "aos-agent.h1",
            msgID: "m", replyQueue: "reply_x")
        let clock = ContinuousClock()
        var t = clock.now
        for _ in 0..<iterations { precondition(admission.check(byUser, args) == nil) }
        let userCost = (clock.now - t) / iterations
        // Signed requests: each needs a fresh nonce (replays are refused), made outside the timing.
        let now = Int64(Date().timeIntervalSince1970 * 1000)
        let signedCount = max(1, min(iterations, 5000))
        let contexts: [RPCCallContext] = (0..<signedCount).map { i in
            let sig = RequestSignature.sign(
                with: key, target: "aos-agent.h1", method: "activate_lv", version: "1.0",
                timestampMillis: now, nonce: String(format: "%016x", i), args: args)
            var c = byUser
            c.userID = nil
            c.version = "1.0"
            c.context = [RequestSignature.contextKey: sig]
            return c
        }
        t = clock.now
        for c in contexts { precondition(admission.check(c, args) == nil) }
        let signedCost = (clock.now - t) / signedCount
        print("admission per request: broker user \(us(userCost)) us, Ed25519-signed \(us(signedCost)) us")
    }

    func us(_ d: Duration) -> String {
        String(format: "%.2f", Double(d.components.attoseconds) / 1e12 + Double(d.components.seconds) * 1e6)
    }
}

// MARK: - aos-bench scale: one aos-controller under the announcements of N made-up agents.

struct ScaleBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "scale", abstract: "Controller CPU, RSS, list_agents latency and down detection under N agents",
        discussion: """
            Starts the aos-controller next to this binary (or --controller) with an empty config, \
            a topic of its own, [auth] enforce = false (AOS_AUTH_ENFORCE=false: the fake agents \
            all publish as the URL's broker user, not as aos-agent-<host>) and log_level = error \
            (so the "would be refused" warning enforce = false writes for each announcement is \
            not what is measured). Plays --agents agents, each announcing a health() report \
            with a fresh sent_at every --interval seconds (fanout casts, spread evenly over the \
            interval, over --connections connections). After one interval it stops one agent, \
            reads the controller's CPU time (/proc/PID/stat utime+stime) over --window seconds \
            and its RSS, times list_agents calls, and waits for the controller's "agent is \
            down" line for the stopped agent.
            """)
    @Option(help: "Transport URL of a broker to use") var url: String
    @Option(help: "Fake agents") var agents = 2000
    @Option(help: "Seconds between one agent's announcements") var interval = 10
    @Option(help: "Seconds over which the controller's CPU time is read") var window = 30
    @Option(help: "Publishing connections") var connections = 4
    @Option(help: "Active LVs in each agent's report") var activeLVs = 2
    @Option(help: "aos-controller binary (default: next to this one)") var controller: String?
    @Option(help: "[controller] agent_stale_after (default: 2 intervals)") var staleAfter: Int?
    @Option(help: "[controller] agent_down_after (default: 3 intervals)") var downAfter: Int?
    @Option(help: "list_agents calls to time") var listCalls = 5

    func validate() throws {
        guard agents >= 1, interval >= 1, window >= 1, connections >= 1, activeLVs >= 0, listCalls >= 1 else {
            throw ValidationError("counts and durations must be positive")
        }
    }

    func run() async throws {
        LoggingSystem.bootstrap { label in
            var h = StreamLogHandler.standardError(label: label)
            h.logLevel = .error
            return h
        }
        let tag = String(makeUUIDHex().prefix(8))
        let topic = "aos-bench-scale-\(tag)"
        let stale = staleAfter ?? 2 * interval
        let down = max(downAfter ?? 3 * interval, stale)
        let here = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
        let binary = controller.map { URL(fileURLWithPath: $0) } ?? here.appendingPathComponent("aos-controller")
        let config = FileManager.default.temporaryDirectory.appendingPathComponent("aos-bench-scale-\(tag).conf")
        try Data().write(to: config)  // isolates the controller from /etc/aos/aos.conf
        defer { try? FileManager.default.removeItem(at: config) }

        let hosts = (0..<agents).map { String(format: "bench-\(tag)-%05ld", $0) }
        let victim = hosts[0]
        let downSeen = Locked<ContinuousClock.Instant?>(nil)
        let errPipe = Pipe()
        var env = ProcessInfo.processInfo.environment
        env["AOS_AUTH_ENFORCE"] = "false"
        env["AOS_DEFAULT_TRANSPORT_URL"] = url  // not on the command line, where ps shows it
        let ctl = try startChild(
            binary,
            [
                "--config", config.path,
                "--set", "DEFAULT.host=aos-bench-ctl-\(tag)",
                "--set", "controller.topic=\(topic)",
                "--set", "controller.agent_stale_after=\(stale)",
                "--set", "controller.agent_down_after=\(down)",
                "--set", "controller.log_level=error",
            ], environment: env, stderr: errPipe)
        defer { stop(ctl) }
        let pid = ctl.processIdentifier
        // The controller's log, read line by line for the victim's "agent is down".
        let errorLines = Locked(0)
        let otherLines = Locked<[String]>([])
        let reader = errPipe.fileHandleForReading
        reader.readabilityHandler = { h in
            let data = h.availableData
            if data.isEmpty { h.readabilityHandler = nil; return }
            let text = String(decoding: data, as: UTF8.self)
            for line in text.split(separator: "\n") {
                errorLines.withLock { $0 += 1 }
                if line.contains("agent is down"), line.contains(victim) {
                    downSeen.withLock { if $0 == nil { $0 = .now } }
                } else {
                    otherLines.withLock { if $0.count < 5 { $0.append(String(line.prefix(300))) } }
                }
            }
        }

        let players = try (0..<connections).map { _ in
            let conn = AMQPConnection(
                configuration: try AMQPConfiguration(url: TransportURL(parsing: url)),
                logger: Logger(label: "bench"))
            return (conn, RPCClient(connection: conn, logger: Logger(label: "bench")))
        }
        let reports: [JSONValue] = hosts.enumerated().map { i, h in
            let lvs: [JSONValue] = (0..<activeLVs).map { n in
                ["vg": "vg0", "name": .string(String(format: "volume-%08lx-0000-4000-8000-%012lx", i, n)), "mode": "exclusive"]
            }
            return [
                "host": .string(h), "host_id": .int(Int64(i + 1)), "version": "aos-bench", "instance_id": .string(makeUUIDHex()),
                "ready": true, "phase": "ready", "vgs": ["vg0": ["lockspace": "started"]],
                "active_lvs": .array(lvs), "restore_failures": [],
            ]
        }
        let stats = Locked(PlayStats())
        let start = ContinuousClock.now
        let period = Duration.seconds(interval)
        let n = agents
        let play = Task {
            await withTaskGroup(of: Void.self) { group in
                for (w, player) in players.enumerated() {
                    group.addTask {
                        var round = 0
                        while !Task.isCancelled {
                            for i in stride(from: w, to: n, by: players.count) {
                                let due = start + period * round + period * i / n
                                if due > .now { try? await Task.sleep(until: due, clock: .continuous) }
                                if Task.isCancelled { return }
                                let lag = ContinuousClock.now - due
                                if i == 0, stats.withLock({ $0.victimStopped }) { continue }
                                let sentAt = Date().timeIntervalSince1970
                                do {
                                    try await player.1.fanoutCast(
                                        topic: topic, method: "agent_announce",
                                        args: ["report": reports[i], "sent_at": .double(sentAt)],
                                        timeout: .seconds(5))
                                    stats.withLock { s in
                                        s.sent += 1
                                        s.maxLag = max(s.maxLag, lag)
                                        if lag > .seconds(1) { s.late += 1 }
                                        if i == 0 { s.victimLast = .now }
                                    }
                                } catch {
                                    stats.withLock { $0.failed += 1 }
                                }
                            }
                            round += 1
                        }
                    }
                }
            }
        }
        defer { play.cancel() }

        say(
            "controller pid \(pid): \(agents) agents, one announcement each every \(interval) s (\(String(format: "%.0f", Double(agents) / Double(interval))) per second), stale after \(stale) s, down after \(down) s"
        )
        // Every agent announced once (and the controller has them all) before the window opens.
        try await Task.sleep(for: period + .seconds(2))
        stats.withLock { $0.victimStopped = true }
        let cpu0 = cpuSeconds(pid: pid), w0 = ContinuousClock.now
        try await Task.sleep(for: .seconds(window))
        let cpu1 = cpuSeconds(pid: pid), w1 = ContinuousClock.now
        let rss = rssKB(pid: pid), hwm = rssKB(pid: pid, field: "VmHWM:")
        let busy = (cpu1 - cpu0) / (ms(w1 - w0) / 1000) * 100
        let s0 = stats.withLock { $0 }
        say(
            String(
                format: "controller CPU over %d s: %.1f %% of one core; RSS %.1f MB (peak %.1f MB)",
                window, busy, Double(rss) / 1024, Double(hwm) / 1024))
        say("announcements sent: \(s0.sent), failed \(s0.failed), more than 1 s late \(s0.late), max lag \(fmt(ms(s0.maxLag))) ms")

        // list_agents still answers?
        let (conn, client) = players[0]
        var lat: [Double] = []
        var listed = 0
        var victimStatus = "?"
        var failures: [String] = []
        for _ in 0..<listCalls {
            let t = ContinuousClock.now
            do {
                let r = try await client.call(RPCTarget(topic: topic), method: "list_agents", timeout: .seconds(20))
                lat.append(ms(ContinuousClock.now - t))
                let list = r["agents"]?.arrayValue ?? []
                listed = list.count
                victimStatus = list.first(where: { $0["host"]?.stringValue == victim })?["status"]?.stringValue ?? "absent"
            } catch {
                failures.append("\(error)")
            }
        }
        lat.sort()
        if lat.isEmpty {
            say("list_agents: no answer to \(listCalls) calls within 20 s each (\(failures.first ?? "?"))")
        } else {
            say(
                "list_agents: \(lat.count) of \(listCalls) calls answered, median \(fmt(lat[lat.count / 2])) ms, max \(fmt(lat[lat.count - 1])) ms; \(listed) agents listed, stopped agent \(victim): \(victimStatus)"
            )
        }

        // Down detection: from the stopped agent's last announcement to the controller's log line.
        let deadline = ContinuousClock.now + .seconds(2 * down + 10)
        while downSeen.withLock({ $0 }) == nil, ContinuousClock.now < deadline {
            try await Task.sleep(for: .milliseconds(100))  // polling interval, not synchronisation
        }
        let last = stats.withLock { $0.victimLast }
        if let seen = downSeen.withLock({ $0 }), let last {
            let d = ms(seen - last) / 1000
            say(
                String(
                    format: "stopped agent marked down %.1f s after its last announcement (%.1f intervals; agent_down_after %d s)",
                    d, d / Double(interval), down))
        } else {
            say("stopped agent NOT marked down within \(2 * down + 10) s")
        }
        say("controller log lines at level error: \(errorLines.withLock { $0 })")
        for line in otherLines.withLock({ $0 }) { say("  \(line)") }
        say(String(format: "controller RSS at the end: %.1f MB", Double(rssKB(pid: pid)) / 1024))
        play.cancel()
        _ = await play.result
        await conn.close()
        for p in players.dropFirst() { await p.0.close() }
        reader.readabilityHandler = nil
    }

    /// SIGTERM, and SIGKILL when it has not ended 5 s later (a saturated controller drains slowly).
    func stop(_ p: Process) {
        p.terminate()
        for _ in 0..<50 where p.isRunning { usleep(100_000) }
        if p.isRunning { kill(p.processIdentifier, SIGKILL) }
        p.waitUntilExit()
    }

    /// Prints a figure as soon as it is known (stdout may be a file).
    func say(_ s: String) {
        print(s)
        fflush(nil)
    }

    struct PlayStats {
        var sent = 0
        var failed = 0
        var late = 0
        var maxLag: Duration = .zero
        var victimStopped = false
        var victimLast: ContinuousClock.Instant?
    }

    /// utime + stime of `pid`, in seconds (/proc/PID/stat fields 14 and 15, after the command name).
    func cpuSeconds(pid: Int32) -> Double {
        guard let s = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
            let close = s.lastIndex(of: ")")
        else { return -1 }
        let fields = s[s.index(after: close)...].split(separator: " ")
        // fields[0] is the state (field 3): utime is field 14, stime field 15.
        guard fields.count > 12, let u = Double(fields[11]), let st = Double(fields[12]) else { return -1 }
        return (u + st) / Double(sysconf(Int32(_SC_CLK_TCK)))
    }
}

/// A lock a closure can capture.
final class Locked<T: Sendable>: Sendable {
    private let m: Mutex<T>
    init(_ value: T) { m = Mutex(value) }
    func withLock<R: Sendable>(_ body: (inout T) -> R) -> R { m.withLock { body(&$0) } }
}
