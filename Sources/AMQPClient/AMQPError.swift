public enum AMQPError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The connection is closed for good (close() was called).
    case closed
    /// No connection could be made before the operation's deadline.
    case notConnected(lastError: String)
    /// The connection broke while the operation was in flight; it may or may not have taken effect.
    case connectionLost(String)
    /// mandatory publish with no queue bound for the routing key (basic.return).
    case unroutable(exchange: String, routingKey: String, reply: String)
    /// The broker refused the message (basic.nack).
    case nacked
    /// The broker refused a method (channel or connection close), e.g. 404 or 406.
    case brokerRefused(code: Int, text: String)
    /// Publishing stayed blocked (connection.blocked, resource alarm) past the deadline.
    case blocked
    case timedOut(String)
    case library(String)

    public var description: String {
        switch self {
        case .closed: return "AMQP connection is closed"
        case .notConnected(let e): return "not connected to the broker (last error: \(e))"
        case .connectionLost(let e): return "connection to the broker lost: \(e)"
        case .unroutable(let ex, let rk, let reply):
            return "no queue for routing key '\(rk)' on exchange '\(ex.isEmpty ? "(default)" : ex)' (\(reply)): is the peer running?"
        case .nacked: return "the broker refused the message (basic.nack)"
        case .brokerRefused(let code, let text): return "the broker refused the request: \(code) \(text)"
        case .blocked: return "the broker is blocking publishers (resource alarm)"
        case .timedOut(let what): return "timed out: \(what)"
        case .library(let e): return "AMQP library error: \(e)"
        }
    }
}
