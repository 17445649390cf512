import AOSAPI
import HostCommands
import RPCWire

/// One item's outcome: the wire's `CheckStatus` (PASS < WARN < FAIL), so `check_host`
/// reports it as is.
public typealias PreflightStatus = CheckStatus

/// One checked item of a host's preparation (docs/operations.md, "Preflight").
public struct PreflightItem: Sendable, Hashable {
    /// Stable name (`use_lvmlockd`, `host_id`…): tests and operators match on it.
    public var id: String
    public var status: PreflightStatus
    /// One line: what was found.
    public var finding: String
    /// Where it shows: `file:line: text`, or `$ command` and its output line.
    public var evidence: String
    /// What to change (empty on PASS).
    public var fix: String
    /// A FAIL that makes serving unsafe: the agent does not start with it.
    public var blocking: Bool

    public init(id: String, status: PreflightStatus, finding: String, evidence: String, fix: String = "", blocking: Bool = false) {
        self.id = id
        self.status = status
        self.finding = finding
        self.evidence = evidence
        self.fix = fix
        self.blocking = blocking
    }

    var json: JSONValue {
        .object([
            "id": .string(id), "status": .string(status.rawValue), "finding": .string(finding),
            "evidence": .string(evidence), "fix": .string(fix), "blocking": .bool(blocking),
        ])
    }
}

/// The whole check: every item, in order.
public struct PreflightReport: Sendable, Hashable {
    public var items: [PreflightItem]

    public init(items: [PreflightItem]) { self.items = items }

    public var worst: PreflightStatus { items.map(\.status).max() ?? .pass }
    /// FAIL items that stop the agent.
    public var blocking: [PreflightItem] { items.filter { $0.status == .fail && $0.blocking } }
    /// Every non-PASS item as one line (`health().preflight`).
    public var problems: [String] {
        items.filter { $0.status != .pass }.map { "\($0.status.rawValue) \($0.id): \($0.finding) (fix: \($0.fix))" }
    }

    public func item(_ id: String) -> PreflightItem? { items.first { $0.id == id } }

    /// `{"status": worst, "items": [...]}`.
    public var json: JSONValue {
        .object(["status": .string(worst.rawValue), "items": .array(items.map(\.json))])
    }

    /// `json` as one line of text.
    public var jsonText: String { JSONWriter.serialize(json) }

    /// A table: status, id, finding; evidence and fix indented under each non-PASS item.
    public var table: String {
        let width = max(4, items.map(\.id.count).max() ?? 4)
        var out = "STATUS  " + "ITEM".padded(width) + "  FINDING\n"
        for i in items {
            out += i.status.rawValue + "    " + i.id.padded(width) + "  " + i.finding + "\n"
            let indent = String(repeating: " ", count: 10 + width)
            if !i.evidence.isEmpty { out += indent + "evidence: " + i.evidence + "\n" }
            if i.status != .pass, !i.fix.isEmpty { out += indent + "fix: " + i.fix + "\n" }
        }
        let counts = [PreflightStatus.pass, .warn, .fail].map { s in "\(items.filter { $0.status == s }.count) \(s.rawValue)" }
        out += "result: \(worst.rawValue) (\(counts.joined(separator: ", ")))\n"
        return out
    }
}

extension String {
    fileprivate func padded(_ n: Int) -> String { count >= n ? self : self + String(repeating: " ", count: n - count) }
}

/// What the check reads of the host: files (under a root prefix, for fixtures) and commands
/// (argv only). The real one is `PreflightSystemHost`; tests inject fixtures.
public protocol PreflightHost: Sendable {
    /// The file's text, or nil when it does not exist or cannot be read.
    func readFile(_ path: String) -> String?
    func exists(_ path: String) -> Bool
    /// The command's result, or nil when it could not run at all (not installed).
    func run(_ argv: [String]) async -> CommandResult?
}

/// What the check compares the host with.
public struct PreflightExpectations: Sendable, Hashable {
    /// `[agent] volume_groups`.
    public var volumeGroups: [String]
    /// LVM's configuration directory (`LVM_SYSTEM_DIR`, default /etc/lvm).
    public var lvmDirectory: String
    /// `[agent] lvmlocal_conf`: where the agent reads its host_id.
    public var agentLVMLocalConf: String
    /// `--host-id` given to the agent, if any.
    public var hostIdOverride: Int?
    /// `[agent] risk_stale_writes_without_watchdog`: no wdmd with fencing configured is a WARN, not a FAIL.
    public var riskStaleWritesWithoutWatchdog = false
    /// The first words of lvm.conf's lvmlockctl_kill_command that count as ours: a program
    /// whose name is `aos-agent`, then `fence`.
    public static let fenceProgram = "aos-agent"

    public init(
        volumeGroups: [String], lvmDirectory: String = "/etc/lvm", agentLVMLocalConf: String = "/etc/lvm/lvmlocal.conf",
        hostIdOverride: Int? = nil
    ) {
        self.volumeGroups = volumeGroups
        self.lvmDirectory = lvmDirectory
        self.agentLVMLocalConf = agentLVMLocalConf
        self.hostIdOverride = hostIdOverride
    }
}
