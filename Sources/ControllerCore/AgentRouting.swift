import AOSAPI
import RPCWire

// Calling agents: one named agent (`callAgent`), or the best live agent for a VG
// (`onAnyAgent`, moving on when one turns out to be unavailable); the VG a request means.

extension Controller {
    func unavailable(_ host: String, method: String, at t: ContinuousClock.Instant) -> ServiceError {
        let (known, age, others) = view.withLock { v in
            (v.isKnown(host), v.agents[host].map { t - $0.lastSeen }, v.agents.keys.sorted())
        }
        let message: String
        if known, let age {
            message = "the agent on \(host) is down (last announcement \(formatSeconds(age)) ago); \(method) was not sent"
        } else {
            message =
                "no agent has announced itself for host \(host) (known hosts: \(others.isEmpty ? "none" : others.joined(separator: ", ")))"
        }
        return ServiceError(.agentUnavailable, message, details: ["host": .string(host), "method": .string(method)])
    }

    /// The agent went down while `method` waited for its answer. Unlike `unavailable`, the
    /// request WAS sent: a partitioned agent that comes back still finds it in its queue and
    /// runs it if it is younger than the call's timeout (the message expires then). The caller
    /// must not take this failure for "nothing happened" (issue 15: it did, ~9 s after the
    /// link came back), so the message and `details.may_still_run` say so.
    func wentDown(
        _ host: String, method: String, sentAt: ContinuousClock.Instant, timeout: Duration, at t: ContinuousClock.Instant
    ) -> ServiceError {
        let age = view.withLock { v in v.agents[host].map { t - $0.lastSeen } }
        let mayRunFor = max(.zero, timeout - (t - sentAt))
        let silent = age.map { " (last announcement \(formatSeconds($0)) ago)" } ?? ""
        return ServiceError(
            .agentUnavailable,
            "the agent on \(host) went down\(silent) while \(method) waited for its answer; the request was sent "
                + "\(formatSeconds(t - sentAt)) ago and may still run there if the agent comes back within "
                + "\(formatSeconds(mayRunFor)) (when it expires): check the volume before retrying",
            details: [
                "host": .string(host), "method": .string(method), "may_still_run": .bool(true),
                "may_still_run_for_s": .double(Double(mayRunFor.components.seconds)),
            ])
    }

    /// The agent announced a new run (instance id) while `method` waited: the run it was sent
    /// to is gone, and the new one refuses requests addressed to the old (`agent_restarted`).
    /// Waiting longer cannot bring an answer (a SIGKILLed agent's calls waited out their whole
    /// timeout, issue 15); the request may have run before the restart, never after it.
    func restarted(
        _ host: String, method: String, from old: String, to new: String, sentAt: ContinuousClock.Instant,
        at t: ContinuousClock.Instant
    ) -> ServiceError {
        ServiceError(
            .agentRestarted,
            "the agent on \(host) restarted while \(method) waited for its answer (sent \(formatSeconds(t - sentAt)) ago); "
                + "it may have run before the restart and will not run after it: check the volume, then retry",
            details: [
                "host": .string(host), "method": .string(method), "may_have_run": .bool(true),
                "old_instance": .string(old), "new_instance": .string(new),
            ])
    }

    /// Calls one agent: fails at once when it is down, waits at most agent_response_timeout and
    /// never past the caller's deadline, and gives up with `agent_unavailable` as soon as the
    /// agent goes down while the call waits (the call is cancelled then).
    func callAgent(
        _ host: String, _ method: AgentMethod, _ args: [String: JSONValue],
        deadline: ContinuousClock.Instant?
    ) async throws -> JSONValue {
        let name = method.rawValue
        let start = now()
        if view.withLock({ $0.liveness(of: host, now: start) }) == .down {
            throw unavailable(host, method: name, at: start)
        }
        var timeout = settings.agentResponseTimeout
        if let deadline {
            let remaining = deadline - start
            guard remaining > .milliseconds(50) else {
                throw ServiceError(
                    .timedOut, "the caller's deadline passed before \(name) could be sent to \(host)",
                    details: ["host": .string(host), "method": .string(name)])
            }
            // Leave the caller a moment to receive our answer before it gives up.
            timeout = min(timeout, remaining - min(.seconds(1), remaining / 10))
        }
        let caller = self.caller
        let callTimeout = timeout
        // Addressed to the run the view holds; ended by the watch when the host goes down or
        // announces another run (AgentCallWatch).
        let result = try await watched(host, method: name, timeout: callTimeout) { instance in
            try await caller.call(host: host, method: name, args: args, timeout: callTimeout, instance: instance)
        }
        let t = now()
        view.withLock { $0.touch(host, at: t) }
        return result
    }

    /// Calls one agent with a typed request and reads its typed result (`callAgent` below).
    func callAgent<R: Decodable>(
        _ host: String, _ method: AgentMethod, _ request: some Encodable, as type: R.Type,
        deadline: ContinuousClock.Instant?
    ) async throws -> R {
        let raw = try await callAgent(host, method, request.wireValue().objectValue ?? [:], deadline: deadline)
        return try agentResult(R.self, raw, host: host, method: method)
    }

    /// The best agent for `vg` (`onAnyAgent` below) with a typed request and result.
    func onAnyAgent<R: Decodable>(
        vg: String, _ method: AgentMethod, _ request: some Encodable, as type: R.Type,
        deadline: ContinuousClock.Instant?
    ) async throws -> (String, R) {
        let (host, raw) = try await onAnyAgent(vg: vg, method, request.wireValue().objectValue ?? [:], deadline: deadline)
        return (host, try agentResult(R.self, raw, host: host, method: method))
    }

    /// An agent's result as its API type (docs/agent.md); keys a newer agent adds are ignored.
    func agentResult<R: Decodable>(_ type: R.Type, _ raw: JSONValue, host: String, method: AgentMethod) throws(ServiceError) -> R {
        do {
            return try JSONValueDecoder().decode(R.self, from: raw, rejectUnknownKeys: false)
        } catch {
            throw ServiceError(
                .internal, "the agent on \(host) answered \(method.rawValue) with a result the controller cannot read: \(error)",
                details: ["host": .string(host), "method": .string(method.rawValue)])
        }
    }

    /// Runs `method` on the best live agent that has `vg`'s lockspace started, moving on to the
    /// next one when an agent turns out to be unavailable. Returns the host and its result.
    func onAnyAgent(
        vg: String, _ method: AgentMethod, _ args: [String: JSONValue],
        deadline: ContinuousClock.Instant?
    ) async throws -> (String, JSONValue) {
        var tried: [String] = []
        var lastError: ServiceError?
        while true {
            let t = now()
            // Right after a (re)start no agent may have announced yet: wait for the first ones.
            let (candidates, warming) = view.withLock { v in
                (v.candidates(vg: vg, preferred: settings.preferredHosts, now: t), v.agents.isEmpty && v.warmingUp(now: t))
            }
            guard let host = candidates.first(where: { !tried.contains($0) }) else {
                if let lastError { throw lastError }
                if warming, deadline.map({ $0 - t > .milliseconds(500) }) ?? true {
                    try await Task.sleep(for: .milliseconds(100))  // agents announce within one interval
                    continue
                }
                throw noAgent(vg: vg, at: t)
            }
            do {
                return (host, try await callAgent(host, method, args, deadline: deadline))
            } catch let e as ServiceError where e.wireCode == .agentUnavailable {
                logger.warning("agent unavailable, trying the next one", metadata: ["host": "\(host)", "method": "\(method.rawValue)"])
                tried.append(host)
                lastError = e
            }
        }
    }

    func noAgent(vg: String, at t: ContinuousClock.Instant) -> ServiceError {
        let v = snapshot
        let states = v.agents.sorted { $0.key < $1.key }.map { h, a in
            "\(h): \(v.liveness(of: h, now: t).rawValue), lockspace \(v.lockspace(of: h, vg: vg)?.rawValue ?? "not served")\(a.report.ready ? "" : ", not ready")"
        }
        if !v.agents.isEmpty, !v.knownVGs.contains(vg) {
            return ServiceError(
                .unknownVG, "no agent serves volume group \(vg) (agents serve: \(v.knownVGs.joined(separator: ", ")))",
                details: ["vg": .string(vg)])
        }
        return ServiceError(
            .agentUnavailable,
            "no live agent has the lockspace of volume group \(vg) started (\(states.isEmpty ? "no agent has announced itself" : states.joined(separator: "; ")))",
            details: ["vg": .string(vg)])
    }

    /// The request's VG (already checked), or the only VG the agents serve when it names none.
    func resolveVG(_ vg: String?, method: ControllerMethod, deadline: ContinuousClock.Instant?) async throws -> String {
        if let vg { return vg }
        while true {
            let t = now()
            let (vgs, warming) = view.withLock { ($0.knownVGs, $0.warmingUp(now: t)) }
            if vgs.count == 1 { return vgs[0] }
            if vgs.isEmpty, warming, deadline.map({ $0 - t > .milliseconds(500) }) ?? true {
                try await Task.sleep(for: .milliseconds(100))
                continue
            }
            throw ServiceError(
                .invalidArgument,
                "\(method.rawValue): name the volume group with 'vg'"
                    + (vgs.isEmpty ? " (no agent reports one yet)" : " (agents serve \(vgs.joined(separator: ", ")))"),
                details: ["argument": "vg"])
        }
    }
}
