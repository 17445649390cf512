import AOSAPI
import OsloRPC
import RPCWire
import Synchronization

/// A server's method table for admission: which rule applies to which method.
public struct ServerPolicy: Sendable {
    public var serverName: String
    /// Each method's traits, by wire name (from the API module's method enum).
    public var rules: [String: MethodTraits]
    /// Checks that need the arguments (an announcement names its own host); returns why not.
    public var argumentCheck: (@Sendable (Principal, String, [String: JSONValue]) -> String?)?

    public init(
        serverName: String, rules: [String: MethodTraits],
        argumentCheck: (@Sendable (Principal, String, [String: JSONValue]) -> String?)? = nil
    ) {
        self.serverName = serverName
        self.rules = rules
        self.argumentCheck = argumentCheck
    }

    /// The policy of a server that serves exactly the methods of `M`.
    public init<M: APIMethod>(
        serverName: String, methods: M.Type,
        argumentCheck: (@Sendable (Principal, String, [String: JSONValue]) -> String?)? = nil
    ) {
        self.init(
            serverName: serverName, rules: Dictionary(uniqueKeysWithValues: M.allCases.map { ($0.rawValue, $0.traits) }),
            argumentCheck: argumentCheck)
    }
}

/// The `[auth]` settings that admission needs.
public struct AuthConfiguration: Sendable, Equatable {
    /// Refuse requests whose sender is unknown or not allowed. When false, such requests are
    /// logged as "would refuse" and run (a migration aid); transport rules always hold.
    public var enforce: Bool
    public var credentials: Credentials
    /// How far a signature's time (and an announcement's `sent_at`) may be from this host's clock.
    public var maxClockSkew: Duration

    public init(enforce: Bool = true, credentials: Credentials = Credentials(), maxClockSkew: Duration = .seconds(60)) {
        self.enforce = enforce
        self.credentials = credentials
        self.maxClockSkew = maxClockSkew
    }
}

/// The wire code of every refusal (`NotAuthorized` for Python callers).
public enum AdmissionError {
    public static let code = WireErrorCode.notAuthorized.rawValue

    static func failure(_ message: String, reason: String, method: String) -> RPCFailure {
        ServiceError(
            code: code, message: message,
            details: ["reason": .string(reason), "method": .string(method)]
        ).rpcFailure
    }
}

/// Establishes who sent a request and applies a `ServerPolicy`; plugs into
/// `RPCServer.Options.admit`. Rules, in order:
/// 1. transport: a mutating method only as a call with a deadline, never from the fanout
///    queue, and on the server's own queue where the rule says so (always enforced);
/// 2. identity: the broker-checked `user_id`, else a valid signature from a configured key
///    (fresh, not replayed, made for this server's routing key), else unauthenticated;
/// 3. role: the principal's role is allowed for the method, and the argument check passes.
public final class Admission: Sendable {
    public let policy: ServerPolicy
    public let configuration: AuthConfiguration
    private let wallClock: @Sendable () -> Double
    private let nonces = Mutex(NonceWindow(capacity: 16_384))
    private let onEvent: @Sendable (AdmissionEvent) -> Void

    public init(
        policy: ServerPolicy, configuration: AuthConfiguration,
        wallClock: @escaping @Sendable () -> Double = RPCDeadline.wallClockNow,
        onEvent: @escaping @Sendable (AdmissionEvent) -> Void = { _ in }
    ) {
        self.policy = policy
        self.configuration = configuration
        self.wallClock = wallClock
        self.onEvent = onEvent
    }

    /// For `RPCServer.Options.admit`.
    public var hook: RPCAdmission { { [self] ctx, args in self.check(ctx, args) } }

    public func check(_ ctx: RPCCallContext, _ args: [String: JSONValue]) -> RPCFailure? {
        let method = ctx.method
        guard let rule = policy.rules[method] else {
            // Unknown methods go on to the dispatcher (NoSuchMethod), but only from a known sender.
            return identityRefusal(ctx, args, method: method, allowed: Set(Role.allCases))
        }
        if rule.mutating {
            if ctx.route == .fanout || !ctx.isCall {
                return AdmissionError.failure(
                    "\(method) changes state on \(policy.serverName): it is accepted only as a call addressed to it; casts and fanout messages never change anything",
                    reason: "transport", method: method)
            }
            if ctx.deadline == nil {
                return AdmissionError.failure(
                    "\(method) changes state: the call must carry a deadline (a message TTL or aos_deadline)",
                    reason: "transport", method: method)
            }
        }
        if rule.directedOnly && ctx.route != .directed {
            return AdmissionError.failure(
                "\(method) must be sent to \(policy.serverName)'s own queue (a call with server=\(policy.serverName)), not to the shared topic",
                reason: "transport", method: method)
        }
        return identityRefusal(ctx, args, method: method, allowed: rule.callers)
    }

    private func identityRefusal(
        _ ctx: RPCCallContext, _ args: [String: JSONValue], method: String,
        allowed: Set<Role>
    ) -> RPCFailure? {
        let refusal: RPCFailure?
        switch identify(ctx, args) {
        case .failure(let f): refusal = f
        case .success(let principal):
            if !allowed.contains(principal.role) {
                let roles = allowed.map(\.rawValue).sorted().joined(separator: ", ")
                refusal = AdmissionError.failure(
                    "\(principal) may not call \(method) on \(policy.serverName) (allowed: \(roles))",
                    reason: "role", method: method)
            } else if let why = policy.argumentCheck?(principal, method, args) {
                refusal = AdmissionError.failure("\(principal): \(why)", reason: "arguments", method: method)
            } else {
                onEvent(.admitted(principal: principal, method: method))
                return nil
            }
        }
        guard let refusal else { return nil }
        if configuration.enforce { onEvent(.refused(method: method, message: refusal.message)); return refusal }
        onEvent(.wouldRefuse(method: method, message: refusal.message))
        return nil
    }

    /// Who sent the request, or the refusal that says why it cannot be told.
    public func identify(_ ctx: RPCCallContext, _ args: [String: JSONValue]) -> Result<Principal, RPCFailure> {
        let method = ctx.method
        if let user = ctx.userID {
            guard let p = configuration.credentials.principal(brokerUser: user) else {
                return .failure(
                    AdmissionError.failure(
                        "broker user '\(printable(user))' has no role here (see [auth] in aos.conf and docs/security.md)",
                        reason: "unknown_user", method: method))
            }
            return .success(p)
        }
        guard let entry = ctx.context[RequestSignature.contextKey] else {
            return .failure(
                AdmissionError.failure(
                    "unauthenticated request: no broker user_id and no request signature (aos_auth); see docs/security.md",
                    reason: "unauthenticated", method: method))
        }
        let sig: RequestSignature
        do { sig = try RequestSignature(context: entry) } catch {
            return .failure(AdmissionError.failure("\(error)", reason: "bad_signature", method: method))
        }
        guard let role = configuration.credentials.role(ofKey: sig.key) else {
            return .failure(
                AdmissionError.failure(
                    "signing key \(sig.key.keyID)… is not configured in [auth]",
                    reason: "unknown_key", method: method))
        }
        let skewMillis = Double(configuration.maxClockSkew.components.seconds) * 1000
        let now = wallClock() * 1000
        guard abs(now - Double(sig.timestampMillis)) <= skewMillis else {
            return .failure(
                AdmissionError.failure(
                    "request signature time is \(Int((Double(sig.timestampMillis) - now) / 1000)) s from this host's clock (allowed: ±\(configuration.maxClockSkew.components.seconds) s); check NTP",
                    reason: "clock_skew", method: method))
        }
        guard
            sig.isValid(
                target: ctx.routingKey, method: method, namespace: ctx.namespace, version: ctx.version,
                args: args)
        else {
            return .failure(
                AdmissionError.failure(
                    "request signature by key \(sig.key.keyID)… does not match this request (was it made for routing key '\(printable(ctx.routingKey))'?)",
                    reason: "bad_signature", method: method))
        }
        let fresh = nonces.withLock { $0.insert(sig.nonce, expiresAt: Double(sig.timestampMillis) + skewMillis, now: now) }
        guard fresh else {
            return .failure(
                AdmissionError.failure(
                    "replayed request (nonce \(sig.nonce) already used)",
                    reason: "replay", method: method))
        }
        return .success(Principal(role: role, evidence: .signature(keyID: sig.key.keyID)))
    }
}

/// What admission decided, for logs and counters.
public enum AdmissionEvent: Sendable {
    case admitted(principal: Principal, method: String)
    case refused(method: String, message: String)
    /// `enforce = false`: this request would have been refused.
    case wouldRefuse(method: String, message: String)
}

/// Nonces seen within the signature time window; bounded.
struct NonceWindow {
    let capacity: Int
    private var expiry: [String: Double] = [:]

    init(capacity: Int) { self.capacity = capacity }

    /// False when the nonce was seen (a replay), or when the window is full of live nonces.
    mutating func insert(_ nonce: String, expiresAt: Double, now: Double) -> Bool {
        if expiry[nonce].map({ $0 >= now }) == true { return false }
        if expiry.count >= capacity { expiry = expiry.filter { $0.value >= now } }
        guard expiry.count < capacity else { return false }
        expiry[nonce] = expiresAt
        return true
    }
}

/// Keeps control characters and overlong text out of messages and logs (RPCWire's rule).
func printable(_ text: String) -> String { JSONValue.printable(text) }
