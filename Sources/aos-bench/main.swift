// Benchmark commands: numbers, not assertions (docs/performance.md).
//   aos-bench rpc --url amqp://guest:guest@127.0.0.1:5672/
// starts an `aos-rpc-peer serve` process next to this binary, measures its idle
// RSS, then sequential round trips (median, p99) and throughput with N in flight.
import AMQPClient
import AOSAuth
import ArgumentParser
import Foundation
import Logging
import OsloRPC
import RPCWire

@main
struct Bench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "aos-bench", abstract: "Benchmarks",
                                                    subcommands: [RPCBench.self, WireBench.self, PublishBench.self, AdmissionBench.self])
}

struct RPCBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "rpc",
                                                    abstract: "RPC round-trip latency, throughput and server RSS")
    @Option(help: "Transport URL of a broker to use") var url: String
    @Option(help: "Sequential calls to time") var calls = 5000
    @Option(help: "Warm-up calls") var warmup = 500
    @Option(help: "Calls in flight for the throughput run") var concurrency = 16
    @Option(help: "Calls for the throughput run") var throughputCalls = 20000
    @Option(help: "Seconds to let the server settle before reading its idle RSS") var settle = 3.0
    @Option(help: "Run the server with authorization: admit only this broker user (the URL's user)")
    var admitUser: String?

    func run() async throws {
        LoggingSystem.bootstrap { label in
            var h = StreamLogHandler.standardError(label: label)
            h.logLevel = .warning
            return h
        }
        let topic = "aos-bench-\(makeUUIDHex().prefix(8))"
        let peer = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
            .appendingPathComponent("aos-rpc-peer")
        let server = Process()
        server.executableURL = peer
        server.arguments = ["serve", "--url", url, "--topic", topic, "--log-level", "warning"]
            + (admitUser.map { ["--admit-user", $0] } ?? [])
        let out = Pipe()
        server.standardOutput = out
        try server.run()
        defer { server.terminate(); server.waitUntilExit() }
        // Wait for the READY line.
        var buffer = Data()
        while !String(decoding: buffer, as: UTF8.self).contains("READY") {
            let chunk = out.fileHandleForReading.availableData
            if chunk.isEmpty { throw ValidationError("server exited before READY") }
            buffer.append(chunk)
        }
        try await Task.sleep(for: .seconds(settle))
        let idleRSS = rssKB(pid: server.processIdentifier)

        let conn = AMQPConnection(configuration: try AMQPConfiguration(url: TransportURL(parsing: url)),
                                  logger: Logger(label: "bench"))
        let client = RPCClient(connection: conn, logger: Logger(label: "bench"))
        let target = RPCTarget(topic: topic)
        for _ in 0..<warmup { _ = try await client.call(target, method: "ping", timeout: .seconds(10)) }

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
        let throughput = Double(perWorker * concurrency) / (ms(elapsed) / 1000)
        let loadedRSS = rssKB(pid: server.processIdentifier)
        await conn.close()

        print("sequential: \(calls) calls, median \(fmt(median)) ms, p99 \(fmt(p99)) ms")
        print("concurrent: \(perWorker * concurrency) calls with \(concurrency) in flight, \(Int(throughput)) calls/s")
        print("server RSS: idle \(fmt(Double(idleRSS) / 1024)) MB, after load \(fmt(Double(loadedRSS) / 1024)) MB")
    }

    func ms(_ d: Duration) -> Double { Double(d.components.seconds) * 1000 + Double(d.components.attoseconds) / 1e15 }
    func fmt(_ v: Double) -> String { String(format: "%.3f", v) }

    func rssKB(pid: Int32) -> Int {
        guard let s = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8) else { return -1 }
        for line in s.split(separator: "\n") where line.hasPrefix("VmRSS:") {
            return Int(line.split(separator: " ", omittingEmptySubsequences: true)[1]) ?? -1
        }
        return -1
    }
}

struct WireBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "wire", abstract: "Encode/decode cost of oslo messages")
    @Option var iterations = 20000

    func run() async throws {
        let req = RPCRequest(method: "activate_lv", args: ["vg": "vol", "name": "volume-0d6c493f-697f-48d5-a2dd-8d7aa2c5542c", "mode": "exclusive"],
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
    func us(_ d: Duration) -> String { String(format: "%.1f", Double(d.components.attoseconds) / 1e12 + Double(d.components.seconds) * 1e6) }
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
    static let configuration = CommandConfiguration(commandName: "admission",
                                                    abstract: "Cost of authorization per request (user_id and Ed25519 paths)")
    @Option var iterations = 20000

    func run() async throws {
        let args: [String: JSONValue] = ["vg": "vol", "name": "volume-0d6c493f-697f-48d5-a2dd-8d7aa2c5542c", "mode": "exclusive"]
        let key = SigningKey.Private()
        var config = AuthConfiguration()
        config.credentials.signingKeys = [.admin: [key.publicKey]]
        let admission = Admission(policy: Policies.agent(host: "h1"), configuration: config)
        let byUser = RPCCallContext(forMethod: "activate_lv", deadline: .now + .seconds(3600), isCall: true,
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
            let sig = RequestSignature.sign(with: key, target: "aos-agent.h1", method: "activate_lv", version: "1.0",
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
