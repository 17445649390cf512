import AMQPClient
import AOSAPI
import Logging
import OsloRPC
import RPCWire

/// Calls one agent. The controller's only way to reach agents, so tests can swap in fakes.
public protocol AgentCaller: Sendable {
    /// Calls `method` on `host`'s agent and waits at most `timeout`.
    /// Throws a `ServiceError`: the agent's own error, `timed_out`, `agent_unavailable`
    /// (no such agent queue) or `messaging_error` (broker unreachable).
    func call(host: String, method: String, args: [String: JSONValue], timeout: Duration) async throws -> JSONValue
    /// Same, naming the agent run (`instance_id` from its announcements) the request is
    /// meant for: a restarted agent refuses it with `agent_restarted` instead of running
    /// a request whose caller was already told the agent was unavailable.
    func call(
        host: String, method: String, args: [String: JSONValue], timeout: Duration,
        instance: String?
    ) async throws -> JSONValue
}

extension AgentCaller {
    public func call(
        host: String, method: String, args: [String: JSONValue], timeout: Duration,
        instance: String?
    ) async throws -> JSONValue {
        try await call(host: host, method: method, args: args, timeout: timeout)
    }
}

/// The agents' RPC API over oslo.messaging: topic `aos-agent`, server = host, version 1.0.
public struct RPCAgentCaller: AgentCaller {
    public static let defaultTopic = "aos-agent"
    public let client: RPCClient
    public let exchange: String
    public let topic: String
    public let version: String

    public init(
        client: RPCClient, exchange: String = "openstack", topic: String = RPCAgentCaller.defaultTopic,
        version: String = "1.0"
    ) {
        self.client = client
        self.exchange = exchange
        self.topic = topic
        self.version = version
    }

    public func call(host: String, method: String, args: [String: JSONValue], timeout: Duration) async throws -> JSONValue {
        try await call(host: host, method: method, args: args, timeout: timeout, instance: nil)
    }

    public func call(
        host: String, method: String, args: [String: JSONValue], timeout: Duration,
        instance: String?
    ) async throws -> JSONValue {
        let target = RPCTarget(exchange: exchange, topic: topic, server: host)
        let context: [String: JSONValue] = instance.map { ["aos_agent_instance": .string($0)] } ?? [:]
        do {
            return try await client.call(
                target, method: method, args: args, context: context, timeout: timeout,
                version: version)
        } catch let e as RPCCallError {
            throw Self.serviceError(e, host: host, method: method, timeout: timeout)
        }
    }

    /// Maps a failed agent call to the error the controller's caller gets.
    public static func serviceError(_ e: RPCCallError, host: String, method: String, timeout: Duration) -> ServiceError {
        switch e {
        case .remote(let failure):
            var se = ServiceError(failure: failure)
            if se.details["host"] == nil { se.details["host"] = .string(host) }
            return se
        case .timedOut:
            return ServiceError(
                .timedOut,
                "the agent on \(host) did not answer \(method) within \(formatSeconds(timeout))",
                details: [
                    "host": .string(host), "method": .string(method),
                    "timeout": .double(timeout.secondsValue),
                ])
        case .undeliverable:
            return ServiceError(
                .agentUnavailable,
                "no agent is listening for host \(host) (is aos-agent running there?)",
                details: ["host": .string(host), "method": .string(method)])
        case .transport(let amqp):
            return ServiceError(
                .messagingError,
                "could not reach the message broker to call the agent on \(host): \(amqp)",
                details: ["host": .string(host), "method": .string(method)])
        case .badReply(_, _, let reason):
            // The agent may have done the work: like a timeout, the outcome is unknown.
            return ServiceError(
                .messagingError,
                "the agent on \(host) answered \(method) with a reply the controller does not accept: \(reason)",
                details: ["host": .string(host), "method": .string(method)])
        }
    }
}

extension Duration {
    var secondsValue: Double { Double(components.seconds) + Double(components.attoseconds) / 1e18 }
}

func formatSeconds(_ d: Duration) -> String {
    let s = d.secondsValue
    if s >= 10 || s.rounded() == s { return "\(Int(s.rounded())) s" }
    return "\((s * 10).rounded() / 10) s"
}
