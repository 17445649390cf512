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
            request/reply on bare librabbitmq, in two modes: bare (auto-ack, no confirms, \
            non-mandatory) and reliable (publisher confirms, mandatory publishes, manual ack of \
            requests, as the Swift path does); --floor picks one or both. The C and Swift runs \
            alternate on the same broker, --rounds times, and each round prints Swift/C ratios \
            against each floor for each variant: default (client and server tasks on the global \
            executor), server pinned (the server's request tasks on its connection's I/O \
            thread), both pinned (the calling task on the client connection's I/O thread too). \
            --no-pinned runs the default only.
            """)
    @Option(help: "Transport URL of a broker to use") var url: String
    @Option(help: "Sequential calls to time") var calls = 5000
    @Option(help: "Warm-up calls") var warmup = 500
    @Option(help: "Calls in flight for the throughput run") var concurrency = 16
    @Option(help: "Calls for the throughput run") var throughputCalls = 20000
    @Option(help: "Seconds to let the server settle before reading its idle RSS") var settle = 3.0
    @Option(help: "Run the server with authorization: admit only this broker user (the URL's user)")
    var admitUser: String?
    @Flag(name: .customLong("no-floor"), help: "Skip the C floor (bench/rpc_floor.c), both modes") var noFloor = false
    @Option(
        name: .customLong("floor"),
        help: "Which C floor modes to run: bare (auto-ack, no confirms), reliable (confirms, mandatory, manual ack), both")
    var floorModes: FloorModes = .both
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

    enum FloorModes: String, ExpressibleByArgument, CaseIterable {
        case bare, reliable, both
    }

    /// One C floor server: bare or reliable.
    struct Floor {
        var reliable: Bool
        var queue: String
        var server: Process
        var name: String { reliable ? "reliable" : "bare" }
    }

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
        var floors: [Floor] = []
        defer {
            for f in floors {
                f.server.terminate()
                f.server.waitUntilExit()
            }
        }
        var floorBinary: URL?
        if !noFloor {
            let binary = try FloorProgram.ensure(next: here, source: floorSource)
            floorBinary = binary
            for reliable in [false, true] where floorModes == .both || (floorModes == .reliable) == reliable {
                let queue = "aos-bench-floor-\(reliable ? "reliable-" : "")\(tag)"
                let server = try startChild(binary, ["server", url, queue] + (reliable ? ["--reliable"] : []))
                floors.append(Floor(reliable: reliable, queue: queue, server: server))
            }
        }
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

        // Per round: the floors' figures (in `floors` order), then the variants'.
        var rows: [(c: [Figures], swift: [Figures])] = []
        for round in 1...max(1, rounds) {
            var c: [Figures] = []
            if let floorBinary {
                for f in floors {
                    c.append(
                        try FloorProgram.runClient(
                            floorBinary, url: url, queue: f.queue, calls: calls, warmup: warmup,
                            throughputCalls: throughputCalls, inFlight: concurrency, bodyBytes: bodyBytes,
                            serverPID: f.server.processIdentifier, brokerPID: brokerPid, reliable: f.reliable))
                }
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
            for (f, cf) in zip(floors, c) {
                let label = "C floor, \(f.name) (librabbitmq, \(bodyBytes)-byte body):"
                print("  \(label.padding(toLength: 54, withPad: " ", startingAt: 0)) \(cf.summary(concurrency))")
                print("    CPU per call: \(cf.cpu.describe())")
                print("    wake-ups per call: \(cf.cpu.wakeups.describe(decimals: 2))")
            }
            if floors.count == 2 {
                print("    C reliable/bare: \(Self.ratios(c[1], to: c[0]))")
            }
            for (v, s) in zip(variants, swift) {
                let label = "Swift RPCClient -> RPCServer, \(v.name):"
                print("  \(label.padding(toLength: 54, withPad: " ", startingAt: 0)) \(s.summary(concurrency))")
                print("    CPU per call: \(s.cpu.describe())")
                print("    wake-ups per call: \(s.cpu.wakeups.describe(decimals: 2))")
                for (f, cf) in zip(floors, c) {
                    print("    Swift/C \(f.name.padding(toLength: 8, withPad: " ", startingAt: 0)): \(Self.ratios(s, to: cf))")
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
        guard rows.count > 1, !floors.isEmpty else { return }
        print("over \(rows.count) rounds (min–max of the rounds' ratios):")
        if floors.count == 2 {
            print("  C reliable/bare: \(Self.rangeOfRatios(rows.map { ($0.c[1], $0.c[0]) }))")
        }
        for (i, v) in variants.enumerated() {
            for (j, f) in floors.enumerated() {
                let pairs = rows.map { ($0.swift[i], $0.c[j]) }
                print("  Swift/C \(f.name), \(v.name): \(Self.rangeOfRatios(pairs))")
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

        func summary(_ concurrency: Int) -> String {
            "median \(fmt(median)) ms, p99 \(fmt(p99)) ms, \(String(format: "%.0f", throughput)) calls/s with \(concurrency) in flight"
        }
    }

    /// `a` against `b`: median, p99, throughput (% of b's), CPU per call of client + server and
    /// of the broker (sequential / in flight); "-" where a figure is missing or zero.
    static func ratios(_ a: Figures, to b: Figures) -> String {
        let t = b.throughput > 0 ? String(format: "%.0f %%", a.throughput / b.throughput * 100) : "-"
        return
            "median \(x(a.median, b.median)), p99 \(x(a.p99, b.p99)), throughput \(t); CPU client+server \(a.cpu.ratio(to: b.cpu)); broker \(a.cpu.brokerRatio(to: b.cpu))"
    }

    /// The min–max over rounds of each ratio of `ratios(_:to:)`.
    static func rangeOfRatios(_ pairs: [(Figures, Figures)]) -> String {
        func q(_ a: Double?, _ b: Double?) -> Double? {
            guard let a, let b, b > 0 else { return nil }
            return a / b
        }
        func range(_ v: [Double?], percent: Bool = false) -> String {
            let v = v.compactMap { $0 }
            guard let lo = v.min(), let hi = v.max() else { return "-" }
            return percent
                ? String(format: "%.0f–%.0f %%", lo * 100, hi * 100) : String(format: "%.2f–%.2fx", lo, hi)
        }
        let p = pairs
        return
            "median \(range(p.map { q($0.0.median, $0.1.median) })), p99 \(range(p.map { q($0.0.p99, $0.1.p99) })), "
            + "throughput \(range(p.map { q($0.0.throughput, $0.1.throughput) }, percent: true)); "
            + "CPU client+server sequential \(range(p.map { q($0.0.cpu.sequentialTotal, $0.1.cpu.sequentialTotal) })), "
            + "in flight \(range(p.map { q($0.0.cpu.throughputTotal, $0.1.cpu.throughputTotal) })); "
            + "broker sequential \(range(p.map { q($0.0.cpu.time.brokerSeq, $0.1.cpu.time.brokerSeq) })), "
            + "in flight \(range(p.map { q($0.0.cpu.time.brokerTput, $0.1.cpu.time.brokerTput) }))"
    }

    static func x(_ a: Double, _ b: Double) -> String { b > 0 ? String(format: "%.2fx", a / b) : "-" }

    /// One figure per call for each process (client, server, broker) in each run (sequential,
    /// 16 in flight); nil where a process was not measured.
    struct PerProcess {
        var clientSeq: Double?
        var serverSeq: Double?
        var brokerSeq: Double?
        var clientTput: Double?
        var serverTput: Double?
        var brokerTput: Double?

        init(
            clientSeq: Double? = nil, serverSeq: Double? = nil, brokerSeq: Double? = nil, clientTput: Double? = nil,
            serverTput: Double? = nil, brokerTput: Double? = nil
        ) {
            (self.clientSeq, self.serverSeq, self.brokerSeq) = (clientSeq, serverSeq, brokerSeq)
            (self.clientTput, self.serverTput, self.brokerTput) = (clientTput, serverTput, brokerTput)
        }

        init(sequential s: ProcessReadings.Figure, inFlight t: ProcessReadings.Figure) {
            self.init(
                clientSeq: s.client, serverSeq: s.server, brokerSeq: s.broker, clientTput: t.client, serverTput: t.server,
                brokerTput: t.broker)
        }

        func describe(decimals: Int, unit: String = "") -> String {
            func f(_ v: Double?) -> String { v.map { String(format: "%.\(decimals)f", $0) } ?? "-" }
            return
                "sequential client \(f(clientSeq))\(unit) + server \(f(serverSeq))\(unit) (broker \(f(brokerSeq))\(unit)); in flight client \(f(clientTput)) + server \(f(serverTput))\(unit) (broker \(f(brokerTput))\(unit))"
        }
    }

    /// CPU time (user + system) per call in µs, and wake-ups per call: how many times each
    /// process's threads were put on a CPU (schedstat's third field), the hand-offs a design
    /// needs (one each), steadier than time on a shared machine.
    struct CPUPerCall {
        var time = PerProcess()
        var wakeups = PerProcess()

        var sequentialTotal: Double? { time.clientSeq.flatMap { c in time.serverSeq.map { c + $0 } } }
        var throughputTotal: Double? { time.clientTput.flatMap { c in time.serverTput.map { c + $0 } } }

        func describe() -> String { time.describe(decimals: 1, unit: " µs") }

        func ratio(to c: CPUPerCall) -> String {
            "sequential \(Self.times(sequentialTotal, c.sequentialTotal)), in flight \(Self.times(throughputTotal, c.throughputTotal))"
        }

        func brokerRatio(to c: CPUPerCall) -> String {
            "sequential \(Self.times(time.brokerSeq, c.time.brokerSeq)), in flight \(Self.times(time.brokerTput, c.time.brokerTput))"
        }

        static func times(_ a: Double?, _ b: Double?) -> String {
            guard let a, let b, b > 0 else { return "-" }
            return String(format: "%.2fx", a / b)
        }
    }

    func measureSwift(_ client: RPCClient, _ target: RPCTarget, serverPID: Int32?) async throws -> Figures {
        var samples: [Double] = []
        samples.reserveCapacity(calls)
        let clock = ContinuousClock()
        var cpu = CPUPerCall()
        let r0 = ProcessReadings.take(serverPID: serverPID, brokerPID: brokerPid)
        for _ in 0..<calls {
            let t = clock.now
            _ = try await client.call(target, method: "ping", timeout: .seconds(10))
            samples.append(ms(clock.now - t))
        }
        let r1 = ProcessReadings.take(serverPID: serverPID, brokerPID: brokerPid)
        let sequential = r1.perCall(since: r0, calls: Double(max(1, calls)))
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
        let r2 = ProcessReadings.take(serverPID: serverPID, brokerPID: brokerPid)
        let inFlight = r2.perCall(since: r1, calls: Double(max(1, perWorker * concurrency)))
        cpu.time = PerProcess(sequential: sequential.time, inFlight: inFlight.time)
        cpu.wakeups = PerProcess(sequential: sequential.wakeups, inFlight: inFlight.wakeups)
        return Figures(
            median: median, p99: p99, throughput: Double(perWorker * concurrency) / (ms(elapsed) / 1000), cpu: cpu)
    }

}

/// What `aos-bench rpc` reads of the client (this process), the server and the broker before
/// and after a run.
struct ProcessReadings {
    /// Client, server, broker; nil where a process was not measured.
    struct Figure {
        var client: Double?
        var server: Double?
        var broker: Double?
    }

    var ownCPU: Double
    var own: ThreadCPU
    var server: ThreadCPU?
    var broker: ThreadCPU?

    static func take(serverPID: Int32?, brokerPID: Int32?) -> ProcessReadings {
        ProcessReadings(
            ownCPU: ownCPUMicros(), own: ThreadCPU.read(pid: getpid()), server: serverPID.map(ThreadCPU.read),
            broker: brokerPID.map(ThreadCPU.read))
    }

    /// CPU time in µs and wake-ups, per call, since `earlier`.
    func perCall(since earlier: ProcessReadings, calls: Double) -> (time: Figure, wakeups: Figure) {
        func each(_ f: (ThreadCPU, ThreadCPU) -> Double) -> (Double?, Double?) {
            (
                server.flatMap { a in earlier.server.map { f(a, $0) / calls } },
                broker.flatMap { a in earlier.broker.map { f(a, $0) / calls } }
            )
        }
        let (serverTime, brokerTime) = each { $0.micros(since: $1) }
        let (serverWakeups, brokerWakeups) = each { $0.wakeups(since: $1) }
        return (
            Figure(client: (ownCPU - earlier.ownCPU) / calls, server: serverTime, broker: brokerTime),
            Figure(client: own.wakeups(since: earlier.own) / calls, server: serverWakeups, broker: brokerWakeups)
        )
    }
}

/// CPU time (user + system) of this process, all threads, in µs.
func ownCPUMicros() -> Double {
    var ts = timespec()
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts)
    return Double(ts.tv_sec) * 1e6 + Double(ts.tv_nsec) / 1e3
}

/// CPU time of each live thread of a process, in ns (`/proc/PID/task/TID/schedstat`, first
/// field): precise where `/proc/PID/stat`'s clock ticks (10 ms) are not; and how many times
/// each was put on a CPU (third field).
struct ThreadCPU {
    var nanos: [Substring: UInt64] = [:]
    var slices: [Substring: UInt64] = [:]

    static func read(pid: Int32) -> ThreadCPU {
        var out = ThreadCPU()
        let dir = "/proc/\(pid)/task"
        for tid in (try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? [] {
            guard let text = try? String(contentsOfFile: "\(dir)/\(tid)/schedstat", encoding: .utf8) else { continue }
            let fields = text.split(whereSeparator: { $0 == " " || $0 == "\n" })
            guard fields.count >= 3, let ns = UInt64(fields[0]), let runs = UInt64(fields[2]) else { continue }
            out.nanos[Substring(tid)] = ns
            out.slices[Substring(tid)] = runs
        }
        return out
    }

    /// Per thread, so that a thread ending in between loses only its own share.
    func micros(since earlier: ThreadCPU) -> Double {
        var total: UInt64 = 0
        for (tid, ns) in nanos { total &+= ns &- min(ns, earlier.nanos[tid] ?? 0) }
        return Double(total) / 1e3
    }

    /// Times put on a CPU since `earlier`, over the threads alive at both readings and those
    /// started in between.
    func wakeups(since earlier: ThreadCPU) -> Double {
        var total: UInt64 = 0
        for (tid, n) in slices { total &+= n &- min(n, earlier.slices[tid] ?? 0) }
        return Double(total)
    }
}
