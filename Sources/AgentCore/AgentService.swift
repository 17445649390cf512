import AOSAPI
import Hypervisor
import Logging
import RPCWire
import SharedLVM
import Synchronization
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

public enum AgentVersion {
    public static let current = "0.1.0"
}

/// The LVs this agent may change (`[agent] lv_name_pattern`): shell globs matched with
/// fnmatch(3). Other LVs of the shared VG (an admin's own, another tool's) are refused by
/// every mutating method and left alone by restore and recovery; read-only methods see them.
public struct LVNamePolicy: Sendable, Equatable, CustomStringConvertible {
    public var patterns: [String]

    public init(_ patterns: [String]) { self.patterns = patterns }

    /// What the Cinder driver creates: cinder's `volume_name_template` `volume-%s`.
    public static let cinderDefault = LVNamePolicy(["volume-*"])
    /// Every LV of the served VGs (tests, or a VG that holds nothing else).
    public static let all = LVNamePolicy(["*"])

    public func manages(_ name: String) -> Bool {
        patterns.contains { fnmatch($0, name, 0) == 0 }
    }

    public var description: String { patterns.joined(separator: ", ") }
}

/// What the agent needs to know about itself; built from `AgentOptions.Settings` by the daemon.
public struct AgentServiceConfiguration: Sendable {
    public var host: String
    /// sanlock host_id from lvmlocal.conf (1...2000).
    public var hostId: Int
    public var volumeGroups: [String]
    public var stateDirectory: String
    public var maxConcurrentLVM: Int
    /// Default `volume_clear` for delete_lv: "none" or "zero".
    public var volumeClear: String
    /// Default `volume_clear_size` in MiB (0: the whole LV).
    public var volumeClearSizeMiB: Int
    public var pvWaitTimeout: Duration
    public var pvPollInterval: Duration
    public var version: String
    /// The LVs mutating methods may touch (`[agent] lv_name_pattern`).
    public var lvNames: LVNamePolicy

    public init(host: String, hostId: Int, volumeGroups: [String], stateDirectory: String,
                maxConcurrentLVM: Int = 4, volumeClear: String = "zero", volumeClearSizeMiB: Int = 0,
                pvWaitTimeout: Duration = .seconds(300), pvPollInterval: Duration = .seconds(1),
                version: String = AgentVersion.current, lvNames: LVNamePolicy = .cinderDefault) {
        self.host = host
        self.hostId = hostId
        self.volumeGroups = volumeGroups
        self.stateDirectory = stateDirectory
        self.maxConcurrentLVM = maxConcurrentLVM
        self.volumeClear = volumeClear
        self.volumeClearSizeMiB = volumeClearSizeMiB
        self.pvWaitTimeout = pvWaitTimeout
        self.pvPollInterval = pvPollInterval
        self.version = version
        self.lvNames = lvNames
    }
}

/// An activation the agent had recorded but could not restore at boot.
public struct RestoreFailure: Sendable, Hashable {
    public var record: ActivationRecord
    public var code: String
    public var message: String

    var json: JSONValue {
        ["vg": .string(record.vg), "name": .string(record.name), "mode": .string(record.mode.rawValue),
         "code": .string(code), "message": .string(message)]
    }
}

/// The node agent, independent of the transport: `handle(method:args:deadline:)` validates a
/// request, serializes it per LV, bounds concurrent LVM work, re-checks the caller's deadline
/// and runs it against an `LVMBackend`. `boot()` is the startup sequence (PV wait, lock
/// start, restore of recorded activations). `AgentRPC` exposes it over oslo RPC.
public final class AgentService: Sendable {
    public let configuration: AgentServiceConfiguration
    /// New at every process start. Announced in health(); a request that names another
    /// instance was queued for a previous run of this agent, whose caller has already been
    /// told the agent was unavailable, so it is refused instead of run late.
    public let instanceID = makeUUIDHex()
    public let backend: any LVMBackend
    public let store: ActivationStore
    /// Device-mapper: what fencing and recovery use where LVM cannot act.
    public let dm: any DeviceMapping
    /// This host's VMs (nil: recovery leaves VMs alone).
    public let hypervisor: (any Hypervisor)?
    let logger: Logger
    let onStatus: @Sendable (String) -> Void

    let lvLocks = KeyedAsyncLock()
    let slots: AsyncSemaphore
    let changes: AsyncStream<Void>.Continuation
    /// Yields after every change of the set of active LVs (for announcements).
    public let activationChanges: AsyncStream<Void>

    struct Runtime {
        var ready = false
        var phase = "starting"
        var lockspaces: [String: LockspaceState] = [:]
        var vgProblems: [String: String] = [:]
        var restoreFailures: [String: RestoreFailure] = [:]
        var storeProblems: [String] = []
        /// The kill command's records of this boot, per VG (the lockspace is `lost` meanwhile).
        var fenced: [String: FenceRecord] = [:]
    }

    let runtime: Mutex<Runtime>

    var host: String { configuration.host }

    /// - Parameters:
    ///   - logger: nil logs nothing (tests).
    ///   - onStatus: receives one-line status texts during boot (for sd_notify STATUS=).
    public init(configuration: AgentServiceConfiguration, backend: any LVMBackend, dm: any DeviceMapping = NoDeviceMapper(),
                hypervisor: (any Hypervisor)? = nil, logger: Logger? = nil,
                onStatus: @escaping @Sendable (String) -> Void = { _ in }) throws(StoreError) {
        self.configuration = configuration
        self.backend = backend
        self.dm = dm
        self.hypervisor = hypervisor
        let logger = logger ?? Logger(label: "aos-agent", factory: { _ in SwiftLogNoOpLogHandler() })
        self.logger = logger
        self.onStatus = onStatus
        self.store = try ActivationStore(directory: configuration.stateDirectory, host: configuration.host)
        self.slots = AsyncSemaphore(max(1, configuration.maxConcurrentLVM))
        (activationChanges, changes) = AsyncStream.makeStream(of: Void.self, bufferingPolicy: .bufferingNewest(1))
        var r = Runtime()
        for vg in configuration.volumeGroups { r.lockspaces[vg] = .notStarted }
        if let problem = store.loadProblem {
            r.storeProblems.append(problem)
            logger.critical("activation store unreadable; moved aside, starting empty",
                            metadata: ["path": "\(store.path)", "problem": "\(problem)"])
        }
        runtime = Mutex(r)
    }

    public var isReady: Bool { runtime.withLock { $0.ready } }

    // MARK: - Dispatch

    /// Runs one request. Every failure is a `ServiceError` with a stable code.
    public func handle(method: String, args: [String: JSONValue],
                       deadline: ContinuousClock.Instant? = nil) async throws(ServiceError) -> JSONValue {
        guard let m = AgentMethod(rawValue: method) else {
            throw .agent(.unknownMethod, "the agent has no method '\(ArgumentReader.printable(method))'", host: host)
        }
        var r = ArgumentReader(method: method, host: host, args: args)
        switch m {
        case .createLV:
            let (vg, name) = try lvArguments(&r)
            let size = try r.size()
            try r.finish()
            try requireManaged(m, vg: vg, name: name)
            try requireReady(m, vg: vg)
            return try await withLV(vg, name, deadline) { () async throws(ServiceError) in try await self.createLV(vg, name, size) }
        case .extendLV:
            let (vg, name) = try lvArguments(&r)
            let size = try r.size()
            let sharedUpdate = try r.optionalBool("shared_update") ?? false
            try r.finish()
            try requireManaged(m, vg: vg, name: name)
            try requireReady(m, vg: vg)
            return try await withLV(vg, name, deadline) { () async throws(ServiceError) in
                try await self.extendLV(vg, name, size, sharedUpdate: sharedUpdate)
            }
        case .refreshLV:
            let (vg, name) = try lvArguments(&r)
            try r.finish()
            try requireManaged(m, vg: vg, name: name)
            try requireReady(m, vg: vg)
            return try await withLV(vg, name, deadline) { () async throws(ServiceError) in try await self.refreshLV(vg, name) }
        case .deleteLV:
            let (vg, name) = try lvArguments(&r)
            let clear = try r.optionalChoice("volume_clear", ["none", "zero"]) ?? configuration.volumeClear
            let clearMiB = try r.optionalInteger("volume_clear_size_mb") ?? Int64(configuration.volumeClearSizeMiB)
            guard clearMiB >= 0, UInt64(clearMiB) <= LVSize.maxBytes >> 20 else {
                throw r.fail("volume_clear_size_mb", "argument 'volume_clear_size_mb' must be between 0 and \(LVSize.maxBytes >> 20), got \(clearMiB)")
            }
            try r.finish()
            try requireManaged(m, vg: vg, name: name)
            try requireReady(m, vg: vg)
            return try await withLV(vg, name, deadline) { () async throws(ServiceError) in
                try await self.deleteLV(vg, name, clear: clear == "zero", clearMiB: UInt64(clearMiB))
            }
        case .activateLV:
            let (vg, name) = try lvArguments(&r)
            let modeText = try r.optionalChoice("mode", LVActivationMode.allCases.map(\.rawValue)) ?? "exclusive"
            let mode = LVActivationMode(rawValue: modeText)!
            try r.finish()
            try requireManaged(m, vg: vg, name: name)
            try requireReady(m, vg: vg)
            return try await withLV(vg, name, deadline) { () async throws(ServiceError) in try await self.activateLV(vg, name, mode) }
        case .deactivateLV:
            let (vg, name) = try lvArguments(&r)
            try r.finish()
            try requireManaged(m, vg: vg, name: name)
            try requireReady(m, vg: vg)
            return try await withLV(vg, name, deadline) { () async throws(ServiceError) in try await self.deactivateLV(vg, name) }
        case .lvInfo:
            let (vg, name) = try lvArguments(&r)
            try r.finish()
            return try await withLV(vg, name, deadline) { () async throws(ServiceError) in try await self.lvInfo(vg, name) }
        case .listLVs:
            let vg = try vgArgument(&r)
            try r.finish()
            return try await withSlot(deadline) { () async throws(ServiceError) in try await self.listLVs(vg) }
        case .vgInfo:
            let vg = try vgArgument(&r)
            try r.finish()
            return try await withSlot(deadline) { () async throws(ServiceError) in try await self.vgInfo(vg) }
        case .lockStatus:
            try r.finish()
            return try await withSlot(deadline) { () async throws(ServiceError) in try await self.lockStatus() }
        case .health:
            try r.finish()
            return health()
        case .recover:
            let vg = try vgArgument(&r)
            let stepText = try r.optionalChoice("step", RecoveryStep.allCases.map(\.rawValue)) ?? "plan"
            let force = try r.optionalBool("force") ?? false
            try r.finish()
            let ready = runtime.withLock { $0.ready }
            guard ready else { throw .agent(.notReady, "the agent on host \(host) is not ready yet; recover refused", host: host) }
            return try await recover(vg: vg, step: RecoveryStep(rawValue: stepText)!, force: force, deadline: deadline)
        case .startLockspace:
            let vg = try vgArgument(&r)
            try r.finish()
            let ready = runtime.withLock { $0.ready }
            guard ready else { throw .agent(.notReady, "the agent on host \(host) is not ready yet; start_lockspace refused", host: host) }
            return try await withSlot(deadline, vg: vg) { () async throws(ServiceError) in
                let before = self.runtime.withLock { $0.lockspaces[vg] }
                await self.startLockspace(vg)
                let (after, problem) = self.runtime.withLock { ($0.lockspaces[vg], $0.vgProblems[vg]) }
                if after != .started {
                    let hint = after == .lost
                        ? "the lease storage still fails: deactivate the VG's LVs and run lvmlockctl --drop \(vg) first"
                        : (problem ?? "see the agent log")
                    throw ServiceError(code: after == .lost ? LVMErrorCode.lockspaceLost.rawValue : LVMErrorCode.lockspaceNotStarted.rawValue,
                                       message: "cannot start the lockspace of VG \(vg) on host \(self.host): \(hint)",
                                       details: ["host": .string(self.host), "vg": .string(vg)])
                }
                self.setPhase("ready", status: "ready")
                return ["host": .string(self.host), "vg": .string(vg), "lockspace": "started",
                        "changed": .bool(before != .started)]
            }
        }
    }

    private func vgArgument(_ r: inout ArgumentReader) throws(ServiceError) -> String {
        let vg = try r.string("vg")
        do { try VGName.validate(vg) } catch { throw r.fail("vg", error.message) }
        guard configuration.volumeGroups.contains(vg) else {
            let served = configuration.volumeGroups.joined(separator: ", ")
            throw .agent(.unknownVG, "volume group \"\(ArgumentReader.printable(vg))\" is not served by the agent on host \(host) (it serves: \(served.isEmpty ? "none" : served))",
                         host: host, vg: vg)
        }
        return vg
    }

    private func lvArguments(_ r: inout ArgumentReader) throws(ServiceError) -> (String, String) {
        let vg = try vgArgument(&r)
        let name = try r.string("name")
        do { try LVName.validate(name) } catch { throw r.fail("name", error.message) }
        return (vg, name)
    }

    /// Mutating methods touch only the LVs of `[agent] lv_name_pattern`.
    func requireManaged(_ m: AgentMethod, vg: String, name: String) throws(ServiceError) {
        guard !configuration.lvNames.manages(name) else { return }
        throw .agent(.lvNotManaged,
                     "LV \(vg)/\(name) is not managed by the agent on host \(host): its name matches no pattern of "
                         + "[agent] lv_name_pattern (\(configuration.lvNames)); \(m.rawValue) refused. "
                         + "Add a glob for it to lv_name_pattern if aos should manage it",
                     host: host, vg: vg, lv: name,
                     extra: ["method": .string(m.rawValue), "option": "[agent] lv_name_pattern",
                             "patterns": .array(configuration.lvNames.patterns.map(JSONValue.string))])
    }

    /// Mutating methods need a finished boot and a lockspace that was not lost: after
    /// sanlock lost the lease storage, LVM commands hang (queued I/O) or fail (failing
    /// I/O), so the agent refuses at once and says what to do.
    func requireReady(_ m: AgentMethod, vg: String) throws(ServiceError) {
        let (ready, phase, lockspace) = runtime.withLock { ($0.ready, $0.phase, $0.lockspaces[vg]) }
        guard ready else {
            throw .agent(.notReady, "the agent on host \(host) is not ready yet (\(phase)); \(m.rawValue) refused",
                         host: host, extra: ["phase": .string(phase)])
        }
        if lockspace == .lost {
            throw ServiceError(
                code: LVMErrorCode.lockspaceLost.rawValue,
                message: "the sanlock lockspace of VG \(vg) on host \(host) was lost (lease storage failed)"
                    + (runtime.withLock { $0.fenced[vg] } != nil ? " and its I/O on that host was fenced" : "")
                    + "; \(m.rawValue) refused. Recover the host: aosctl recover --host \(host) --vg \(vg) (docs/operations.md)",
                details: ["host": .string(host), "vg": .string(vg), "method": .string(m.rawValue),
                          "hint": .string("run: aosctl recover --host \(host) --vg \(vg)")])
        }
    }

    /// One operation at a time per LV, at most `max_concurrent_lvm` at once; the deadline is
    /// checked after both waits so a request the caller gave up on is never executed.
    private func withLV<T>(_ vg: String, _ name: String, _ deadline: ContinuousClock.Instant?,
                           _ body: () async throws(ServiceError) -> T) async throws(ServiceError) -> T {
        let key = "\(vg)/\(name)"
        await lvLocks.lock(key)
        defer { lvLocks.unlock(key) }
        return try await withSlot(deadline, vg: vg, lv: name, body)
    }

    func withSlot<T>(_ deadline: ContinuousClock.Instant?, vg: String? = nil, lv: String? = nil,
                             _ body: () async throws(ServiceError) -> T) async throws(ServiceError) -> T {
        await slots.acquire()
        defer { slots.release() }
        if let deadline, ContinuousClock.now >= deadline {
            let target = [vg, lv].compactMap { $0 }.joined(separator: "/")
            logger.warning("not executing a request whose caller has given up", metadata: ["target": "\(target)"])
            throw .agent(.expired, "the caller's deadline passed before the request for \(target.isEmpty ? "host \(host)" : target) could run on host \(host); nothing was done",
                         host: host, vg: vg, lv: lv)
        }
        logger.debug("running request", metadata: ["target": "\([vg, lv].compactMap { $0 }.joined(separator: "/"))"])
        return try await body()
    }

    /// Runs LVM work, turning `LVMError` into the agent's error and noting lockspace trouble.
    func lvm<T>(_ operation: String, _ vg: String, _ lv: String?,
                        _ body: () async throws(LVMError) -> T) async throws(ServiceError) -> T {
        do {
            return try await body()
        } catch {
            noteLockspace(error, vg: vg)
            throw .lvm(error, operation: operation, host: host, vg: vg, lv: lv)
        }
    }

    func noteLockspace(_ error: LVMError, vg: String) {
        let state: LockspaceState?
        switch error.code {
        case .lockStorageFailed, .lockspaceLost: state = .lost
        case .lockspaceNotStarted: state = .notStarted
        default: state = nil
        }
        guard let state else { return }
        let previous = runtime.withLock { r -> LockspaceState? in
            let p = r.lockspaces[vg]
            r.lockspaces[vg] = state
            return p
        }
        if previous != state {
            logger.error("lockspace state changed", metadata: ["vg": "\(vg)", "state": "\(state.rawValue)", "error": "\(error)"])
        }
        if previous == .started, state == .lost {
            // A new loss (no kill command told us): an old recovery journal does not apply.
            RecoveryJournal.discard(configuration.stateDirectory, vg)
        }
    }

    private func base(_ vg: String, _ name: String) -> [String: JSONValue] {
        ["host": .string(host), "vg": .string(vg), "name": .string(name)]
    }

    // MARK: - Operations

    private func createLV(_ vg: String, _ name: String, _ size: UInt64) async throws(ServiceError) -> JSONValue {
        var out = base(vg, name)
        do {
            // Inactive (-an): the creator is rarely the user, and no host is left holding it.
            let lv = try await backend.createLV(vg: vg, name: name, sizeBytes: size, activate: false)
            logger.info("created LV", metadata: ["vg": "\(vg)", "lv": "\(name)", "size_bytes": "\(lv.sizeBytes)"])
            out["size_bytes"] = .int(Int64(lv.sizeBytes))
            out["changed"] = true
            return .object(out)
        } catch where error.code == .alreadyExists {
            let lv = try await lvm("create_lv", vg, name) { () async throws(LVMError) in try await backend.lvInfo(vg: vg, name: name) }
            let group = try await lvm("create_lv", vg, name) { () async throws(LVMError) in try await backend.vgInfo(vg: vg) }
            let wanted = LVSize.roundUp(size, extentSize: max(1, group.extentSizeBytes))
            guard lv.sizeBytes == wanted else {
                throw ServiceError(
                    code: LVMErrorCode.sizeConflict.rawValue,
                    message: "create_lv \(vg)/\(name) on host \(host): the LV exists with \(lv.sizeBytes) bytes, not the requested \(size) bytes (\(wanted) in whole extents)",
                    details: ["host": .string(host), "vg": .string(vg), "lv": .string(name),
                              "existing_size_bytes": .int(Int64(lv.sizeBytes)), "requested_size_bytes": .int(Int64(size))])
            }
            out["size_bytes"] = .int(Int64(lv.sizeBytes))
            out["changed"] = false
            return .object(out)
        } catch {
            noteLockspace(error, vg: vg)
            throw .lvm(error, operation: "create_lv", host: host, vg: vg, lv: name)
        }
    }

    private func extendLV(_ vg: String, _ name: String, _ size: UInt64, sharedUpdate: Bool) async throws(ServiceError) -> JSONValue {
        let before = try await lvm("extend_lv", vg, name) { () async throws(LVMError) in try await backend.lvInfo(vg: vg, name: name) }
        try await lvm("extend_lv", vg, name) { () async throws(LVMError) in
            try await backend.extendLV(vg: vg, name: name, newSizeBytes: size, sharedUpdate: sharedUpdate)
        }
        let after = try await lvm("extend_lv", vg, name) { () async throws(LVMError) in try await backend.lvInfo(vg: vg, name: name) }
        var refreshed = false
        if after.active {
            // A host with the LV active must reload it to see the new size (sanlock does not
            // refresh other hosts; on this host it makes the result certain).
            try await lvm("extend_lv (refresh)", vg, name) { () async throws(LVMError) in try await backend.refresh(vg: vg, name: name) }
            refreshed = true
        }
        let changed = after.sizeBytes != before.sizeBytes
        if changed {
            logger.info("extended LV", metadata: ["vg": "\(vg)", "lv": "\(name)", "from": "\(before.sizeBytes)",
                                                  "to": "\(after.sizeBytes)", "shared_update": "\(sharedUpdate)"])
        }
        var out = base(vg, name)
        out["size_bytes"] = .int(Int64(after.sizeBytes))
        out["changed"] = .bool(changed)
        out["refreshed"] = .bool(refreshed)
        return .object(out)
    }

    private func refreshLV(_ vg: String, _ name: String) async throws(ServiceError) -> JSONValue {
        let lv = try await lvm("refresh_lv", vg, name) { () async throws(LVMError) in try await backend.lvInfo(vg: vg, name: name) }
        if lv.active {
            try await lvm("refresh_lv", vg, name) { () async throws(LVMError) in try await backend.refresh(vg: vg, name: name) }
        }
        let device = try await lvm("refresh_lv", vg, name) { () async throws(LVMError) in try await backend.deviceSize(vg: vg, name: name) }
        var out = base(vg, name)
        out["size_bytes"] = .int(Int64(device ?? lv.sizeBytes))
        out["lv_size_bytes"] = .int(Int64(lv.sizeBytes))
        out["active"] = .bool(lv.active)
        out["refreshed"] = .bool(lv.active)
        return .object(out)
    }

    private func deleteLV(_ vg: String, _ name: String, clear: Bool, clearMiB: UInt64) async throws(ServiceError) -> JSONValue {
        var out = base(vg, name)
        let lv: LogicalVolume
        do {
            lv = try await backend.lvInfo(vg: vg, name: name)
        } catch where error.code == .notFound {
            out["changed"] = false
            return .object(out)
        } catch {
            noteLockspace(error, vg: vg)
            throw .lvm(error, operation: "delete_lv", host: host, vg: vg, lv: name)
        }
        if lv.active {
            let mode = store.record(vg: vg, name: name)?.mode.rawValue ?? "unknown mode"
            throw ServiceError(
                code: LVMErrorCode.busy.rawValue,
                message: "delete_lv \(vg)/\(name): the LV is active on host \(host) (\(mode)); deactivate it first",
                details: ["host": .string(host), "vg": .string(vg), "lv": .string(name), "active_here": true])
        }
        if clear {
            // Taking the LV exclusively also proves no other host has it active.
            try await lvm("delete_lv (activate for clearing)", vg, name) { () async throws(LVMError) in
                try await backend.activate(vg: vg, name: name, mode: .exclusive)
            }
            do {
                try await backend.zeroLV(vg: vg, name: name, bytes: clearMiB > 0 ? clearMiB << 20 : nil)
            } catch {
                try? await backend.deactivate(vg: vg, name: name)
                throw .lvm(error, operation: "delete_lv (clearing)", host: host, vg: vg, lv: name)
            }
            try await lvm("delete_lv (deactivate after clearing)", vg, name) { () async throws(LVMError) in
                try await backend.deactivate(vg: vg, name: name)
            }
        }
        do {
            try await backend.removeLV(vg: vg, name: name)
            out["changed"] = true
            logger.info("deleted LV", metadata: ["vg": "\(vg)", "lv": "\(name)", "cleared": "\(clear)"])
        } catch where error.code == .notFound {
            out["changed"] = false
        } catch {
            noteLockspace(error, vg: vg)
            throw .lvm(error, operation: "delete_lv", host: host, vg: vg, lv: name)
        }
        forget(vg, name)
        return .object(out)
    }

    private func activateLV(_ vg: String, _ name: String, _ mode: LVActivationMode) async throws(ServiceError) -> JSONValue {
        let lv = try await lvm("activate_lv", vg, name) { () async throws(LVMError) in try await backend.lvInfo(vg: vg, name: name) }
        let previous = store.record(vg: vg, name: name)
        let already = lv.active && previous?.mode == mode
        // The intent is durable before LVM changes anything: killed between the activation
        // and the record, the next start finds it and records what LVM shows.
        if previous?.mode != mode {
            try recordIntent(ActivationIntent(vg: vg, name: name, operation: .activate(mode)))
        }
        do {
            try await backend.activate(vg: vg, name: name, mode: mode)
        } catch {
            if previous?.mode != mode { abandonIntent(vg, name) }
            noteLockspace(error, vg: vg)
            throw .lvm(error, operation: "activate_lv \(mode.rawValue)", host: host, vg: vg, lv: name)
        }
        var out = base(vg, name)
        out["mode"] = .string(mode.rawValue)
        out["changed"] = .bool(!already)
        out["device_path"] = .string(backend.devicePath(vg: vg, name: name))
        if previous?.mode != mode {
            do {
                try store.set(ActivationRecord(vg: vg, name: name, mode: mode))
            } catch {
                reportStoreProblem(error, vg: vg, name: name)
                out["warning"] = .string("activated, but not recorded for restore after reboot: \(error.message)")
            }
        }
        runtime.withLock { _ = $0.restoreFailures.removeValue(forKey: "\(vg)/\(name)") }
        if !already {
            logger.info("activated LV", metadata: ["vg": "\(vg)", "lv": "\(name)", "mode": "\(mode.rawValue)"])
            changes.yield()
        }
        return .object(out)
    }

    private func deactivateLV(_ vg: String, _ name: String) async throws(ServiceError) -> JSONValue {
        var out = base(vg, name)
        let lv: LogicalVolume?
        do {
            lv = try await backend.lvInfo(vg: vg, name: name)
        } catch where error.code == .notFound {
            lv = nil
        } catch {
            noteLockspace(error, vg: vg)
            throw .lvm(error, operation: "deactivate_lv", host: host, vg: vg, lv: name)
        }
        var changed = false
        if let lv, lv.active {
            // Durable before the LVM command: killed after the deactivation but before the
            // record is removed, the next start must not re-activate what the caller released.
            try recordIntent(ActivationIntent(vg: vg, name: name, operation: .deactivate))
            do {
                try await backend.deactivate(vg: vg, name: name)
            } catch {
                abandonIntent(vg, name)
                noteLockspace(error, vg: vg)
                throw .lvm(error, operation: "deactivate_lv", host: host, vg: vg, lv: name)
            }
            changed = true
            logger.info("deactivated LV", metadata: ["vg": "\(vg)", "lv": "\(name)"])
        }
        let hadRecord = forget(vg, name)
        if changed || hadRecord { changes.yield() }
        out["changed"] = .bool(changed)
        return .object(out)
    }

    /// Writes an intent before an LVM command; refuses the request when it cannot (the
    /// change would not survive a crash consistently).
    func recordIntent(_ intent: ActivationIntent) throws(ServiceError) {
        do { try store.begin(intent) } catch {
            reportStoreProblem(error, vg: intent.vg, name: intent.name)
            throw ServiceError(code: LVMErrorCode.internal.rawValue,
                               message: "cannot record the intent to change \(intent.key) on host \(host) (\(error.message)); nothing was done",
                               details: ["host": .string(host), "vg": .string(intent.vg), "lv": .string(intent.name)])
        }
    }

    func abandonIntent(_ vg: String, _ name: String) {
        do { try store.abandon(vg: vg, name: name) } catch { reportStoreProblem(error, vg: vg, name: name) }
    }

    /// At start, before the restore: every intent a killed agent left is settled against
    /// what LVM shows now. Activate + the LV active here: recorded in that mode (it is held,
    /// so the controller must see it). Deactivate + the LV not active: the record goes (the
    /// caller released it; the restore must not take it back). Otherwise the command never
    /// ran: the intent is dropped and the record stays. An intent of a VG whose lockspace
    /// is not started stays (a deactivate intent then keeps its LV from being restored).
    func reconcileIntents() async {
        let pending = store.intents
        guard !pending.isEmpty else { return }
        // sanlock is the only source of the lock mode: an activation killed halfway through
        // a mode change is recorded in the mode the lock really has.
        let locks = try? await backend.lockStatus()
        for intent in pending {
            guard runtime.withLock({ $0.lockspaces[intent.vg] == .started }) else { continue }
            let active: Bool
            var held: LVActivationMode?
            do {
                let info = try await backend.lvInfo(vg: intent.vg, name: intent.name)
                active = info.active
                held = locks?.resources.first { $0.lvUUID == info.uuid }?.mode
            } catch where error.code == .notFound {
                active = false
            } catch {
                logger.error("cannot reconcile an interrupted activation change", metadata: [
                    "vg": "\(intent.vg)", "lv": "\(intent.name)", "error": "\(error)"])
                continue
            }
            do {
                switch (intent.operation, active) {
                case (.activate(let mode), true):
                    try store.set(ActivationRecord(vg: intent.vg, name: intent.name, mode: held ?? mode))
                case (.deactivate, false):
                    try store.remove(vg: intent.vg, name: intent.name)
                case (.activate, false), (.deactivate, true):
                    try store.abandon(vg: intent.vg, name: intent.name)
                }
            } catch {
                reportStoreProblem(error, vg: intent.vg, name: intent.name)
                continue
            }
            logger.notice("reconciled an activation change interrupted by the agent's stop", metadata: [
                "vg": "\(intent.vg)", "lv": "\(intent.name)", "intent": "\(intent.operation)", "lv_active": "\(active)"])
        }
    }

    /// Drops the LV's activation record and any restore failure; true if there was a record.
    @discardableResult
    func forget(_ vg: String, _ name: String) -> Bool {
        let had = store.record(vg: vg, name: name) != nil
        do { try store.remove(vg: vg, name: name) } catch { reportStoreProblem(error, vg: vg, name: name) }
        runtime.withLock { _ = $0.restoreFailures.removeValue(forKey: "\(vg)/\(name)") }
        return had
    }

    func reportStoreProblem(_ error: StoreError, vg: String, name: String) {
        logger.error("cannot persist activation state", metadata: ["vg": "\(vg)", "lv": "\(name)", "error": "\(error)"])
        runtime.withLock { $0.storeProblems.append(error.message) }
    }

    private func lvJSON(_ lv: LogicalVolume) -> JSONValue {
        let record = store.record(vg: lv.vg, name: lv.name)
        return [
            "vg": .string(lv.vg), "name": .string(lv.name), "uuid": .string(lv.uuid),
            "size_bytes": .int(Int64(lv.sizeBytes)), "active": .bool(lv.active), "device_open": .bool(lv.deviceOpen),
            "mode": record.map { .string($0.mode.rawValue) } ?? .null,
            "device_path": .string(lv.path), "attr": .string(lv.attr.description),
        ]
    }

    private func lvInfo(_ vg: String, _ name: String) async throws(ServiceError) -> JSONValue {
        let lv = try await lvm("lv_info", vg, name) { () async throws(LVMError) in try await backend.lvInfo(vg: vg, name: name) }
        guard case .object(var o) = lvJSON(lv) else { return .null }
        o["host"] = .string(host)
        return .object(o)
    }

    private func listLVs(_ vg: String) async throws(ServiceError) -> JSONValue {
        let lvs = try await lvm("list_lvs", vg, nil) { () async throws(LVMError) in try await backend.listLVs(vg: vg) }
        return ["host": .string(host), "vg": .string(vg), "lvs": .array(lvs.filter { !$0.isInternal }.map(lvJSON))]
    }

    private func vgInfo(_ vg: String) async throws(ServiceError) -> JSONValue {
        let g = try await lvm("vg_info", vg, nil) { () async throws(LVMError) in try await backend.vgInfo(vg: vg) }
        let started = try await lvm("vg_info", vg, nil) { () async throws(LVMError) in try await backend.lockspaceStarted(vg: vg) }
        let state = runtime.withLock { r -> LockspaceState in
            // sanlock's status does not change when the lease storage fails: keep "lost".
            let s: LockspaceState = started ? (r.lockspaces[vg] == .lost ? .lost : .started) : .notStarted
            r.lockspaces[vg] = s
            return s
        }
        return [
            "host": .string(host), "vg": .string(vg), "uuid": .string(g.uuid),
            "size_bytes": .int(Int64(g.sizeBytes)), "free_bytes": .int(Int64(g.freeBytes)),
            "extent_size_bytes": .int(Int64(g.extentSizeBytes)), "extent_count": .int(Int64(g.extentCount)),
            "free_extent_count": .int(Int64(g.freeExtentCount)), "lv_count": .int(Int64(g.lvCount)),
            "pv_count": .int(Int64(g.pvCount)), "missing_pv_count": .int(Int64(g.missingPVCount)),
            "lock_type": .string(g.lockType), "shared": .bool(g.shared), "lockspace": .string(state.rawValue),
            "metadata_area_size_bytes": .int(Int64(g.metadataAreaSizeBytes)),
            "metadata_area_free_bytes": .int(Int64(g.metadataAreaFreeBytes)),
        ]
    }

    private func lockStatus() async throws(ServiceError) -> JSONValue {
        let status: SanlockStatus
        do { status = try await backend.lockStatus() } catch {
            throw ServiceError(code: error.code.rawValue, message: "lock_status on host \(host) failed: \(error.message)",
                               details: ["host": .string(host), "stderr": .string(error.stderr),
                                         "argv": .array(error.argv.map(JSONValue.string)), "operation": "lock_status"])
        }
        // Name the LVs behind the lock UUIDs where the VG can be listed.
        var names: [String: (String, String)] = [:]
        for vg in configuration.volumeGroups {
            if let lvs = try? await backend.listLVs(vg: vg) {
                for lv in lvs { names[lv.uuid] = (vg, lv.name) }
            }
        }
        let lockspaces: [JSONValue] = status.lockspaces.map { l in
            ["name": .string(l.name), "vg": .string(l.vg), "host_id": .int(Int64(l.hostId)), "path": .string(l.path),
             "offset": .int(Int64(l.offset)), "transition": l.transition.map(JSONValue.string) ?? .null]
        }
        let locks: [JSONValue] = status.resources.map { r in
            let known = names[r.lvUUID]
            return ["lockspace": .string(r.lockspace), "lv_uuid": .string(r.lvUUID), "mode": .string(r.mode.rawValue),
                    "offset": .int(Int64(r.offset)), "lease_version": r.leaseVersion.map { .int(Int64($0)) } ?? .null,
                    "pid": r.pid.map { .int(Int64($0)) } ?? .null,
                    "vg": known.map { .string($0.0) } ?? .null, "name": known.map { .string($0.1) } ?? .null]
        }
        return ["host": .string(host), "host_id": .int(Int64(configuration.hostId)), "daemon": status.daemon.map(JSONValue.string) ?? .null,
                "lockspaces": .array(lockspaces), "locks": .array(locks)]
    }

    /// The agent's self-report (also the payload of its announcements). No LVM command runs.
    public func health() -> JSONValue {
        let r = runtime.withLock { $0 }
        var vgs: [String: JSONValue] = [:]
        for vg in configuration.volumeGroups {
            let state = r.lockspaces[vg] ?? .notStarted
            var entry: [String: JSONValue] = ["lockspace": .string(state.rawValue)]
            if let problem = r.vgProblems[vg] { entry["problem"] = .string(problem) }
            if let f = r.fenced[vg] {
                entry["fenced"] = ["at": .double(f.fencedAt), "complete": .bool(f.complete), "lvs": .int(Int64(f.lvs.count)),
                                   "source": .string(f.source)]
            }
            if state == .lost || r.fenced[vg] != nil {
                entry["hint"] = .string("run: aosctl recover --host \(host) --vg \(vg)")
            }
            vgs[vg] = .object(entry)
        }
        let active = store.all.filter { r.restoreFailures[$0.key] == nil }.map(\.json)
        let failures = r.restoreFailures.values.sorted { $0.record < $1.record }.map(\.json)
        var out: [String: JSONValue] = [
            "host": .string(host), "host_id": .int(Int64(configuration.hostId)), "version": .string(configuration.version),
            "instance_id": .string(instanceID), "ready": .bool(r.ready), "phase": .string(r.phase), "vgs": .object(vgs),
            "active_lvs": .array(active), "restore_failures": .array(failures),
        ]
        if !r.storeProblems.isEmpty { out["state_problems"] = .array(r.storeProblems.suffix(10).map(JSONValue.string)) }
        return .object(out)
    }

    // MARK: - Boot

    func setPhase(_ phase: String, status: String) {
        runtime.withLock { $0.phase = phase }
        onStatus(status)
    }

    /// The boot sequence: for each VG wait (bounded) for its PVs, `vgchange --lock-start`,
    /// verify the lockspace joined; then re-activate every recorded LV in its mode; then ready.
    /// Problems are logged and reported in `health()`; they do not stop the agent.
    /// Returns early (not ready) only when the task is cancelled.
    public func boot() async {
        for vg in configuration.volumeGroups {
            if Task.isCancelled { return }
            // Fenced in this boot (the agent restarted since): the VG waits for recovery;
            // starting its lockspace now would hide LVs that still have error tables.
            if noteFenced(vg) {
                runtime.withLock { $0.lockspaces[vg] = .lost }
                logger.critical("VG fenced after a lockspace loss in this boot; not starting its lockspace (run aosctl recover)",
                                metadata: ["vg": "\(vg)"])
                continue
            }
            guard await waitForPVs(vg) else { continue }
            await startLockspace(vg)
        }
        if Task.isCancelled { return }
        await reconcileIntents()
        await restore()
        if Task.isCancelled { return }
        let summary = runtime.withLock { r -> String in
            r.ready = true
            r.phase = "ready"
            let started = configuration.volumeGroups.filter { r.lockspaces[$0] == .started }.count
            let active = store.all.filter { r.restoreFailures[$0.key] == nil }.count
            return "ready: \(started)/\(configuration.volumeGroups.count) lockspaces started, \(active) LVs active, \(r.restoreFailures.count) restore failures"
        }
        logger.notice("agent ready", metadata: ["summary": "\(summary)"])
        onStatus(summary)
        changes.yield()
    }

    private func waitForPVs(_ vg: String) async -> Bool {
        setPhase("waiting_for_pvs", status: "waiting for the PVs of \(vg)")
        let clock = ContinuousClock()
        let start = clock.now
        var lastLog = start
        var lastError: LVMError?
        while true {
            do {
                if try await backend.pvsPresent(vg: vg) {
                    logger.info("PVs present", metadata: ["vg": "\(vg)", "waited_ms": "\((clock.now - start) / .milliseconds(1))"])
                    return true
                }
                lastError = nil
            } catch {
                lastError = error
            }
            let waited = clock.now - start
            if waited >= configuration.pvWaitTimeout {
                let problem = "PVs of \(vg) did not appear within \(configuration.pvWaitTimeout)" + (lastError.map { ": \($0.message)" } ?? "")
                logger.error("giving up waiting for PVs; the VG stays unavailable", metadata: ["vg": "\(vg)", "problem": "\(problem)"])
                runtime.withLock { $0.vgProblems[vg] = problem }
                return false
            }
            if clock.now - lastLog >= .seconds(10) {
                lastLog = clock.now
                logger.notice("still waiting for PVs", metadata: [
                    "vg": "\(vg)", "waited_s": "\(waited.components.seconds)",
                    "timeout_s": "\(configuration.pvWaitTimeout.components.seconds)",
                    "last_error": "\(lastError.map { "\($0)" } ?? "-")"])
                onStatus("waiting for the PVs of \(vg) (\(waited.components.seconds)s)")
            }
            do { try await Task.sleep(for: configuration.pvPollInterval) } catch { return false }
        }
    }

    func startLockspace(_ vg: String) async {
        setPhase("starting_lockspaces", status: "starting the lockspace of \(vg)")
        let clock = ContinuousClock()
        let start = clock.now
        do {
            try await backend.lockStart(vg: vg)
            guard try await backend.lockspaceStarted(vg: vg) else {
                let problem = "vgchange --lock-start \(vg) succeeded but sanlock shows no lockspace for it"
                logger.error("lockspace did not join", metadata: ["vg": "\(vg)"])
                runtime.withLock { $0.vgProblems[vg] = problem; $0.lockspaces[vg] = .notStarted }
                return
            }
            logger.info("lockspace started", metadata: ["vg": "\(vg)", "took_ms": "\((clock.now - start) / .milliseconds(1))"])
            runtime.withLock { $0.lockspaces[vg] = .started; $0.vgProblems[vg] = nil }
        } catch {
            logger.error("cannot start lockspace", metadata: ["vg": "\(vg)", "error": "\(error)"])
            runtime.withLock {
                $0.vgProblems[vg] = "lock start failed: \(error.message)"
                $0.lockspaces[vg] = error.code == .lockStorageFailed ? .lost : .notStarted
            }
        }
    }

    /// Re-activates every recorded LV in its mode (bounded concurrency). An LV that no longer
    /// exists is forgotten; every other failure keeps the record (a later activate or
    /// deactivate settles it) and is reported in `health().restore_failures`.
    func restore() async {
        let records = store.all
        guard !records.isEmpty else { return }
        setPhase("restoring", status: "restoring \(records.count) activations")
        logger.notice("restoring activations", metadata: ["count": "\(records.count)"])
        await withTaskGroup(of: Void.self) { group in
            for record in records {
                group.addTask { await self.restore(record) }
            }
        }
    }

    private func restore(_ record: ActivationRecord) async {
        let key = record.key
        func fail(_ code: String, _ message: String) {
            logger.error("could not restore activation", metadata: [
                "vg": "\(record.vg)", "lv": "\(record.name)", "mode": "\(record.mode.rawValue)", "code": "\(code)",
                "error": "\(message)"])
            runtime.withLock { $0.restoreFailures[key] = RestoreFailure(record: record, code: code, message: message) }
        }
        guard configuration.volumeGroups.contains(record.vg) else {
            return fail(AgentErrorCode.unknownVG.rawValue, "volume group \(record.vg) is no longer in [agent] volume_groups")
        }
        guard configuration.lvNames.manages(record.name) else {
            return fail(AgentErrorCode.lvNotManaged.rawValue,
                        "the LV's name matches no pattern of [agent] lv_name_pattern (\(configuration.lvNames)): not re-activated")
        }
        if store.intent(vg: record.vg, name: record.name)?.operation == .deactivate {
            return fail("deactivate_pending", "a deactivate was in progress when the agent stopped and could not be checked: not re-activated")
        }
        let lockspace = runtime.withLock { $0.lockspaces[record.vg] ?? .notStarted }
        guard lockspace == .started else {
            return fail(LVMErrorCode.lockspaceNotStarted.rawValue, "the lockspace of \(record.vg) is \(lockspace.rawValue)")
        }
        await lvLocks.lock(key)
        defer { lvLocks.unlock(key) }
        await slots.acquire()
        defer { slots.release() }
        do {
            try await backend.activate(vg: record.vg, name: record.name, mode: record.mode)
            logger.info("restored activation", metadata: ["vg": "\(record.vg)", "lv": "\(record.name)", "mode": "\(record.mode.rawValue)"])
            runtime.withLock { _ = $0.restoreFailures.removeValue(forKey: key) }
        } catch where error.code == .notFound {
            fail(error.code.rawValue, "the LV no longer exists; its record is dropped: \(error.message)")
            do { try store.remove(vg: record.vg, name: record.name) } catch {
                reportStoreProblem(error, vg: record.vg, name: record.name)
            }
        } catch {
            noteLockspace(error, vg: record.vg)
            fail(error.code.rawValue, error.message)
        }
    }
}
