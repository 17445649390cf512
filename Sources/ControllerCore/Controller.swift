import AOSAPI
import Logging
import OsloRPC
import RPCWire
import Synchronization

/// The controller's settings (from `[controller]`, see AOSConfig.ControllerOptions).
public struct ControllerSettings: Sendable {
    public var agentResponseTimeout: Duration
    public var liveness: LivenessPolicy
    public var preferredHosts: [String]
    /// How often the watcher of the waiting agent calls (one for all of them, running only
    /// while some call waits: AgentCallWatch) looks whether their hosts went down.
    public var livenessPollInterval: Duration = .milliseconds(200)
    /// An announcement whose `sent_at` is further than this from the controller's clock is
    /// refused: a forged or replayed report must not pin a host's state ([auth] max_clock_skew).
    public var maxClockSkew: Duration = .seconds(60)
    /// The controller's own configuration items (`check_cluster`; ClusterCheck.swift).
    public var selfCheck: [CheckItem] = []

    public init(agentResponseTimeout: Duration, liveness: LivenessPolicy, preferredHosts: [String] = []) {
        self.agentResponseTimeout = agentResponseTimeout
        self.liveness = liveness
        self.preferredHosts = preferredHosts
    }
}

/// The driver-facing API (docs/rpc-api.md): turns each request into agent RPCs, routed by the
/// cluster view it rebuilds from the agents' announcements. Holds no other state.
///
/// The parts, one file each: this router (method → typed request → handler → result),
/// `LivenessMonitor` (announcements, down/stale detection and its logging), `AgentRouting`
/// (calling one agent or the best one for a VG), `VolumeOperations` (the five state changes),
/// `Jobs` (copies, and the agents' jobs) and `Queries` (read models over the `ClusterView`).
public final class Controller: Sendable {
    public static let apiVersion = RPCVersion(major: 1, minor: 0)

    let caller: any AgentCaller
    let settings: ControllerSettings
    let logger: Logger
    let now: @Sendable () -> ContinuousClock.Instant
    let wallClock: @Sendable () -> Double
    let view: Mutex<ClusterView>
    let monitor: LivenessMonitor
    /// The agent calls waiting for an answer, by host (AgentCallWatch).
    let watch = AgentCallWatch()
    /// Where agent calls run: the connection's I/O thread when the server's request tasks run
    /// there too (ControllerService, `dispatch_on_connection_thread`), else nil (any thread).
    let agentCallExecutor: (any TaskExecutor)?

    public init(
        caller: any AgentCaller, settings: ControllerSettings, logger: Logger,
        now: @escaping @Sendable () -> ContinuousClock.Instant = { .now },
        wallClock: @escaping @Sendable () -> Double = RPCDeadline.wallClockNow,
        agentCallExecutor: (any TaskExecutor)? = nil
    ) {
        self.agentCallExecutor = agentCallExecutor
        self.caller = caller
        self.settings = settings
        self.logger = logger
        self.now = now
        self.wallClock = wallClock
        self.view = Mutex(ClusterView(policy: settings.liveness, startedAt: now()))
        self.monitor = LivenessMonitor(logger: logger)
    }

    /// A snapshot of the cluster view.
    public var snapshot: ClusterView { view.withLock { $0 } }

    // MARK: - RPC surface

    public static let methods = ControllerMethod.allCases.map(\.rawValue)

    /// The oslo endpoint (namespace none, version 1.0) serving every method.
    public var endpoint: RPCEndpoint {
        var handlers: [String: RPCHandler] = [:]
        for m in ControllerMethod.allCases {
            handlers[m.rawValue] = { [self] ctx, args in try await self.dispatch(m, args, deadline: ctx.deadline) }
        }
        return RPCEndpoint(version: Self.apiVersion, handlers: handlers)
    }

    /// Runs one API method by its wire name. `deadline` is the caller's (nil for casts and untimed callers).
    public func dispatch(
        _ method: String, _ raw: [String: JSONValue],
        deadline: ContinuousClock.Instant? = nil
    ) async throws -> JSONValue {
        guard let m = ControllerMethod(rawValue: method) else {
            throw ServiceError(.invalidArgument, "unknown method \(method)")
        }
        return try await dispatch(m, raw, deadline: deadline)
    }

    /// Decodes the request (unknown arguments refused by name, then the controller's own
    /// checks: nothing invalid reaches an agent), runs the handler, encodes its result.
    public func dispatch(
        _ method: ControllerMethod, _ raw: [String: JSONValue],
        deadline: ContinuousClock.Instant? = nil
    ) async throws -> JSONValue {
        func request<R: CheckedRequest>(_ type: R.Type) throws(ServiceError) -> R {
            let r = try R.decode(raw, method: method.rawValue)
            try r.check(method.rawValue)
            return r
        }
        switch method {
        case .createVolume: return try await createVolume(request(CreateVolumeRequest.self), deadline: deadline).wireValue()
        case .extendVolume: return try await extendVolume(request(ExtendVolumeRequest.self), deadline: deadline).wireValue()
        case .deleteVolume: return try await deleteVolume(request(DeleteVolumeRequest.self), deadline: deadline).wireValue()
        case .activateVolume: return try await activateVolume(request(ActivateVolumeRequest.self), deadline: deadline).wireValue()
        case .deactivateVolume:
            return try await deactivateVolume(request(DeactivateVolumeRequest.self), deadline: deadline).wireValue()
        case .getVolume: return try await getVolume(request(GetVolumeRequest.self), deadline: deadline).wireValue()
        case .listVolumes: return try await listVolumes(request(ListVolumesRequest.self), deadline: deadline).wireValue()
        case .poolStats: return try await poolStats(request(PoolStatsRequest.self), deadline: deadline).wireValue()
        case .listAgents:
            _ = try request(ListAgentsRequest.self)
            return try listAgents().wireValue()
        case .lockStatus: return try await lockStatus(request(LockStatusRequest.self), deadline: deadline).wireValue()
        case .agentAnnounce:
            try announce(raw)
            return .null
        case .agentHeartbeat:
            try await heartbeat(raw)
            return .null
        case .copyVolume: return try await copyVolume(request(CopyVolumeRequest.self), deadline: deadline).wireValue()
        case .listJobs: return try await listJobs(request(ListJobsRequest.self), deadline: deadline).wireValue()
        case .jobInfo: return try await jobInfo(request(ClusterJobRequest.self), deadline: deadline).wireValue()
        case .cancelJob: return try await cancelJob(request(ClusterJobRequest.self), deadline: deadline).wireValue()
        case .renameVolume: return try await renameVolume(request(RenameVolumeRequest.self), deadline: deadline).wireValue()
        case .checkCluster: return try await checkCluster(request(CheckClusterRequest.self), deadline: deadline).wireValue()
        }
    }
}
