/// What a connection has declared through it, recorded so that a new connection can
/// declare it all again: a pure value, owned by the I/O thread's `ConnectionCore`.
///
/// Declarations are recorded after the broker accepted them; a redeclaration replaces the
/// earlier one in place of order (at the end). `replaySteps` is the order a fresh channel
/// needs: qos, exchanges, queues, bindings, then consumers under their original tags.
struct Topology {
    struct Consumer {
        let queue: String
        let options: ConsumeOptions
        let handler: @Sendable (AMQPDelivery) -> Void
    }

    /// One AMQP method to send, in order, on a fresh channel.
    enum Step: Equatable {
        case qos(UInt16)
        case exchange(ExchangeDeclaration)
        case queue(QueueDeclaration)
        case binding(QueueBinding)
        case consume(tag: String, queue: String, options: ConsumeOptions)
    }

    private(set) var exchanges: [ExchangeDeclaration] = []
    private(set) var queues: [QueueDeclaration] = []
    private(set) var bindings: [QueueBinding] = []
    /// Consumer tags in the order they were started.
    private(set) var consumerTags: [String] = []
    private var consumers: [String: Consumer] = [:]
    private var nextConsumerTag = 1
    /// Tags of cancelled manual-ack consumers (one per cancel: small). A delivery still
    /// arriving for one of them is given back to its queue.
    private var cancelledManualAck: Set<String> = []
    /// The connection-wide basic.qos (0 = unlimited).
    var prefetch: UInt16

    init(prefetch: UInt16) { self.prefetch = prefetch }

    mutating func record(_ e: ExchangeDeclaration) {
        exchanges.removeAll { $0.name == e.name }
        exchanges.append(e)
    }

    mutating func record(_ q: QueueDeclaration) {
        queues.removeAll { $0.name == q.name }
        queues.append(q)
    }

    mutating func record(_ b: QueueBinding) {
        if !bindings.contains(b) { bindings.append(b) }
    }

    /// A tag for the next consumer (numbers, never reused on this connection object).
    mutating func makeConsumerTag() -> String {
        defer { nextConsumerTag += 1 }
        return String(nextConsumerTag)
    }

    mutating func record(_ consumer: Consumer, tag: String) {
        if consumers.updateValue(consumer, forKey: tag) == nil { consumerTags.append(tag) }
    }

    /// A deleted queue takes its bindings and consumers with it.
    mutating func removeQueue(_ name: String) {
        queues.removeAll { $0.name == name }
        bindings.removeAll { $0.queue == name }
        let gone = Set(consumers.filter { $0.value.queue == name }.keys)
        guard !gone.isEmpty else { return }
        for tag in gone { consumers[tag] = nil }
        consumerTags.removeAll { gone.contains($0) }
    }

    /// Forgets a consumer; returns it, or nil when there was none under `tag`.
    mutating func removeConsumer(tag: String) -> Consumer? {
        guard let removed = consumers.removeValue(forKey: tag) else { return nil }
        if removed.options.manualAck { cancelledManualAck.insert(tag) }
        consumerTags.removeAll { $0 == tag }
        return removed
    }

    func consumer(tag: String) -> Consumer? { consumers[tag] }

    func wasCancelledManualAck(tag: String) -> Bool { cancelledManualAck.contains(tag) }

    /// Everything to declare again on a new connection, in order.
    var replaySteps: [Step] {
        var steps: [Step] = []
        steps.reserveCapacity(1 + exchanges.count + queues.count + bindings.count + consumerTags.count)
        if prefetch > 0 { steps.append(.qos(prefetch)) }
        steps += exchanges.map(Step.exchange)
        steps += queues.map(Step.queue)
        steps += bindings.map(Step.binding)
        for tag in consumerTags {
            if let c = consumers[tag] { steps.append(.consume(tag: tag, queue: c.queue, options: c.options)) }
        }
        return steps
    }

    /// After the broker cancelled a consumer (its queue was deleted): declare the queue
    /// again (when it was declared through this connection), its bindings, and consume it
    /// under the same tag. Empty when no consumer has that tag.
    func resubscribeSteps(tag: String) -> [Step] {
        guard let c = consumers[tag] else { return [] }
        var steps: [Step] = []
        if let q = queues.first(where: { $0.name == c.queue }) { steps.append(.queue(q)) }
        steps += bindings.filter { $0.queue == c.queue }.map(Step.binding)
        steps.append(.consume(tag: tag, queue: c.queue, options: c.options))
        return steps
    }
}
