import AOSAPI
import ArgumentParser
import OsloRPC
import RPCWire

#if canImport(Glibc)
import Glibc
#endif

/// `aosctl doctor`: one report of the whole cluster (docs/cli.md, docs/operations.md "Doctor").
struct Doctor: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "doctor",
        abstract: "Check the cluster: every agent's host check now, agents down, host_id collisions, clock skew, broker, controller.",
        discussion: """
            Asks the controller (check_cluster), which runs every agent's preflight check now (in
            parallel, each bounded by --agent-timeout), and adds what only it sees. With --direct
            HOST it asks that agent alone (check_host; no controller needed). Findings worst first,
            the fix under each; PASS items only with --all. Exit status: 0 all PASS, 8 warnings
            only, 9 at least one FAIL (a broker or controller that cannot be reached is a FAIL);
            2 usage or configuration error. --json prints one document on stdout:
            {status, items: [{source, host, id, status, finding, evidence, fix}], agents, clock}.
            """)

    @OptionGroup var global: GlobalOptions

    @Option(help: "Check only this host's agent.")
    var host: String?

    @Option(help: "Seconds to wait for each agent's check (default 30; within --timeout).")
    var agentTimeout: Int?

    @Flag(help: "Show the PASS items too.")
    var all = false

    func validate() throws {
        if let t = agentTimeout, !(1...600).contains(t) { throw ValidationError("--agent-timeout must be between 1 and 600") }
        if let h = host, let d = global.direct, h != d { throw ValidationError("--host \(h) and --direct \(d) name different hosts") }
    }

    func run() async throws {
        var caller: [ClusterCheckItem] = []
        var result = CheckClusterResult(status: .pass, items: [], agents: [], clock: RPCDeadline.wallClockNow())
        let session: Session
        do {
            session = try await Session.open(global)
        } catch {
            if error.code == WireErrorCode.invalidArgument.rawValue {
                report(error, json: global.json)
                throw ExitCode(CLIExitStatus.usage.rawValue)
            }
            caller.append(
                DoctorFindings.caller(
                    CheckItem(
                        id: "broker", status: .fail, finding: error.message, evidence: error.code,
                        fix: "check [DEFAULT] transport_url (or --url), the broker's address and port, TLS settings, and that RabbitMQ runs"
                    )))
            finish(DoctorFindings.merge(result, caller: caller), json: global.json)
        }
        let user = (try? session.settings.messaging.amqpConfiguration().url.hosts.first?.username) ?? nil
        let target = (try? session.settings.messaging.amqpConfiguration().url.hosts.first.map { "\($0.host):\($0.port)" }) ?? nil
        caller.append(
            DoctorFindings.caller(
                CheckItem(
                    id: "broker", status: .pass, finding: "connected to \(target ?? "the broker") as user \(user ?? "?")",
                    evidence: "[DEFAULT] transport_url")))
        if let direct = global.direct {
            caller += await DoctorFindings.direct(session, host: direct, into: &result)
        } else {
            let start = ContinuousClock.now
            let timeoutS = Int64(agentTimeout ?? min(30, max(1, Int(session.timeout.components.seconds) - 5)))
            do {
                let (_, r) = try await session.controller(
                    .checkCluster, CheckClusterRequest(host: host, timeout_s: timeoutS), as: CheckClusterResult.self)
                result = r
                let took = ContinuousClock.now - start
                caller.append(
                    DoctorFindings.caller(
                        CheckItem(
                            id: "broker_permissions", status: .pass,
                            finding:
                                "user \(user ?? "?") published to exchange \(session.settings.messaging.controlExchange) and read the controller's reply from its own queue",
                            evidence: "check_cluster answered in \(DoctorFindings.seconds(took)) s")))
            } catch {
                caller.append(DoctorFindings.controllerFailure(error, user: user, session: session))
            }
        }
        await session.connection.close()
        finish(DoctorFindings.merge(result, caller: caller), json: session.json)
    }

    func finish(_ r: CheckClusterResult, json: Bool) -> Never {
        if json {
            stdoutLine(JSONWriter.serialize((try? r.wireValue()) ?? .null))
        } else {
            stdoutText(DoctorFindings.text(r, all: all))
        }
        Glibc.exit(r.status.exitStatus.rawValue)
    }
}
