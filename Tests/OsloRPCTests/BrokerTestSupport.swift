import AMQPClient
import Foundation
import Logging
import RPCWire
import Testing

@testable import OsloRPC

/// Set by scripts/test.sh, which starts a private broker before `swift test`.
let brokerURL = ProcessInfo.processInfo.environment["AOS_TEST_AMQP_URL"]

/// A logger that stays quiet: these tests provoke warnings on purpose.
func quietLogger(_ label: String = "oslo-rpc-test") -> Logger {
    var l = Logger(label: label)
    l.logLevel = .critical
    return l
}

/// A connection to the test broker (`brokerURL`, which must be set), connected.
func connectedTestConnection() async throws -> AMQPConnection {
    let url = try TransportURL(parsing: try #require(brokerURL))
    let connection = AMQPConnection(configuration: try AMQPConfiguration(url: url), logger: quietLogger())
    try await connection.waitUntilConnected(timeout: .seconds(30))
    return connection
}

/// What a server on a fresh topic needs (the topic exchange, an auto-delete queue, the
/// binding), for a test that consumes the queue itself as a raw "server".
func declareRawServerQueue(on connection: AMQPConnection, prefix: String) async throws -> RPCTarget {
    let target = RPCTarget(topic: "\(prefix)_\(makeUUIDHex())")
    try await connection.declare(exchange: QueueFlavor().topicExchange(target.exchange))
    try await connection.declare(queue: QueueDeclaration(name: target.topic, autoDelete: true))
    try await connection.bind(QueueBinding(queue: target.topic, exchange: target.exchange, routingKey: target.routingKey))
    return target
}
