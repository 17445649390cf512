import Logging
import OsloRPC
import RPCWire
import Synchronization

/// The controller's settings (from `[controller]`, see AOSConfig.ControllerOptions).
public struct ControllerSettings: Sendable {
    public var agentResponseTimeout: Duration
    public var liveness: LivenessPolicy
    public var preferredHosts: [String]
    /// How often a waiting agent call re-checks the agent's liveness.
    public var livenessPollInterval: Duration = .milliseconds(200)
    /// An announcement whose `sent_at` is further than this from the controller's clock is
    /// refused: a forged or replayed report must not pin a host's state ([auth] max_clock_skew).
    public var maxClockSkew: Duration = .seconds(60)

    public init(agentResponseTimeout: Duration, liveness: LivenessPolicy, preferredHosts: [String] = []) {
        self.agentResponseTimeout = agentResponseTimeout
        self.liveness = liveness
        self.preferredHosts = preferredHosts
    }
}

/// The driver-facing API (docs/rpc-api.md): turns each request into agent RPCs, routed by the
/// cluster view it rebuilds from the agents' announcements. Holds no other state.
public final class Controller: Sendable {
    public static let apiVersion = RPCVersion(major: 1, minor: 0)

    let caller: any AgentCaller
    let settings: ControllerSettings
    let logger: Logger
    let now: @Sendable () -> ContinuousClock.Instant
    let wallClock: @Sendable () -> Double
    let view: Mutex<ClusterView>
    private let monitor = Mutex(MonitorState())

    struct MonitorState {
        var liveness: [String: Liveness] = [:]
        var reportedConflicts: [Int: [String]] = [:]
        var lastConflictLog: ContinuousClock.Instant?

        /// Whether to log `conflicts` now: when they changed, and once a minute while a
        /// collision persists (it must not go unnoticed).
        mutating func noteConflicts(_ conflicts: [Int: [String]], at t: ContinuousClock.Instant) -> Bool {
            if conflicts != reportedConflicts {
                reportedConflicts = conflicts
                lastConflictLog = t
                return !conflicts.isEmpty
            }
            if !conflicts.isEmpty, let last = lastConflictLog, t - last >= .seconds(60) {
                lastConflictLog = t
                return true
            }
            return false
        }
    }

    public init(caller: any AgentCaller, settings: ControllerSettings, logger: Logger,
                now: @escaping @Sendable () -> ContinuousClock.Instant = { .now },
                wallClock: @escaping @Sendable () -> Double = RPCDeadline.wallClockNow) {
        self.caller = caller
        self.settings = settings
        self.logger = logger
        self.now = now
        self.wallClock = wallClock
        self.view = Mutex(ClusterView(policy: settings.liveness, startedAt: now()))
    }

    /// A snapshot of the cluster view.
    public var snapshot: ClusterView { view.withLock { $0 } }

    // MARK: - RPC surface

    public static let methods = [
        "create_volume", "extend_volume", "delete_volume", "activate_volume", "deactivate_volume",
        "get_volume", "list_volumes", "pool_stats", "list_agents", "lock_status", "agent_announce",
    ]

    /// The keyword arguments each method takes (docs/rpc-api.md). Anything else is refused
    /// by name, as oslo refuses an unexpected keyword (TypeError): a typo must not be ignored.
    static let arguments: [String: Set<String>] = [
        "create_volume": ["name", "size_bytes", "size_gb", "vg"],
        "extend_volume": ["name", "size_bytes", "size_gb", "vg"],
        "delete_volume": ["name", "vg", "volume_clear", "volume_clear_size_mb"],
        "activate_volume": ["name", "host", "mode", "vg"],
        "deactivate_volume": ["name", "host", "vg"],
        "get_volume": ["name", "vg"],
        "list_volumes": ["vg"],
        "pool_stats": ["vg"],
        "list_agents": [],
        "lock_status": ["host"],
        "agent_announce": ["report", "sent_at"],
    ]

    /// The oslo endpoint (namespace none, version 1.0) serving every method.
    public var endpoint: RPCEndpoint {
        var handlers: [String: RPCHandler] = [:]
        for m in Self.methods {
            handlers[m] = { [self] ctx, args in try await self.dispatch(m, args, deadline: ctx.deadline) }
        }
        return RPCEndpoint(version: Self.apiVersion, handlers: handlers)
    }

    /// Runs one API method. `deadline` is the caller's (nil for casts and untimed callers).
    public func dispatch(_ method: String, _ raw: [String: JSONValue],
                         deadline: ContinuousClock.Instant? = nil) async throws -> JSONValue {
        let args = Arguments(raw, method: method)
        try args.rejectUnknown(Self.arguments[method] ?? [])
        switch method {
        case "create_volume": return try await createVolume(args, deadline: deadline)
        case "extend_volume": return try await extendVolume(args, deadline: deadline)
        case "delete_volume": return try await deleteVolume(args, deadline: deadline)
        case "activate_volume": return try await activateVolume(args, deadline: deadline)
        case "deactivate_volume": return try await deactivateVolume(args, deadline: deadline)
        case "get_volume": return try await getVolume(args, deadline: deadline)
        case "list_volumes": return try await listVolumes(args, deadline: deadline)
        case "pool_stats": return try await poolStats(args, deadline: deadline)
        case "list_agents": return listAgents()
        case "lock_status":
            let host = try args.host()
            return try await callAgent(host, "lock_status", [:], deadline: deadline)
        case "agent_announce": try announce(args); return .null
        default: throw ServiceError(code: "invalid_argument", message: "unknown method \(method)")
        }
    }

    // MARK: - Announcements and liveness

    func announce(_ args: Arguments) throws(ServiceError) {
        guard let reportJSON = args.raw["report"] else { throw .invalidArgument("agent_announce: missing 'report'") }
        let report = try AgentReport(json: reportJSON)
        // Agents always send sent_at (unix seconds); without it a report could not be ordered
        // and could pin a host's state, so it is required.
        guard let sentAt = args.raw["sent_at"]?.doubleValue else {
            throw .invalidArgument("agent_announce from \(report.host): 'sent_at' must be a number (unix seconds)",
                                   details: ["argument": "sent_at", "host": .string(report.host)])
        }
        let skew = sentAt - wallClock()
        let allowed = Double(settings.maxClockSkew.components.seconds)
        guard sentAt.isFinite, abs(skew) <= allowed else {
            throw ServiceError(code: "invalid_argument",
                               message: "agent_announce from \(report.host): sent_at is \(abs(skew) < 1e9 ? "\(Int(skew)) s" : "years") off from the controller's clock (allowed: ±\(Int(allowed)) s); check NTP on both hosts",
                               details: ["argument": "sent_at", "host": .string(report.host)])
        }
        let t = now()
        // O(1) in the number of hosts: only this host's liveness is looked at here, and the
        // (indexed) host_id collisions only when this announcement can change them (a new
        // host, another host_id, back from down); every other change is found by the
        // service's 1 s `checkLiveness` timer. Lock order: view, then monitor.
        let (isNew, taken, change, logConflicts) = view.withLock { v in
            let isNew = !v.isKnown(report.host)
            let previousID = v.agents[report.host]?.report.hostID
            guard v.apply(report, sentAt: sentAt, receivedAt: t) else {
                return (isNew, false, nil as LivenessChange?, [Int: [String]]?.none)
            }
            let state = v.liveness(of: report.host, now: t)
            return monitor.withLock { m in
                var change: LivenessChange?
                if m.liveness[report.host] != state {
                    change = LivenessChange(host: report.host, old: m.liveness[report.host], new: state)
                    m.liveness[report.host] = state
                }
                guard isNew || previousID != report.hostID || change?.old == .down else {
                    return (isNew, true, change, nil)
                }
                let conflicts = v.hostIDConflicts(now: t)
                return (isNew, true, change, m.noteConflicts(conflicts, at: t) ? conflicts : nil)
            }
        }
        guard taken else { return }
        if isNew {
            logger.info("agent announced itself", metadata: [
                "host": "\(report.host)", "host_id": "\(report.hostID.map(String.init) ?? "?")",
                "version": "\(report.version ?? "?")", "ready": "\(report.ready)"])
        }
        if let change { log([change]) }
        if let logConflicts { log(conflicts: logConflicts) }
    }

    struct LivenessChange: Equatable {
        var host: String
        var old: Liveness?
        var new: Liveness
    }

    /// Logs liveness transitions and host_id collisions: one pass over the hosts, called
    /// every second by the service (announcements only look at their own host).
    public func checkLiveness() {
        let t = now()
        let (changes, logConflicts) = view.withLock { v in
            let conflicts = v.hostIDConflicts(now: t)
            return monitor.withLock { m -> ([LivenessChange], [Int: [String]]?) in
                var changes: [LivenessChange] = []
                for host in v.agents.keys {
                    let state = v.liveness(of: host, now: t)
                    if m.liveness[host] != state {
                        changes.append(LivenessChange(host: host, old: m.liveness[host], new: state))
                        m.liveness[host] = state
                    }
                }
                return (changes, m.noteConflicts(conflicts, at: t) ? conflicts : nil)
            }
        }
        log(changes.sorted { $0.host < $1.host })
        if let logConflicts { log(conflicts: logConflicts) }
    }

    private func log(_ changes: [LivenessChange]) {
        for c in changes {
            switch c.new {
            case .alive where c.old != nil: logger.notice("agent is alive again", metadata: ["host": "\(c.host)"])
            case .alive: break
            case .stale: logger.warning("agent is late with its announcement (stale)", metadata: ["host": "\(c.host)"])
            case .down: logger.error("agent is down: no announcement within agent_down_after; requests to it fail with agent_unavailable",
                                     metadata: ["host": "\(c.host)"])
            }
        }
    }

    private func log(conflicts: [Int: [String]]) {
        for (id, hosts) in conflicts.sorted(by: { $0.key < $1.key }) {
            logger.error("HOST_ID COLLISION: several hosts announce the same sanlock host_id; sanlock leases will fight. Give each host a unique host_id in /etc/lvm/lvmlocal.conf",
                         metadata: ["host_id": "\(id)", "hosts": "\(hosts.joined(separator: ","))"])
        }
    }

    // MARK: - Calling agents

    private func unavailable(_ host: String, method: String, at t: ContinuousClock.Instant) -> ServiceError {
        let (known, age, others) = view.withLock { v in
            (v.isKnown(host), v.agents[host].map { t - $0.lastSeen }, v.agents.keys.sorted())
        }
        let message: String
        if known, let age {
            message = "the agent on \(host) is down (last announcement \(formatSeconds(age)) ago); \(method) was not sent"
        } else {
            message = "no agent has announced itself for host \(host) (known hosts: \(others.isEmpty ? "none" : others.joined(separator: ", ")))"
        }
        return ServiceError(code: ControllerErrorCode.agentUnavailable, message: message,
                            details: ["host": .string(host), "method": .string(method)])
    }

    /// Calls one agent: fails at once when it is down, waits at most agent_response_timeout and
    /// never past the caller's deadline, and gives up with `agent_unavailable` as soon as the
    /// agent goes down while the call waits.
    func callAgent(_ host: String, _ method: String, _ args: [String: JSONValue],
                   deadline: ContinuousClock.Instant?) async throws -> JSONValue {
        let start = now()
        if view.withLock({ $0.liveness(of: host, now: start) }) == .down {
            throw unavailable(host, method: method, at: start)
        }
        var timeout = settings.agentResponseTimeout
        if let deadline {
            let remaining = deadline - start
            guard remaining > .milliseconds(50) else {
                throw ServiceError(code: ControllerErrorCode.timedOut,
                                   message: "the caller's deadline passed before \(method) could be sent to \(host)",
                                   details: ["host": .string(host), "method": .string(method)])
            }
            // Leave the caller a moment to receive our answer before it gives up.
            timeout = min(timeout, remaining - min(.seconds(1), remaining / 10))
        }
        let caller = self.caller
        let callTimeout = timeout
        let poll = settings.livenessPollInterval
        let instance = view.withLock { $0.agents[host]?.report.raw["instance_id"]?.stringValue }
        let result = try await race(
            { try await caller.call(host: host, method: method, args: args, timeout: callTimeout, instance: instance) },
            watch: { [self] in
                let t = now()
                return view.withLock({ $0.liveness(of: host, now: t) }) == .down ? unavailable(host, method: method, at: t) : nil
            }, every: poll)
        let t = now()
        view.withLock { $0.touch(host, at: t) }
        return result
    }

    /// Runs `operation`; every `every`, `watch` may end the wait early with an error. The
    /// operation keeps running in the background then (an RPC call cannot be recalled).
    private func race(_ operation: @escaping @Sendable () async throws -> JSONValue,
                      watch: @escaping @Sendable () -> ServiceError?, every: Duration) async throws -> JSONValue {
        let once = Once()
        return try await withCheckedThrowingContinuation { (cont: CheckedContinuation<JSONValue, any Error>) in
            once.set(cont)
            Task {
                do { once.resume(.success(try await operation())) } catch { once.resume(.failure(error)) }
            }
            Task {
                while !once.isDone {
                    try? await Task.sleep(for: every)
                    if let e = watch() { once.resume(.failure(e)); return }
                }
            }
        }
    }

    /// Runs `method` on the best live agent that has `vg`'s lockspace started, moving on to the
    /// next one when an agent turns out to be unavailable. Returns the host and its result.
    func onAnyAgent(vg: String, _ method: String, _ args: [String: JSONValue],
                    deadline: ContinuousClock.Instant?) async throws -> (String, JSONValue) {
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
            } catch let e as ServiceError where e.code == ControllerErrorCode.agentUnavailable {
                logger.warning("agent unavailable, trying the next one", metadata: ["host": "\(host)", "method": "\(method)"])
                tried.append(host)
                lastError = e
            }
        }
    }

    private func noAgent(vg: String, at t: ContinuousClock.Instant) -> ServiceError {
        let v = snapshot
        let states = v.agents.keys.sorted().map { h in
            "\(h): \(v.liveness(of: h, now: t).rawValue), lockspace \(v.lockspace(of: h, vg: vg) ?? "not served")\(v.agents[h]!.report.ready ? "" : ", not ready")"
        }
        if !v.agents.isEmpty, !v.knownVGs.contains(vg) {
            return ServiceError(code: "unknown_vg", message: "no agent serves volume group \(vg) (agents serve: \(v.knownVGs.joined(separator: ", ")))",
                                details: ["vg": .string(vg)])
        }
        return ServiceError(
            code: ControllerErrorCode.agentUnavailable,
            message: "no live agent has the lockspace of volume group \(vg) started (\(states.isEmpty ? "no agent has announced itself" : states.joined(separator: "; ")))",
            details: ["vg": .string(vg)])
    }

    /// The request's VG, or the only VG the agents serve when it names none.
    func resolveVG(_ args: Arguments, deadline: ContinuousClock.Instant?) async throws -> String {
        if let vg = try args.optionalString("vg") {
            try Arguments.checkName(vg, kind: "volume group name", key: "vg", method: args.method)
            return vg
        }
        while true {
            let t = now()
            let (vgs, warming) = view.withLock { ($0.knownVGs, $0.warmingUp(now: t)) }
            if vgs.count == 1 { return vgs[0] }
            if vgs.isEmpty, warming, deadline.map({ $0 - t > .milliseconds(500) }) ?? true {
                try await Task.sleep(for: .milliseconds(100))
                continue
            }
            throw ServiceError.invalidArgument(
                "\(args.method): name the volume group with 'vg'" + (vgs.isEmpty ? " (no agent reports one yet)" : " (agents serve \(vgs.joined(separator: ", ")))"),
                details: ["argument": "vg"])
        }
    }

    // MARK: - Volume operations

    func activeOn(_ lv: LVKey) -> JSONValue {
        .array(view.withLock { $0.activations(of: lv) }.map { ["host": .string($0.host), "mode": .string($0.mode.rawValue)] })
    }

    func createVolume(_ args: Arguments, deadline: ContinuousClock.Instant?) async throws -> JSONValue {
        let name = try args.lvName()
        let size = try args.size()
        let vg = try await resolveVG(args, deadline: deadline)
        let (host, r) = try await onAnyAgent(vg: vg, "create_lv",
                                             ["vg": .string(vg), "name": .string(name), "size_bytes": .int(size)],
                                             deadline: deadline)
        logger.info("volume created", metadata: ["lv": "\(vg)/\(name)", "host": "\(host)", "size_bytes": "\(r["size_bytes"]?.int64Value ?? size)"])
        return ["vg": .string(vg), "name": .string(name), "size_bytes": r["size_bytes"] ?? .int(size),
                "changed": r["changed"] ?? true, "host": .string(host)]
    }

    func deleteVolume(_ args: Arguments, deadline: ContinuousClock.Instant?) async throws -> JSONValue {
        let name = try args.lvName()
        let vg = try await resolveVG(args, deadline: deadline)
        let lv = LVKey(vg: vg, name: name)
        let t = now()
        let active = view.withLock { v in v.activations(of: lv).filter { v.liveness(of: $0.host, now: t) != .down } }
        if !active.isEmpty {
            throw ServiceError(
                code: ControllerErrorCode.busy,
                message: "volume \(lv) is active \(describe(active)): deactivate it there before deleting it",
                details: ["vg": .string(vg), "name": .string(name), "holder_host": .string(active[0].host),
                          "holders": .array(active.map { ["host": .string($0.host), "mode": .string($0.mode.rawValue)] })])
        }
        var agentArgs: [String: JSONValue] = ["vg": .string(vg), "name": .string(name)]
        if let clear = try args.optionalString("volume_clear") {
            guard ["none", "zero"].contains(clear) else {
                throw ServiceError.invalidArgument("delete_volume: 'volume_clear' must be none or zero", details: ["argument": "volume_clear"])
            }
            agentArgs["volume_clear"] = .string(clear)
        }
        if let mb = try args.optionalInt("volume_clear_size_mb") {
            guard mb >= 0 else {
                throw ServiceError.invalidArgument("delete_volume: 'volume_clear_size_mb' must be >= 0", details: ["argument": "volume_clear_size_mb"])
            }
            agentArgs["volume_clear_size_mb"] = .int(mb)
        }
        let host: String, r: JSONValue
        do {
            (host, r) = try await onAnyAgent(vg: vg, "delete_lv", agentArgs, deadline: deadline)
        } catch let e as ServiceError {
            throw enrichConflict(e, lv: lv, target: nil, action: "delete")
        }
        view.withLock { $0.recordDeleted(lv) }
        logger.info("volume deleted", metadata: ["lv": "\(lv)", "host": "\(host)", "changed": "\(r["changed"]?.boolValue ?? true)"])
        return ["vg": .string(vg), "name": .string(name), "changed": r["changed"] ?? true, "host": .string(host)]
    }

    func extendVolume(_ args: Arguments, deadline: ContinuousClock.Instant?) async throws -> JSONValue {
        let name = try args.lvName()
        let size = try args.size()
        let vg = try await resolveVG(args, deadline: deadline)
        let lv = LVKey(vg: vg, name: name)
        let t = now()
        let (acts, plan) = view.withLock { v in
            let acts = v.activations(of: lv)
            return (acts, ExtendPlan.plan(activations: acts, preferred: settings.preferredHosts,
                                          isDown: { v.liveness(of: $0, now: t) == .down }))
        }
        let base: [String: JSONValue] = ["vg": .string(vg), "name": .string(name), "size_bytes": .int(size)]
        var host: String
        var r: JSONValue
        var refreshed: [String] = []
        do {
            switch plan {
            case .holderDown(let h):
                throw ServiceError(
                    code: ControllerErrorCode.agentUnavailable,
                    message: "volume \(lv) is active \(describe(acts)), and the agent on \(h) is down: it could not see the new size. Deactivate it there (or bring the agent back) and retry",
                    details: ["vg": .string(vg), "name": .string(name), "host": .string(h)])
            case .anyHost:
                (host, r) = try await onAnyAgent(vg: vg, "extend_lv", base, deadline: deadline)
            case .onHolder(let h):
                host = h
                r = try await callAgent(h, "extend_lv", base, deadline: deadline)
            case .sharedUpdate(let primary, let others):
                host = primary
                var a = base
                a["shared_update"] = true
                r = try await callAgent(primary, "extend_lv", a, deadline: deadline)
                var failures: [String: JSONValue] = [:]
                for h in others {
                    do {
                        _ = try await callAgent(h, "refresh_lv", ["vg": .string(vg), "name": .string(name)], deadline: deadline)
                        refreshed.append(h)
                    } catch let e as ServiceError {
                        failures[h] = ["code": .string(e.code), "message": .string(e.message)]
                    }
                }
                if !failures.isEmpty {
                    throw ServiceError(
                        code: ControllerErrorCode.refreshFailed,
                        message: "volume \(lv) was extended on \(primary), but \(failures.keys.sorted().joined(separator: ", ")) could not refresh it and still see the old size; retry the extend (it is idempotent) or run 'lvchange --refresh \(lv)' there",
                        details: ["vg": .string(vg), "name": .string(name), "host": .string(primary),
                                  "size_bytes": r["size_bytes"] ?? .int(size), "failures": .object(failures),
                                  "refreshed_hosts": .array(refreshed.map(JSONValue.string))])
                }
            }
        } catch let e as ServiceError {
            throw enrichConflict(e, lv: lv, target: nil, action: "extend")
        }
        if r["refreshed"]?.boolValue == true, !refreshed.contains(host) { refreshed.insert(host, at: 0) }
        logger.info("volume extended", metadata: ["lv": "\(lv)", "host": "\(host)", "size_bytes": "\(r["size_bytes"]?.int64Value ?? size)"])
        return ["vg": .string(vg), "name": .string(name), "size_bytes": r["size_bytes"] ?? .int(size),
                "changed": r["changed"] ?? true, "host": .string(host),
                "refreshed_hosts": .array(refreshed.map(JSONValue.string)), "active_on": activeOn(lv)]
    }

    func activateVolume(_ args: Arguments, deadline: ContinuousClock.Instant?) async throws -> JSONValue {
        let name = try args.lvName()
        let host = try args.host()
        let modeText = try args.optionalString("mode") ?? "exclusive"
        guard let mode = ActivationMode(rawValue: modeText) else {
            throw ServiceError.invalidArgument("activate_volume: 'mode' must be exclusive or shared", details: ["argument": "mode"])
        }
        let vg = try await resolveVG(args, deadline: deadline)
        let lv = LVKey(vg: vg, name: name)
        let r: JSONValue
        do {
            r = try await callAgent(host, "activate_lv", ["vg": .string(vg), "name": .string(name), "mode": .string(mode.rawValue)],
                                    deadline: deadline)
        } catch let e as ServiceError {
            throw enrichConflict(e, lv: lv, target: host, action: "activate \(mode.rawValue)")
        }
        view.withLock { $0.recordActivation(lv, host: host, mode: mode) }
        logger.info("volume activated", metadata: ["lv": "\(lv)", "host": "\(host)", "mode": "\(mode.rawValue)"])
        return ["vg": .string(vg), "name": .string(name), "host": .string(host), "mode": .string(mode.rawValue),
                "changed": r["changed"] ?? true, "active_on": activeOn(lv)]
    }

    func deactivateVolume(_ args: Arguments, deadline: ContinuousClock.Instant?) async throws -> JSONValue {
        let name = try args.lvName()
        let host = try args.host()
        let vg = try await resolveVG(args, deadline: deadline)
        let lv = LVKey(vg: vg, name: name)
        let r = try await callAgent(host, "deactivate_lv", ["vg": .string(vg), "name": .string(name)], deadline: deadline)
        view.withLock { $0.recordActivation(lv, host: host, mode: nil) }
        logger.info("volume deactivated", metadata: ["lv": "\(lv)", "host": "\(host)"])
        return ["vg": .string(vg), "name": .string(name), "host": .string(host),
                "changed": r["changed"] ?? true, "active_on": activeOn(lv)]
    }

    func getVolume(_ args: Arguments, deadline: ContinuousClock.Instant?) async throws -> JSONValue {
        let name = try args.lvName()
        let vg = try await resolveVG(args, deadline: deadline)
        let lv = LVKey(vg: vg, name: name)
        let (host, r) = try await onAnyAgent(vg: vg, "lv_info", ["vg": .string(vg), "name": .string(name)], deadline: deadline)
        return volumeEntry(r, lv: lv, source: host)
    }

    /// One volume as the API shows it: the agent's LV fields, with the cluster-wide activation.
    func volumeEntry(_ agentLV: JSONValue, lv: LVKey, source: String?) -> JSONValue {
        var o: [String: JSONValue] = [:]
        for key in ["size_bytes", "uuid", "lv_uuid", "attr"] where agentLV[key] != nil { o[key] = agentLV[key] }
        o["vg"] = .string(lv.vg)
        o["name"] = .string(lv.name)
        o["active_on"] = activeOn(lv)
        if let source { o["source_host"] = .string(source) }
        return .object(o)
    }

    func listVolumes(_ args: Arguments, deadline: ContinuousClock.Instant?) async throws -> JSONValue {
        let vg = try await resolveVG(args, deadline: deadline)
        let (host, r) = try await onAnyAgent(vg: vg, "list_lvs", ["vg": .string(vg)], deadline: deadline)
        let items = r.arrayValue ?? r["lvs"]?.arrayValue ?? r["volumes"]?.arrayValue ?? []
        let volumes: [JSONValue] = items.compactMap { item in
            guard let name = item["name"]?.stringValue else { return nil }
            return volumeEntry(item, lv: LVKey(vg: vg, name: name), source: nil)
        }.sorted { ($0["name"]?.stringValue ?? "") < ($1["name"]?.stringValue ?? "") }
        return ["vg": .string(vg), "volumes": .array(volumes), "source_host": .string(host)]
    }

    func poolStats(_ args: Arguments, deadline: ContinuousClock.Instant?) async throws -> JSONValue {
        let vg = try await resolveVG(args, deadline: deadline)
        let t = now()
        let v = snapshot
        var hosts: [String: JSONValue] = [:]
        for h in v.agents.keys.sorted() {
            let lockspace = v.lockspace(of: h, vg: vg) ?? "not_served"
            var entry: [String: JSONValue] = ["status": .string(v.liveness(of: h, now: t).rawValue), "lockspace": .string(lockspace)]
            if lockspace == "lost" { entry["hint"] = .string("run: aosctl recover --host \(h) --vg \(vg)") }
            hosts[h] = .object(entry)
        }
        var out: [String: JSONValue] = ["vg": .string(vg), "hosts": .object(hosts)]
        do {
            let (host, r) = try await onAnyAgent(vg: vg, "vg_info", ["vg": .string(vg)], deadline: deadline)
            let total = r["size_bytes"]?.int64Value ?? r["total_bytes"]?.int64Value ?? 0
            let free = r["free_bytes"]?.int64Value ?? 0
            out["total_bytes"] = .int(total)
            out["free_bytes"] = .int(free)
            out["total_capacity_gb"] = .double(Double(total) / Double(1 << 30))
            out["free_capacity_gb"] = .double(Double(free) / Double(1 << 30))
            out["lv_count"] = r["lv_count"] ?? .int(0)
            out["source_host"] = .string(host)
            out["available"] = true
        } catch let e as ServiceError where e.code == ControllerErrorCode.agentUnavailable {
            // The scheduler asks periodically: an answer saying "no capacity now" beats an error.
            out["total_bytes"] = 0
            out["free_bytes"] = 0
            out["total_capacity_gb"] = 0.0
            out["free_capacity_gb"] = 0.0
            out["lv_count"] = 0
            out["available"] = false
            out["error"] = ["code": .string(e.code), "message": .string(e.message)]
        }
        out["active_lv_count"] = .int(Int64(v.activationMap(vg: vg).count))
        return .object(out)
    }

    func listAgents() -> JSONValue {
        let t = now()
        let v = snapshot
        let conflicts = v.hostIDConflicts(now: t)
        var conflictOf: [String: [String]] = [:]
        for hosts in conflicts.values { for h in hosts { conflictOf[h] = hosts.filter { $0 != h } } }
        let agents: [JSONValue] = v.agents.keys.sorted().map { h in
            let a = v.agents[h]!
            var o: [String: JSONValue] = [
                "host": .string(h),
                "status": .string(v.liveness(of: h, now: t).rawValue),
                "last_seen_seconds_ago": .double(((t - a.lastSeen).secondsValue * 10).rounded() / 10),
                "host_id": a.report.hostID.map { .int(Int64($0)) } ?? .null,
                "version": a.report.version.map(JSONValue.string) ?? .null,
                "ready": .bool(a.report.ready),
                // The agent's own per-VG entries (lockspace, fenced, hint…) pass through.
                "vgs": a.report.raw["vgs"]?.objectValue.map(JSONValue.object)
                    ?? .object(a.report.lockspaces.mapValues { ["lockspace": .string($0)] }),
                "active_lvs": .array(a.report.activeLVs.keys.sorted().map {
                    ["vg": .string($0.vg), "name": .string($0.name), "mode": .string(a.report.activeLVs[$0]!.rawValue)]
                }),
                "restore_failures": a.report.restoreFailures,
                "host_id_conflict": .bool(conflictOf[h] != nil),
            ]
            if let others = conflictOf[h] { o["host_id_conflict_with"] = .array(others.map(JSONValue.string)) }
            return .object(o)
        }
        return ["agents": .array(agents),
                "host_id_conflicts": .array(conflicts.keys.sorted().map { id in
                    ["host_id": .int(Int64(id)), "hosts": .array(conflicts[id]!.map(JSONValue.string))]
                })]
    }

    /// A lock conflict error names the host(s) holding the LV, when the activation map knows them.
    func enrichConflict(_ e: ServiceError, lv: LVKey, target: String?, action: String) -> ServiceError {
        guard ["locked_by_other_host", "incompatible_lock_mode"].contains(e.code) else { return e }
        let holders = view.withLock { $0.activations(of: lv) }.filter { $0.host != target }
        guard !holders.isEmpty else { return e }
        var out = e
        out.details["holder_host"] = .string(holders[0].host)
        out.details["holder_mode"] = .string(holders[0].mode.rawValue)
        out.details["holders"] = .array(holders.map { ["host": .string($0.host), "mode": .string($0.mode.rawValue)] })
        out.details["agent_message"] = .string(e.message)
        let whereText = target.map { " on \($0)" } ?? ""
        let hint = holders.contains { $0.mode == .exclusive }
            ? "deactivate it on \(holders.map(\.host).joined(separator: ", ")) first, or use shared mode on every host for multi-attach"
            : "it is shared there: deactivate it on those hosts first, or activate it shared here too"
        out.details["hint"] = .string(hint)
        out.message = "cannot \(action) volume \(lv)\(whereText): it is active \(describe(holders)) (\(hint))"
        return out
    }
}

/// Resumes a continuation once; later results are dropped.
private final class Once: Sendable {
    private let state = Mutex<(CheckedContinuation<JSONValue, any Error>?, Bool)>((nil, false))

    func set(_ c: CheckedContinuation<JSONValue, any Error>) {
        state.withLock { $0.0 = c }
    }

    var isDone: Bool { state.withLock { $0.1 } }

    func resume(_ r: Result<JSONValue, any Error>) {
        let c = state.withLock { s -> CheckedContinuation<JSONValue, any Error>? in
            guard !s.1 else { return nil }
            s.1 = true
            let c = s.0
            s.0 = nil
            return c
        }
        c?.resume(with: r)
    }
}
