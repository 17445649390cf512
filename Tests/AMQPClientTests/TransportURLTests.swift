import Testing

@testable import AMQPClient

@Suite struct TransportURLTests {
    @Test func seedURLParses() throws {
        let u = try TransportURL(parsing: "amqp://aos:password@controller:5672/aos")
        #expect(u.scheme == "amqp")
        #expect(u.hosts == [.init(host: "controller", port: 5672, username: "aos", password: "password")])
        #expect(u.virtualHost == "aos")
        #expect(!u.usesTLS)
    }

    @Test(arguments: [
        ("rabbit://h:5672/", "/"), ("rabbit://h:5672", "/"), ("rabbit://h:5672//", "/"),
        ("rabbit://h/oslotest", "oslotest"), ("rabbit://h/my%2Fvhost", "my/vhost"),
    ])
    func virtualHostFromPath(url: String, vhost: String) throws {
        #expect(try TransportURL(parsing: url).virtualHost == vhost)
    }

    @Test func multipleHostsWithOwnCredentialsAndIPv6() throws {
        let u = try TransportURL(parsing: "rabbit://a:p%40ss@h1:5673,b:q@[::1]:5674,h3/v?ssl=1&ssl_ca_file=%2Fca.pem")
        #expect(u.hosts.count == 3)
        #expect(u.hosts[0] == .init(host: "h1", port: 5673, username: "a", password: "p@ss"))
        #expect(u.hosts[1] == .init(host: "::1", port: 5674, username: "b", password: "q"))
        #expect(u.hosts[2] == .init(host: "h3", port: 5672, username: "guest", password: "guest"))
        #expect(u.usesTLS)
        #expect(u.query["ssl_ca_file"] == "/ca.pem")
    }

    @Test func descriptionNeverShowsPasswords() throws {
        let u = try TransportURL(parsing: "rabbit://aos:s3cret@c1:5672,x:y@c2/aos")
        #expect(!u.description.contains("s3cret"))
        #expect(!u.description.contains(":y@"))
        #expect(u.description == "rabbit://aos:***@c1:5672,x:***@c2:5672/aos")
    }

    @Test(arguments: [
        ("controller:5672", "missing '://'"),
        ("kafka://h/", "scheme 'kafka'"),
        ("rabbit://u:p@h:99999/", "port '99999'"),
        ("rabbit://u:p@h:abc/", "port 'abc'"),
        ("rabbit://a,,b/", "host #2 is empty"),
        ("rabbit://u:p@/", "host name is empty"),
        ("rabbit://[::1/", "unterminated"),
        ("rabbit://h/%zz", "percent-escape"),
        ("rabbit://u:p%4@h/", "percent-escape"),
    ])
    func malformedURLsAreClearErrors(url: String, fragment: String) {
        do {
            _ = try TransportURL(parsing: url)
            Issue.record("\(url) parsed")
        } catch {
            #expect(error.description.contains(fragment), "\(error.description)")
            #expect(!error.description.contains("p%4"))
        }
    }

    @Test func errorsDoNotLeakPasswords() {
        do {
            _ = try TransportURL(parsing: "rabbit://user:hunter2@h:notaport/")
            Issue.record("parsed")
        } catch {
            #expect(!error.description.contains("hunter2"))
        }
    }

    @Test func configurationReadsOsloQueryOptions() throws {
        let c = try AMQPConfiguration(url: TransportURL(parsing: "rabbit://h/?heartbeat_timeout_threshold=10&rabbit_qos_prefetch_count=7"))
        #expect(c.heartbeat == 10)
        #expect(c.prefetchCount == 7)
        #expect(throws: TransportURLError.self) {
            _ = try AMQPConfiguration(url: TransportURL(parsing: "rabbit://h/?heartbeat_timeout_threshold=-1"))
        }
        // TLS without a CA file cannot work with librabbitmq 0.11: say so up front.
        #expect(throws: TransportURLError.self) {
            _ = try AMQPConfiguration(url: TransportURL(parsing: "amqps://h/"))
        }
        let tls = try AMQPConfiguration(url: TransportURL(parsing: "rabbit://h/?ssl=true&ssl_ca_file=/etc/ca.pem"))
        #expect(tls.tls?.caFile == "/etc/ca.pem")
        #expect(tls.tls?.verifyHostname == true)
    }
}
