import Testing

@testable import AMQPClient

@Suite struct TopologyTests {
    private let manual = ConsumeOptions(manualAck: true, prefetch: 8)

    private func consumer(_ queue: String, _ options: ConsumeOptions = ConsumeOptions()) -> Topology.Consumer {
        Topology.Consumer(queue: queue, options: options, handler: { _ in })
    }

    @Test func replayDeclaresInDependencyOrderThenConsumesUnderTheSameTags() {
        var t = Topology(prefetch: 10)
        let tag1 = t.makeConsumerTag()
        t.record(consumer("q1"), tag: tag1)
        t.record(QueueBinding(queue: "q1", exchange: "x", routingKey: "k"))
        t.record(QueueDeclaration(name: "q1"))
        t.record(ExchangeDeclaration(name: "x", type: "topic"))
        let tag2 = t.makeConsumerTag()
        t.record(consumer("q2", manual), tag: tag2)
        #expect(tag1 != tag2)
        #expect(
            t.replaySteps == [
                .qos(10),
                .exchange(ExchangeDeclaration(name: "x", type: "topic")),
                .queue(QueueDeclaration(name: "q1")),
                .binding(QueueBinding(queue: "q1", exchange: "x", routingKey: "k")),
                .consume(tag: tag1, queue: "q1", options: ConsumeOptions()),
                .consume(tag: tag2, queue: "q2", options: manual),
            ])
    }

    @Test func noQosStepWithoutAPrefetch() {
        var t = Topology(prefetch: 0)
        t.record(ExchangeDeclaration(name: "x", type: "direct"))
        #expect(t.replaySteps == [.exchange(ExchangeDeclaration(name: "x", type: "direct"))])
        t.prefetch = 3
        #expect(t.replaySteps.first == .qos(3))
    }

    @Test func aRedeclarationReplacesTheEarlierOneAndMovesToTheEnd() {
        var t = Topology(prefetch: 0)
        t.record(QueueDeclaration(name: "a"))
        t.record(QueueDeclaration(name: "b"))
        t.record(QueueDeclaration(name: "a", durable: true))
        t.record(QueueBinding(queue: "a", exchange: "x", routingKey: "k"))
        t.record(QueueBinding(queue: "a", exchange: "x", routingKey: "k"))
        #expect(t.queues == [QueueDeclaration(name: "b"), QueueDeclaration(name: "a", durable: true)])
        #expect(t.bindings.count == 1)
    }

    @Test func deletingAQueueForgetsItsBindingsAndConsumers() {
        var t = Topology(prefetch: 0)
        t.record(QueueDeclaration(name: "gone"))
        t.record(QueueDeclaration(name: "kept"))
        t.record(QueueBinding(queue: "gone", exchange: "x", routingKey: "g"))
        t.record(QueueBinding(queue: "kept", exchange: "x", routingKey: "k"))
        let g = t.makeConsumerTag()
        t.record(consumer("gone"), tag: g)
        let k = t.makeConsumerTag()
        t.record(consumer("kept"), tag: k)
        t.removeQueue("gone")
        #expect(
            t.replaySteps == [
                .queue(QueueDeclaration(name: "kept")),
                .binding(QueueBinding(queue: "kept", exchange: "x", routingKey: "k")),
                .consume(tag: k, queue: "kept", options: ConsumeOptions()),
            ])
        #expect(t.consumer(tag: g) == nil)
        #expect(!t.wasCancelledManualAck(tag: g))
    }

    @Test func cancellingAConsumerRemembersManualAckTagsOnly() {
        var t = Topology(prefetch: 0)
        let auto = t.makeConsumerTag()
        t.record(consumer("a"), tag: auto)
        let man = t.makeConsumerTag()
        t.record(consumer("m", manual), tag: man)
        #expect(t.removeConsumer(tag: auto)?.queue == "a")
        #expect(t.removeConsumer(tag: man)?.queue == "m")
        #expect(t.removeConsumer(tag: man) == nil)
        #expect(t.removeConsumer(tag: "no-such-tag") == nil)
        #expect(!t.wasCancelledManualAck(tag: auto))
        #expect(t.wasCancelledManualAck(tag: man))
        #expect(t.consumerTags.isEmpty && t.replaySteps.isEmpty)
    }

    @Test func resubscribingRedeclaresTheConsumersQueueAndItsBindings() {
        var t = Topology(prefetch: 0)
        t.record(QueueDeclaration(name: "q", autoDelete: true))
        t.record(QueueDeclaration(name: "other"))
        t.record(QueueBinding(queue: "q", exchange: "x", routingKey: "a"))
        t.record(QueueBinding(queue: "other", exchange: "x", routingKey: "o"))
        t.record(QueueBinding(queue: "q", exchange: "y", routingKey: "b"))
        let tag = t.makeConsumerTag()
        t.record(consumer("q", manual), tag: tag)
        #expect(
            t.resubscribeSteps(tag: tag) == [
                .queue(QueueDeclaration(name: "q", autoDelete: true)),
                .binding(QueueBinding(queue: "q", exchange: "x", routingKey: "a")),
                .binding(QueueBinding(queue: "q", exchange: "y", routingKey: "b")),
                .consume(tag: tag, queue: "q", options: manual),
            ])
        #expect(t.resubscribeSteps(tag: "unknown").isEmpty)
        // A queue declared elsewhere (not through this connection) is only consumed again.
        let tag2 = t.makeConsumerTag()
        t.record(consumer("external"), tag: tag2)
        #expect(t.resubscribeSteps(tag: tag2) == [.consume(tag: tag2, queue: "external", options: ConsumeOptions())])
    }
}
