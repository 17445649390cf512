import RPCWire

// The agent's `recover` method (docs/agent.md, "recover"): one step of the lockspace recovery
// per call. Property names are the wire keys.

/// The steps of a lockspace recovery, in order (`aosctl recover` calls them one by one;
/// `plan` changes nothing).
public enum RecoveryStep: String, WireEnum {
    case plan
    case fence
    case waitPath = "wait_path"
    case stopVMs = "stop_vms"
    case deactivate
    case drop
    case lockStart = "lock_start"
    case reactivate
    case startVMs = "start_vms"
    case finish

    /// The steps that run, in order (all but `plan`).
    public static let execution: [RecoveryStep] = allCases.filter { $0 != .plan }
}

/// `recover(vg, step="plan", force=false)`; `force` skips the check that the lease storage failed.
public struct RecoverRequest: APIRequest, Equatable {
    public var vg: String
    public var step: RecoveryStep?
    public var force: Bool?

    public init(vg: String, step: RecoveryStep? = nil, force: Bool? = nil) {
        self.vg = vg
        self.step = step
        self.force = force
    }
}

/// How a step ended: `waiting` only from `wait_path` (call it again).
public enum RecoveryStepStatus: String, WireEnum {
    case ok
    case skipped
    case waiting
}

/// The result of one step: `{host, vg, step, status, changed, message, seconds}` and what the
/// step adds (nil: absent). `plan` always carries `fenced` and `vms` (null when none).
public struct RecoverResult: APIResponse, Equatable {
    public var host: String
    public var vg: String
    public var step: RecoveryStep
    public var status: RecoveryStepStatus
    public var changed: Bool
    public var message: String
    public var seconds: Double

    // plan
    public var lockspace: LockspaceState?
    public var needs_recovery: Bool?
    public var reason: String?
    /// The kill command's fence record (its file format).
    public var fenced: JSONValue?
    public var lvs: [RecoveryLV]?
    public var vms: [RecoveryVM]?
    public var vms_problem: String?
    public var hypervisor: Bool?
    public var steps: [PlannedStep]?
    /// This recovery's journal (its file format).
    public var journal: JSONValue?
    // plan, wait_path
    public var paths: [PathState]?
    // wait_path
    public var ready: Bool?
    // fence: the fence record written
    public var record: JSONValue?
    // stop_vms
    public var stopped: [String]?
    // deactivate
    public var deactivated: [DeactivatedLV]?
    // reactivate
    public var reactivated: [RecoveryLVOutcome]?
    public var left_alone: [RecoveryLVOutcome]?
    // start_vms
    public var started: [String]?
    public var not_started: [VMNotStarted]?
    // finish
    public var result: RecoverySummary?

    public init(
        host: String, vg: String, step: RecoveryStep, status: RecoveryStepStatus, changed: Bool,
        message: String, seconds: Double = 0
    ) {
        self.host = host
        self.vg = vg
        self.step = step
        self.status = status
        self.changed = changed
        self.message = message
        self.seconds = seconds
    }

    enum CodingKeys: String, CodingKey {
        case host, vg, step, status, changed, message, seconds, lockspace, needs_recovery, reason, fenced, lvs, vms,
            vms_problem, hypervisor, steps, journal, paths, ready, record, stopped, deactivated, reactivated,
            left_alone, started, not_started, result
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(host, forKey: .host)
        try c.encode(vg, forKey: .vg)
        try c.encode(step, forKey: .step)
        try c.encode(status, forKey: .status)
        try c.encode(changed, forKey: .changed)
        try c.encode(message, forKey: .message)
        try c.encode(seconds, forKey: .seconds)
        try c.encodeIfPresent(lockspace, forKey: .lockspace)
        try c.encodeIfPresent(needs_recovery, forKey: .needs_recovery)
        try c.encodeIfPresent(reason, forKey: .reason)
        if step == .plan {
            try c.encode(fenced ?? .null, forKey: .fenced)
            try c.encode(vms, forKey: .vms)
        } else {
            try c.encodeIfPresent(fenced, forKey: .fenced)
            try c.encodeIfPresent(vms, forKey: .vms)
        }
        try c.encodeIfPresent(lvs, forKey: .lvs)
        try c.encodeIfPresent(vms_problem, forKey: .vms_problem)
        try c.encodeIfPresent(hypervisor, forKey: .hypervisor)
        try c.encodeIfPresent(steps, forKey: .steps)
        try c.encodeIfPresent(journal, forKey: .journal)
        try c.encodeIfPresent(paths, forKey: .paths)
        try c.encodeIfPresent(ready, forKey: .ready)
        try c.encodeIfPresent(record, forKey: .record)
        try c.encodeIfPresent(stopped, forKey: .stopped)
        try c.encodeIfPresent(deactivated, forKey: .deactivated)
        try c.encodeIfPresent(reactivated, forKey: .reactivated)
        try c.encodeIfPresent(left_alone, forKey: .left_alone)
        try c.encodeIfPresent(started, forKey: .started)
        try c.encodeIfPresent(not_started, forKey: .not_started)
        try c.encodeIfPresent(result, forKey: .result)
    }
}

/// What a device-mapper device of the VG looks like on the host.
public enum LVDeviceState: String, WireEnum {
    case active
    /// An error table (fenced).
    case failing
    /// No device.
    case absent
    /// No device-mapper view (the simulated backend).
    case unknown
}

/// An LV recovery cares about (`plan.lvs`): its old mode (null: unknown), its device, openers.
public struct RecoveryLV: Codable, Sendable, Equatable {
    public var name: String
    @AlwaysPresent public var mode: LVMode?
    public var device: LVDeviceState
    public var open: Int
    public var device_path: String

    public init(name: String, mode: LVMode?, device: LVDeviceState, open: Int, device_path: String) {
        self.name = name
        self.mode = mode
        self.device = device
        self.open = open
        self.device_path = device_path
    }
}

/// A VM whose disks are LVs of the VG.
public struct RecoveryVM: Codable, Sendable, Equatable {
    public var name: String
    public var running: Bool
    public var disks: [String]

    public init(name: String, running: Bool, disks: [String]) {
        self.name = name
        self.running = running
        self.disks = disks
    }
}

/// A step of the plan and what it does.
public struct PlannedStep: Codable, Sendable, Equatable {
    public var step: RecoveryStep
    public var action: String

    public init(step: RecoveryStep, action: String) {
        self.step = step
        self.action = action
    }
}

/// A path device's state.
public enum PathCondition: String, WireEnum {
    case live
    /// Queued I/O (no path).
    case suspended
    /// An error table.
    case failing
    case absent
}

/// A path device of the VG and whether it can be read now; `target` and `problem` when known.
public struct PathState: Codable, Sendable, Equatable {
    public var device: String
    public var state: PathCondition
    public var target: String?
    public var readable: Bool
    public var problem: String?

    public init(device: String, state: PathCondition, target: String? = nil, readable: Bool, problem: String? = nil) {
        self.device = device
        self.state = state
        self.target = target
        self.readable = readable
        self.problem = problem
    }
}

/// How the deactivate step took an LV down.
public struct DeactivatedLV: Codable, Sendable, Equatable {
    public enum How: String, WireEnum {
        case lvchange = "lvchange -an"
        case dmsetup = "dmsetup remove"
    }

    public var name: String
    public var how: How

    public init(name: String, how: How) {
        self.name = name
        self.how = how
    }
}

/// An LV of the reactivate step: re-activated in `mode`, or left alone with `code` and
/// `reason`. `mode` is always present (null: the agent never knew it).
public struct RecoveryLVOutcome: Codable, Sendable, Equatable {
    public var name: String
    @AlwaysPresent public var mode: LVMode?
    public var code: String?
    public var reason: String?

    public init(name: String, mode: LVMode?, code: String? = nil, reason: String? = nil) {
        self.name = name
        self.mode = mode
        self.code = code
        self.reason = reason
    }
}

/// A VM the start_vms step left stopped, and why.
public struct VMNotStarted: Codable, Sendable, Equatable {
    public var name: String
    public var reason: String

    public init(name: String, reason: String) {
        self.name = name
        self.reason = reason
    }
}

/// What a finished recovery did (`finish.result`).
public struct RecoverySummary: Codable, Sendable, Equatable {
    public var reactivated: [RecoveryLVOutcome]
    public var left_alone: [RecoveryLVOutcome]
    public var vms_started: [String]
    public var vms_not_started: [VMNotStarted]

    public init(
        reactivated: [RecoveryLVOutcome] = [], left_alone: [RecoveryLVOutcome] = [], vms_started: [String] = [],
        vms_not_started: [VMNotStarted] = []
    ) {
        self.reactivated = reactivated
        self.left_alone = left_alone
        self.vms_started = vms_started
        self.vms_not_started = vms_not_started
    }
}
