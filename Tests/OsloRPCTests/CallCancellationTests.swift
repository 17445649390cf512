import AMQPClient
import Foundation
import Logging
import RPCWire
import Testing

@testable import OsloRPC

/// A cancelled `RPCClient.call` ends with `CancellationError` instead of waiting out its
/// timeout. The timeouts below are long: a call that ignored cancellation would end with
/// `RPCCallError` (timed out, or not connected), and the outcome checks would fail.
@Suite struct CallCancellationTests {
    @Test func aCallWaitingForAnUnreachableBrokerEndsWithCancellationError() async throws {
        // Port 1 on loopback: nothing listens, every connection attempt fails.
        let url = try TransportURL(parsing: "amqp://guest:guest@127.0.0.1:1/")
        let connection = AMQPConnection(configuration: try AMQPConfiguration(url: url), logger: quietLogger())
        let client = RPCClient(connection: connection, logger: quietLogger())
        let call = Task { try await client.call(RPCTarget(topic: "nobody"), method: "m", timeout: .seconds(120)) }
        call.cancel()  // before or while it waits for the broker: either way it ends now
        await #expect(throws: CancellationError.self) { try await call.value }
        #expect(client.pendingCount == 0)
        await connection.close()
    }

    @Test(.enabled(if: brokerURL != nil, "needs a broker (AOS_TEST_AMQP_URL): run through scripts/test.sh"))
    func aCallCancelledWhileWaitingForItsReplyEndsAtOnceAndReleasesItsEntry() async throws {
        let connection = try await connectedTestConnection()
        // A "server" that takes requests off the queue and never answers.
        let target = try await declareRawServerQueue(on: connection, prefix: "cancel_test")
        let (arrivals, arrived) = AsyncStream<String>.makeStream()
        try await connection.consume(queue: target.topic) { d in
            arrived.yield((try? RPCRequest.decode(body: d.body, contentType: d.properties.contentType))?.method ?? "?")
        }

        let client = RPCClient(connection: connection, logger: quietLogger())
        let call = Task { try await client.call(target, method: "never_answered", timeout: .seconds(120)) }
        var next = arrivals.makeAsyncIterator()
        // The request reached the server: the call is now waiting for its reply.
        #expect(await next.next() == "never_answered")
        #expect(client.pendingCount == 1)
        call.cancel()
        await #expect(throws: CancellationError.self) { try await call.value }
        #expect(client.pendingCount == 0)

        // The client is still usable: a later call is sent and waits for its own reply.
        let second = Task { try await client.call(target, method: "second", timeout: .seconds(120)) }
        #expect(await next.next() == "second")
        second.cancel()
        await #expect(throws: CancellationError.self) { try await second.value }
        await connection.close()
    }
}
