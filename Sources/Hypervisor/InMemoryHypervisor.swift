import Synchronization

/// A `Hypervisor` in memory, for fast tests of callers. Behaves like `VirshHypervisor`
/// (same name validation, idempotent stop/start, `domainNotFound` for unknown names),
/// remembers state across calls (unlike virsh's test driver), and can be told to fail.
public final class InMemoryHypervisor: Hypervisor {
    private struct State {
        var domains: [Domain]
        var calls: [String] = []
        var failing: Set<String>
        var listingFails = false
    }
    private let state: Mutex<State>

    public init(domains: [Domain], failing: Set<String> = []) {
        state = Mutex(State(domains: domains, failing: failing))
    }

    /// Every stop/start asked for, in order: "stop vm1", "start vm1" (also the failed and
    /// the no-op ones; listings are not recorded).
    public var calls: [String] { state.withLock { $0.calls } }
    /// Domain names whose stop and start throw (kind `failed`), as if virsh had failed.
    public var failing: Set<String> {
        get { state.withLock { $0.failing } }
        set { state.withLock { $0.failing = newValue } }
    }
    /// When true, `domains()` throws as if libvirtd were unreachable.
    public var listingFails: Bool {
        get { state.withLock { $0.listingFails } }
        set { state.withLock { $0.listingFails = newValue } }
    }
    /// The domains as they are now (without recording anything).
    public var current: [Domain] { state.withLock { $0.domains } }

    public func domains() async throws(HypervisorError) -> [Domain] {
        let (fails, domains) = state.withLock { ($0.listingFails, $0.domains) }
        if fails { throw HypervisorError(message: "cannot list libvirt domains: injected failure (InMemoryHypervisor.listingFails)") }
        return domains
    }

    public func stop(_ name: String) async throws(HypervisorError) {
        try change(name, verb: "stop", running: false)
    }

    public func start(_ name: String) async throws(HypervisorError) {
        try change(name, verb: "start", running: true)
    }

    private func change(_ name: String, verb: String, running: Bool) throws(HypervisorError) {
        let outcome: HypervisorError? = state.withLock { s in
            s.calls.append("\(verb) \(name)")
            if let problem = HypervisorNames.domainProblem(name) {
                return HypervisorError(
                    kind: .invalidArgument,
                    message: "invalid libvirt domain name \(HypervisorNames.quoted(name)): \(problem)")
            }
            if s.failing.contains(name) {
                return HypervisorError(
                    message: "cannot \(verb) libvirt domain \(HypervisorNames.quoted(name)): "
                        + "injected failure (InMemoryHypervisor.failing)")
            }
            guard let index = s.domains.firstIndex(where: { $0.name == name }) else {
                return HypervisorError(
                    kind: .domainNotFound,
                    message: "libvirt domain \(HypervisorNames.quoted(name)) does not exist")
            }
            s.domains[index].running = running
            return nil
        }
        if let outcome { throw outcome }
    }
}
