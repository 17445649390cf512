import AMQPClient
import AOSAuth
import ArgumentParser
import Foundation
import Logging
import OsloRPC
import RPCWire

#if canImport(Glibc)
import Glibc
#endif

/// `aos-bench path`: the whole path, caller → controller → agent, against the C floor in one run.
struct PathBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "path", abstract: "Round trips through aos-controller to an aos-agent, as ratios to the C floor",
        discussion: """
            Starts, on one broker, an aos-controller and --agents aos-agent processes (next to \
            this binary, lvm_backend = simulated) and the C floor server and relay \
            (bench/rpc_floor.c), creates one volume and activates it on the first agent, then \
            alternates --rounds rounds of sequential calls: the C floor, one hop and two hops \
            (client → relay → server: the floor of a path through the controller); Swift RPCClient (aosctl's client) → \
            controller: get_volume (→ the agent's lv_info), activate_volume of the active volume \
            (→ activate_lv, changed false), list_agents (the controller alone); Swift → agent \
            directly: lv_info, activate_lv; and the Cinder driver's own ControllerClient \
            (bench/path_driver.py under the cinder venv, signed) for the three controller calls. \
            --auth roles (the default when AOS_TEST_BROKER_CTL and AOS_TEST_BROKER_DIR are set, \
            as scripts/rabbitmq-private.sh's broker.env sets them) creates a vhost and one broker \
            user per role (AOSAuth.BrokerSetup, what `aosctl broker-setup` prints) and runs \
            everything with [auth] enforce = true; --auth off runs everything as the URL's user \
            with enforce = false.
            """)

    enum AuthMode: String, ExpressibleByArgument, CaseIterable {
        case auto, roles, off
    }

    @Option(help: "Transport URL of a broker to use (amqp://USER:PASS@HOST:PORT/)") var url: String
    @Option(help: "Rounds (each: floor, Swift, Python, in that order)") var rounds = 3
    @Option(help: "Sequential calls per path and round") var calls = 1000
    @Option(help: "Warm-up calls per path and round") var warmup = 100
    @Option(help: "Agents (simulated, sharing one VG); calls go to the first") var agents = 1
    @Option(help: "auto, roles (per-role broker users, enforce = true) or off (the URL's user, enforce = false)")
    var auth: AuthMode = .auto
    @Option(help: "scripts/rabbitmq-private.sh (default: $AOS_TEST_BROKER_CTL)") var brokerCtl: String?
    @Option(help: "The private broker's directory (default: $AOS_TEST_BROKER_DIR)") var brokerDir: String?
    @Option(help: "Python with oslo.messaging and cinder (default: .venv/cinder/bin/python above this binary)")
    var python: String?
    @Flag(inversion: .prefixedNo, help: "Run the Cinder driver's path (Python)") var driver = true
    @Flag(inversion: .prefixedNo, help: "Run the C floor") var floor = true
    @Option(help: "bench/rpc_floor.c (default: found above this binary or in the current directory)")
    var floorSource: String?
    @Option(help: "aos-controller binary (default: next to this one): to compare two builds, run each in turn")
    var controller: String?
    @Option(help: "An extra --set SECTION.KEY=VALUE for the controller (repeatable)") var controllerSet: [String] = []

    func validate() throws {
        guard rounds >= 1, calls >= 1, warmup >= 0, (1...8).contains(agents) else {
            throw ValidationError("--rounds, --calls ≥ 1, --warmup ≥ 0, --agents 1…8")
        }
    }

    static let vg = "vg0"
    static let exchange = "openstack"

    /// One path's figures in one round.
    struct Sample {
        var median: Double
        var p99: Double
    }

    func run() async throws {
        LoggingSystem.bootstrap { label in
            var h = StreamLogHandler.standardError(label: label)
            h.logLevel = .error
            return h
        }
        let fm = FileManager.default
        let env = ProcessInfo.processInfo.environment
        let tag = String(makeUUIDHex().prefix(8))
        let here = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
        let dir = fm.temporaryDirectory.appendingPathComponent("aos-bench-path-\(makeUUIDHex())")
        try fm.createDirectory(at: dir, withIntermediateDirectories: false, attributes: [.posixPermissions: 0o700])
        defer { try? fm.removeItem(at: dir) }

        let hosts = (0..<agents).map { "pb-\(tag)-\(Character(UnicodeScalar(UInt8(97 + $0))))" }
        let topic = "aos-controller-\(tag)"
        let ctlUser = "aos-controller-\(tag)", adminUser = "aos-admin-\(tag)", driverUser = "aos-driver-\(tag)"
        let base = try BrokerAddress(url)

        // Who is who on the broker.
        let ctl = brokerCtl ?? env["AOS_TEST_BROKER_CTL"]
        let ctlDir = brokerDir ?? env["AOS_TEST_BROKER_DIR"]
        let roles: Bool
        switch auth {
        case .roles:
            guard ctl != nil, ctlDir != nil else { throw ValidationError("--auth roles needs --broker-ctl and --broker-dir") }
            roles = true
        case .off: roles = false
        case .auto: roles = ctl != nil && ctlDir != nil
        }
        let credentials = Credentials(
            controllerUsers: [ctlUser], adminUsers: [adminUser], driverUsers: [driverUser],
            agentUserFormat: "aos-agent-{host}")
        var passwords: [String: String] = [:]
        let vhost = "aos-bench-path-\(tag)"
        let broker = BrokerCtl(script: ctl ?? "", dir: ctlDir ?? "")
        func userURL(_ user: String, scheme: String = "amqp") -> String {
            guard roles, let p = passwords[user] else { return base.url(scheme: scheme) }
            return base.url(scheme: scheme, user: user, password: p, vhost: vhost)
        }
        let setup = BrokerSetup(
            vhost: vhost, exchange: Self.exchange, controllerTopic: topic, hosts: hosts, credentials: credentials)
        if roles {
            for a in setup.accounts { passwords[a.user] = makeUUIDHex() }
            let t0 = ContinuousClock.now
            for argv in setup.commands(password: { passwords[$0] ?? "" }) { try broker.run(argv) }
            say(
                "auth: enforce = true, vhost \(vhost), one broker user per role (\(setup.accounts.count) users, set up in \(fmt(ms(ContinuousClock.now - t0) / 1000)) s)"
            )
        } else {
            say("auth: enforce = false, every process as the URL's broker user (--auth off, or no broker ctl to create users)")
        }
        defer {
            if roles {
                for a in setup.accounts { try? broker.run(["delete_user", a.user]) }
                try? broker.run(["delete_vhost", vhost])
            }
        }

        // The driver's signing key, and the one config file every process reads.
        let driverKey = SigningKey.Private()
        let keyFile = dir.appendingPathComponent("driver.key")
        try Data(driverKey.base64.utf8).write(to: keyFile)
        try fm.setAttributes([.posixPermissions: 0o600], ofItemAtPath: keyFile.path)
        let conf = dir.appendingPathComponent("aos.conf")
        try Data(
            """
            [auth]
            enforce = \(roles)
            controller_users = \(ctlUser)
            admin_users = \(adminUser)
            driver_users = \(driverUser)
            agent_user_format = aos-agent-{host}
            driver_public_keys = \(driverKey.publicKey.base64)

            """.utf8
        ).write(to: conf)
        try fm.setAttributes([.posixPermissions: 0o600], ofItemAtPath: conf.path)

        // The environment of every child: ours without AOS_* (a test runner's AOS_AUTH_ENFORCE
        // would override the config), plus its own broker login.
        func childEnv(_ extra: [String: String]) -> [String: String] {
            env.filter { !$0.key.hasPrefix("AOS_") }.merging(extra) { $1 }
        }
        var children: [Child] = []
        defer { for c in children.reversed() { c.stop() } }
        let logLevel = roles ? "warning" : "error"  // enforce = false warns on every request
        for (i, h) in hosts.enumerated() {
            children.append(
                try Child.start(
                    here.appendingPathComponent("aos-agent"),
                    [
                        "--config", conf.path, "--set", "DEFAULT.host=\(h)", "--set", "agent.lvm_backend=simulated",
                        "--set", "agent.simulated_state_file=\(dir.appendingPathComponent("cluster.json").path)",
                        "--set", "agent.volume_groups=\(Self.vg)",
                        "--set", "agent.state_dir=\(dir.appendingPathComponent(h).path)",
                        "--set", "agent.controller_topic=\(topic)", "--set", "agent.announce_interval=2", "--set",
                        "agent.pv_wait_timeout=0",
                        "--set", "agent.log_level=\(logLevel)", "--host-id", String(i + 1),
                    ],
                    environment: childEnv(["AOS_DEFAULT_TRANSPORT_URL": userURL("aos-agent-\(h)")]),
                    log: dir.appendingPathComponent("\(h).log"), ready: "READY host=\(h)"))
        }
        children.append(
            try Child.start(
                controller.map { URL(fileURLWithPath: $0) } ?? here.appendingPathComponent("aos-controller"),
                [
                    "--config", conf.path, "--set", "DEFAULT.host=pb-\(tag)-ctl", "--set", "controller.topic=\(topic)",
                    "--set", "controller.log_level=\(logLevel)",
                ] + controllerSet.flatMap { ["--set", $0] },
                environment: childEnv(["AOS_DEFAULT_TRANSPORT_URL": userURL(ctlUser)]),
                log: dir.appendingPathComponent("controller.log"), ready: "READY"))
        let controllerPID = children[children.count - 1].process.processIdentifier

        // The Swift caller: aosctl's RPCClient, as the admin user.
        let conn = AMQPConnection(
            configuration: try AMQPConfiguration(url: TransportURL(parsing: userURL(adminUser))),
            logger: Logger(label: "bench"))
        let client = RPCClient(connection: conn, logger: Logger(label: "bench"))
        let controllerTarget = RPCTarget(exchange: Self.exchange, topic: topic)
        let agentTarget = RPCTarget(exchange: Self.exchange, topic: "aos-agent", server: hosts[0])
        @Sendable func callController(_ method: String, _ args: [String: JSONValue]) async throws -> JSONValue {
            try await client.call(controllerTarget, method: method, args: args, timeout: .seconds(30), version: "1.0")
        }

        // Every agent announced and ready, then one volume, active exclusively on the first agent.
        let until = ContinuousClock.now + .seconds(60)
        while true {
            let r = try await callController("list_agents", [:])
            let ready = (r["agents"]?.arrayValue ?? []).filter {
                $0["status"]?.stringValue == "alive" && $0["ready"] == .bool(true)
            }
            if ready.count == hosts.count { break }
            guard ContinuousClock.now < until else {
                throw ValidationError("the agents did not announce themselves ready within 60 s: \(r)")
            }
            try await Task.sleep(for: .milliseconds(100))  // polling interval, not synchronisation
        }
        let volume = "volume-\(UUID().uuidString.lowercased())"
        _ = try await callController("create_volume", ["vg": .string(Self.vg), "name": .string(volume), "size_gb": 1])
        let activateArgs: [String: JSONValue] = [
            "vg": .string(Self.vg), "name": .string(volume), "host": .string(hosts[0]), "mode": "exclusive",
        ]
        let first = try await callController("activate_volume", activateArgs)
        say(
            "controller pid \(controllerPID), agents \(hosts.joined(separator: ", ")), volume \(Self.vg)/\(volume) active on \(hosts[0]) (changed \(first["changed"].map { "\($0)" } ?? "?"))"
        )

        // The paths (the floor and the driver's run in their own processes).
        struct SwiftPath {
            var name: String
            var call: @Sendable () async throws -> JSONValue
        }
        let lvArgs: [String: JSONValue] = ["vg": .string(Self.vg), "name": .string(volume)]
        let swiftPaths = [
            SwiftPath(name: "Swift → controller → agent: get_volume") { try await callController("get_volume", lvArgs) },
            SwiftPath(name: "Swift → controller → agent: activate_volume") {
                let r = try await callController("activate_volume", activateArgs)
                guard r["changed"] == .bool(false) else { throw ValidationError("activate_volume changed something: \(r)") }
                return r
            },
            SwiftPath(name: "Swift → controller: list_agents") { try await callController("list_agents", [:]) },
            SwiftPath(name: "Swift → agent: lv_info") {
                try await client.call(agentTarget, method: "lv_info", args: lvArgs, timeout: .seconds(30), version: "1.0")
            },
            SwiftPath(name: "Swift → agent: activate_lv") {
                try await client.call(
                    agentTarget, method: "activate_lv", args: lvArgs.merging(["mode": "exclusive"]) { $1 },
                    timeout: .seconds(30), version: "1.0")
            },
        ]
        let driverMethods = ["get_volume", "activate_volume", "list_agents"]

        var floorServer: Process?
        var floorRelay: Process?
        var floorBinary: URL?
        let floorQueue = "aos-bench-floor-\(tag)"
        let relayQueue = "aos-bench-floor-relay-\(tag)"
        // As long as a Swift get_volume request to the controller.
        let bodyBytes = RPCRequest(
            method: "get_volume", args: lvArgs, version: "1.0", msgID: makeUUIDHex(), replyQueue: "reply_\(makeUUIDHex())",
            uniqueID: makeUUIDHex(), context: [RPCDeadline.contextKey: .double(Date().timeIntervalSince1970)]
        ).encodeBody().count
        if floor {
            let binary = try FloorProgram.ensure(next: here, source: floorSource)
            floorBinary = binary
            floorServer = try startChild(binary, ["server", userURL(adminUser), floorQueue])
            // The like-for-like floor of a path with a middle hop: client → relay → server.
            floorRelay = try startChild(binary, ["relay", userURL(adminUser), relayQueue, floorQueue])
        }
        defer {
            for case let f? in [floorRelay, floorServer] {
                f.terminate()
                f.waitUntilExit()
            }
        }

        var driverRun: DriverRun?
        if driver {
            driverRun = try DriverRun(
                here: here, python: python, url: userURL(driverUser, scheme: "rabbit"), topic: topic, vg: Self.vg,
                volume: volume, host: hosts[0], keyFile: keyFile, environment: childEnv([:]),
                log: dir.appendingPathComponent("driver.log"))
        }

        var table: [String: [Sample]] = [:]
        var order: [String] = []
        func record(_ name: String, _ s: Sample) {
            if table[name] == nil { order.append(name) }
            table[name, default: []].append(s)
        }
        let floorName = "C floor (librabbitmq, \(bodyBytes)-byte body)"
        let twoHopName = "C floor, two hops (client → relay → server)"
        for round in 1...rounds {
            var floorMedian: Double?
            var lines: [(String, Sample)] = []
            if let floorBinary {
                let f = try FloorProgram.runClient(
                    floorBinary, url: userURL(adminUser), queue: floorQueue, calls: calls, warmup: warmup, throughputCalls: 1,
                    inFlight: 1, bodyBytes: bodyBytes)
                let s = Sample(median: f.median, p99: f.p99)
                floorMedian = f.median
                lines.append((floorName, s))
                let r = try FloorProgram.runClient(
                    floorBinary, url: userURL(adminUser), queue: relayQueue, calls: calls, warmup: warmup, throughputCalls: 1,
                    inFlight: 1, bodyBytes: bodyBytes)
                lines.append((twoHopName, Sample(median: r.median, p99: r.p99)))
            }
            for p in swiftPaths {
                for _ in 0..<warmup { _ = try await p.call() }
                lines.append((p.name, try await Self.time(calls, p.call)))
            }
            if let driverRun {
                // Another method first in each round, so that none is always the first timed in a fresh process.
                let shift = (round - 1) % driverMethods.count
                let methods = Array(driverMethods[shift...] + driverMethods[..<shift])
                for (m, s) in try driverRun.run(methods: methods, calls: calls, warmup: warmup) {
                    lines.append(("Python driver → controller\(m == "list_agents" ? "" : " → agent"): \(m)", s))
                }
            }
            say("round \(round):")
            for (name, s) in lines {
                record(name, s)
                let r = floorMedian.map { String(format: "%6.2fx", s.median / $0) } ?? ""
                say("  \(name.padding(toLength: 54, withPad: " ", startingAt: 0)) median \(fmt(s.median)) ms  p99 \(fmt(s.p99)) ms  \(r)")
            }
        }

        // Summary: each path's median over rounds, and its ratio to the floor's median of the same round.
        say("over \(rounds) round(s) of \(calls) sequential calls (\(warmup) warm-up), medians of the rounds' figures:")
        let floors = table[floorName]
        let twoHopFloors = table[twoHopName]
        for name in order {
            let s = table[name] ?? []
            let med = middle(s.map(\.median)), p99 = middle(s.map(\.p99))
            var ratio = ""
            if let floors, floors.count == s.count {
                let rs = zip(s, floors).map { $0.median / $1.median }
                ratio = String(format: "  x floor: %.2f (%.2f–%.2f)", middle(rs), rs.min() ?? 0, rs.max() ?? 0)
            }
            // Paths through the controller cross the broker twice, as the relay floor does.
            if name.contains("controller →"), let twoHopFloors, twoHopFloors.count == s.count {
                let rs = zip(s, twoHopFloors).map { $0.median / $1.median }
                ratio += String(format: "  x two-hop floor: %.2f (%.2f–%.2f)", middle(rs), rs.min() ?? 0, rs.max() ?? 0)
            }
            say("  \(name.padding(toLength: 54, withPad: " ", startingAt: 0)) median \(fmt(med)) ms  p99 \(fmt(p99)) ms\(ratio)")
        }
        func hop(_ label: String, _ through: String, _ direct: String) {
            guard let a = table[through], let b = table[direct], a.count == b.count else { return }
            let d = zip(a, b).map { $0.median - $1.median }
            say("  controller hop, \(label) minus the direct call: \(fmt(middle(d))) ms (\(fmt(d.min() ?? 0))–\(fmt(d.max() ?? 0)))")
        }
        // Each hop alone: the caller's (list_agents, no agent) and the agent's (lv_info, direct).
        if let path = table[swiftPaths[0].name], let h1 = table[swiftPaths[2].name], let h2 = table[swiftPaths[3].name],
            path.count == h1.count, path.count == h2.count
        {
            let rest = zip(path, zip(h1, h2)).map { $0.median - $1.0.median - $1.1.median }
            say(
                "  the controller's own work in get_volume (the path minus list_agents minus the direct lv_info, per round): \(rest.map(fmt).joined(separator: ", ")) ms"
            )
        }
        hop("get_volume", swiftPaths[0].name, swiftPaths[3].name)
        hop("activate_volume", swiftPaths[1].name, swiftPaths[4].name)
        say(String(format: "controller RSS at the end: %.1f MB", Double(rssKB(pid: controllerPID)) / 1024))
        await conn.close()
    }

    /// Sequential calls: median and nearest-rank p99 in ms.
    static func time(_ n: Int, _ call: @Sendable () async throws -> JSONValue) async throws -> Sample {
        var samples: [Double] = []
        samples.reserveCapacity(n)
        let clock = ContinuousClock()
        for _ in 0..<n {
            let t = clock.now
            _ = try await call()
            samples.append(ms(clock.now - t))
        }
        samples.sort()
        guard !samples.isEmpty else { return Sample(median: 0, p99: 0) }
        return Sample(median: samples[samples.count / 2], p99: samples[min(samples.count - 1, samples.count * 99 / 100)])
    }

    func middle(_ v: [Double]) -> Double {
        let s = v.sorted()
        return s.isEmpty ? 0 : s[s.count / 2]
    }

    func say(_ s: String) {
        print(s)
        fflush(nil)
    }
}

/// The parts of an amqp:// URL a per-role URL is built from.
struct BrokerAddress {
    var scheme: String
    var userinfo: String
    var hostport: String
    var path: String

    init(_ url: String) throws {
        guard let sep = url.range(of: "://") else { throw ValidationError("--url: no scheme in the URL") }
        scheme = String(url[..<sep.lowerBound])
        var rest = String(url[sep.upperBound...])
        if let at = rest.lastIndex(of: "@") {
            userinfo = String(rest[..<at])
            rest = String(rest[rest.index(after: at)...])
        } else {
            userinfo = ""
        }
        if let slash = rest.firstIndex(of: "/") {
            hostport = String(rest[..<slash])
            path = String(rest[slash...])
        } else {
            hostport = rest
            path = "/"
        }
    }

    /// The URL as given (with another scheme), or for another user and vhost.
    func url(scheme s: String, user: String? = nil, password: String = "", vhost: String? = nil) -> String {
        let auth = user.map { "\($0):\(password)@" } ?? (userinfo.isEmpty ? "" : userinfo + "@")
        return "\(s)://\(auth)\(hostport)\(vhost.map { "/" + $0 } ?? path)"
    }
}

/// rabbitmqctl through scripts/rabbitmq-private.sh (`ctl DIR ARGS…`), argv only.
struct BrokerCtl {
    var script: String
    var dir: String

    func run(_ args: [String]) throws {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        p.arguments = ["bash", script, "ctl", dir] + args
        p.standardOutput = FileHandle.nullDevice
        let err = Pipe()
        p.standardError = err
        try p.run()
        let text = err.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        guard p.terminationStatus == 0 else {
            throw ValidationError(
                "broker ctl \(args.first ?? "") failed (\(p.terminationStatus)): \(String(decoding: text.prefix(500), as: UTF8.self))")
        }
    }
}

/// A server process: stderr to a file, started until its READY line.
struct Child {
    var process: Process
    var log: URL

    static func start(_ executable: URL, _ args: [String], environment: [String: String], log: URL, ready: String) throws -> Child {
        guard FileManager.default.createFile(atPath: log.path, contents: nil) else {
            throw ValidationError("cannot create \(log.path)")
        }
        let handle = try FileHandle(forWritingTo: log)
        let p = Process()
        p.executableURL = executable
        p.arguments = args
        p.environment = environment
        p.standardError = handle
        let out = Pipe()
        p.standardOutput = out
        try p.run()
        var buffer = Data()
        while !String(decoding: buffer, as: UTF8.self).contains(ready) {
            let chunk = out.fileHandleForReading.availableData
            if chunk.isEmpty {
                p.waitUntilExit()
                let tail = (try? String(contentsOf: log, encoding: .utf8)).map { String($0.suffix(2000)) } ?? ""
                throw ValidationError("\(executable.lastPathComponent) exited (\(p.terminationStatus)) before \(ready):\n\(tail)")
            }
            buffer.append(chunk)
        }
        return Child(process: p, log: log)
    }

    func stop() {
        process.terminate()
        for _ in 0..<50 where process.isRunning { usleep(100_000) }
        if process.isRunning { kill(process.processIdentifier, SIGKILL) }
        process.waitUntilExit()
    }
}

/// bench/path_driver.py: the Cinder driver's ControllerClient, run once per round.
struct DriverRun {
    var python: URL
    var script: URL
    var arguments: [String]
    var environment: [String: String]
    var log: URL

    init(
        here: URL, python: String?, url: String, topic: String, vg: String, volume: String, host: String, keyFile: URL,
        environment: [String: String], log: URL
    ) throws {
        self.log = log
        let fm = FileManager.default
        var roots: [URL] = []
        var up = here
        for _ in 0..<5 {
            roots.append(up)
            up = up.deletingLastPathComponent()
        }
        roots.append(URL(fileURLWithPath: fm.currentDirectoryPath))
        guard let root = roots.first(where: { fm.fileExists(atPath: $0.appendingPathComponent("bench/path_driver.py").path) })
        else { throw ValidationError("bench/path_driver.py not found above this binary (or pass --no-driver)") }
        script = root.appendingPathComponent("bench/path_driver.py")
        self.python = python.map { URL(fileURLWithPath: $0) } ?? root.appendingPathComponent(".venv/cinder/bin/python")
        guard fm.isExecutableFile(atPath: self.python.path) else {
            throw ValidationError("\(self.python.path) is not executable: pass --python (a Python with cinder) or --no-driver")
        }
        arguments = [
            script.path, "--topic", topic, "--vg", vg, "--name", volume, "--host", host, "--key-file", keyFile.path,
        ]
        // The URL (with the driver's password) in the environment, not in argv where ps shows it.
        var env = environment
        env["AOS_BENCH_DRIVER_URL"] = url
        let driverPath = root.appendingPathComponent("deploy/cinder").path
        env["PYTHONPATH"] = env["PYTHONPATH"].map { driverPath + ":" + $0 } ?? driverPath
        self.environment = env
    }

    /// Runs the script; its `PATH method=M median_ms=X p99_ms=Y` lines, by method.
    func run(methods: [String], calls: Int, warmup: Int) throws -> [(String, PathBench.Sample)] {
        let p = Process()
        p.executableURL = python
        p.arguments = arguments + ["--calls", String(calls), "--warmup", String(warmup), "--methods", methods.joined(separator: ",")]
        p.environment = environment
        let out = Pipe()
        p.standardOutput = out
        // Its stderr (oslo's and eventlet's warnings) to a file, shown when it fails.
        guard FileManager.default.createFile(atPath: log.path, contents: nil) else {
            throw ValidationError("cannot create \(log.path)")
        }
        p.standardError = try FileHandle(forWritingTo: log)
        try p.run()
        let data = out.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        guard p.terminationStatus == 0 else {
            let tail = (try? String(contentsOf: log, encoding: .utf8)).map { String($0.suffix(3000)) } ?? ""
            throw ValidationError("bench/path_driver.py failed with status \(p.terminationStatus):\n\(tail)")
        }
        var results: [(String, PathBench.Sample)] = []
        for line in String(decoding: data, as: UTF8.self).split(separator: "\n") where line.hasPrefix("PATH ") {
            var v: [String: String] = [:]
            for field in line.split(separator: " ").dropFirst() {
                let kv = field.split(separator: "=", maxSplits: 1)
                if kv.count == 2 { v[String(kv[0])] = String(kv[1]) }
            }
            guard let m = v["method"], let med = v["median_ms"].flatMap(Double.init), let p99 = v["p99_ms"].flatMap(Double.init)
            else { throw ValidationError("bench/path_driver.py: unreadable line \(line)") }
            results.append((m, PathBench.Sample(median: med, p99: p99)))
        }
        guard results.count == methods.count else {
            throw ValidationError("bench/path_driver.py printed \(results.count) of \(methods.count) results")
        }
        return results
    }
}
