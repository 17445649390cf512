import CRabbitMQ

#if canImport(Glibc)
import Glibc
#endif

/// The frame pump: reads what the broker sends (deliveries, confirms, returns, consumer
/// cancels, flow control, closes) and hands it on. On the I/O thread only.
extension ConnectionCore {
    /// Reads what the library has and what the socket holds. After the first read of a turn it
    /// goes on only while the library holds more input: whether the socket has more is the next
    /// poll's question (asking here costs a `recv` that fails and a `poll` inside the library).
    /// Over TLS it reads until the library finds nothing, every turn, as before: what OpenSSL
    /// has decrypted but not handed out is invisible to poll.
    func pump() {
        lastPumpAt = .now
        var budget = 512  // let queued jobs (replies) run between bursts
        var first = true
        while case .connected(let s) = link, budget > 0 {
            if !first && !s.isTLS && !libraryHasInput(s) {
                socketMayBeReadable = false
                return
            }
            first = false
            budget -= 1
            let c = s.handle
            amqp_maybe_release_buffers(c)
            var env = amqp_envelope_t()
            var tv = timeval(tv_sec: 0, tv_usec: 0)
            let r = amqp_consume_message(c, &env, &tv, 0)
            if r.reply_type == AMQP_RESPONSE_NORMAL {
                deliver(env, on: s)
                amqp_destroy_envelope(&env)
                continue
            }
            if r.reply_type == AMQP_RESPONSE_LIBRARY_EXCEPTION {
                if r.library_error == AMQP_STATUS_TIMEOUT.rawValue {
                    socketMayBeReadable = s.isTLS
                    return
                }
                if r.library_error == AMQP_STATUS_UNEXPECTED_STATE.rawValue {
                    var frame = amqp_frame_t()
                    let w = amqp_simple_wait_frame(c, &frame)
                    if w != AMQP_STATUS_OK.rawValue { return lost("read failed: \(String(cString: amqp_error_string2(w)))") }
                    handle(frame, on: s)
                    continue
                }
                let why =
                    r.library_error == AMQP_STATUS_HEARTBEAT_TIMEOUT.rawValue
                    ? "missed heartbeats from the broker (no data for 2 x \(config.heartbeat) s)"
                    : String(cString: amqp_error_string2(r.library_error))
                return lost(why)
            }
            let (code, text) = replyDescription(r)
            return lost("\(code) \(text)")
        }
    }

    private func deliver(_ env: amqp_envelope_t, on s: Session) {
        let tag = env.consumer_tag.string
        guard let consumer = topology.consumer(tag: tag) else {
            // A manual-ack consumer cancelled meanwhile: give the message back to its queue
            // (an auto-ack delivery has no tag to reject).
            if topology.wasCancelledManualAck(tag: tag) {
                _ = amqp_basic_reject(s.handle, Session.channel, env.delivery_tag, 1)
            }
            return
        }
        // Auto-ack consumers were acked by the broker on sending (at-most-once, like
        // oslo.messaging); manual-ack ones are acked through `ack(tag:generation:)`.
        let size = env.message.body.len
        var body: [UInt8], tail: [UInt8] = []
        if let limit = consumer.options.maxBodyBytes, size > max(0, limit) {
            // Never copied whole: both ends are kept for a tolerant scan of the reply address.
            let keep = min(size, max(0, consumer.options.keptBytes))
            body = env.message.body.slice(from: 0, count: keep)
            tail = env.message.body.slice(from: size - keep, count: keep)
        } else {
            body = env.message.body.array
        }
        var d = AMQPDelivery(
            body: body, properties: decodeProperties(env.message.properties),
            exchange: env.exchange.string, routingKey: env.routing_key.string,
            redelivered: env.redelivered != 0, consumerTag: tag, receivedAt: .now,
            bodySize: size, bodyTail: tail)
        if consumer.options.manualAck {
            d.needsAck = true
            d.deliveryTag = env.delivery_tag
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
