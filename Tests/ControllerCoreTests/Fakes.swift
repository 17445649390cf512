import AOSAPI
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
        /// Hosts whose hanging call was cancelled.
        var cancelled: [String] = []
        /// Each host's jobs, oldest first.
        var jobs: [String: [JobInfo]] = [:]
        /// Whether delete_lv hands the LV to a wipe job (volume_clear other than none).
        var wipeOnDelete = false
        var volumeClear: VolumeClear = .zero
        /// Hosts whose job methods fail as an agent without them would.
        var jobMethodsFail: Set<String> = []
        /// Each LV's release tags (`release_lv`): the hosts named.
        var released: [String: Set<String>] = [:]
        /// What `health` answers per host: its host_id and run (defaults 0 and `run-<host>`).
        var healthIdentity: [String: (hostID: Int, instance: String)] = [:]
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
            throw ServiceError(
                code: "agent_unavailable", message: "no agent is listening for host \(host)", details: ["host": .string(host)])
        }
        if hanging {
            // Hangs until the timeout, or until the controller cancels the call.
            if (try? await Task.sleep(for: timeout)) == nil { state.withLock { $0.cancelled.append(host) } }
            throw ServiceError(code: "timed_out", message: "timed out", details: ["host": .string(host)])
        }
        return try state.withLock { s throws(ServiceError) -> JSONValue in try handle(&s, host, method, args) }
    }

    /// Answers as the real agent does, with its API types (AOSAPI, docs/agent.md).
    private func handle(_ s: inout State, _ host: String, _ method: String, _ a: [String: JSONValue]) throws(ServiceError) -> JSONValue {
        let name = a["name"]?.stringValue ?? ""
        func info(_ n: String, _ lv: LV, host: String?) -> LVInfo {
            let mode = lv.holders[host ?? ""].flatMap(LVMode.init(rawValue:))
            return LVInfo(
                host: host, vg: vg, name: n, uuid: "uuid-\(n)", size_bytes: lv.size, active: mode != nil, device_open: false,
                mode: mode, device_path: "/dev/\(vg)/\(n)", attr: "-wi-------")
        }
        switch method {
        case "create_lv":
            let size = a["size_bytes"]?.int64Value ?? 0
            if let lv = s.lvs[name] {
                if lv.size == size {
                    return try CreateLVResult(host: host, vg: vg, name: name, size_bytes: size, changed: false).wireValue()
                }
                throw err("size_conflict", "exists with another size", host)
            }
            s.lvs[name] = LV(size: size)
            return try CreateLVResult(host: host, vg: vg, name: name, size_bytes: size, changed: true).wireValue()
        case "extend_lv":
            guard var lv = s.lvs[name] else { throw err("not_found", "no LV \(name)", host) }
            let others = lv.holders.filter { $0.key != host }
            let shupdate = a["shared_update"]?.boolValue ?? false
            if others.values.contains("exclusive") || (!others.isEmpty && !shupdate) {
                throw err("locked_by_other_host", "LV locked by other host: \(vg)/\(name)", host)
            }
            if lv.holders[host] == "shared" && !shupdate { throw err("incompatible_lock_mode", "incompatible", host) }
            let size = a["size_bytes"]?.int64Value ?? 0
            if size < lv.size { throw err("size_conflict", "cannot shrink", host) }
            let changed = size > lv.size
            lv.size = size
            s.lvs[name] = lv
            return try ExtendLVResult(
                host: host, vg: vg, name: name, size_bytes: size, changed: changed,
                refreshed: lv.holders[host] != nil
            ).wireValue()
        case "refresh_lv":
            guard let lv = s.lvs[name] else { throw err("not_found", "no LV", host) }
            return try RefreshLVResult(
                host: host, vg: vg, name: name, size_bytes: lv.size, lv_size_bytes: lv.size,
                active: lv.holders[host] != nil, refreshed: lv.holders[host] != nil
            ).wireValue()
        case "delete_lv":
            guard let lv = s.lvs[name] else { return try LVChangeResult(host: host, vg: vg, name: name, changed: false).wireValue() }
            if !lv.holders.isEmpty { throw err("locked_by_other_host", "LV locked by other host: \(vg)/\(name)", host) }
            s.lvs[name] = nil
            var job: JobInfo?
            if s.wipeOnDelete, a["volume_clear"]?.stringValue != "none" {
                let id = "wipe-\(s.jobs.values.joined().count + 1)"
                job = JobInfo(
                    id: id, kind: .wipe, host: host, vg: vg, state: .queued, source: name, target: JobLVName.wipe(id),
                    total_bytes: lv.size, done_bytes: 0, created_at: Double(s.jobs.values.joined().count + 1))
                s.lvs[JobLVName.wipe(id)] = LV(size: lv.size)
                s.jobs[host, default: []].append(job!)
            }
            return try DeleteLVResult(host: host, vg: vg, name: name, changed: true, job: job).wireValue()
        case "copy_lv" where !s.jobMethodsFail.contains(host):
            let source = a["source"]?.stringValue ?? ""
            let target = a["target"]?.stringValue ?? ""
            guard let src = s.lvs[source] else { throw err("not_found", "no LV \(source)", host) }
            if src.holders.contains(where: { $0.key != host && $0.value == "exclusive" }) {
                throw err("locked_by_other_host", "LV locked by other host: \(vg)/\(source)", host)
            }
            if s.lvs[target] != nil { throw err("already_exists", "\(target) exists", host) }
            let n = s.jobs.values.joined().count + 1
            let job = JobInfo(
                id: "copy-\(n)", kind: .copy, host: host, vg: vg, state: .queued, source: source, target: target,
                total_bytes: a["size_bytes"]?.int64Value ?? src.size, done_bytes: 0,
                verify: a["verify"]?.boolValue ?? false, created_at: Double(n))
            s.jobs[host, default: []].append(job)
            return try CopyLVResult(host: host, job: job, changed: true).wireValue()
        case "list_jobs" where !s.jobMethodsFail.contains(host):
            let jobs = s.jobs[host] ?? []
            return try ListJobsResult(
                host: host, jobs: jobs.reversed(), queued: Int64(jobs.filter { $0.state == .queued }.count),
                running: 0, failed: Int64(jobs.filter { $0.state == .failed }.count),
                wiping_bytes: jobs.filter { $0.kind == .wipe }.reduce(0) { $0 + $1.total_bytes }
            ).wireValue()
        case "job_info" where !s.jobMethodsFail.contains(host), "cancel_job" where !s.jobMethodsFail.contains(host):
            let id = a["id"]?.stringValue ?? ""
            guard let i = s.jobs[host]?.firstIndex(where: { $0.id == id }) else { throw err("not_found", "no job \(id)", host) }
            if method == "cancel_job" {
                s.jobs[host]![i].cancel_requested = true
                s.jobs[host]![i].state = .cancelled
            }
            return try s.jobs[host]![i].wireValue()
        case "copy_lv", "list_jobs", "job_info", "cancel_job":
            throw err("internal", "\(method) is not implemented yet", host)
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
            return try ActivateLVResult(
                host: host, vg: vg, name: name, mode: LVMode(rawValue: mode) ?? .exclusive, changed: changed,
                device_path: "/dev/\(vg)/\(name)"
            ).wireValue()
        case "deactivate_lv":
            guard var lv = s.lvs[name] else { return try LVChangeResult(host: host, vg: vg, name: name, changed: false).wireValue() }
            let changed = lv.holders.removeValue(forKey: host) != nil
            s.lvs[name] = lv
            return try LVChangeResult(host: host, vg: vg, name: name, changed: changed).wireValue()
        case "release_lv":
            let target = a["host"]?.stringValue ?? ""
            guard !target.isEmpty, target != host else { throw err("invalid_argument", "bad host", host) }
            guard s.lvs[name] != nil else { return try LVChangeResult(host: host, vg: vg, name: name, changed: false).wireValue() }
            let changed = s.released[name, default: []].insert(target).inserted
            return try LVChangeResult(host: host, vg: vg, name: name, changed: changed).wireValue()
        case "lv_info":
            guard let lv = s.lvs[name] else { throw err("not_found", "no LV", host) }
            return try info(name, lv, host: host).wireValue()
        case "list_lvs":
            let lvs = s.lvs.sorted { $0.key < $1.key }.map { info($0.key, $0.value, host: nil) }
            return try ListLVsResult(host: host, vg: vg, lvs: lvs).wireValue()
        case "vg_info":
            let used = s.lvs.values.reduce(Int64(0)) { $0 + $1.size }
            return try VGInfo(
                host: host, vg: vg, uuid: "vg-uuid", size_bytes: vgSize, free_bytes: vgSize - used,
                extent_size_bytes: 4 << 20, extent_count: vgSize >> 22, free_extent_count: (vgSize - used) >> 22,
                lv_count: Int64(s.lvs.count), pv_count: 1, missing_pv_count: 0, lock_type: "sanlock", shared: true,
                lockspace: .started, metadata_area_size_bytes: 1 << 20, metadata_area_free_bytes: 1 << 19,
                wiping_lv_count: Int64(s.lvs.keys.filter { $0.hasPrefix(JobLVName.wipePrefix) }.count),
                wiping_bytes: s.lvs.filter { $0.key.hasPrefix(JobLVName.wipePrefix) }.reduce(0) { $0 + $1.value.size },
                volume_clear: s.volumeClear
            ).wireValue()
        case "rename_lv":
            let newName = a["new_name"]?.stringValue ?? ""
            guard let lv = s.lvs[name] else {
                if let done = s.lvs[newName] {
                    return try RenameLVResult(host: host, vg: vg, name: name, new_name: newName, size_bytes: done.size, changed: false)
                        .wireValue()
                }
                throw err("not_found", "no LV \(name)", host)
            }
            if s.lvs[newName] != nil { throw err("already_exists", "\(newName) exists", host) }
            if lv.holders[host] != nil { throw err("busy", "rename_lv: the LV is active on host \(host)", host) }
            if !lv.holders.isEmpty { throw err("locked_by_other_host", "LV locked by other host: \(vg)/\(name)", host) }
            s.lvs[name] = nil
            s.lvs[newName] = lv
            return try RenameLVResult(host: host, vg: vg, name: name, new_name: newName, size_bytes: lv.size, changed: true).wireValue()
        case "lock_status":
            return try LockStatusResult(host: host, host_id: 1, daemon: nil, lockspaces: [], locks: []).wireValue()
        case "health":
            let id = s.healthIdentity[host] ?? (0, "run-\(host)")
            return Self.health(s, vg: vg, host: host, hostID: id.hostID, instance: id.instance)
        default:
            throw err("invalid_argument", "unknown method", host)
        }
    }

    /// The health() report this fake agent would announce for `host`.
    func report(
        _ host: String, hostID: Int, lockspace: LockspaceState = .started, ready: Bool = true, instance: String? = nil
    ) -> JSONValue {
        state.withLock { s in
            Self.health(s, vg: vg, host: host, hostID: hostID, instance: instance, lockspace: lockspace, ready: ready)
        }
    }

    static func health(
        _ s: State, vg: String, host: String, hostID: Int, instance: String? = nil, lockspace: LockspaceState = .started,
        ready: Bool = true
    ) -> JSONValue {
        let active: [ActiveLV] = s.lvs.sorted { $0.key < $1.key }.compactMap { n, lv in
            lv.holders[host].flatMap(LVMode.init(rawValue:)).map { ActiveLV(vg: vg, name: n, mode: $0) }
        }
        let health = AgentHealth(
            host: host, host_id: hostID, version: "test", instance_id: instance ?? "run-\(host)", ready: ready,
            phase: ready ? "ready" : "restoring", vgs: [vg: VGHealth(lockspace: lockspace)],
            active_lvs: active, restore_failures: [])
        return (try? health.wireValue()) ?? .null
    }
}

func makeController(
    _ agents: FakeAgents, clock: FakeClock, preferred: [String] = [],
    timeout: Duration = .seconds(2888)
) -> Controller {
    var settings = ControllerSettings(
        agentResponseTimeout: timeout,
        liveness: LivenessPolicy(staleAfter: .seconds(30), downAfter: .seconds(60)),
        preferredHosts: preferred)
    settings.livenessPollInterval = .milliseconds(10)
    var logger = Logger(label: "test")
    logger.logLevel = .critical
    return Controller(caller: agents, settings: settings, logger: logger, now: { clock.now }, wallClock: { 1.0 })
}

/// Announces `hosts` (name, host_id) from the fake agents' current state.
func announce(_ c: Controller, _ agents: FakeAgents, _ hosts: [(String, Int)], lockspace: LockspaceState = .started) async throws {
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
