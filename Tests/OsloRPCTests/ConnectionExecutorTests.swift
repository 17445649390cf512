import AMQPClient
import Foundation
import Logging
import RPCWire
import Synchronization
import Testing

@testable import OsloRPC

/// Set by scripts/test.sh, which starts a private broker before `swift test`.
private let brokerURL = ProcessInfo.processInfo.environment["AOS_TEST_AMQP_URL"]

private func quietLogger() -> Logger {
    var l = Logger(label: "connection-executor-test")
    l.logLevel = .critical
    return l
}

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
