/// Which LVM the agent drives (`[agent] lvm_backend`): the host's LVM commands, or the
/// simulated cluster of the SimulatedLVM module (tests, demos).
public enum LVMBackendKind: String, Sendable, CaseIterable {
    case real
    case simulated
}

/// The agent's options (`aos-agent`): `[agent]` plus the common messaging options.
public enum AgentOptions {
    public static let volumeGroups = OptionSpec(
        "agent", "volume_groups", type: .list, default: .list([]),
        help: "Shared volume groups this agent serves (comma-separated), e.g. vg_sanlock.")
    public static let stateDir = OptionSpec(
        "agent", "state_dir", type: .string, default: .string("/var/lib/aos-agent"),
        help: "Directory for the agent's state (locks held before a reboot, request journal).")
    public static let lvmTimeout = OptionSpec(
        "agent", "lvm_timeout", type: .integer(min: 1), default: .int(120),
        help: "Seconds one LVM command may run before it is killed and reported as timed out.")
    public static let maxConcurrentLVM = OptionSpec(
        "agent", "max_concurrent_lvm", type: .integer(min: 1, max: 64), default: .int(4),
        help: "LVM commands run at the same time at most; further requests wait their turn.")
    public static let announceInterval = OptionSpec(
        "agent", "announce_interval", type: .integer(min: 1, max: 3600), default: .int(10),
        help: "Seconds between the agent's announcements (heartbeat and volume-group report) to the controller.")
    public static let fullAnnounceEvery = OptionSpec(
        "agent", "full_announce_every", type: .integer(min: 1, max: 360), default: .int(6),
        help:
            "Send the full report with every Nth announcement even when it did not change (it always goes at once when it changes); the others are short heartbeats. 1: always the full report (for controllers older than agent_heartbeat)."
    )
    public static let pvWaitTimeout = OptionSpec(
        "agent", "pv_wait_timeout", type: .integer(min: 0), default: .int(300),
        help: "Seconds to wait at startup for the volume groups' physical volumes to appear (0: do not wait).")
    public static let lvmBackend = OptionSpec(
        "agent", "lvm_backend", type: .choice(LVMBackendKind.allCases.map(\.rawValue)), default: .string(LVMBackendKind.real.rawValue),
        help: "'real' runs the LVM commands; 'simulated' keeps volumes in memory with lvmlockd's lock rules (tests, demos).")
    public static let lvmlocalConf = OptionSpec(
        "agent", "lvmlocal_conf", type: .string, default: .string("/etc/lvm/lvmlocal.conf"),
        help: "LVM's local configuration, where this host's sanlock host_id is read from.")
    public static let logLevel = OptionSpec(
        "agent", "log_level", type: .choice(logLevels), default: .string("info"),
        help: "Least severe log level written.")
    public static let volumeClear = OptionSpec(
        "agent", "volume_clear", type: .choice(["none", "zero", "shred"]), default: .string("zero"),
        help: "How a deleted volume's data is wiped, by a job after the delete returned, before its LV is removed "
            + "(as cinder's volume_clear; none hands the old data to the next volume on those extents).")
    public static let maxConcurrentJobs = OptionSpec(
        "agent", "max_concurrent_jobs", type: .integer(min: 1, max: 16), default: .int(2),
        help: "Jobs (wipes of deleted volumes, copies) running at the same time at most; further jobs wait queued.")
    public static let volumeCopyBpsLimit = OptionSpec(
        "agent", "volume_copy_bps_limit", type: .integer(min: 0), default: .int(0),
        help: "Bytes per second all jobs of this agent may move together (as cinder's option; 0: no limit).")
    public static let volumeClearSize = OptionSpec(
        "agent", "volume_clear_size", type: .integer(min: 0), default: .int(0),
        help: "MiB to wipe at the start of a deleted volume; 0 wipes it whole (as cinder's volume_clear_size).")
    public static let controllerTopic = OptionSpec(
        "agent", "controller_topic", type: .string, default: .string("aos-controller"),
        help: "Topic of the controllers the agent announces itself to (their [controller] topic).")
    public static let libvirtURI = OptionSpec(
        "agent", "libvirt_uri", type: .string, default: .string("qemu:///system"),
        help:
            "libvirt URI (virsh -c) of this host's VMs, which lockspace recovery stops and starts again; empty: recovery leaves VMs alone.")
    public static let lvNamePattern = OptionSpec(
        "agent", "lv_name_pattern", type: .list, default: .list(["volume-*", "_snapshot-*"]),
        help:
            "The LVs this agent may change: shell globs (fnmatch: * ? [..]), comma-separated; an LV whose name matches none is refused (lv_not_managed) by create, extend, refresh, delete, activate and deactivate, and left alone by restore and recovery reactivation; read-only methods still see it. The default is what the Cinder driver creates (cinder's volume_name_template volume-%s); '*' manages every LV of the volume groups."
    )

    public static let maxRequestBytes = OptionSpec(
        "agent", "max_request_bytes", type: .integer(min: 4096, max: 16 << 20), default: .int(256 << 10),
        help:
            "Largest request body the agent takes; a larger one is refused with a ValueError (an agent's requests are a few hundred bytes)."
    )

    public static let riskStaleWritesWithoutWatchdog = OptionSpec(
        "agent", "risk_stale_writes_without_watchdog", type: .boolean, default: .bool(false),
        help:
            "Start although fencing is configured (lvm.conf lvmlockctl_kill_command) and wdmd is not running. Without the watchdog, a host whose lease expired and whose fence failed keeps writing to LVs another host may activate: true accepts that risk (the start check then warns instead of failing)."
    )

    public static let releaseStartupPages = OptionSpec(
        "agent", "release_startup_pages", type: .boolean, default: .bool(true),
        help:
            "Once serving and announced, page out the pages of the agent's own executable (its code and data; madvise MADV_PAGEOUT, a hint that changes no contents): what only start-up used leaves memory, what runs again is read back in. false keeps them resident."
    )

    public static let options: [OptionSpec] = [
        volumeGroups, stateDir, lvmTimeout, maxConcurrentLVM, announceInterval, fullAnnounceEvery, pvWaitTimeout,
        lvmBackend, lvmlocalConf, logLevel, volumeClear, volumeClearSize, maxConcurrentJobs, volumeCopyBpsLimit,
        controllerTopic, libvirtURI, lvNamePattern, maxRequestBytes, riskStaleWritesWithoutWatchdog, releaseStartupPages,
    ]

    /// Everything `aos-agent` reads. Other programs' sections in the same file are tolerated.
    public static let schema = ConfigSchema(
        component: "aos-agent", options: CommonOptions.all + options + MetricsOptions.agent + AuthOptions.options,
        lenientSections: ["controller", "aosctl"],
        checks: [CommonOptions.sslFilesNeedSSL, lvNamePatternsValid, AuthOptions.formatHasHost] + MetricsOptions.agentChecks)

    static let lvNamePatternsValid: @Sendable (Configuration) -> String? = { config in
        let patterns = config.list(lvNamePattern)
        if patterns.isEmpty {
            return "[agent] lv_name_pattern is empty: the agent would refuse every LV (use volume-* for Cinder's names, * for all)"
        }
        for p in patterns where p.contains(where: { $0 == "/" || $0 == " " || $0 == "\t" }) {
            return "[agent] lv_name_pattern '\(p)': a glob of LV names cannot contain '/' or blanks"
        }
        return nil
    }

    /// The agent's settings, typed.
    public struct Settings: Sendable, Equatable {
        public var messaging: CommonOptions.Messaging
        public var auth: AuthOptions.Settings
        public var maxRequestBytes: Int
        public var volumeGroups: [String]
        public var stateDir: String
        public var lvmTimeout: Int
        public var maxConcurrentLVM: Int
        public var announceInterval: Int
        public var fullAnnounceEvery: Int
        public var pvWaitTimeout: Int
        public var lvmBackend: LVMBackendKind
        public var lvmlocalConf: String
        public var logLevel: String
        public var volumeClear: String
        public var volumeClearSizeMiB: Int
        public var maxConcurrentJobs: Int
        public var volumeCopyBpsLimit: Int
        public var controllerTopic: String
        public var libvirtURI: String
        public var lvNamePatterns: [String]
        public var riskStaleWritesWithoutWatchdog: Bool
        public var releaseStartupPages: Bool

        public init(_ c: Configuration) {
            messaging = CommonOptions.Messaging(c)
            auth = AuthOptions.Settings(c)
            maxRequestBytes = c.int(AgentOptions.maxRequestBytes)
            volumeGroups = c.list(AgentOptions.volumeGroups)
            stateDir = c.string(AgentOptions.stateDir)
            lvmTimeout = c.int(AgentOptions.lvmTimeout)
            maxConcurrentLVM = c.int(AgentOptions.maxConcurrentLVM)
            announceInterval = c.int(AgentOptions.announceInterval)
            fullAnnounceEvery = c.int(AgentOptions.fullAnnounceEvery)
            pvWaitTimeout = c.int(AgentOptions.pvWaitTimeout)
            // The schema admits only the enum's raw values; the default is `real`.
            lvmBackend = LVMBackendKind(rawValue: c.string(AgentOptions.lvmBackend)) ?? .real
            lvmlocalConf = c.string(AgentOptions.lvmlocalConf)
            logLevel = c.string(AgentOptions.logLevel)
            volumeClear = c.string(AgentOptions.volumeClear)
            volumeClearSizeMiB = c.int(AgentOptions.volumeClearSize)
            maxConcurrentJobs = c.int(AgentOptions.maxConcurrentJobs)
            volumeCopyBpsLimit = c.int(AgentOptions.volumeCopyBpsLimit)
            controllerTopic = c.string(AgentOptions.controllerTopic)
            libvirtURI = c.string(AgentOptions.libvirtURI)
            lvNamePatterns = c.list(AgentOptions.lvNamePattern)
            riskStaleWritesWithoutWatchdog = c.bool(AgentOptions.riskStaleWritesWithoutWatchdog)
            releaseStartupPages = c.bool(AgentOptions.releaseStartupPages)
        }
    }
}
