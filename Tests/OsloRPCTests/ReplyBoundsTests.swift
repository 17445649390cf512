import AMQPClient
import Foundation
import Logging
import RPCWire
import Testing

@testable import OsloRPC

/// What the fake server answers to each request, given the request's `_msg_id`: the bodies to
/// publish to the caller's reply queue, in order.
private typealias Answer = @Sendable (_ method: String, _ msgID: String) -> [[UInt8]]

private func envelope(inner: String) -> [UInt8] {
    Array("{\"oslo.version\": \"2.0\", \"oslo.message\": \(JSONWriter.serialize(.string(inner)))}".utf8)
}

/// Replies are hostile input too: a reply above the client's limit is not copied whole and a
/// reply that does not decode is not dropped silently; both fail the call they name at once.
/// The calls' timeouts are long: a call left to its timeout would end with `timedOut` (after
/// two minutes), and the checks on the error would fail.
@Suite(.enabled(if: brokerURL != nil, "needs a broker (AOS_TEST_AMQP_URL): run through scripts/test.sh"))
struct ReplyBoundsTests {
    /// A client with a 4 KiB reply limit, and a raw "server" on a fresh topic that publishes
    /// `answer(method, msgID)` to the request's reply queue.
    private func withPeers(
        _ answer: @escaping Answer, _ body: (RPCClient, RPCTarget) async throws -> Void
    ) async throws {
        let connection = try await connectedTestConnection()
        let target = try await declareRawServerQueue(on: connection, prefix: "reply_bounds")
        try await connection.consume(queue: target.topic) { d in
            guard let r = try? RPCRequest.decode(body: d.body, contentType: d.properties.contentType),
                let msgID = r.msgID, let replyQ = r.replyQueue
            else { return }
            for b in answer(r.method, msgID) {
                connection.publish(b, exchange: "", routingKey: replyQ, properties: .oslo(), mandatory: false) { _ in }
            }
        }
        let client = RPCClient(connection: connection, logger: quietLogger(), maxReplyBytes: 4096)
        try await body(client, target)
        await connection.close()
    }

    private func badReplyReason(_ call: () async throws -> JSONValue) async -> String? {
        do {
            _ = try await call()
        } catch RPCCallError.badReply(_, _, let reason) {
            return reason
        } catch {
            Issue.record("expected badReply, got \(error)")
        }
        return nil
    }

    @Test func aReplyOverTheLimitFailsItsCallAndTheClientGoesOn() async throws {
        let answer: Answer = { method, msgID in
            let size = method == "big" ? 20_000 : 10
            return [RPCReply(result: .string(String(repeating: "x", count: size)), msgID: msgID).encodeBody()]
        }
        try await withPeers(answer) { client, target in
            let reason = await badReplyReason { try await client.call(target, method: "big", timeout: .seconds(120)) }
            #expect(reason?.contains("exceeds this client's limit of 4096 bytes") == true)
            #expect(client.pendingCount == 0)
            // Under the limit: answered as before.
            let small = try await client.call(target, method: "small", timeout: .seconds(120))
            #expect(small == .string("xxxxxxxxxx"))
        }
    }

    @Test func aReplyThatDoesNotDecodeFailsItsCall() async throws {
        // `failure` must be a string holding oslo's serialized exception.
        let answer: Answer = { _, msgID in
            [envelope(inner: "{\"_msg_id\": \"\(msgID)\", \"ending\": true, \"failure\": 42, \"result\": null}")]
        }
        try await withPeers(answer) { client, target in
            let reason = await badReplyReason { try await client.call(target, method: "m", timeout: .seconds(120)) }
            #expect(reason?.contains("not a valid oslo reply") == true)
            #expect(client.pendingCount == 0)
        }
    }

    /// An unusable reply naming another message id (or none) leaves the call alone: the
    /// reply that follows it completes the call.
    @Test func anUnusableReplyForNoPendingCallChangesNothing() async throws {
        let answer: Answer = { _, msgID in
            [
                envelope(inner: "{\"_msg_id\": \"someone-else\", \"failure\": 42}"),
                Array("not json at all".utf8),
                RPCReply(result: .string(String(repeating: "y", count: 8000)), msgID: "someone-else").encodeBody(),
                RPCReply(result: .int(7), msgID: msgID).encodeBody(),
            ]
        }
        try await withPeers(answer) { client, target in
            let result = try await client.call(target, method: "m", timeout: .seconds(120))
            #expect(result == .int(7))
            #expect(client.pendingCount == 0)
        }
    }
}
