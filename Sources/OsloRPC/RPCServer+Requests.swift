import AMQPClient
import Logging
import RPCWire
import Synchronization

/// One request's path inside a work slot: screening, duplicate and deadline checks,
/// admission, dispatch, and the reply to send afterwards.
extension RPCServer {
    /// Runs one request inside a work slot; returns the reply to send once the slot is free.
    func process(_ d: AMQPDelivery, route: RPCRoute) async -> OutgoingReply? {
        if d.bodySize >= MemoryReturn.largeMessageBytes { sawLargeMessage.store(true, ordering: .releasing) }
        let started = ContinuousClock.now
        let request: RPCRequest
        switch Self.screen(d, maxRequestBytes: options.maxRequestBytes) {
        case .request(let r):
            request = r
        case .refused(let reply, let why):
            logger.warning(
                "refusing RPC message",
                metadata: [
                    "error": "\(why)", "size": "\(d.bodySize)", "routing_key": "\(d.routingKey)",
                    "user": "\(d.properties.userID ?? "-")", "reply_queue": "\(reply?.queue ?? "(none found)")",
                ])
            RPCMetrics.count(method: "invalid", code: "malformed")
            return reply
        }
        let methodLabel = RPCMetrics.label(method: request.method, dispatcher: dispatcher)
        if let u = request.uniqueID, duplicates.withLock({ $0.isDuplicate(u) }) {
            RPCMetrics.count(method: methodLabel, code: "duplicate")
            logger.info("ignoring duplicate message", metadata: ["unique_id": "\(u)", "method": "\(request.method)"])
            return nil
        }
        var deadline: ContinuousClock.Instant?
        if let exp = d.properties.expiration, let ms = Int64(exp) {
            deadline = d.receivedAt + .milliseconds(max(0, min(ms, 7 * 86_400_000)))  // bounded: no overflow
        }
        if let explicit = RPCDeadline.instant(from: request.context) {
            deadline = min(deadline ?? explicit, explicit)
        }
        let ctx = RPCCallContext(
            method: request.method, context: request.context, deadline: deadline,
            uniqueID: request.uniqueID, isCall: request.isCall, userID: d.properties.userID,
            route: route, routingKey: d.routingKey, msgID: request.msgID,
            replyQueue: request.replyQueue, namespace: request.namespace, version: request.version)
        if ctx.hasExpired {
            logger.warning(
                "not executing a request whose caller has given up",
                metadata: ["method": "\(request.method)", "msg_id": "\(request.msgID ?? "-")"])
            RPCMetrics.count(method: methodLabel, code: "expired")
            return nil
        }
        if RPCDeadline.startByPassed(request.context) {
            logger.warning(
                "not executing a request whose caller's call monitor has given up (aos_start_by passed)",
                metadata: ["method": "\(request.method)", "msg_id": "\(request.msgID ?? "-")"])
            RPCMetrics.count(method: methodLabel, code: "expired")
            return nil
        }
        var heartbeat: Task<Void, Never>?
        if let msgID = request.msgID, let replyQ = request.replyQueue, let t = request.monitorTimeout {
            let interval = Int(t / 2)  // decode keeps `t` finite and bounded
            if interval >= 1 {
                // The first heartbeat goes out after 1 s, not half the monitor time: the caller's
                // monitor started at its publish, and a request that waited in the queue (its server
                // restarting) would be given up by the caller while it runs here. (Not at once: a
                // call answered within 1 s needs none, and a late one only makes oslo log.)
                heartbeat = Task {
                    var wait = Duration.seconds(1)
                    while !Task.isCancelled {
                        try? await Task.sleep(for: wait)
                        if Task.isCancelled { break }
                        await self.replies.send(.heartbeat(msgID: msgID, uniqueID: makeUUIDHex()), to: replyQ, retry: false)
                        wait = .seconds(interval)
                    }
                }
            } else {
                logger.warning("call_monitor_timeout below 2 s: no heartbeats sent", metadata: ["method": "\(request.method)"])
            }
        }
        var reply: RPCReply?
        var failed: RPCFailure?
        let admitted: Result<RPCHandler, RPCFailure>
        if let refusal = options.admit?(ctx, request.args) {
            logger.warning(
                "refused RPC request",
                metadata: [
                    "method": "\(request.method)", "user": "\(ctx.userID ?? "-")", "route": "\(route.rawValue)",
                    "error": "\(refusal.message)",
                ])
            admitted = .failure(refusal)
        } else {
            admitted = dispatcher.handler(for: request)
        }
        switch admitted {
        case .failure(let f):
            failed = f
            reply = RPCReply(failure: f, msgID: request.msgID ?? "")
        case .success(let handler):
            do {
                let result = try await handler(ctx, request.args)
                reply = RPCReply(result: result, msgID: request.msgID ?? "")
            } catch {
                let failure =
                    (error as? any RPCFailureConvertible)?.rpcFailure
                    ?? RPCFailure(className: "RuntimeError", module: "builtins", message: "\(error)")
                logger.info("RPC method failed", metadata: ["method": "\(request.method)", "error": "\(failure)"])
                failed = failure
                reply = RPCReply(failure: failure, msgID: request.msgID ?? "")
            }
        }
        heartbeat?.cancel()
        RPCMetrics.finished(method: methodLabel, failure: failed, since: started)
        guard var reply, let replyQ = request.replyQueue, request.msgID != nil else { return nil }
        reply.uniqueID = makeUUIDHex()
        return OutgoingReply(reply: reply, queue: replyQ)
    }

    enum Screened {
        case request(RPCRequest)
        /// Not executed; the ValueError reply when a reply address was found.
        case refused(OutgoingReply?, reason: String)
    }

    /// Size check and decoding, before anything else looks at a delivery.
    static func screen(_ d: AMQPDelivery, maxRequestBytes: Int) -> Screened {
        if d.isTruncated || d.bodySize > maxRequestBytes || d.body.count > maxRequestBytes {
            let size = max(d.bodySize, d.body.count)
            let why = "request body of \(size) bytes exceeds the limit of \(maxRequestBytes) bytes"
            return .refused(malformedReply(d, message: why), reason: why)
        }
        do {
            return .request(try RPCRequest.decode(body: d.body, contentType: d.properties.contentType))
        } catch {
            let why = "malformed RPC request: \(error)"
            return .refused(malformedReply(d, message: why), reason: why)
        }
    }

    /// Bad input must still get a clear error when the caller can be identified: the
    /// reply address comes from a tolerant scan (the body did not parse, or was not kept).
    static func malformedReply(_ d: AMQPDelivery, message: String) -> OutgoingReply? {
        guard let address = RPCServer.replyAddress(of: d) else { return nil }
        let f = RPCFailure(className: "ValueError", module: "builtins", message: message)
        return OutgoingReply(
            reply: RPCReply(failure: f, msgID: address.msgID, uniqueID: makeUUIDHex()),
            queue: address.replyQueue)
    }

    /// Where to answer a request that cannot be decoded: scanned in the kept bytes (both
    /// ends of a truncated body; oslo callers write `_msg_id` after the arguments).
    static func replyAddress(of d: AMQPDelivery) -> RPCReplyAddress? {
        // A whole body that parses with a top-level address: that one, not a `_msg_id` nested in
        // its args that the scan would find first. Otherwise (no top-level one, a wrapping the
        // unwrap does not read, a body that does not parse) the scan.
        if d.bodyTail.isEmpty, let message = try? OsloEnvelope.unwrap(d.body),
            let address = RPCReplyAddress.topLevel(of: message)
        {
            return address
        }
        if let a = RPCReplyAddress.scan(d.body) { return a }
        if !d.bodyTail.isEmpty, let a = RPCReplyAddress.scan(d.bodyTail) { return a }
        // A body not truncated but longer than the scan window: look at its end too.
        if d.bodyTail.isEmpty, d.body.count > 65_536 { return RPCReplyAddress.scan(d.body.suffix(65_536)) }
        return nil
    }
}
