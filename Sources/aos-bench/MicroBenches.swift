import AMQPClient
import AOSAPI
import AOSAuth
import ArgumentParser
import Foundation
import Logging
import OsloRPC
import RPCWire

struct WireBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "wire", abstract: "Encode/decode cost of oslo messages")
    @Option var iterations = 20000

    func run() async throws {
        let req = RPCRequest(
            method: "activate_lv", args: ["vg": "vol", "name": "volume-0d6c493f-697f-48d5-a2dd-8d7aa2c5542c", "mode": "exclusive"],
            msgID: makeUUIDHex(), replyQueue: "reply_\(makeUUIDHex())", uniqueID: makeUUIDHex(),
            context: ["request_id": "req-1", "user_id": "u1"])
        let body = req.encodeBody()
        let enc = try perMessage { _ = req.encodeBody() }
        let dec = try perMessage { _ = try RPCRequest.decode(body: body, contentType: "application/json") }
        print("request body \(body.count) bytes: encode \(enc) us, decode \(dec) us")
        // The same through JSONValue trees (the path before the envelope walk and direct writers).
        let encTree = try perMessage { _ = OsloEnvelope.wrap(req.innerMessage()) }
        let decTree = try perMessage { _ = try RPCRequest.decodeTree(body: body, contentType: "application/json") }
        print("  through JSONValue trees: encode \(encTree) us, decode \(decTree) us")
        let reply = RPCReply(
            result: ["name": "volume-0d6c493f-697f-48d5-a2dd-8d7aa2c5542c", "active": true, "size": 1_073_741_824],
            msgID: makeUUIDHex(), uniqueID: makeUUIDHex())
        let replyBody = reply.encodeBody()
        let renc = try perMessage { _ = reply.encodeBody() }
        let rdec = try perMessage { _ = try RPCReply.decode(body: replyBody, contentType: "application/json") }
        let rencTree = try perMessage { _ = OsloEnvelope.wrap(reply.innerMessage()) }
        let rdecTree = try perMessage { _ = try RPCReply.decodeTree(body: replyBody, contentType: "application/json") }
        print(
            "reply body \(replyBody.count) bytes: encode \(renc) us, decode \(rdec) us; "
                + "through trees: encode \(rencTree) us, decode \(rdecTree) us")
        // Three per call (msg_id and _unique_id by the caller, _unique_id of the reply).
        let uuid = try perMessage { _ = makeUUIDHex() }
        let uuidDirect = try perMessage {
            var g = SystemRandomNumberGenerator()  // the way before the pool: two draws, a system call each
            _ = (g.next() as UInt64, g.next() as UInt64)
        }
        print("identifier (uuid4 hex): \(uuid) us; its 16 bytes drawn directly from the system generator: \(uuidDirect) us")
    }

    /// Runs `work` `iterations` times; the mean time of one run in µs, formatted.
    func perMessage(_ work: () throws -> Void) throws -> String {
        let clock = ContinuousClock()
        let t = clock.now
        for _ in 0..<iterations { try work() }
        return us((clock.now - t) / iterations)
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
