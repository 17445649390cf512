import Foundation
import Logging
import Synchronization
import Testing

@testable import AMQPClient

/// Set by scripts/test.sh, which starts a private broker before `swift test`.
private let brokerURL = ProcessInfo.processInfo.environment["AOS_TEST_AMQP_URL"]

private func delivery(maxBodyBytes: Int?, keptBytes: Int = 4) -> InboundDelivery {
    InboundDelivery(
        consumerTag: "c", deliveryTag: 1, exchange: "", routingKey: "q", redelivered: false,
        maxBodyBytes: maxBodyBytes, keptBytes: keptBytes)
}

private func feed(_ m: inout InboundDelivery, _ body: [UInt8], frame: Int) -> Bool {
    var i = 0
    while i < body.count {
        let chunk = Array(body[i..<min(body.count, i + frame)])
        guard chunk.withUnsafeBytes({ m.append($0) }) else { return false }
        i += frame
    }
    return true
}

/// How the frame pump assembles a delivery: whole under the consumer's limit, only both ends
/// over it, and never past the size its header announced.
@Suite struct InboundDeliveryTests {
    @Test(arguments: [1, 3, 7, 1000])
    func aBodyUnderTheLimitIsKeptWholeWhateverTheFrames(frame: Int) {
        let body = (0..<100).map { UInt8($0) }
        var m = delivery(maxBodyBytes: 100)
        m.begin(properties: AMQPProperties(contentType: "application/json"), bodySize: body.count)
        #expect(!m.isComplete)
        #expect(feed(&m, body, frame: frame))
        #expect(m.isComplete)
        #expect(m.head == body && m.tailBytes.isEmpty && m.bodySize == 100)
        #expect(m.properties?.contentType == "application/json")
    }

    @Test(arguments: [1, 3, 7, 1000])
    func aBodyOverTheLimitKeepsOnlyItsEnds(frame: Int) {
        let body = (0..<101).map { UInt8($0) }
        var m = delivery(maxBodyBytes: 100, keptBytes: 4)
        m.begin(properties: AMQPProperties(), bodySize: body.count)
        #expect(feed(&m, body, frame: frame))
        #expect(m.isComplete)
        #expect(m.head == [0, 1, 2, 3])
        #expect(m.tailBytes == [97, 98, 99, 100])
        #expect(m.bodySize == 101)
    }

    @Test func anEmptyBodyIsCompleteAtItsHeader() {
        var m = delivery(maxBodyBytes: nil)
        m.begin(properties: AMQPProperties(), bodySize: 0)
        #expect(m.isComplete && m.head.isEmpty)
    }

    @Test func moreBodyThanAnnouncedIsRefused() {
        var m = delivery(maxBodyBytes: nil)
        m.begin(properties: AMQPProperties(), bodySize: 5)
        #expect(feed(&m, [1, 2, 3], frame: 3))
        #expect(!feed(&m, [4, 5, 6], frame: 3))
        #expect(!m.isComplete)
    }

    /// A real broker splits bodies into frames of at most frame_max (128 KiB here): a 1 MiB body
    /// arrives in nine, and comes out whole, or as its ends under a limit.
    @Test(.enabled(if: brokerURL != nil, "needs a broker (AOS_TEST_AMQP_URL): run through scripts/test.sh"))
    func multiFrameBodiesThroughABroker() async throws {
        let url = try TransportURL(parsing: try #require(brokerURL))
        var logger = Logger(label: "inbound-delivery-test")
        logger.logLevel = .critical
        let connection = AMQPConnection(configuration: try AMQPConfiguration(url: url), logger: logger)
        try await connection.waitUntilConnected(timeout: .seconds(30))
        let body = (0..<(1 << 20)).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ $0 >> 8) }
        for limit in [Int?.none, 4096] {
            let queue = "inbound_test_\(UUID().uuidString)"
            try await connection.declare(queue: QueueDeclaration(name: queue, autoDelete: true))
            let (deliveries, got) = AsyncStream<AMQPDelivery>.makeStream()
            try await connection.consume(queue: queue, options: ConsumeOptions(maxBodyBytes: limit)) { got.yield($0) }
            try await connection.publish(body, exchange: "", routingKey: queue)
            try await connection.publish([7, 7, 7], exchange: "", routingKey: queue)  // the next one is read after it
            var it = deliveries.makeAsyncIterator()
            let big = try #require(await it.next())
            #expect(big.bodySize == body.count)
            if limit == nil {
                #expect(big.body == body && !big.isTruncated)
            } else {
                #expect(big.isTruncated)
                #expect(big.body == Array(body.prefix(16_384)))
                #expect(big.bodyTail == Array(body.suffix(16_384)))
            }
            let small = try #require(await it.next())
            #expect(small.body == [7, 7, 7] && !small.isTruncated)
        }
        await connection.close()
    }
}
