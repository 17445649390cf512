import CRabbitMQ

#if canImport(Glibc)
import Glibc
#endif

/// The frame pump: reads what the broker sends (deliveries, confirms, returns, consumer
/// cancels, flow control, closes) and hands it on. On the I/O thread only.
extension ConnectionCore {
    /// Reads what the library has and what the socket holds, one frame at a time. After the
    /// first read of a turn it goes on only while the library holds more input: whether the
    /// socket has more is the next poll's question (asking here costs a `recv` that fails and a
    /// `poll` inside the library). Over TLS it reads until the library finds nothing, every
    /// turn, as before: what OpenSSL has decrypted but not handed out is invisible to poll.
    ///
    /// A delivery is assembled here, frame by frame (`InboundDelivery`), not by the library's
    /// `amqp_consume_message`: that one reads a whole message into the channel's memory pool,
    /// whose pages the library recycles but never frees, so one 100 MB message left the process
    /// 100 MB larger for good, and it blocked this thread until the last frame had arrived.
    /// Now every frame is copied out (or, past the consumer's `maxBodyBytes`, dropped) before
    /// the next is read, and the pool never holds more than a frame or two.
    func pump() {
        lastPumpAt = .now
        var budget = 2048  // frames (a small message is three); queued jobs (replies) run between bursts
        var first = true
        while case .connected(let s) = link, budget > 0 {
            if !first && !s.isTLS && !libraryHasInput(s) {
                socketMayBeReadable = false
                return
            }
            first = false
            budget -= 1
            let c = s.handle
            amqp_maybe_release_buffers(c)  // nothing read before is referenced any more
            var frame = amqp_frame_t()
            var tv = timeval(tv_sec: 0, tv_usec: 0)
            let w = amqp_simple_wait_frame_noblock(c, &frame, &tv)
            if w == AMQP_STATUS_TIMEOUT.rawValue {
                socketMayBeReadable = s.isTLS
                return
            }
            guard w == AMQP_STATUS_OK.rawValue else {
                return lost(
                    w == AMQP_STATUS_HEARTBEAT_TIMEOUT.rawValue
                        ? "missed heartbeats from the broker (no data for 2 x \(config.heartbeat) s)"
                        : "read failed: \(String(cString: amqp_error_string2(w)))")
            }
            if let problem = read(frame, on: s) { return lost(problem) }
        }
    }

    /// One frame: a delivery's method, header or body frame goes to the message being
    /// assembled; any other method to `handle`. Returns why the connection must go, if it must.
    private func read(_ frame: amqp_frame_t, on s: Session) -> String? {
        switch Int32(frame.frame_type) {
        case AMQP_FRAME_METHOD where frame.payload.method.id == AOS_BASIC_DELIVER:
            guard inbound == nil else { return "protocol error: a delivery began inside another" }
            let d = frame.payload.method.decoded.assumingMemoryBound(to: amqp_basic_deliver_t.self).pointee
            let tag = d.consumer_tag.string
            // For a consumer gone meanwhile nothing is kept: the message is dropped or rejected.
            let options = topology.consumer(tag: tag)?.options
            inbound = InboundDelivery(
                consumerTag: tag, deliveryTag: d.delivery_tag, exchange: d.exchange.string,
                routingKey: d.routing_key.string, redelivered: d.redelivered != 0,
                maxBodyBytes: options == nil ? 0 : options?.maxBodyBytes, keptBytes: options?.keptBytes ?? 0)
            return nil
        case AMQP_FRAME_METHOD:
            guard inbound == nil || frame.channel != Session.channel else {
                return "protocol error: a method frame inside a delivery"
            }
            handle(frame, on: s)
            return nil
        case AMQP_FRAME_HEADER:
            guard var m = inbound, frame.channel == Session.channel, m.properties == nil else {
                return "protocol error: a content header outside a delivery"
            }
            guard let size = Int(exactly: frame.payload.properties.body_size) else {
                return "protocol error: a body size of \(frame.payload.properties.body_size) bytes"
            }
            let p = frame.payload.properties.decoded.assumingMemoryBound(to: amqp_basic_properties_t.self).pointee
            m.begin(properties: decodeProperties(p), bodySize: size)
            return complete(m, on: s)
        case AMQP_FRAME_BODY:
            guard var m = inbound, frame.channel == Session.channel, m.properties != nil else {
                return "protocol error: a body frame outside a delivery"
            }
            inbound = nil  // `m` holds the only reference to its buffers: appending copies nothing
            let fragment = frame.payload.body_fragment
            let bytes = UnsafeRawBufferPointer(start: fragment.bytes, count: fragment.bytes == nil ? 0 : fragment.len)
            guard m.append(bytes) else { return "protocol error: more body than the header announced" }
            return complete(m, on: s)
        default:
            return nil  // heartbeats are handled inside the library
        }
    }

    /// Delivers `m` once its body is all there; keeps it as the message being read otherwise.
    private func complete(_ m: InboundDelivery, on s: Session) -> String? {
        guard m.isComplete else {
            inbound = m
            return nil
        }
        inbound = nil
        deliver(m, on: s)
        return nil
    }

    private func deliver(_ m: InboundDelivery, on s: Session) {
        guard let consumer = topology.consumer(tag: m.consumerTag) else {
            // A manual-ack consumer cancelled meanwhile: give the message back to its queue
            // (an auto-ack delivery has no tag to reject).
            if topology.wasCancelledManualAck(tag: m.consumerTag) {
                _ = amqp_basic_reject(s.handle, Session.channel, m.deliveryTag, 1)
            }
            return
        }
        // Auto-ack consumers were acked by the broker on sending (at-most-once, like
        // oslo.messaging); manual-ack ones are acked through `ack(tag:generation:)`.
        var d = AMQPDelivery(
            body: m.head, properties: m.properties ?? AMQPProperties(),
            exchange: m.exchange, routingKey: m.routingKey, redelivered: m.redelivered, consumerTag: m.consumerTag,
            receivedAt: .now, bodySize: m.bodySize, bodyTail: m.tailBytes)
        if consumer.options.manualAck {
            d.needsAck = true
            d.deliveryTag = m.deliveryTag
            d.generation = status.generation.load(ordering: .acquiring)
        }
        consumer.handler(d)
    }

    private func handle(_ frame: amqp_frame_t, on s: Session) {
        guard frame.frame_type == UInt8(AMQP_FRAME_METHOD) else { return }
        let m = frame.payload.method
        switch m.id {
        case AOS_BASIC_ACK:
            let a = m.decoded.assumingMemoryBound(to: amqp_basic_ack_t.self).pointee
            settle(upTo: a.delivery_tag, multiple: a.multiple != 0, ok: true)
        case AOS_BASIC_NACK:
            let a = m.decoded.assumingMemoryBound(to: amqp_basic_nack_t.self).pointee
            settle(upTo: a.delivery_tag, multiple: a.multiple != 0, ok: false)
        case AOS_BASIC_RETURN:
            let r = m.decoded.assumingMemoryBound(to: amqp_basic_return_t.self).pointee
            let ex = r.exchange.string, rk = r.routing_key.string
            let text = "\(r.reply_code) \(r.reply_text.string)"
            var msg = amqp_message_t()
            let rr = amqp_read_message(s.handle, frame.channel, &msg, 0)
            if rr.reply_type == AMQP_RESPONSE_NORMAL { amqp_destroy_message(&msg) }
            confirms.returned(exchange: ex, routingKey: rk, reply: text)
        case AOS_BASIC_CANCEL:
            let cancel = m.decoded.assumingMemoryBound(to: amqp_basic_cancel_t.self).pointee
            resubscribe(tag: cancel.consumer_tag.string, on: s)
        case AOS_CONNECTION_BLOCKED:
            setBlocked(true)
            logger.warning("broker blocked publishing (resource alarm); holding publishes")
        case AOS_CONNECTION_UNBLOCKED:
            setBlocked(false)
            logger.info("broker unblocked publishing")
            flushWaiting()
        case AOS_CHANNEL_CLOSE:
            let close = m.decoded.assumingMemoryBound(to: amqp_channel_close_t.self).pointee
            s.sendChannelCloseOK()
            lost("broker closed the channel: \(close.reply_code) \(close.reply_text.string)", immediate: true)
        case AOS_CONNECTION_CLOSE:
            let close = m.decoded.assumingMemoryBound(to: amqp_connection_close_t.self).pointee
            s.sendConnectionCloseOK()
            lost("broker closed the connection: \(close.reply_code) \(close.reply_text.string)")
        default:
            break
        }
    }

    private func settle(_ settled: [PublishConfirms<Completion>.Settled]) {
        for (completion, result) in settled { completion(result) }
    }

    /// Completions run after the bookkeeping (one may publish again).
    private func settle(upTo tag: UInt64, multiple: Bool, ok: Bool) {
        if multiple {
            settle(confirms.confirmed(upTo: tag, multiple: true, ok: ok))
        } else if let (completion, result) = confirms.confirmed(tag: tag, ok: ok) {
            completion(result)
        }
    }

    /// The broker cancelled a consumer (its queue was deleted): declare the queue
    /// again from the recorded topology and consume it under the same tag.
    private func resubscribe(tag: String, on s: Session) {
        guard let con = topology.consumer(tag: tag) else { return }
        logger.warning("broker cancelled consumer; re-declaring its queue", metadata: ["queue": "\(con.queue)"])
        if let e = s.replay(topology.resubscribeSteps(tag: tag), connectionPrefetch: topology.prefetch) {
            lost(e, immediate: false)
        }
    }
}
