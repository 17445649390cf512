import AMQPClient
import Foundation
import Logging
import RPCWire
import Synchronization
import Testing

@testable import OsloRPC

/// Port 1 on loopback: nothing listens; the I/O thread runs (and retries) all the same.
private func unreachableConnection() throws -> AMQPConnection {
    let url = try TransportURL(parsing: "amqp://guest:guest@127.0.0.1:1/")
    return AMQPConnection(configuration: try AMQPConfiguration(url: url), logger: quietLogger())
}

private final class Counter: Sendable {
    let value = Atomic<Int>(0)
}

/// Tasks that prefer a connection's executor run on its I/O thread, survive its close, and
/// a server dispatching there still serves calls.
@Suite struct ConnectionExecutorTests {
    @Test func aPinnedTaskRunsOnTheIOThreadAcrossSuspensions() async throws {
        let connection = try unreachableConnection()
        #expect(!connection.executor.isCurrent)
        let seen = await Task(executorPreference: connection.executor) { () -> [Bool] in
            var seen = [connection.executor.isCurrent]
            await Task.yield()
            seen.append(connection.executor.isCurrent)
            try? await Task.sleep(for: .milliseconds(5))
            seen.append(connection.executor.isCurrent)
            return seen
        }.value
        #expect(seen == [true, true, true])
        await connection.close()
    }

    @Test func manyTasksPostedFromManyThreadsAllRun() async throws {
        // Batched wake-ups: a post that skips the eventfd write must still be picked up.
        let connection = try unreachableConnection()
        let ran = Counter()
        await withTaskGroup(of: Void.self) { group in
            for _ in 0..<2000 {
                group.addTask {
                    await Task(executorPreference: connection.executor) {
                        if connection.executor.isCurrent { ran.value.add(1, ordering: .relaxed) }
                    }.value
                }
            }
        }
        #expect(ran.value.load(ordering: .relaxed) == 2000)
        await connection.close()
    }

    @Test func tasksStillRunOnceTheConnectionIsClosed() async throws {
        let connection = try unreachableConnection()
        let (before, after) = await Task(executorPreference: connection.executor) { () -> (Bool, Bool) in
            let before = connection.executor.isCurrent
            await connection.close()  // the I/O thread stops; this task continues elsewhere
            return (before, connection.executor.isCurrent)
        }.value
        #expect(before)
        #expect(!after)
        let later = await Task(executorPreference: connection.executor) { connection.executor.isCurrent }.value
        #expect(!later)
    }

    /// The loop reads the socket only when its last poll said so, and skips the poll while work
    /// is queued on the I/O thread: a task that keeps queueing itself there (it yields in a loop)
    /// must not starve reading. It waits for its own publish's confirm and for the message to
    /// come back, both of which only a read brings; it gives up after 10 s (the failure).
    @Test(.enabled(if: brokerURL != nil, "needs a broker (AOS_TEST_AMQP_URL): run through scripts/test.sh"))
    func aTaskThatKeepsTheIOThreadBusyDoesNotStarveReading() async throws {
        let url = try TransportURL(parsing: try #require(brokerURL))
        let connection = AMQPConnection(configuration: try AMQPConfiguration(url: url), logger: quietLogger())
        let queue = "busy_\(makeUUIDHex())"
        try await connection.declare(queue: QueueDeclaration(name: queue, autoDelete: true))
        let received = Counter()
        try await connection.consume(queue: queue) { _ in received.value.add(1, ordering: .releasing) }
        let confirmed = Counter()
        let (turns, allArrived) = await Task(executorPreference: connection.executor) { () -> (Int, Bool) in
            connection.publish([0x7B, 0x7D], exchange: "", routingKey: queue, mandatory: true) { result in
                if case .success = result { confirmed.value.add(1, ordering: .releasing) }
            }
            let giveUp = ContinuousClock.now + .seconds(10)
            var turns = 0
            while received.value.load(ordering: .acquiring) == 0 || confirmed.value.load(ordering: .acquiring) == 0 {
                if ContinuousClock.now > giveUp { return (turns, false) }
                turns += 1
                await Task.yield()  // back into the mailbox: the loop always has work
            }
            return (turns, connection.executor.isCurrent)
        }.value
        #expect(
            allArrived,
            "after \(turns) turns: confirmed \(confirmed.value.load(ordering: .acquiring)), received \(received.value.load(ordering: .acquiring))"
        )
        await connection.close()
    }

    @Test(.enabled(if: brokerURL != nil, "needs a broker (AOS_TEST_AMQP_URL): run through scripts/test.sh"))
    func aServerDispatchingOnItsConnectionThreadServesPinnedAndUnpinnedCallers() async throws {
        let url = try TransportURL(parsing: try #require(brokerURL))
        let serverConnection = AMQPConnection(configuration: try AMQPConfiguration(url: url), logger: quietLogger())
        let clientConnection = AMQPConnection(configuration: try AMQPConfiguration(url: url), logger: quietLogger())
        let target = RPCTarget(topic: "pinned_\(makeUUIDHex())", server: "s1")
        let handlers: [String: RPCHandler] = [
            "where": { _, _ in .bool(serverConnection.executor.isCurrent) },
            "echo_later": { _, args in
                try await Task.sleep(for: .milliseconds(1))  // suspends and resumes on the I/O thread
                return .object(args.merging(["pinned": .bool(serverConnection.executor.isCurrent)]) { a, _ in a })
            },
            "fail": { _, _ in throw RPCFailure(className: "ValueError", module: "builtins", message: "no") },
        ]
        var options = RPCServer.Options()
        options.dispatchOnConnectionThread = true
        let server = RPCServer(
            connection: serverConnection, target: target,
            dispatcher: RPCDispatcher(endpoints: [RPCEndpoint(handlers: handlers)]), options: options,
            logger: quietLogger())
        let (ready, readyCont) = AsyncStream<Void>.makeStream()
        let serving = Task { try await server.run(onReady: { readyCont.yield() }) }
        var it = ready.makeAsyncIterator()
        _ = await it.next()

        let client = RPCClient(connection: clientConnection, logger: quietLogger())
        let topicTarget = RPCTarget(topic: target.topic)
        #expect(try await client.call(topicTarget, method: "where", timeout: .seconds(30)) == .bool(true))
        // A caller pinned to its own connection's thread, 16 calls in flight.
        let results = try await withTaskExecutorPreference(clientConnection.executor) {
            try await withThrowingTaskGroup(of: JSONValue.self) { group in
                for i in 0..<16 {
                    group.addTask {
                        try await client.call(topicTarget, method: "echo_later", args: ["i": .int(Int64(i))], timeout: .seconds(30))
                    }
                }
                var out: [JSONValue] = []
                for try await r in group { out.append(r) }
                return out
            }
        }
        #expect(results.count == 16)
        let pinnedFlags: [JSONValue?] = results.map { $0.objectValue?["pinned"] }
        #expect(pinnedFlags.allSatisfy { $0 == JSONValue.bool(true) })
        let indices: Set<JSONValue> = Set(results.compactMap { $0.objectValue?["i"] })
        #expect(indices.count == 16)
        await #expect(throws: RPCCallError.self) {
            _ = try await client.call(topicTarget, method: "fail", timeout: .seconds(30))
        }
        serving.cancel()
        _ = try? await serving.value
        await clientConnection.close()
        await serverConnection.close()
    }
}
