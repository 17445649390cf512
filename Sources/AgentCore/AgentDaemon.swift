import AMQPClient
import AOSAPI
import AOSAuth
import AOSConfig
import AOSRuntime
import CoreMetrics
import HostSupport
import Hypervisor
import Logging
import OsloRPC
import RPCWire
import SharedLVM
import Synchronization

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// Options of the simulated LVM backend (`[agent] lvm_backend = simulated`), declared here
/// rather than in AOSConfig's AgentOptions because only tests and demos use them.
public enum AgentSimulationOptions {
    public static let stateFile = OptionSpec(
        "agent", "simulated_state_file", type: .string, default: .string(""),
        help:
            "Simulated backend only: JSON file holding the simulated cluster (VGs, LVs, lock table), shared by every agent process that names it, so several agents act as hosts of one shared VG. Empty: the simulated VG lives in this process's memory."
    )
    public static let vgSizeGB = OptionSpec(
        "agent", "simulated_vg_size_gb", type: .integer(min: 1, max: 1 << 20), default: .int(100),
        help: "Simulated backend only: size in GiB of each simulated volume group, created on first use.")

    public static let latencyMS = OptionSpec(
        "agent", "simulated_latency_ms", type: .integer(min: 0, max: 600_000), default: .int(0),
        help: "Simulated backend only: milliseconds every simulated LVM command takes (demos, deadline tests).")

    /// A test hook: a simulated host whose clock is off (`check_host`, `aosctl doctor`).
    public static let clockOffset = OptionSpec(
        "agent", "simulated_clock_offset_s", type: .integer(min: -86_400, max: 86_400), default: .int(0),
        help: "Simulated backend only: seconds added to the wall clock this agent reports in check_host (tests of aosctl doctor).")

    public static let options = [stateFile, vgSizeGB, latencyMS, clockOffset]

    /// `AgentOptions.schema` plus the simulation options: what `aos-agent` reads.
    public static let agentSchema = AgentOptions.schema.merging(
        ConfigSchema(component: "aos-agent", options: options), component: "aos-agent")
}

/// A startup problem: printed to stderr and turned into exit status 1.
public struct AgentStartupError: Error, Sendable, CustomStringConvertible {
    public var message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}

/// Everything `aos-agent` runs, built from the configuration: backend, AgentService,
/// AMQP connection, RPC server and announcer.
public final class AgentDaemon: Sendable {
    public let service: AgentService
    public let connection: AMQPConnection
    let server: RPCServer
    let client: RPCClient
    let logger: Logger
    let announceInterval: Duration
    let announceTopic: String
    /// Full report or heartbeat (`[agent] full_announce_every`); announcements come from
    /// three tasks (tick, activation change, reconnection), hence the lock.
    let planner: Mutex<AnnouncementPlanner>
    /// The broker connection's ups and downs: announce at once at each (re)connection.
    let brokerEvents: AsyncStream<BrokerEvent>
    let notifier: SystemdNotifier
    /// The kill command's notifications (nil if the socket could not be made: the record
    /// file is still read on every announcement tick).
    let fenceListener: FenceListener?
    /// `[agent] metrics_*`: exposition and the periodic samples (off by default).
    let metrics: MetricsExport
    /// `[agent] release_startup_pages`: once serving and announced, page out start-up's code.
    let startupRelease: Mutex<StartupReleaseGate>

    /// - Parameters:
    ///   - hostIdOverride: `--host-id`, accepted only with the simulated backend (the real
    ///     host_id must come from lvmlocal.conf, the one source sanlock also uses).
    ///   - hostLVM: the LVM this host drives, for its sanlock host_id: the executable builds
    ///     it for `[agent] lvm_backend` (real LVM, or the SimulatedLVM module).
    public init(
        configuration c: Configuration, hostIdOverride: Int?,
        hostLVM: (_ hostId: Int) throws(AgentStartupError) -> AgentHostLVM,
        environment: [String: String], logger: Logger
    ) throws(AgentStartupError) {
        let settings = AgentOptions.Settings(c)
        let m = settings.messaging
        self.logger = logger
        metrics = MetricsExport(settings: MetricsOptions.Settings(agent: c), program: "aos-agent")
        startupRelease = Mutex(StartupReleaseGate(enabled: settings.releaseStartupPages))
        guard !settings.volumeGroups.isEmpty else {
            throw AgentStartupError("[agent] volume_groups is empty: name the shared VG(s) this agent serves")
        }
        for vg in settings.volumeGroups {
            do { try VGName.validate(vg) } catch { throw AgentStartupError("[agent] volume_groups: \(error.message)") }
        }
        let simulated = settings.lvmBackend == .simulated

        // host_id: lvmlocal.conf is the single source of truth on real hosts.
        let hostId: Int
        if let hostIdOverride {
            guard simulated else {
                throw AgentStartupError(
                    "--host-id is only for the simulated backend; with real LVM the host_id comes from \(settings.lvmlocalConf) (local { host_id = N })"
                )
            }
            guard LVMLocalConf.hostIDRange.contains(hostIdOverride) else {
                throw AgentStartupError("--host-id \(hostIdOverride) is out of range 1..2000")
            }
            hostId = hostIdOverride
        } else {
            let read: Int?
            do { read = try LVMLocalConf.hostID(path: settings.lvmlocalConf) } catch {
                throw AgentStartupError("cannot read the sanlock host_id: \(error)")
            }
            guard let read else {
                throw AgentStartupError(
                    "no sanlock host_id in \(settings.lvmlocalConf): set `local { host_id = N }` with a number 1..2000 unique to this host"
                        + (simulated ? " (or pass --host-id with the simulated backend)" : ""))
            }
            hostId = read
        }

        let lvm = try hostLVM(hostId)
        let (backend, dm, hypervisor) = (lvm.backend, lvm.dm, lvm.hypervisor)

        let notifier = SystemdNotifier(environment: environment)
        self.notifier = notifier
        var serviceConfig = AgentServiceConfiguration(
            host: m.host, hostId: hostId, volumeGroups: settings.volumeGroups, stateDirectory: settings.stateDir,
            maxConcurrentLVM: settings.maxConcurrentLVM,
            // The schema admits only VolumeClear's raw values.
            volumeClear: VolumeClear(rawValue: settings.volumeClear) ?? .zero,
            volumeClearSizeMiB: settings.volumeClearSizeMiB, pvWaitTimeout: .seconds(settings.pvWaitTimeout),
            lvNames: LVNamePolicy(settings.lvNamePatterns), maxConcurrentJobs: settings.maxConcurrentJobs,
            volumeCopyBpsLimit: UInt64(clamping: settings.volumeCopyBpsLimit))
        serviceConfig.hostCheck = Self.hostCheck(c, settings: settings, environment: environment)
        do {
            service = try AgentService(
                configuration: serviceConfig, backend: backend, dm: dm, hypervisor: hypervisor, logger: logger,
                onStatus: { notifier.notify("STATUS=\($0)") })
        } catch {
            throw AgentStartupError("cannot open the state directory: \(error.message)")
        }
        do {
            fenceListener = try FenceListener(stateDirectory: settings.stateDir)
        } catch {
            logger.warning(
                "no socket for the kill command's notifications; fence records are read every announce_interval instead",
                metadata: ["error": "\(error)"])
            fenceListener = nil
        }
        announceInterval = .seconds(settings.announceInterval)
        announceTopic = settings.controllerTopic
        planner = Mutex(AnnouncementPlanner(fullEvery: settings.fullAnnounceEvery))

        let broker: BrokerConnection
        do {
            // At most 4 s (jittered) between attempts: back within ~5 s of the broker (issue 15), while
            // the [d/2, d] spread keeps a whole cloud of agents from reconnecting in one instant.
            broker = try BrokerConnection(m, name: "aos-agent:\(m.host)", reconnectMaxDelay: .seconds(4), logger: logger)
        } catch {
            throw AgentStartupError("[DEFAULT] transport_url: \(error)")
        }
        connection = broker.connection
        brokerEvents = broker.events
        let flavor = broker.flavor
        var options = RPCServer.Options()
        options.flavor = flavor
        // LVM work is bounded by max_concurrent_lvm inside the service; this bounds the requests
        // taken off the broker (prefetch follows it): at most 3 queues x (64 + 16) bodies of
        // max_request_bytes in memory; the rest wait in the broker, deadlines still checked.
        options.maxConcurrency = 64
        options.maxRequestBytes = settings.maxRequestBytes
        let auth: AuthConfiguration
        do { auth = try AuthConfiguration(settings.auth) } catch { throw AgentStartupError("\(error)") }
        options.admit = AgentRPC.admission(host: m.host, auth: auth, logger: logger).hook
        server = RPCServer(
            connection: connection,
            target: RPCTarget(exchange: m.controlExchange, topic: AgentRPC.topic, server: m.host),
            dispatcher: RPCDispatcher(endpoints: [AgentRPC.endpoint(service)]),
            options: options, logger: logger)
        client = RPCClient(connection: connection, flavor: flavor, logger: logger)
    }

    /// Boot sequence, then sd_notify READY=1, then serve RPC until cancelled (graceful
    /// shutdown: stop consuming, finish in-flight requests, leave LVs as they are).
    /// `onServing` runs once the RPC queues are consumed.
    public func run(onServing: @escaping @Sendable () -> Void) async {
        let service = self.service
        let host = service.configuration.host
        logger.notice(
            "starting",
            metadata: [
                "host": "\(host)", "host_id": "\(service.configuration.hostId)",
                "volume_groups": "\(service.configuration.volumeGroups.joined(separator: ","))",
                "state_dir": "\(service.configuration.stateDirectory)", "version": "\(AgentVersion.current)",
                "lv_name_pattern": "\(service.configuration.lvNames)",
            ])
        if service.configuration.volumeClear == .none {
            let why = "a new volume on a deleted one's extents may expose the previous tenant's data"
            logger.warning(
                "[agent] volume_clear = none: deleted volumes are removed without clearing; \(why); set zero (the default) or shred")
        }
        await withTaskGroup(of: Void.self) { group in
            group.addTask { await self.announceLoop() }
            group.addTask { [metrics, logger] in await metrics.run(logger: logger) { await service.sampleMetrics() } }
            if let listener = fenceListener {
                group.addTask {
                    for await vg in listener.notifications {
                        // Announced at once through activationChanges (noteFenced yields).
                        service.noteFenced(vg)
                    }
                }
            }
            await service.boot()
            if Task.isCancelled {
                group.cancelAll()
                return
            }
            notifier.notify("READY=1\nSTATUS=ready, connecting to the broker")
            // The broker may be away at boot: keep trying (the LVs are restored already; the
            // connection itself reconnects with backoff).
            _ = await RetryPolicy.fixed(.seconds(5)).run(until: { $0 }) {
                do {
                    try await server.run(onReady: { [notifier] in
                        notifier.notify("STATUS=serving")
                        onServing()
                        self.startupMilestone(.serving)
                    })
                    return true
                } catch {
                    logger.error("cannot serve RPC yet; retrying", metadata: ["error": "\(error)"])
                    notifier.notify("STATUS=ready, but cannot serve RPC: \(error)")
                    return false
                }
            }
            notifier.notify("STOPPING=1\nSTATUS=stopping")
            await service.stopJobs()
            fenceListener?.close()
            group.cancelAll()
        }
        logger.notice("stopped; LVs are left as they are", metadata: ["host": "\(host)"])
    }

    /// Announces `health()` every `announce_interval` seconds, right after every change of the
    /// active LVs (and after ready, which is a change) and right after every (re)connection.
    func announceLoop() async {
        await withTaskGroup(of: Void.self) { group in
            group.addTask {
                for await _ in self.service.activationChanges { await self.announce(full: true) }
            }
            group.addTask {
                // Back on the broker (after its restart, a partition…): tell the controller now.
                for await event in self.brokerEvents where event == .connected { await self.announce(full: true) }
            }
            group.addTask {
                while !Task.isCancelled {
                    self.service.checkFenceRecords()
                    await self.announce()
                    do { try await Task.sleep(for: self.announceInterval) } catch { return }
                }
            }
        }
    }

    /// One announcement: the full report (`full`, or when it changed, or every
    /// `full_announce_every`-th) or a heartbeat (`AnnouncementPlanner`).
    func announce(full: Bool = false) async {
        var now = timespec()
        clock_gettime(CLOCK_REALTIME, &now)
        let sentAt = Double(now.tv_sec) + Double(now.tv_nsec) / 1e9
        let report = service.health()
        let announcement = planner.withLock { $0.next(report: report, sentAt: sentAt, force: full) }
        let method: String
        let args: [String: JSONValue]
        switch announcement {
        case .full(let report):
            (method, args) = (AgentRPC.announceMethod, ["report": report, "sent_at": .double(sentAt)])
        case .heartbeat(let reportSentAt):
            method = AgentRPC.heartbeatMethod
            args = [
                "host": .string(service.host), "instance_id": .string(service.instanceID),
                "report_sent_at": .double(reportSentAt), "sent_at": .double(sentAt),
            ]
        }
        do {
            try await client.fanoutCast(topic: announceTopic, method: method, args: args, timeout: .seconds(5))
            Counter(label: "aos_agent_announcements_total", dimensions: [("result", "sent")]).increment()
            startupMilestone(.announced)
        } catch {
            planner.withLock { $0.sendFailed(announcement) }
            Counter(label: "aos_agent_announcements_total", dimensions: [("result", "failed")]).increment()
            logger.debug("announcement not sent", metadata: ["error": "\(error)"])
        }
    }

    public func close() async { await connection.close() }

    /// Start-up is over once the agent serves and has announced itself: then (once) the pages of
    /// its executable that only start-up touched are released (`[agent] release_startup_pages`).
    func startupMilestone(_ milestone: StartupReleaseGate.Milestone) {
        guard let enabled = startupRelease.withLock({ $0.reached(milestone) }) else { return }
        let logger = self.logger
        guard enabled else {
            logger.debug("start-up pages kept resident ([agent] release_startup_pages = false)")
            return
        }
        // Off the caller's thread (the RPC server's ready callback, an announcement).
        Task.detached(priority: .background) { Self.releaseStartupPages(logger: logger) }
    }

    static func releaseStartupPages(logger: Logger) {
        let outcome = StartupPages.release()
        func kb(_ v: Int?) -> Logger.MetadataValue { "\(v.map(String.init) ?? "?")" }
        if let code = outcome.failureCode {
            // Before Linux 5.4 (EINVAL), no madvise (ENOSYS), or refused (EPERM): nothing to do about it.
            logger.debug(
                "cannot page out the executable's start-up pages",
                metadata: ["errno": "\(code)", "error": "\(outcome.failureText ?? "")", "mappings_done": "\(outcome.mappings)"])
            if outcome.unsupported { return }
        }
        guard outcome.mappings > 0 else {
            if outcome.failureCode == nil { logger.debug("no mapping of the executable found to page out") }
            return
        }
        logger.info(
            "released the start-up pages of the executable",
            metadata: [
                "mappings": "\(outcome.mappings)", "advised_kb": "\(outcome.bytesAdvised >> 10)",
                "rss_kb_before": kb(outcome.rssBeforeKB), "rss_kb_after": kb(outcome.rssAfterKB),
                "rss_file_kb_before": kb(outcome.rssFileBeforeKB), "rss_file_kb_after": kb(outcome.rssFileAfterKB),
            ])
    }
}

/// When the agent's start-up is over: it serves RPC and one announcement went out, in either
/// order. `reached` answers once, when the second milestone arrives: nil before and after.
struct StartupReleaseGate: Sendable {
    enum Milestone: Sendable { case serving, announced }

    let enabled: Bool
    private var serving = false
    private var announced = false
    private var done = false

    init(enabled: Bool) { self.enabled = enabled }

    /// Whether to release (the key's value) the first time both milestones are reached; else nil.
    mutating func reached(_ milestone: Milestone) -> Bool? {
        switch milestone {
        case .serving: serving = true
        case .announced: announced = true
        }
        guard serving, announced, !done else { return nil }
        done = true
        return enabled
    }
}
