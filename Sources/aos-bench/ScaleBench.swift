import AMQPClient
import ArgumentParser
import Foundation
import Logging
import OsloRPC
import RPCWire

#if canImport(Glibc)
import Glibc
#endif

struct ScaleBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "scale", abstract: "Controller CPU, RSS, list_agents latency and down detection under N agents",
        discussion: """
            Starts the aos-controller next to this binary (or --controller) with an empty config, \
            a topic of its own, [auth] enforce = false (AOS_AUTH_ENFORCE=false: the fake agents \
            all publish as the URL's broker user, not as aos-agent-<host>) and log_level = error \
            (so the "would be refused" warning enforce = false writes for each announcement is \
            not what is measured). Plays --agents agents, each announcing a health() report \
            (every --full-every-th time; an agent_heartbeat naming it the other times, as aos-agent does) \
            with a fresh sent_at every --interval seconds (fanout casts, spread evenly over the \
            interval, over --connections connections). After one interval it stops one agent, \
            reads the controller's CPU time (/proc/PID/stat utime+stime) over --window seconds \
            and its RSS, times list_agents calls, and waits for the controller's "agent is \
            down" line for the stopped agent.
            """)
    @Option(help: "Transport URL of a broker to use") var url: String
    @Option(help: "Fake agents") var agents = 2000
    @Option(help: "Seconds between one agent's announcements") var interval = 10
    @Option(help: "Seconds over which the controller's CPU time is read") var window = 30
    @Option(help: "Publishing connections") var connections = 4
    @Option(name: .customLong("active-lvs"), help: "Active LVs in each agent's report") var activeLVs = 2
    @Option(
        help: "Every how many announcements an agent sends its full report ([agent] full_announce_every; the others are agent_heartbeat)")
    var fullEvery = 6
    @Option(help: "aos-controller binary (default: next to this one)") var controller: String?
    @Option(help: "[controller] agent_stale_after (default: 2 intervals)") var staleAfter: Int?
    @Option(help: "[controller] agent_down_after (default: 3 intervals)") var downAfter: Int?
    @Option(help: "list_agents calls to time") var listCalls = 5

    func validate() throws {
        guard agents >= 1, interval >= 1, window >= 1, connections >= 1, activeLVs >= 0, listCalls >= 1 else {
            throw ValidationError("counts and durations must be positive")
        }
    }

    func run() async throws {
        LoggingSystem.bootstrap { label in
            var h = StreamLogHandler.standardError(label: label)
            h.logLevel = .error
            return h
        }
        let tag = String(makeUUIDHex().prefix(8))
        let topic = "aos-bench-scale-\(tag)"
        let stale = staleAfter ?? 2 * interval
        let down = max(downAfter ?? 3 * interval, stale)
        let here = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
        let binary = controller.map { URL(fileURLWithPath: $0) } ?? here.appendingPathComponent("aos-controller")
        let config = FileManager.default.temporaryDirectory.appendingPathComponent("aos-bench-scale-\(tag).conf")
        try Data().write(to: config)  // isolates the controller from /etc/aos/aos.conf
        defer { try? FileManager.default.removeItem(at: config) }

        let hosts = (0..<agents).map { String(format: "bench-\(tag)-%05ld", $0) }
        let victim = hosts[0]
        let downSeen = Locked<ContinuousClock.Instant?>(nil)
        let errPipe = Pipe()
        var env = ProcessInfo.processInfo.environment
        env["AOS_AUTH_ENFORCE"] = "false"
        env["AOS_DEFAULT_TRANSPORT_URL"] = url  // not on the command line, where ps shows it
        let ctl = try startChild(
            binary,
            [
                "--config", config.path,
                "--set", "DEFAULT.host=aos-bench-ctl-\(tag)",
                "--set", "controller.topic=\(topic)",
                "--set", "controller.agent_stale_after=\(stale)",
                "--set", "controller.agent_down_after=\(down)",
                "--set", "controller.log_level=error",
            ], environment: env, stderr: errPipe)
        defer { stop(ctl) }
        let pid = ctl.processIdentifier
        // The controller's log, read line by line for the victim's "agent is down".
        let errorLines = Locked(0)
        let otherLines = Locked<[String]>([])
        let reader = errPipe.fileHandleForReading
        reader.readabilityHandler = { h in
            let data = h.availableData
            if data.isEmpty { h.readabilityHandler = nil; return }
            let text = String(decoding: data, as: UTF8.self)
            for line in text.split(separator: "\n") {
                errorLines.withLock { $0 += 1 }
                if line.contains("agent is down"), line.contains(victim) {
                    downSeen.withLock { if $0 == nil { $0 = .now } }
                } else {
                    otherLines.withLock { if $0.count < 5 { $0.append(String(line.prefix(300))) } }
                }
            }
        }

        let players = try (0..<connections).map { _ in
            let conn = AMQPConnection(
                configuration: try AMQPConfiguration(url: TransportURL(parsing: url)),
                logger: Logger(label: "bench"))
            return (conn, RPCClient(connection: conn, logger: Logger(label: "bench")))
        }
        let instances = hosts.map { _ in makeUUIDHex() }
        let reports: [JSONValue] = hosts.enumerated().map { i, h in
            let lvs: [JSONValue] = (0..<activeLVs).map { n in
                ["vg": "vg0", "name": .string(String(format: "volume-%08lx-0000-4000-8000-%012lx", i, n)), "mode": "exclusive"]
            }
            return [
                "host": .string(h), "host_id": .int(Int64(i + 1)), "version": "aos-bench", "instance_id": .string(instances[i]),
                "ready": true, "phase": "ready", "vgs": ["vg0": ["lockspace": "started"]],
                "active_lvs": .array(lvs), "restore_failures": [],
            ]
        }
        let stats = Locked(PlayStats())
        let start = ContinuousClock.now
        let period = Duration.seconds(interval)
        let n = agents
        let fullEvery = max(1, fullEvery)
        let play = Task {
            await withTaskGroup(of: Void.self) { group in
                for (w, player) in players.enumerated() {
                    group.addTask {
                        var round = 0
                        // Each player sends for its own agents only: the sent_at of each one's last full report.
                        var lastFull = [Double](repeating: 0, count: n)
                        while !Task.isCancelled {
                            for i in stride(from: w, to: n, by: players.count) {
                                let due = start + period * round + period * i / n
                                if due > .now { try? await Task.sleep(until: due, clock: .continuous) }
                                if Task.isCancelled { return }
                                let lag = ContinuousClock.now - due
                                if i == 0, stats.withLock({ $0.victimStopped }) { continue }
                                let sentAt = Date().timeIntervalSince1970
                                let full = round % fullEvery == 0
                                let args: [String: JSONValue] =
                                    full
                                    ? ["report": reports[i], "sent_at": .double(sentAt)]
                                    : [
                                        "host": .string(hosts[i]), "instance_id": .string(instances[i]),
                                        "report_sent_at": .double(lastFull[i]), "sent_at": .double(sentAt),
                                    ]
                                if full { lastFull[i] = sentAt }
                                do {
                                    try await player.1.fanoutCast(
                                        topic: topic, method: full ? "agent_announce" : "agent_heartbeat", args: args,
                                        timeout: .seconds(5))
                                    stats.withLock { s in
                                        s.sent += 1
                                        s.maxLag = max(s.maxLag, lag)
                                        if lag > .seconds(1) { s.late += 1 }
                                        if i == 0 { s.victimLast = .now }
                                    }
                                } catch {
                                    stats.withLock { $0.failed += 1 }
                                }
                            }
                            round += 1
                        }
                    }
                }
            }
        }
        defer { play.cancel() }

        say(
            "controller pid \(pid): \(agents) agents, one announcement each every \(interval) s (\(String(format: "%.0f", Double(agents) / Double(interval))) per second), stale after \(stale) s, down after \(down) s"
        )
        // Every agent announced once (and the controller has them all) before the window opens.
        try await Task.sleep(for: period + .seconds(2))
        stats.withLock { $0.victimStopped = true }
        let cpu0 = cpuSeconds(pid: pid), w0 = ContinuousClock.now
        try await Task.sleep(for: .seconds(window))
        let cpu1 = cpuSeconds(pid: pid), w1 = ContinuousClock.now
        let rss = rssKB(pid: pid), hwm = rssKB(pid: pid, field: "VmHWM:")
        let busy = (cpu1 - cpu0) / (ms(w1 - w0) / 1000) * 100
        let s0 = stats.withLock { $0 }
        say(
            String(
                format: "controller CPU over %d s: %.1f %% of one core; RSS %.1f MB (peak %.1f MB)",
                window, busy, Double(rss) / 1024, Double(hwm) / 1024))
        say("announcements sent: \(s0.sent), failed \(s0.failed), more than 1 s late \(s0.late), max lag \(fmt(ms(s0.maxLag))) ms")

        // list_agents still answers?
        let (conn, client) = players[0]
        var lat: [Double] = []
        var listed = 0
        var victimStatus = "?"
        var failures: [String] = []
        for _ in 0..<listCalls {
            let t = ContinuousClock.now
            do {
                let r = try await client.call(RPCTarget(topic: topic), method: "list_agents", timeout: .seconds(20))
                lat.append(ms(ContinuousClock.now - t))
                let list = r["agents"]?.arrayValue ?? []
                listed = list.count
                victimStatus = list.first(where: { $0["host"]?.stringValue == victim })?["status"]?.stringValue ?? "absent"
            } catch {
                failures.append("\(error)")
            }
        }
        lat.sort()
        if lat.isEmpty {
            say("list_agents: no answer to \(listCalls) calls within 20 s each (\(failures.first ?? "?"))")
        } else {
            say(
                "list_agents: \(lat.count) of \(listCalls) calls answered, median \(fmt(lat[lat.count / 2])) ms, max \(fmt(lat[lat.count - 1])) ms; \(listed) agents listed, stopped agent \(victim): \(victimStatus)"
            )
        }

        // Down detection: from the stopped agent's last announcement to the controller's log line.
        let deadline = ContinuousClock.now + .seconds(2 * down + 10)
        while downSeen.withLock({ $0 }) == nil, ContinuousClock.now < deadline {
            try await Task.sleep(for: .milliseconds(100))  // polling interval, not synchronisation
        }
        let last = stats.withLock { $0.victimLast }
        if let seen = downSeen.withLock({ $0 }), let last {
            let d = ms(seen - last) / 1000
            say(
                String(
                    format: "stopped agent marked down %.1f s after its last announcement (%.1f intervals; agent_down_after %d s)",
                    d, d / Double(interval), down))
        } else {
            say("stopped agent NOT marked down within \(2 * down + 10) s")
        }
        say("controller log lines at level error: \(errorLines.withLock { $0 })")
        for line in otherLines.withLock({ $0 }) { say("  \(line)") }
        say(String(format: "controller RSS at the end: %.1f MB", Double(rssKB(pid: pid)) / 1024))
        play.cancel()
        _ = await play.result
        await conn.close()
        for p in players.dropFirst() { await p.0.close() }
        reader.readabilityHandler = nil
    }

    /// SIGTERM, and SIGKILL when it has not ended 5 s later (a saturated controller drains slowly).
    func stop(_ p: Process) {
        p.terminate()
        for _ in 0..<50 where p.isRunning { usleep(100_000) }
        if p.isRunning { kill(p.processIdentifier, SIGKILL) }
        p.waitUntilExit()
    }

    /// Prints a figure as soon as it is known (stdout may be a file).
    func say(_ s: String) {
        print(s)
        fflush(nil)
    }

    struct PlayStats {
        var sent = 0
        var failed = 0
        var late = 0
        var maxLag: Duration = .zero
        var victimStopped = false
        var victimLast: ContinuousClock.Instant?
    }

    /// utime + stime of `pid`, in seconds (/proc/PID/stat fields 14 and 15, after the command name).
    func cpuSeconds(pid: Int32) -> Double {
        guard let s = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
            let close = s.lastIndex(of: ")")
        else { return -1 }
        let fields = s[s.index(after: close)...].split(separator: " ")
        // fields[0] is the state (field 3): utime is field 14, stime field 15.
        guard fields.count > 12, let u = Double(fields[11]), let st = Double(fields[12]) else { return -1 }
        return (u + st) / Double(sysconf(Int32(_SC_CLK_TCK)))
    }
}
