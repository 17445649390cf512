import AOSAuth
import ArgumentParser
import Foundation
import OsloRPC
import RPCWire

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
