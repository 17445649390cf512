import HostCommands
import SharedLVM

/// libvirt through the `virsh` CLI, by argv (`virsh -c URI …`): no libvirt C binding to
/// link, and the same tool an operator would use to check by hand.
///
/// virsh texts relied on (the runner pins LC_ALL=C, so they are English):
/// - destroy of an inactive domain: "error: Requested operation is not valid: domain is not running"
/// - start of an active domain: "error: Domain is already active" (virsh's own check), or,
///   when the domain became active after that check, the driver's "domain is already running"
/// - any lookup of an unknown domain: "error: failed to get domain 'NAME'"
/// - `domstate`: one of "running", "idle", "paused", "in shutdown", "shut off", "crashed",
///   "pmsuspended", "no state"
public struct VirshHypervisor: Hypervisor {
    public let uri: String
    public let executor: any CommandExecuting
    public let timeout: Duration

    public init(uri: String, executor: any CommandExecuting = CommandRunner(), timeout: Duration = .seconds(30)) {
        self.uri = uri
        self.executor = executor
        self.timeout = timeout
    }

    public func domains() async throws(HypervisorError) -> [Domain] {
        let list = try await virsh(["list", "--all", "--name"])
        guard list.termination.isSuccess else {
            throw failure(
                list, "cannot list libvirt domains at URI \(uri)",
                hint: "check that libvirtd is running and that the URI is right")
        }
        let names = list.stdout.split(separator: "\n").map(String.init).filter { !$0.isEmpty }
        for name in names {
            if let problem = HypervisorNames.domainProblem(name) {
                // Skipping it could leave a VM holding an LV we are about to deactivate.
                throw HypervisorError(
                    message: "libvirt at URI \(uri) has a domain named \(HypervisorNames.quoted(name)) that cannot be passed "
                        + "to virsh safely (\(problem)); rename it (virsh domrename)",
                    argv: list.argv, stderr: list.stderr, termination: list.termination)
            }
        }
        var result: [Domain] = []
        for name in names {
            // A domain undefined between the listing and these calls (a transient one that
            // stopped) is simply gone: leave it out.
            let stateResult = try await virsh(["domstate", name])
            if isNotFound(stateResult) { continue }
            guard stateResult.termination.isSuccess else {
                throw failure(stateResult, "cannot read the state of libvirt domain \(HypervisorNames.quoted(name)) at URI \(uri)")
            }
            let running = try Self.isActive(domstate: stateResult)

            let xml = try await virsh(["dumpxml", name])
            if isNotFound(xml) { continue }
            guard xml.termination.isSuccess else {
                throw failure(xml, "cannot read the XML of libvirt domain \(HypervisorNames.quoted(name)) at URI \(uri)")
            }
            let disks: [String]
            do {
                disks = try DomainXML.diskSources(xml.stdout)
            } catch {
                throw HypervisorError(
                    message: "cannot read the disks of libvirt domain \(HypervisorNames.quoted(name)) at URI \(uri): "
                        + "unexpected XML from virsh dumpxml (\(error.reason))",
                    argv: xml.argv, stderr: xml.stderr, termination: xml.termination)
            }
            result.append(Domain(name: name, running: running, disks: disks))
        }
        return result
    }

    public func stop(_ name: String) async throws(HypervisorError) {
        try HypervisorNames.validateDomain(name)
        let r = try await virsh(["destroy", name])
        if r.termination.isSuccess || r.stderr.lowercased().contains("domain is not running") { return }
        if isNotFound(r) { throw notFound(r, name) }
        throw failure(r, "cannot stop (virsh destroy) libvirt domain \(HypervisorNames.quoted(name)) at URI \(uri)")
    }

    public func start(_ name: String) async throws(HypervisorError) {
        try HypervisorNames.validateDomain(name)
        let r = try await virsh(["start", name])
        let stderr = r.stderr.lowercased()
        if r.termination.isSuccess || stderr.contains("domain is already active")
            || stderr.contains("domain is already running")
        {
            return
        }
        if isNotFound(r) { throw notFound(r, name) }
        throw failure(
            r, "cannot start libvirt domain \(HypervisorNames.quoted(name)) at URI \(uri)",
            hint: "see the domain's log under /var/log/libvirt/")
    }

    /// Runs `virsh -c URI args…`. Returns non-zero exits to the caller (each operation
    /// decides which are fine); throws only when virsh did not finish: missing, or killed
    /// at the timeout (libvirtd hung, e.g. on a VM stuck in D-state I/O).
    func virsh(_ args: [String]) async throws(HypervisorError) -> CommandResult {
        try HypervisorNames.validateURI(uri)
        let argv = ["virsh", "-c", uri] + args
        let result: CommandResult
        do {
            result = try await executor.run(argv, timeout: timeout)
        } catch {
            throw HypervisorError(
                kind: .unavailable, message: "cannot run virsh (is libvirt-clients installed?): \(error.message)",
                argv: argv)
        }
        if result.termination == .timedOut {
            throw HypervisorError(
                message: "virsh \(args.first ?? "") did not finish within \(timeout) and was killed; "
                    + "check that libvirtd at URI \(uri) is responsive",
                argv: argv, stderr: result.stderr, termination: result.termination)
        }
        return result
    }

    static func isActive(domstate r: CommandResult) throws(HypervisorError) -> Bool {
        let state = r.stdout.split(separator: "\n").first.map { String($0).trimmingSpaces() } ?? ""
        switch state {
        case "shut off": return false
        case "running", "idle", "paused", "in shutdown", "crashed", "pmsuspended", "no state": return true
        default:
            // Guessing could restart a VM that was meant to be off, or skip one holding an LV.
            throw HypervisorError(
                message: "unexpected output from virsh domstate: \(HypervisorNames.quoted(state))",
                argv: r.argv, stderr: r.stderr, termination: r.termination)
        }
    }

    func isNotFound(_ r: CommandResult) -> Bool {
        !r.termination.isSuccess && r.stderr.contains("failed to get domain")
    }

    func notFound(_ r: CommandResult, _ name: String) -> HypervisorError {
        HypervisorError(
            kind: .domainNotFound,
            message: "libvirt domain \(HypervisorNames.quoted(name)) does not exist at URI \(uri); "
                + "check the name with `virsh -c \(uri) list --all`",
            argv: r.argv, stderr: r.stderr, termination: r.termination)
    }

    func failure(_ r: CommandResult, _ what: String, hint: String? = nil) -> HypervisorError {
        var message = "\(what): \(Self.summary(r))"
        if let hint { message += "; \(hint)" }
        return HypervisorError(message: message, argv: r.argv, stderr: r.stderr, termination: r.termination)
    }

    /// virsh's stderr on one line without its "error: " prefixes; the exit status if silent.
    static func summary(_ r: CommandResult) -> String {
        let lines = r.stderr.split(separator: "\n").map { line -> String in
            let t = String(line).trimmingSpaces()
            return t.hasPrefix("error: ") ? String(t.dropFirst(7)) : t
        }.filter { !$0.isEmpty }
        return lines.isEmpty ? "virsh ended with \(r.termination) and no message" : lines.joined(separator: "; ")
    }
}
