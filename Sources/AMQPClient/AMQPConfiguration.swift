/// Connection settings. Built from a transport URL plus oslo-style options;
/// see docs/amqp-rpc.md for what each one changes on the wire.
public struct AMQPConfiguration: Sendable {
    public struct TLS: Sendable, Equatable {
        /// librabbitmq 0.11 cannot use the system CA store: a CA file is required.
        public var caFile: String
        public var certFile: String?
        public var keyFile: String?
        public var verifyPeer = true
        /// DNS-name matching only in 0.11: connect by name, not by IP address.
        public var verifyHostname = true

        public init(caFile: String, certFile: String? = nil, keyFile: String? = nil) {
            self.caFile = caFile
            self.certFile = certFile
            self.keyFile = keyFile
        }
    }

    public var url: TransportURL
    /// AMQP heartbeat in seconds (oslo's heartbeat_timeout_threshold); 0 disables.
    /// A dead peer is detected after about two intervals.
    public var heartbeat: Int = 60
    public var connectTimeout: Duration = .seconds(5)
    /// Bound on synchronous AMQP methods (declare, bind, consume).
    public var methodTimeout: Duration = .seconds(30)
    /// A publish (socket write) that has not finished by then is aborted and the
    /// connection rebuilt: guards against librabbitmq 0.11's publish hang.
    public var publishWriteTimeout: Duration = .seconds(10)
    public var reconnectInitialDelay: Duration = .seconds(1)
    public var reconnectMaxDelay: Duration = .seconds(30)
    /// Many processes on one broker cluster: start at a random host of a multi-host URL (as
    /// oslo spreads its services) and randomise every reconnect delay within [d/2, d], so that
    /// neither one node carries every connection nor a restarted broker meets them all at once.
    public var spreadLoad = false
    public var tls: TLS?
    public var prefetchCount: UInt16 = 0
    public var connectionName: String = "aos"

    /// Applies the oslo options that a transport URL's query may carry
    /// (`heartbeat_timeout_threshold`, `ssl_ca_file`, …). Unknown keys are ignored
    /// here: they belong to other layers (e.g. queue flavour options).
    public init(url: TransportURL, tlsDefaults: TLS? = nil) throws(TransportURLError) {
        self.url = url
        let q = url.query
        if let hb = q["heartbeat_timeout_threshold"] {
            guard let v = Int(hb), v >= 0 else { throw .malformed("heartbeat_timeout_threshold must be an integer >= 0") }
            heartbeat = v
        }
        if let p = q["rabbit_qos_prefetch_count"] {
            guard let v = UInt16(p) else { throw .malformed("rabbit_qos_prefetch_count must be an integer 0..65535") }
            prefetchCount = v
        }
        if url.usesTLS {
            var t = tlsDefaults
            if let ca = q["ssl_ca_file"] { t = TLS(caFile: ca, certFile: t?.certFile, keyFile: t?.keyFile) }
            if let c = q["ssl_cert_file"] { t?.certFile = c }
            if let k = q["ssl_key_file"] { t?.keyFile = k }
            guard let t else {
                throw .malformed("TLS requested but no CA file given (ssl_ca_file): librabbitmq 0.11 cannot use the system store")
            }
            tls = t
        }
    }
}
