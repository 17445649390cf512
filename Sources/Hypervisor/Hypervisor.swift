import HostCommands
import SharedLVM

/// A libvirt domain as recovery needs it: is it holding its disks open, and which disks.
public struct Domain: Sendable, Hashable {
    public var name: String
    /// The domain is *active*: it has a live hypervisor process that may hold its disks open
    /// (running, paused, in shutdown, crashed-but-preserved, pmsuspended). Only "shut off" is
    /// false. Recovery must stop a paused VM too (I/O errors pause VMs), so "active" is the
    /// question that matters, not "is the guest executing".
    public var running: Bool
    /// The `<source dev='…'/>` or `file='…'` path of each `<disk>`, in XML order, entities
    /// decoded. Disks without such a path (network, volume, empty CD-ROM) are left out.
    public var disks: [String]

    public init(name: String, running: Bool, disks: [String]) {
        self.name = name
        self.running = running
        self.disks = disks
    }
}

/// Every failure of this module. `argv`, `termination` and `stderr` describe the virsh
/// command involved (empty/nil when none ran, e.g. a rejected name); `message` is one line
/// for the operator that says what failed and what to check.
public struct HypervisorError: Error, Sendable, Hashable, CustomStringConvertible {
    /// What a caller may act on differently; everything else is `failed`.
    public enum Kind: String, Sendable, Hashable {
        /// A domain name or URI was rejected before anything ran.
        case invalidArgument = "invalid_argument"
        /// libvirt does not know the domain (never defined, or undefined meanwhile).
        case domainNotFound = "domain_not_found"
        /// virsh itself could not be started (not installed): this host has no way to see VMs.
        case unavailable
        /// virsh failed, timed out, or printed something unexpected.
        case failed
    }

    public var kind: Kind
    public var message: String
    public var argv: [String]
    public var stderr: String
    public var termination: CommandTermination?

    public init(
        kind: Kind = .failed, message: String, argv: [String] = [], stderr: String = "",
        termination: CommandTermination? = nil
    ) {
        self.kind = kind
        self.message = message
        self.argv = argv
        self.stderr = stderr
        self.termination = termination
    }

    public var description: String {
        var text = "\(kind.rawValue): \(message)"
        if !argv.isEmpty { text += " [\(argv.joined(separator: " "))" + (termination.map { ", \($0)" } ?? "") + "]" }
        return text
    }
}

/// The VMs of this host, as far as lockspace recovery needs them.
public protocol Hypervisor: Sendable {
    /// Every defined domain (running or not) with its disk sources.
    func domains() async throws(HypervisorError) -> [Domain]
    /// Force off (`virsh destroy`). A domain that is not running: no-op (idempotent).
    func stop(_ name: String) async throws(HypervisorError)
    /// `virsh start`. A domain already running: no-op (idempotent).
    func start(_ name: String) async throws(HypervisorError)
}

extension Hypervisor {
    /// Domains with at least one disk that is one of `devices`, comparing LV device paths in all
    /// their spellings: /dev/VG/LV, /dev/mapper/VG-LV (dashes inside VG and LV names doubled in the
    /// mapper name), /dev/disk/by-id/dm-name-VG-LV. Returns each match with the matching disk(s),
    /// spelled as in the domain's XML. Paths that are not LV paths match only themselves.
    /// Symlinks are not followed (a disk given as /dev/dm-7 does not match).
    public func domains(usingAnyOf devices: [String]) async throws(HypervisorError) -> [(domain: Domain, disks: [String])] {
        let wanted = Set(devices.map(LVDevicePath.matchKey))
        guard !wanted.isEmpty else { return [] }
        return try await domains().compactMap { domain in
            let matching = domain.disks.filter { wanted.contains(LVDevicePath.matchKey($0)) }
            return matching.isEmpty ? nil : (domain: domain, disks: matching)
        }
    }
}
