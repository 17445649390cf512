import AMQPClient
import ArgumentParser
import Foundation
import Logging
import OsloRPC
import RPCWire

struct RPCBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "rpc", abstract: "RPC round-trip latency, throughput and server RSS, next to the C floor",
        discussion: """
            Starts `aos-rpc-peer serve` twice (the default server, and one with \
            --dispatch-on-connection-thread) and, unless --no-floor, the C floor \
            (bench/rpc_floor.c, compiled next to this binary when missing): the same \
            request/reply on bare librabbitmq. The C and Swift runs alternate on the same \
            broker, --rounds times, and each round prints Swift/C ratios for each variant: \
            default (client and server tasks on the global executor), server pinned (the \
            server's request tasks on its connection's I/O thread), both pinned (the calling \
            task on the client connection's I/O thread too). --no-pinned runs the default only.
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
    @Flag(inversion: .prefixedNo, help: "Also run the variants with tasks on the connection's I/O thread")
    var pinned = true
    @Option(help: "C floor and Swift runs, alternated") var rounds = 2
    @Option(help: "bench/rpc_floor.c (default: found above this binary or in the current directory)")
    var floorSource: String?
    @Option(
        help: """
            Call an already running `aos-rpc-peer serve --topic TOPIC` instead of starting one \
            (e.g. under a profiler); with --pinned the calling task is pinned in a second variant
            """)
    var externalServer: String?
    @Option(
        help: """
            The broker's process id (e.g. the private broker's DIR/rabbit.pid): its CPU time per \
            call is printed next to the client's and the server's
            """)
    var brokerPid: Int32?

    struct Variant {
        var name: String
        var topic: String
        var pinClient: Bool
        /// The server process, when this run started it (its CPU time is read).
        var serverPID: Int32?
    }

    func run() async throws {
        LoggingSystem.bootstrap { label in
            var h = StreamLogHandler.standardError(label: label)
            h.logLevel = .warning
            return h
        }
        let tag = makeUUIDHex().prefix(8)
        let topic = externalServer ?? "aos-bench-\(tag)"
        let here = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
        var servers: [Process] = []
        defer {
            for s in servers {
                s.terminate()
                s.waitUntilExit()
            }
        }
        var variants = [Variant(name: "default", topic: topic, pinClient: false)]
        if externalServer == nil {
            let auth = admitUser.map { ["--admit-user", $0] } ?? []
            let common = ["serve", "--url", url, "--log-level", "warning"] + auth
            servers.append(try startChild(here.appendingPathComponent("aos-rpc-peer"), common + ["--topic", topic]))
            variants[0].serverPID = servers[0].processIdentifier
            if pinned {
                let pinnedTopic = topic + "-pinned"
                let p = try startChild(
                    here.appendingPathComponent("aos-rpc-peer"),
                    common + ["--topic", pinnedTopic, "--dispatch-on-connection-thread"])
                servers.append(p)
                variants.append(
                    Variant(name: "server pinned", topic: pinnedTopic, pinClient: false, serverPID: p.processIdentifier))
                variants.append(
                    Variant(name: "both pinned", topic: pinnedTopic, pinClient: true, serverPID: p.processIdentifier))
            }
        } else if pinned {
            variants.append(Variant(name: "client pinned", topic: topic, pinClient: true))
        }
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
        let idleRSS = servers.first.map { rssKB(pid: $0.processIdentifier) }

        let conn = AMQPConnection(
            configuration: try AMQPConfiguration(url: TransportURL(parsing: url)),
            logger: Logger(label: "bench"))
        let client = RPCClient(connection: conn, logger: Logger(label: "bench"))
        for v in variants {
            try await pinnedIf(v.pinClient, conn) {
                for _ in 0..<warmup {
                    _ = try await client.call(RPCTarget(topic: v.topic), method: "ping", timeout: .seconds(10))
                }
            }
        }

        var rows: [(c: Figures?, swift: [Figures])] = []
        for round in 1...max(1, rounds) {
            var c: Figures?
            if let floorBinary {
                c = try FloorProgram.runClient(
                    floorBinary, url: url, queue: floorQueue, calls: calls, warmup: warmup,
                    throughputCalls: throughputCalls, inFlight: concurrency, bodyBytes: bodyBytes,
                    serverPID: floorServer?.processIdentifier, brokerPID: brokerPid)
            }
            var swift: [Figures] = []
            for v in variants {
                swift.append(
                    try await pinnedIf(v.pinClient, conn) {
                        try await measureSwift(client, RPCTarget(topic: v.topic), serverPID: v.serverPID)
                    })
            }
            rows.append((c, swift))
            print("round \(round):")
            if let c {
                print(
                    "  C floor (librabbitmq, \(bodyBytes)-byte body): median \(fmt(c.median)) ms, p99 \(fmt(c.p99)) ms, \(Int(c.throughput)) calls/s with \(concurrency) in flight"
                )
                print("    CPU per call: \(c.cpu.describe())")
            }
            for (v, s) in zip(variants, swift) {
                let label = "Swift RPCClient -> RPCServer, \(v.name):".padding(toLength: 46, withPad: " ", startingAt: 0)
                print(
                    "  \(label) median \(fmt(s.median)) ms, p99 \(fmt(s.p99)) ms, \(Int(s.throughput)) calls/s with \(concurrency) in flight"
                )
                print("    CPU per call: \(s.cpu.describe())")
                if let c {
                    print(
                        "    Swift/C: median \(ratio(s.median, c.median)), p99 \(ratio(s.p99, c.p99)), throughput \(c.throughput > 0 ? String(format: "%.0f", s.throughput / c.throughput * 100) : "-") % of C; CPU client+server \(s.cpu.ratio(to: c.cpu))"
                    )
                }
            }
        }
        let loadedRSS = servers.first.map { rssKB(pid: $0.processIdentifier) }
        await conn.close()

        print(
            "sequential: \(calls) calls per run, \(warmup) warm-up; concurrent: \(throughputCalls / concurrency * concurrency) calls with \(concurrency) in flight"
        )
        if let idleRSS, let loadedRSS {
            print(
                "default server RSS: idle \(fmt(Double(idleRSS) / 1024)) MB, after load \(fmt(Double(loadedRSS) / 1024)) MB")
        }
        let floors = rows.compactMap(\.c)
        if rows.count > 1, floors.count == rows.count {
            for (i, v) in variants.enumerated() {
                let m = zip(rows, floors).map { $0.swift[i].median / $1.median }
                let p = zip(rows, floors).map { $0.swift[i].p99 / $1.p99 }
                let t = zip(rows, floors).map { $0.swift[i].throughput / $1.throughput * 100 }
                let cs = zip(rows, floors).compactMap { r, c in
                    r.swift[i].cpu.sequentialTotal.flatMap { s in c.cpu.sequentialTotal.map { s / $0 } }
                }
                let ct = zip(rows, floors).compactMap { r, c in
                    r.swift[i].cpu.throughputTotal.flatMap { s in c.cpu.throughputTotal.map { s / $0 } }
                }
                print(
                    "Swift/C over \(rows.count) rounds, \(v.name): median \(fmtRange(m, "x")), p99 \(fmtRange(p, "x")), throughput \(fmtRange(t, " %")), CPU (client+server) per call sequential \(fmtRange(cs, "x")), \(concurrency) in flight \(fmtRange(ct, "x"))"
                )
            }
        }
    }

    /// Runs `body` in a task that prefers the connection's I/O thread when `pin` is set.
    func pinnedIf<T: Sendable>(
        _ pin: Bool, _ conn: AMQPConnection, _ body: () async throws -> T
    ) async throws -> T {
        guard pin else { return try await body() }
        return try await withTaskExecutorPreference(conn.executor) { try await body() }
    }

    struct Figures {
        var median: Double
        var p99: Double
        var throughput: Double
        var cpu = CPUPerCall()
    }

    /// CPU time (user + system) per call in µs, of the sequential and the concurrent run;
    /// nil where a process was not measured.
    struct CPUPerCall {
        var clientSeq: Double?
        var serverSeq: Double?
        var brokerSeq: Double?
        var clientTput: Double?
        var serverTput: Double?
        var brokerTput: Double?

        var sequentialTotal: Double? { clientSeq.flatMap { c in serverSeq.map { c + $0 } } }
        var throughputTotal: Double? { clientTput.flatMap { c in serverTput.map { c + $0 } } }

        func describe() -> String {
            func f(_ v: Double?) -> String { v.map { String(format: "%.1f", $0) } ?? "-" }
            return
                "sequential client \(f(clientSeq)) µs + server \(f(serverSeq)) µs (broker \(f(brokerSeq)) µs); in flight client \(f(clientTput)) + server \(f(serverTput)) µs (broker \(f(brokerTput)) µs)"
        }

        func ratio(to c: CPUPerCall) -> String {
            func r(_ a: Double?, _ b: Double?) -> String {
                guard let a, let b, b > 0 else { return "-" }
                return String(format: "%.2fx", a / b)
            }
            return "sequential \(r(sequentialTotal, c.sequentialTotal)), in flight \(r(throughputTotal, c.throughputTotal))"
        }
    }

    func measureSwift(_ client: RPCClient, _ target: RPCTarget, serverPID: Int32?) async throws -> Figures {
        var samples: [Double] = []
        samples.reserveCapacity(calls)
        let clock = ContinuousClock()
        var cpu = CPUPerCall()
        let c0 = ownCPUMicros(), s0 = serverPID.map(ThreadCPU.read), b0 = brokerPid.map(ThreadCPU.read)
        for _ in 0..<calls {
            let t = clock.now
            _ = try await client.call(target, method: "ping", timeout: .seconds(10))
            samples.append(ms(clock.now - t))
        }
        let c1 = ownCPUMicros(), s1 = serverPID.map(ThreadCPU.read), b1 = brokerPid.map(ThreadCPU.read)
        cpu.clientSeq = (c1 - c0) / Double(max(1, calls))
        cpu.serverSeq = s1.flatMap { a in s0.map { a.micros(since: $0) / Double(max(1, calls)) } }
        cpu.brokerSeq = b1.flatMap { a in b0.map { a.micros(since: $0) / Double(max(1, calls)) } }
        samples.sort()
        let median = samples.isEmpty ? 0 : samples[samples.count / 2]
        let p99 = samples.isEmpty ? 0 : samples[min(samples.count - 1, Int(Double(samples.count) * 0.99))]

        let perWorker = throughputCalls / max(1, concurrency)
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
        let c2 = ownCPUMicros(), s2 = serverPID.map(ThreadCPU.read), b2 = brokerPid.map(ThreadCPU.read)
        let n = Double(max(1, perWorker * concurrency))
        cpu.clientTput = (c2 - c1) / n
        cpu.serverTput = s2.flatMap { a in s1.map { a.micros(since: $0) / n } }
        cpu.brokerTput = b2.flatMap { a in b1.map { a.micros(since: $0) / n } }
        return Figures(
            median: median, p99: p99, throughput: Double(perWorker * concurrency) / (ms(elapsed) / 1000), cpu: cpu)
    }

    func ratio(_ a: Double, _ b: Double) -> String { String(format: "%.2fx", a / b) }
    func fmtRange(_ v: [Double], _ unit: String) -> String {
        let f = unit == "x" ? "%.2f" : "%.0f"
        return String(format: f, v.min() ?? 0) + "–" + String(format: f, v.max() ?? 0) + unit
    }
}

/// CPU time (user + system) of this process, all threads, in µs.
func ownCPUMicros() -> Double {
    var ts = timespec()
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts)
    return Double(ts.tv_sec) * 1e6 + Double(ts.tv_nsec) / 1e3
}

/// CPU time of each live thread of a process, in ns (`/proc/PID/task/TID/schedstat`, first
/// field): precise where `/proc/PID/stat`'s clock ticks (10 ms) are not.
struct ThreadCPU {
    var nanos: [Substring: UInt64] = [:]

    static func read(pid: Int32) -> ThreadCPU {
        var out = ThreadCPU()
        let dir = "/proc/\(pid)/task"
        for tid in (try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? [] {
            guard let text = try? String(contentsOfFile: "\(dir)/\(tid)/schedstat", encoding: .utf8),
                let first = text.split(separator: " ").first, let ns = UInt64(first)
            else { continue }
            out.nanos[Substring(tid)] = ns
        }
        return out
    }

    /// Per thread, so that a thread ending in between loses only its own share.
    func micros(since earlier: ThreadCPU) -> Double {
        var total: UInt64 = 0
        for (tid, ns) in nanos { total &+= ns &- min(ns, earlier.nanos[tid] ?? 0) }
        return Double(total) / 1e3
    }
}
