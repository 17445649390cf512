import AMQPClient
import AOSConfig
import AOSRuntime
import Testing

/// `[oslo_messaging_rabbit] ssl = true` turns TLS on as in oslo.messaging, whatever the URL's
/// scheme, on the URL's own port.
struct MessagingTLSTests {
    func messaging(_ ini: String, env: [String: String] = [:]) throws -> CommonOptions.Messaging {
        CommonOptions.Messaging(try CLIOptions.schema.load(iniText: ini, env: env))
    }

    @Test func sslTrueWithRabbitURLUsesTLSOnTheURLsPort() throws {
        let m = try messaging(
            """
            [DEFAULT]
            transport_url = rabbit://aos:secret@broker.example:5672/aos
            [oslo_messaging_rabbit]
            ssl = true
            ssl_ca_file = /etc/aos/ca.pem
            ssl_cert_file = /etc/aos/client.pem
            ssl_key_file = /etc/aos/client.key
            """)
        let amqp = try m.amqpConfiguration()
        #expect(
            amqp.tls
                == AMQPConfiguration.TLS(
                    caFile: "/etc/aos/ca.pem", certFile: "/etc/aos/client.pem",
                    keyFile: "/etc/aos/client.key"))
        #expect(amqp.url.hosts.map(\.port) == [5672])
        #expect(amqp.tls?.verifyPeer == true && amqp.tls?.verifyHostname == true)
    }

    @Test func sslTrueFromTheEnvironmentWithAmqpURL() throws {
        let m = try messaging(
            "",
            env: [
                "AOS_DEFAULT_TRANSPORT_URL": "amqp://aos:secret@h1:5671,aos:secret@h2:5671/",
                "AOS_OSLO_MESSAGING_RABBIT_SSL": "true",
                "AOS_OSLO_MESSAGING_RABBIT_SSL_CA_FILE": "/ca.pem",
            ])
        let amqp = try m.amqpConfiguration()
        #expect(amqp.tls?.caFile == "/ca.pem")
        #expect(amqp.tls?.certFile == nil && amqp.tls?.keyFile == nil)
    }

    @Test func sslFalseLeavesPlainAMQP() throws {
        let amqp = try messaging("[DEFAULT]\ntransport_url = rabbit://u:p@h:5672/\n").amqpConfiguration()
        #expect(amqp.tls == nil)
    }

    @Test func urlQueryCAFileWinsOverTheOption() throws {
        let m = try messaging(
            """
            [DEFAULT]
            transport_url = rabbit://u:p@h:5672/?ssl_ca_file=/from-url.pem
            [oslo_messaging_rabbit]
            ssl = true
            ssl_ca_file = /from-option.pem
            """)
        #expect(try m.amqpConfiguration().tls?.caFile == "/from-url.pem")
    }

    @Test func noCAFileFallsBackToTheSystemBundle() throws {
        let m = try messaging("[DEFAULT]\ntransport_url = rabbit://u:p@h/\n[oslo_messaging_rabbit]\nssl = true\n")
        // /etc/hostname stands in for a bundle: the first existing one is taken.
        let amqp = try m.amqpConfiguration(systemCABundles: ["/nonexistent/ca.crt", "/etc/hostname"])
        #expect(amqp.tls?.caFile == "/etc/hostname")
        #expect(throws: TransportURLError.self) { try m.amqpConfiguration(systemCABundles: ["/nonexistent/ca.crt"]) }
        do {
            _ = try m.amqpConfiguration(systemCABundles: ["/nonexistent/ca.crt"])
        } catch {
            #expect("\(error)".contains("ssl_ca_file"))
            #expect(!"\(error)".contains("u:p"))
        }
    }

    @Test func amqpsSchemeStillUsesTLS() throws {
        let m = try messaging("[DEFAULT]\ntransport_url = amqps://u:p@h:5671/?ssl_ca_file=/ca.pem\n")
        #expect(try m.amqpConfiguration().tls?.caFile == "/ca.pem")
    }
}
