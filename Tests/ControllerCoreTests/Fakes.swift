import Logging
import RPCWire
import Synchronization
import Testing
@testable import ControllerCore

/// A clock the test moves by hand.
final class FakeClock: Sendable {
    private let t = Mutex(ContinuousClock.now)
    var now: ContinuousClock.Instant { t.withLock { $0 } }
    func advance(_ d: Duration) { t.withLock { $0 += d } }
}

/// An in-memory cluster of agents sharing one VG, with lvmlockd's lock rules (simplified).
final class FakeAgents: AgentCaller {
    struct LV { var size: Int64; var holders: [String: String] = [:] }
    struct State {
        var lvs: [String: LV] = [:]
        var calls: [(host: String, method: String, args: [String: JSONValue], timeout: Duration)] = []
        var undeliverable: Set<String> = []
        var hanging: Set<String> = []
    }
    let state = Mutex(State())
    let vg: String
    let vgSize: Int64

    init(vg: String = "vg0", vgSize: Int64 = 100 << 30) { self.vg = vg; self.vgSize = vgSize }

    var calls: [(host: String, method: String)] { state.withLock { $0.calls.map { ($0.host, $0.method) } } }
    var lastTimeout: Duration? { state.withLock { $0.calls.last?.timeout } }
    func setUndeliverable(_ h: String) { state.withLock { _ = $0.undeliverable.insert(h) } }
    func setHanging(_ h: String) { state.withLock { _ = $0.hanging.insert(h) } }

    private func err(_ code: String, _ msg: String, _ host: String) -> ServiceError {
        ServiceError(code: code, message: msg, details: ["host": .string(host)])
    }

    func call(host: String, method: String, args: [String: JSONValue], timeout: Duration) async throws -> JSONValue {
        let (undeliverable, hanging) = state.withLock { s in
            s.calls.append((host, method, args, timeout))
            return (s.undeliverable.contains(host), s.hanging.contains(host))
        }
        if undeliverable {
            throw ServiceError(code: "agent_unavailable", message: "no agent is listening for host \(host)", details: ["host": .string(host)])
        }
        if hanging {
            try? await Task.sleep(for: timeout)
            throw ServiceError(code: "timed_out", message: "timed out", details: ["host": .string(host)])
        }
        return try state.withLock { s throws(ServiceError) -> JSONValue in try handle(&s, host, method, args) }
    }

    private func handle(_ s: inout State, _ host: String, _ method: String, _ a: [String: JSONValue]) throws(ServiceError) -> JSONValue {
        let name = a["name"]?.stringValue ?? ""
        let base: [String: JSONValue] = ["host": .string(host), "vg": .string(vg), "name": .string(name)]
        func merge(_ extra: [String: JSONValue]) -> JSONValue { .object(base.merging(extra) { _, b in b }) }
        switch method {
        case "create_lv":
            let size = a["size_bytes"]!.int64Value!
            if let lv = s.lvs[name] {
                if lv.size == size { return merge(["size_bytes": .int(size), "changed": false]) }
                throw err("size_conflict", "exists with another size", host)
            }
            s.lvs[name] = LV(size: size)
            return merge(["size_bytes": .int(size), "changed": true])
        case "extend_lv":
            guard var lv = s.lvs[name] else { throw err("not_found", "no LV \(name)", host) }
            let others = lv.holders.filter { $0.key != host }
            let shupdate = a["shared_update"]?.boolValue ?? false
            if others.values.contains("exclusive") || (!others.isEmpty && !shupdate) {
                throw err("locked_by_other_host", "LV locked by other host: \(vg)/\(name)", host)
            }
            if lv.holders[host] == "shared" && !shupdate { throw err("incompatible_lock_mode", "incompatible", host) }
            let size = a["size_bytes"]!.int64Value!
            if size < lv.size { throw err("size_conflict", "cannot shrink", host) }
            let changed = size > lv.size
            lv.size = size
            s.lvs[name] = lv
            return merge(["size_bytes": .int(size), "changed": .bool(changed), "refreshed": .bool(lv.holders[host] != nil)])
        case "refresh_lv":
            guard let lv = s.lvs[name] else { throw err("not_found", "no LV", host) }
            return merge(["size_bytes": .int(lv.size)])
        case "delete_lv":
            guard let lv = s.lvs[name] else { return merge(["changed": false]) }
            if !lv.holders.isEmpty { throw err("locked_by_other_host", "LV locked by other host: \(vg)/\(name)", host) }
            s.lvs[name] = nil
            return merge(["changed": true])
        case "activate_lv":
            guard var lv = s.lvs[name] else { throw err("not_found", "no LV", host) }
            let mode = a["mode"]?.stringValue ?? "exclusive"
            let others = lv.holders.filter { $0.key != host }
            if !others.isEmpty && (mode == "exclusive" || others.values.contains("exclusive")) {
                throw err("locked_by_other_host", "LV locked by other host: \(vg)/\(name)", host)
            }
            let changed = lv.holders[host] != mode
            lv.holders[host] = mode
            s.lvs[name] = lv
            return merge(["mode": .string(mode), "changed": .bool(changed)])
        case "deactivate_lv":
            guard var lv = s.lvs[name] else { return merge(["changed": false]) }
            let changed = lv.holders.removeValue(forKey: host) != nil
            s.lvs[name] = lv
            return merge(["changed": .bool(changed)])
        case "lv_info":
            guard let lv = s.lvs[name] else { throw err("not_found", "no LV", host) }
            return merge(["size_bytes": .int(lv.size)])
        case "list_lvs":
            return ["host": .string(host), "vg": .string(vg),
                    "lvs": .array(s.lvs.keys.sorted().map { ["name": .string($0), "size_bytes": .int(s.lvs[$0]!.size)] })]
        case "vg_info":
            let used = s.lvs.values.reduce(Int64(0)) { $0 + $1.size }
            return ["host": .string(host), "vg": .string(vg), "size_bytes": .int(vgSize), "free_bytes": .int(vgSize - used),
                    "lv_count": .int(Int64(s.lvs.count)), "lockspace": "started"]
        case "lock_status":
            return ["host": .string(host), "lockspaces": []]
        default:
            throw err("invalid_argument", "unknown method", host)
        }
    }

    /// The health() report this fake agent would announce for `host`.
    func report(_ host: String, hostID: Int, lockspace: String = "started", ready: Bool = true) -> JSONValue {
        let active: [JSONValue] = state.withLock { s in
            s.lvs.keys.sorted().compactMap { n in
                s.lvs[n]!.holders[host].map { ["vg": .string(vg), "name": .string(n), "mode": .string($0)] }
            }
        }
        return ["host": .string(host), "host_id": .int(Int64(hostID)), "version": "test", "ready": .bool(ready),
                "vgs": [vg: ["lockspace": .string(lockspace)]], "active_lvs": .array(active), "restore_failures": []]
    }
}

func makeController(_ agents: FakeAgents, clock: FakeClock, preferred: [String] = [],
                    timeout: Duration = .seconds(2888)) -> Controller {
    var settings = ControllerSettings(agentResponseTimeout: timeout,
                                      liveness: LivenessPolicy(staleAfter: .seconds(30), downAfter: .seconds(60)),
                                      preferredHosts: preferred)
    settings.livenessPollInterval = .milliseconds(10)
    var logger = Logger(label: "test")
    logger.logLevel = .critical
    return Controller(caller: agents, settings: settings, logger: logger, now: { clock.now }, wallClock: { 1.0 })
}

/// Announces `hosts` (name, host_id) from the fake agents' current state.
func announce(_ c: Controller, _ agents: FakeAgents, _ hosts: [(String, Int)], lockspace: String = "started") async throws {
    for (h, id) in hosts {
        _ = try await c.dispatch("agent_announce", ["report": agents.report(h, hostID: id, lockspace: lockspace), "sent_at": 1.0])
    }
}

func expectCode(_ code: String, _ body: () async throws -> Void) async -> ServiceError? {
    do {
        try await body()
    } catch let e as ServiceError {
        if e.code != code { Issue.record("expected \(code), got \(e)") }
        return e
    } catch {
        Issue.record("expected ServiceError \(code), got \(error)")
        return nil
    }
    Issue.record("expected \(code), got success")
    return nil
}
