import AOSAPI
import AOSRuntime
import HostSupport
import Hypervisor
import Logging
import RPCWire
import SharedLVM

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// The version agents announce and `aos-agent --version` prints: the project's one version.
public enum AgentVersion {
    public static let current = ProductVersion.current
}

/// The LVs this agent may change (`[agent] lv_name_pattern`): shell globs matched with
/// fnmatch(3). Other LVs of the shared VG (an admin's own, another tool's) are refused by
/// every mutating method and left alone by restore and recovery; read-only methods see them.
public struct LVNamePolicy: Sendable, Equatable, CustomStringConvertible {
    public var patterns: [String]

    public init(_ patterns: [String]) { self.patterns = patterns }

    /// What the Cinder driver creates: cinder's `volume_name_template` `volume-%s`, and its
    /// snapshots `snapshot-%s` with LVM's reserved prefix escaped (`_snapshot-%s`).
    public static let cinderDefault = LVNamePolicy(["volume-*", "_snapshot-*"])
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
    /// Default `volume_clear` for delete_lv.
    public var volumeClear: VolumeClear
    /// Default `volume_clear_size` in MiB (0: the whole LV).
    public var volumeClearSizeMiB: Int
    public var pvWaitTimeout: Duration
    public var pvPollInterval: Duration
    public var version: String
    /// The LVs mutating methods may touch (`[agent] lv_name_pattern`).
    public var lvNames: LVNamePolicy
    /// Jobs (wipes, copies) running at once.
    public var maxConcurrentJobs: Int
    /// Bytes per second all jobs together may move (0: no limit).
    public var volumeCopyBpsLimit: UInt64
    /// Bytes a job moves per step (one dd); progress and cancellation happen between steps.
    public var jobChunkBytes: UInt64
    /// What `check_host` runs (PreflightNow.swift); the daemon sets it for its backend.
    public var hostCheck: HostCheckSource = .unconfigured

    public init(
        host: String, hostId: Int, volumeGroups: [String], stateDirectory: String,
        maxConcurrentLVM: Int = 4, volumeClear: VolumeClear = .zero, volumeClearSizeMiB: Int = 0,
        pvWaitTimeout: Duration = .seconds(300), pvPollInterval: Duration = .seconds(1),
        version: String = AgentVersion.current, lvNames: LVNamePolicy = .cinderDefault,
        maxConcurrentJobs: Int = 2, volumeCopyBpsLimit: UInt64 = 0, jobChunkBytes: UInt64 = 64 << 20
    ) {
        self.maxConcurrentJobs = maxConcurrentJobs
        self.volumeCopyBpsLimit = volumeCopyBpsLimit
        self.jobChunkBytes = jobChunkBytes
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

/// The node agent, independent of the transport. Its parts:
/// - `handle(method:args:deadline:)` (AgentHandlers.swift): the API edge, typed requests in,
///   typed results out;
/// - the LV operations (LVOperations.swift, LVQueries.swift), each serialized per LV, bounded
///   in number (`max_concurrent_lvm`) and run only if the caller's deadline has not passed;
/// - `boot()` (AgentBoot.swift): PV wait, lock start, reconcile intents, restore;
/// - `LockspaceRecovery` (Recovery*.swift): the `recover` steps;
/// - `AgentState`, the pure value of what the agent knows, held by one `AgentStateOwner`.
/// `AgentRPC` exposes it over oslo RPC.
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
    let state: AgentStateOwner
    /// Wipes and copies (Jobs/).
    let jobs: JobRunner

    var host: String { configuration.host }

    /// - Parameters:
    ///   - logger: nil logs nothing (tests).
    ///   - onStatus: receives one-line status texts during boot (for sd_notify STATUS=).
    public init(
        configuration: AgentServiceConfiguration, backend: any LVMBackend, dm: any DeviceMapping = NoDeviceMapper(),
        hypervisor: (any Hypervisor)? = nil, logger: Logger? = nil, jobClock: any JobClock = SystemJobClock(),
        onStatus: @escaping @Sendable (String) -> Void = { _ in }
    ) throws(StoreError) {
        self.configuration = configuration
        self.backend = backend
        self.dm = dm
        self.hypervisor = hypervisor
        let logger = logger ?? Logger(label: "aos-agent", factory: { _ in SwiftLogNoOpLogHandler() })
        self.logger = logger
        self.onStatus = onStatus
        self.store = try ActivationStore(directory: configuration.stateDirectory, host: configuration.host)
        self.jobs = JobRunner(
            directory: configuration.stateDirectory, host: configuration.host,
            limits: JobRunner.Limits(
                maxConcurrent: configuration.maxConcurrentJobs, bytesPerSecond: configuration.volumeCopyBpsLimit,
                chunkBytes: max(1 << 20, configuration.jobChunkBytes)),
            clock: jobClock, logger: logger)
        self.slots = AsyncSemaphore(max(1, configuration.maxConcurrentLVM))
        (activationChanges, changes) = AsyncStream.makeStream(of: Void.self, bufferingPolicy: .bufferingNewest(1))
        var initial = AgentState(volumeGroups: configuration.volumeGroups)
        if let problem = store.loadProblem {
            initial.noteStoreProblem(problem)
            logger.critical(
                "activation store unreadable; moved aside, starting empty",
                metadata: ["path": "\(store.path)", "problem": "\(problem)"])
        }
        state = AgentStateOwner(initial)
    }

    public var isReady: Bool { state.read { $0.ready } }

    /// The agent's self-report (also the payload of its announcements). No LVM command runs.
    public func healthReport() -> AgentHealth {
        let records = store.all
        return state.read {
            $0.health(
                host: host, hostId: configuration.hostId, version: configuration.version, instanceID: instanceID,
                volumeGroups: configuration.volumeGroups, records: records)
        }
    }

    /// `healthReport()` as JSON (the announcement's `report`).
    public func health() -> JSONValue {
        do { return try healthReport().wireValue() } catch {
            logger.error("cannot encode the health report", metadata: ["error": "\(error)"])
            return .null
        }
    }

    // MARK: - Admission to LVM

    /// One operation at a time per LV, at most `max_concurrent_lvm` at once; the deadline is
    /// checked after both waits so a request the caller gave up on is never executed.
    func withLV<T>(
        _ lv: LVRef, _ deadline: ContinuousClock.Instant?,
        _ body: () async throws(ServiceError) -> T
    ) async throws(ServiceError) -> T {
        let key = lv.description
        await lvLocks.lock(key)
        defer { lvLocks.unlock(key) }
        return try await withSlot(deadline, vg: lv.vg, lv: lv.name, body)
    }

    func withSlot<T>(
        _ deadline: ContinuousClock.Instant?, vg: String? = nil, lv: String? = nil,
        _ body: () async throws(ServiceError) -> T
    ) async throws(ServiceError) -> T {
        await slots.acquire()
        defer { slots.release() }
        let target = [vg, lv].compactMap { $0 }.joined(separator: "/")
        if let deadline, ContinuousClock.now >= deadline {
            logger.warning("not executing a request whose caller has given up", metadata: ["target": "\(target)"])
            var details: [String: JSONValue] = ["host": .string(host)]
            if let vg { details["vg"] = .string(vg) }
            if let lv { details["lv"] = .string(lv) }
            throw ServiceError(
                .expired,
                "the caller's deadline passed before the request for \(target.isEmpty ? "host \(host)" : target) could run on host \(host); nothing was done",
                details: details)
        }
        logger.debug("running request", metadata: ["target": "\(target)"])
        return try await body()
    }

    /// Runs LVM work, turning `LVMError` into the agent's error and noting lockspace trouble.
    func lvm<T>(
        _ operation: String, _ vg: String, _ lv: String?,
        _ body: () async throws(LVMError) -> T
    ) async throws(ServiceError) -> T {
        do {
            return try await body()
        } catch {
            noteLockspace(error, vg: vg)
            throw .lvm(error, operation: operation, host: host, vg: vg, lv: lv)
        }
    }

    /// An LVM error that tells about the VG's lockspace changes what the agent knows.
    func noteLockspace(_ error: LVMError, vg: String) {
        guard let change = state.update({ $0.noteLVMError(error.code, vg: vg) }) else { return }
        if change.previous != change.now {
            logger.error("lockspace state changed", metadata: ["vg": "\(vg)", "state": "\(change.now.rawValue)", "error": "\(error)"])
        }
        if change.previous == .started, change.now == .lost {
            // A new loss (no kill command told us): an old recovery journal does not apply.
            RecoveryJournal.discard(configuration.stateDirectory, vg)
        }
    }

    func setPhase(_ phase: String, status: String) {
        state.update { $0.phase = phase }
        onStatus(status)
    }

    // MARK: - Activation store

    /// Writes an intent before an LVM command; refuses the request when it cannot (the
    /// change would not survive a crash consistently).
    func recordIntent(_ intent: ActivationIntent) throws(ServiceError) {
        do { try store.begin(intent) } catch {
            reportStoreProblem(error, vg: intent.vg, name: intent.name)
            throw ServiceError(
                .internal, "cannot record the intent to change \(intent.key) on host \(host) (\(error.message)); nothing was done",
                details: ["host": .string(host), "vg": .string(intent.vg), "lv": .string(intent.name)])
        }
    }

    func abandonIntent(_ vg: String, _ name: String) {
        do { try store.abandon(vg: vg, name: name) } catch { reportStoreProblem(error, vg: vg, name: name) }
    }

    /// Drops the LV's activation record and any restore failure; true if there was a record.
    @discardableResult
    func forget(_ vg: String, _ name: String) -> Bool {
        let had = store.record(vg: vg, name: name) != nil
        do { try store.remove(vg: vg, name: name) } catch { reportStoreProblem(error, vg: vg, name: name) }
        state.update {
            _ = $0.restoreFailures.removeValue(forKey: "\(vg)/\(name)")
            _ = $0.releasedInUse.removeValue(forKey: "\(vg)/\(name)")
            _ = $0.adoption.removeValue(forKey: "\(vg)/\(name)")
        }
        return had
    }

    func reportStoreProblem(_ error: StoreError, vg: String, name: String) {
        logger.error("cannot persist activation state", metadata: ["vg": "\(vg)", "lv": "\(name)", "error": "\(error)"])
        state.update { $0.noteStoreProblem(error.message) }
    }
}

extension ServiceError {
    /// An `LVMError` as the agent reports it: the LVM code, a message naming what was
    /// attempted on which LV/VG and host, and the command's stderr and argv.
    static func lvm(_ error: LVMError, operation: String, host: String, vg: String, lv: String?) -> ServiceError {
        let target = lv.map { "\(vg)/\($0)" } ?? vg
        var details: [String: JSONValue] = ["host": .string(host), "vg": .string(vg)]
        if let lv { details["lv"] = .string(lv) }
        details["stderr"] = .string(error.stderr)
        details["argv"] = .array(error.argv.map(JSONValue.string))
        details["operation"] = .string(operation)
        return ServiceError(
            code: error.code.rawValue,
            message: "\(operation) \(target) on host \(host) failed: \(error.message)",
            details: details)
    }
}
