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

    struct Variant {
        var name: String
        var topic: String
        var pinClient: Bool
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
            if pinned {
                let pinnedTopic = topic + "-pinned"
                servers.append(
                    try startChild(
                        here.appendingPathComponent("aos-rpc-peer"),
                        common + ["--topic", pinnedTopic, "--dispatch-on-connection-thread"]))
                variants.append(Variant(name: "server pinned", topic: pinnedTopic, pinClient: false))
                variants.append(Variant(name: "both pinned", topic: pinnedTopic, pinClient: true))
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
                    throughputCalls: throughputCalls, inFlight: concurrency, bodyBytes: bodyBytes)
            }
            var swift: [Figures] = []
            for v in variants {
                swift.append(
                    try await pinnedIf(v.pinClient, conn) {
                        try await measureSwift(client, RPCTarget(topic: v.topic))
                    })
            }
            rows.append((c, swift))
            print("round \(round):")
            if let c {
                print(
                    "  C floor (librabbitmq, \(bodyBytes)-byte body): median \(fmt(c.median)) ms, p99 \(fmt(c.p99)) ms, \(Int(c.throughput)) calls/s with \(concurrency) in flight"
                )
            }
            for (v, s) in zip(variants, swift) {
                let label = "Swift RPCClient -> RPCServer, \(v.name):".padding(toLength: 46, withPad: " ", startingAt: 0)
                print(
                    "  \(label) median \(fmt(s.median)) ms, p99 \(fmt(s.p99)) ms, \(Int(s.throughput)) calls/s with \(concurrency) in flight"
                )
                if let c {
                    print(
                        "    Swift/C: median \(ratio(s.median, c.median)), p99 \(ratio(s.p99, c.p99)), throughput \(Int((s.throughput / c.throughput * 100).rounded())) % of C"
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
                print(
                    "Swift/C over \(rows.count) rounds, \(v.name): median \(fmtRange(m, "x")), p99 \(fmtRange(p, "x")), throughput \(fmtRange(t, " %"))"
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
        return Figures(median: median, p99: p99, throughput: Double(perWorker * concurrency) / (ms(elapsed) / 1000))
    }

    func ratio(_ a: Double, _ b: Double) -> String { String(format: "%.2fx", a / b) }
    func fmtRange(_ v: [Double], _ unit: String) -> String {
        let f = unit == "x" ? "%.2f" : "%.0f"
        return String(format: f, v.min() ?? 0) + "–" + String(format: f, v.max() ?? 0) + unit
    }
}
