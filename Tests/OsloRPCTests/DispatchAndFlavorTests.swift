import AMQPClient
import RPCWire
import Synchronization
import Testing

@testable import OsloRPC

@Suite struct DispatcherTests {
    let dispatcher = RPCDispatcher(endpoints: [
        RPCEndpoint(handlers: ["ping": { _, _ in "pong" }, "_secret": { _, _ in "no" }]),
        RPCEndpoint(namespace: "ns2", version: RPCVersion(major: 2, minor: 1), handlers: ["v2": { _, _ in "v2" }]),
    ])

    func failure(_ r: RPCRequest) -> RPCFailure? {
        if case .failure(let f) = dispatcher.handler(for: r) { return f }
        return nil
    }

    @Test func findsHandlersByNamespaceAndVersion() {
        #expect(failure(RPCRequest(method: "ping")) == nil)
        #expect(failure(RPCRequest(method: "ping", version: "1.0")) == nil)
        #expect(failure(RPCRequest(method: "v2", namespace: "ns2", version: "2.0")) == nil)
        #expect(failure(RPCRequest(method: "v2", namespace: "ns2", version: "2.1")) == nil)
    }

    @Test func unknownMethodAndPrivateMethodAreNoSuchMethod() {
        #expect(failure(RPCRequest(method: "nosuch"))?.className == "NoSuchMethod")
        #expect(failure(RPCRequest(method: "_secret"))?.className == "NoSuchMethod")
        #expect(failure(RPCRequest(method: "ping", namespace: "ns2", version: "2.0"))?.className == "NoSuchMethod")
    }

    @Test func incompatibleVersionIsUnsupportedVersion() {
        let f = failure(RPCRequest(method: "v2", namespace: "ns2", version: "2.2"))
        #expect(f?.className == "UnsupportedVersion")
        #expect(f?.message == "Endpoint does not support RPC version 2.2. Attempted method: v2")
        #expect(failure(RPCRequest(method: "ping", version: "1.1"))?.className == "UnsupportedVersion")
        #expect(failure(RPCRequest(method: "ping", version: "bogus"))?.className == "UnsupportedVersion")
        #expect(failure(RPCRequest(method: "ping", namespace: "other"))?.className == "UnsupportedVersion")
    }
}

@Suite struct QueueFlavorTests {
    @Test func defaultsMatchOslo() {
        let f = QueueFlavor()
        #expect(f.topicExchange("openstack") == ExchangeDeclaration(name: "openstack", type: "topic"))
        #expect(f.topicQueue("T") == QueueDeclaration(name: "T"))
        #expect(f.transientQueue("reply_x").arguments == ["x-expires": .int32(1_800_000)])
        #expect(f.fanoutExchange("T_fanout") == ExchangeDeclaration(name: "T_fanout", type: "fanout", autoDelete: true))
    }

    @Test func quorumAndDurableOptions() {
        let q = QueueFlavor(options: ["rabbit_quorum_queue": "true", "rabbit_quorum_delivery_limit": "5"])
        #expect(q.topicQueue("T").durable)
        #expect(q.topicQueue("T").arguments == ["x-queue-type": .string("quorum"), "x-delivery-limit": .int32(5)])
        #expect(q.topicExchange("E").durable)
        let d = QueueFlavor(options: ["amqp_durable_queues": "True", "rabbit_transient_queues_ttl": "0"])
        #expect(d.topicQueue("T") == QueueDeclaration(name: "T", durable: true))
        #expect(d.transientQueue("r").arguments.isEmpty)
    }

    @Test func targetRouting() {
        #expect(RPCTarget(topic: "aos-agent", server: "compute-1").routingKey == "aos-agent.compute-1")
        #expect(RPCTarget(topic: "aos-agent").routingKey == "aos-agent")
        #expect(RPCTarget(topic: "aos-agent").fanoutExchange == "aos-agent_fanout")
    }
}

@Suite struct InflightLimiterTests {
    @Test func neverRunsMoreThanTheLimitAndWaitsForAll() async {
        let limiter = InflightLimiter(limit: 3)
        let counters = Mutex((running: 0, peak: 0, done: 0))
        for _ in 0..<20 {
            limiter.start {
                counters.withLock {
                    $0.running += 1; $0.peak = max($0.peak, $0.running)
                }
                await Task.yield()
                counters.withLock {
                    $0.running -= 1; $0.done += 1
                }
                return nil
            }
        }
        await limiter.waitUntilIdle()
        let c = counters.withLock { $0 }
        #expect(c.done == 20)
        #expect(c.peak <= 3)
    }
}

@Suite struct DeadlineTests {
    @Test func explicitDeadlineMapsToTheMonotonicClock() {
        let now = ContinuousClock.now
        let wall = RPCDeadline.wallClockNow()
        let inTen = RPCDeadline.instant(from: ["aos_deadline": .double(wall + 10)], now: now)!
        #expect(inTen > now + .seconds(9) && inTen < now + .seconds(11))
        let past = RPCDeadline.instant(from: ["aos_deadline": .double(wall - 10)], now: now)!
        #expect(past < now)
        #expect(RPCDeadline.instant(from: [:]) == nil)
        #expect(RPCDeadline.instant(from: ["aos_deadline": "soon"]) == nil)
        #expect(RPCDeadline.instant(from: ["aos_deadline": .double(-1)]) == nil)
    }
}
