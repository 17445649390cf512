/// The roles of the trust model (docs/security.md).
public enum Role: String, Sendable, Hashable, CaseIterable, CustomStringConvertible {
    /// The Cinder volume driver: volume operations and queries, through the controller only.
    case driver
    /// The controller: commands agents.
    case controller
    /// An agent: announces itself (and only itself) to the controller.
    case agent
    /// The operator (`aosctl`): everything.
    case admin

    public var description: String { rawValue }
}

/// What the servers need to know about a method before they run it: who may call it and how
/// it may arrive. The admission policy (AOSAuth) is built from these, so the table of methods
/// and the table of permissions cannot drift apart.
public struct MethodTraits: Sendable, Equatable {
    /// Roles allowed to call it.
    public var callers: Set<Role>
    /// It changes state: accepted only as a call (a caller waiting for the answer, with a
    /// deadline), never as a cast or a fanout copy.
    public var mutating: Bool
    /// It must arrive on the server's own queue (`topic.server`): the caller chose this server.
    public var directedOnly: Bool

    public init(callers: Set<Role>, mutating: Bool, directedOnly: Bool = false) {
        self.callers = callers
        self.mutating = mutating
        self.directedOnly = directedOnly
    }

    /// A cast (no reply) may carry it: only methods that change nothing.
    public var castAllowed: Bool { !mutating }
}

/// The methods one server serves: wire names (`rawValue`) with their traits.
public protocol APIMethod: RawRepresentable, CaseIterable, Sendable, Hashable where RawValue == String {
    var traits: MethodTraits { get }
}
