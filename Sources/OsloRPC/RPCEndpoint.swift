import RPCWire

/// Decides, before dispatch, whether a request may run; a failure is sent back to a caller
/// (when it named a reply queue) and nothing is executed. Must be quick and not block.
public typealias RPCAdmission = @Sendable (RPCCallContext, _ args: [String: JSONValue]) -> RPCFailure?

public typealias RPCHandler = @Sendable (RPCCallContext, [String: JSONValue]) async throws -> JSONValue

/// A set of methods under one namespace and version, like an oslo endpoint object.
public struct RPCEndpoint: Sendable {
    public var namespace: String?
    public var version: RPCVersion
    public var handlers: [String: RPCHandler]

    public init(
        namespace: String? = nil, version: RPCVersion = RPCVersion(major: 1, minor: 0),
        handlers: [String: RPCHandler] = [:]
    ) {
        self.namespace = namespace
        self.version = version
        self.handlers = handlers
    }
}

/// Finds the handler for a request with oslo's dispatcher rules, or the failure
/// oslo would return (NoSuchMethod / UnsupportedVersion).
public struct RPCDispatcher: Sendable {
    public var endpoints: [RPCEndpoint]

    public init(endpoints: [RPCEndpoint]) { self.endpoints = endpoints }

    public func handler(for request: RPCRequest) -> Result<RPCHandler, RPCFailure> {
        let requested = request.version.flatMap(RPCVersion.init) ?? RPCVersion(major: 1, minor: 0)
        if let v = request.version, RPCVersion(v) == nil {
            return .failure(.unsupportedVersion(v, method: request.method))
        }
        var compatibleFound = false
        for e in endpoints where e.namespace == request.namespace && e.version.canServe(requested) {
            compatibleFound = true
            // Methods starting with '_' are private in oslo's default access policy.
            if !request.method.hasPrefix("_"), let h = e.handlers[request.method] { return .success(h) }
        }
        if compatibleFound { return .failure(.noSuchMethod(request.method)) }
        return .failure(.unsupportedVersion(request.version ?? "1.0", method: request.method))
    }
}
