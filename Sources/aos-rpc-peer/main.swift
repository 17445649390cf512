// A small oslo-compatible RPC peer used by the interop and resilience tests
// (Tests/interop). `serve` runs a Swift RPC server with test methods; `client`
// reads one JSON request per line on stdin and prints one JSON result per line,
// so a test can drive a long-lived Swift client across broker restarts.
import AMQPClient
import AOSAPI
import AOSAuth
import AOSRuntime
import ArgumentParser
import Logging
import OsloRPC
import RPCWire
import ServiceLifecycle
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

@main
struct RPCPeer: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "aos-rpc-peer", abstract: "oslo.messaging-compatible test peer",
        subcommands: [Serve.self, Client.self])
}

struct Common: ParsableArguments {
    @Option(help: "Transport URL (rabbit:// or amqp://)") var url: String
    @Option(help: "AMQP heartbeat in seconds") var heartbeat: Int = 60
    @Option(help: "Initial reconnect delay in seconds") var reconnectDelay: Double = 0.5
    @Option(help: "Log level") var logLevel: String = "info"

    func connection(name: String) throws -> AMQPConnection {
        LoggingSystem.bootstrap { StreamLogHandler.standardError(label: $0) }
        var config = try AMQPConfiguration(url: TransportURL(parsing: url))
        config.heartbeat = heartbeat
        config.reconnectInitialDelay = .milliseconds(Int(reconnectDelay * 1000))
        config.reconnectMaxDelay = .seconds(5)
        config.connectionName = name
        var logger = Logger(label: name)
        logger.logLevel = Logger.Level(rawValue: logLevel) ?? .info
        return AMQPConnection(configuration: config, logger: logger) { state in
            // Tests wait on these lines instead of sleeping.
            switch state {
            case .connected(let host): emit(["event": "connected", "host": .string(host)])
            case .disconnected(let reason): emit(["event": "disconnected", "reason": .string(reason)])
            case .connecting, .closed: break
            }
        }
    }
}

func emit(_ v: JSONValue) {
    // One write(2) per line: unbuffered, so a test reading our stdout sees it at once.
    let line = Array((JSONWriter.serialize(v) + "\n").utf8)
    line.withUnsafeBytes { _ = write(1, $0.baseAddress, $0.count) }
}

struct Serve: AsyncParsableCommand {
    @OptionGroup var common: Common
    @Option var exchange = "openstack"
    @Option var topic = "aos-test"
    @Option var server = "swift-peer"
    @Option(help: "Admit requests only from this broker user (user_id), through AOSAuth's admission (benchmarks its cost)")
    var admitUser: String?
    @Flag(help: "Run request tasks on the connection's I/O thread (RPCServer.Options.dispatchOnConnectionThread)")
    var dispatchOnConnectionThread = false

    func run() async throws {
        let conn = try common.connection(name: "aos-rpc-peer-serve")
        var logger = Logger(label: "rpc-server")
        logger.logLevel = .info
        let recorded = Mutex<[JSONValue]>([])
        let handlers: [String: RPCHandler] = [
            "ping": { _, _ in "pong" },
            "echo": { _, args in .object(args) },
            "fail": { _, args in
                let message = args["message"]?.stringValue ?? "boom"
                let cls = args["class"]?.stringValue ?? "ValueError"
                let module = args["module"]?.stringValue ?? "builtins"
                throw RPCFailure(
                    className: cls, module: module, message: message,
                    kwargs: args["code"].map { ["code": $0] } ?? [:])
            },
            "sleep": { _, args in
                let secs = args["secs"]?.doubleValue ?? 1
                try await Task.sleep(for: .milliseconds(Int(secs * 1000)))
                return .string("slept \(secs)")
            },
            "record": { _, args in
                recorded.withLock { $0.append(.object(args)) }
                return .null
            },
            "recorded": { _, _ in .array(recorded.withLock { $0 }) },
            "context": { ctx, _ in .object(ctx.context) },
        ]
        let v2: [String: RPCHandler] = ["v2method": { _, args in .object(["v2": .object(args)]) }]
        let dispatcher = RPCDispatcher(endpoints: [
            RPCEndpoint(handlers: handlers),
            RPCEndpoint(namespace: "ns2", version: RPCVersion(major: 2, minor: 1), handlers: v2),
        ])
        var options = RPCServer.Options()
        options.dispatchOnConnectionThread = dispatchOnConnectionThread
        if let admitUser {
            let rules = Dictionary(uniqueKeysWithValues: handlers.keys.map { ($0, MethodTraits(callers: [.admin], mutating: false)) })
            options.admit =
                Admission(
                    policy: ServerPolicy(serverName: "aos-rpc-peer", rules: rules),
                    configuration: AuthConfiguration(credentials: Credentials(adminUsers: [admitUser]))
                ).hook
        }
        let server = RPCServer(
            connection: conn, target: RPCTarget(exchange: exchange, topic: topic, server: server),
            dispatcher: dispatcher, options: options, logger: logger)
        let service = ClosureService {
            try await cancelWhenGracefulShutdown {
                try await server.run(onReady: { emit(["event": "READY"]) })
            }
        }
        let group = ServiceGroup(services: [service], gracefulShutdownSignals: [.sigterm, .sigint], logger: logger)
        try await group.run()
        await conn.close()
    }
}

struct Client: AsyncParsableCommand {
    @OptionGroup var common: Common
    @Option var exchange = "openstack"

    func run() async throws {
        let conn = try common.connection(name: "aos-rpc-peer-client")
        let client = RPCClient(connection: conn, logger: Logger(label: "rpc-client"))
        emit(["event": "READY"])
        while let line = readLine() {
            guard let req = try? JSONValue.parse(line), case .object(let o) = req else {
                emit(["ok": false, "error": "bad_input"])
                continue
            }
            let target = RPCTarget(
                exchange: o["exchange"]?.stringValue ?? exchange,
                topic: o["topic"]?.stringValue ?? "aos-test", server: o["server"]?.stringValue)
            let method = o["method"]?.stringValue ?? "ping"
            let args = o["args"]?.objectValue ?? [:]
            let timeout = Duration.milliseconds(Int((o["timeout"]?.doubleValue ?? 10) * 1000))
            let monitor = o["monitor"]?.doubleValue.map { Duration.milliseconds(Int($0 * 1000)) }
            let start = ContinuousClock.now
            do {
                switch o["op"]?.stringValue ?? "call" {
                case "cast":
                    try await client.cast(target, method: method, args: args)
                    emit(["ok": true, "result": nil])
                case "fanout":
                    try await client.fanoutCast(topic: target.topic, method: method, args: args)
                    emit(["ok": true, "result": nil])
                default:
                    let r = try await client.call(
                        target, method: method, args: args,
                        context: o["context"]?.objectValue ?? [:], timeout: timeout,
                        monitorTimeout: monitor, namespace: o["namespace"]?.stringValue,
                        version: o["version"]?.stringValue)
                    emit(["ok": true, "result": r, "elapsed": .double((ContinuousClock.now - start).seconds)])
                }
            } catch let e as RPCCallError {
                var out: [String: JSONValue] = [
                    "ok": false, "message": .string("\(e)"),
                    "elapsed": .double((ContinuousClock.now - start).seconds),
                ]
                switch e {
                case .remote(let f):
                    out["error"] = "remote"
                    out["class"] = .string(f.className)
                    out["module"] = .string(f.module)
                    out["remote_message"] = .string(f.message)
                case .timedOut: out["error"] = "timeout"
                case .undeliverable: out["error"] = "undeliverable"
                case .transport: out["error"] = "transport"
                case .badReply: out["error"] = "bad_reply"
                }
                emit(.object(out))
            } catch {
                emit(["ok": false, "error": "other", "message": .string("\(error)")])
            }
        }
        await conn.close()
    }
}

extension Duration {
    var seconds: Double { Double(components.seconds) + Double(components.attoseconds) / 1e18 }
}
