import AOSAPI
import ArgumentParser
import RPCWire

#if canImport(Glibc)
import Glibc
#endif

/// `aosctl recover --host H [--vg VG] [--execute]`: brings a host back after sanlock lost a
/// VG's lease there. Shows the plan; with --execute runs the agent's recovery steps one by
/// one, printing each with its duration, and stops at the first failure with the next
/// manual step. Talks to the host's agent directly (the controller is not needed).
struct Recover: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "recover",
        abstract: "Recover a host after it lost a VG's sanlock lockspace: show the plan, then --execute it.",
        discussion: """
            Steps (docs/operations.md): fence (fail queued I/O unless the kill command did),
            wait_path (until the shared disk is readable), stop_vms, deactivate, drop (only if
            lvmlockd still holds the killed lockspace), lock_start, reactivate (each LV in its
            old mode unless another host holds it now: then it is reported, not taken back),
            start_vms, finish. Idempotent: a finished recovery, or a healthy VG, is a no-op.
            Every step that acts first checks on the agent that the lease storage really failed
            (the kill command's fence record of this boot, or LVM reporting it now) and refuses
            a healthy VG with recovery_refused; --force overrides that check.
            Exit status: 0 done or nothing to do, 1 a step failed (the message names the next
            manual step), 5 agent unreachable, 6 the disk did not come back within --path-timeout.
            """)

    @Option(help: "Host whose lockspace was lost (its agent's name).") var host: String
    @Option(help: "Volume group (default: the VGs of that host that need recovery, else all it serves).") var vg: String?
    @Flag(help: "Carry the plan out (without it nothing changes).") var execute = false
    @Flag(
        help:
            "Act even where the agent finds no sign that the lease storage failed (no fence record, LVM reports no lease failure): every step refuses such a VG otherwise. Only when you know the lockspace was lost."
    )
    var force = false
    @Option(help: "Seconds to wait for the shared disk to be readable again.") var pathTimeout: Int = 600
    @OptionGroup var global: GlobalOptions

    func validate() throws {
        if let d = global.direct, d != host { throw ValidationError("--host \(host) and --direct \(d) name different hosts") }
        guard pathTimeout > 0 else { throw ValidationError("--path-timeout must be positive") }
    }

    func run() async throws {
        try await runCommand(global) { s throws(CLIError) in
            let vgs = try await chooseVGs(s)
            var docs: [JSONValue] = []
            var human = ""
            var failure: CLIError?
            for vg in vgs {
                let (doc, text, error) = await recover(s, vg: vg)
                docs.append(doc)
                human += text
                if let error { failure = error; break }
            }
            if var failure {
                // What was done goes to stdout (one JSON document carrying the error), the error to stderr.
                if s.json {
                    if case .object(var last)? = docs.last {
                        last["error"] = failure.json["error"]
                        docs[docs.count - 1] = .object(last)
                    }
                    stdoutLine(JSONWriter.serialize(docs.count == 1 ? docs[0] : ["host": .string(host), "recoveries": .array(docs)]))
                    failure.documentPrinted = true
                } else {
                    stdoutText(human)
                }
                throw failure
            }
            return (docs.count == 1 ? docs[0] : ["host": .string(host), "recoveries": .array(docs)], human)
        }
    }

    private func chooseVGs(_ s: Session) async throws(CLIError) -> [String] {
        if let vg { return [vg] }
        let served = try await s.agent(host, .health, NoArguments(), as: AgentHealth.self).result.vgs
        let troubled = served.keys.sorted().filter { v in served[v]?.lockspace != .started || served[v]?.fenced != nil }
        return troubled.isEmpty ? served.keys.sorted() : troubled
    }

    private func step(_ s: Session, _ vg: String, _ step: RecoveryStep) async throws(CLIError) -> (raw: JSONValue, result: RecoverResult) {
        try await s.agent(
            host, .recover, RecoverRequest(vg: vg, step: step, force: force && step != .plan ? true : nil),
            as: RecoverResult.self)
    }

    /// One VG: (the JSON document, the human text, the error that stopped it).
    private func recover(_ s: Session, vg: String) async -> (JSONValue, String, CLIError?) {
        var doc: [String: JSONValue] = ["host": .string(host), "vg": .string(vg), "executed": .bool(execute), "steps": .array([])]
        let plan: RecoverResult
        do { (doc["plan"], plan) = try await step(s, vg, .plan) } catch { return (.object(doc), "", error) }
        var out = planText(plan, vg: vg)
        let needed = plan.needs_recovery ?? true
        guard execute else {
            out += needed ? "Nothing changed. Run again with --execute to carry this out.\n" : ""
            doc["result"] = ["nothing_to_do": .bool(!needed)]
            return (.object(doc), out, nil)
        }
        guard needed || force else {
            out += "Nothing to do.\n"
            doc["result"] = ["nothing_to_do": true]
            return (.object(doc), out, nil)
        }
        let names = (plan.steps ?? []).map(\.step)
        var steps: [JSONValue] = []
        var summary: RecoverySummary?
        let clock = ContinuousClock()
        let total = clock.now
        for (i, name) in names.enumerated() {
            let label = "[\(i + 1)/\(names.count)] \(name.rawValue)"
            let start = clock.now
            var (raw, r): (JSONValue, RecoverResult)
            do {
                (raw, r) = try await step(s, vg, name)
                if name == .waitPath, r.ready != true {
                    stderrLine("\(label): \(r.message); waiting up to \(pathTimeout) s")
                    let deadline = start + .seconds(pathTimeout)
                    while r.ready != true {
                        guard clock.now < deadline else {
                            let e = CLIError(
                                .timedOut,
                                "the shared disk did not become readable on \(host) within \(pathTimeout) s: \(r.message)",
                                details: [
                                    "step": .string(name.rawValue),
                                    "hint": .string(
                                        "next: check the path (multipath -ll, dmsetup info -c), then run aosctl recover --host \(host) --vg \(vg) --execute again"
                                    ),
                                ])
                            steps.append(stepRecord(name.rawValue, "failed", clock.now - start, e.message))
                            doc["steps"] = .array(steps)
                            return (.object(doc), out, e)
                        }
                        try? await Task.sleep(for: .seconds(2))
                        (raw, r) = try await step(s, vg, name)
                    }
                }
            } catch {
                stderrLine("\(label): FAILED after \(seconds(clock.now - start)) s")
                steps.append(stepRecord(name.rawValue, "failed", clock.now - start, error.message, details: error.details))
                doc["steps"] = .array(steps)
                out += "Step \(name.rawValue) failed. Nothing after it was done.\n"
                if let next = error.details["next_step"]?.stringValue { out += "Next manual step: \(next)\n" }
                return (.object(doc), out, error)
            }
            let status = r.status.rawValue
            stderrLine("\(label): \(status) (\(seconds(clock.now - start)) s) \(r.message)")
            var rec = stepRecord(name.rawValue, status, clock.now - start, r.message)
            if case .object(var o) = rec, case .object(let extra) = raw {
                for k in ["reactivated", "left_alone", "stopped", "started", "not_started", "deactivated", "paths"] where extra[k] != nil {
                    o[k] = extra[k]
                }
                rec = .object(o)
            }
            steps.append(rec)
            if name == .finish, case .object(var result)? = raw["result"] {
                result["nothing_to_do"] = false
                doc["result"] = .object(result)
                summary = r.result
            }
        }
        doc["steps"] = .array(steps)
        doc["seconds"] = .double(seconds(clock.now - total))
        out += summaryText(summary, vg: vg, took: clock.now - total)
        return (.object(doc), out, nil)
    }

    private func stepRecord(
        _ name: String, _ status: String, _ d: Duration, _ message: String,
        details: [String: JSONValue] = [:]
    ) -> JSONValue {
        var o: [String: JSONValue] = [
            "step": .string(name), "status": .string(status), "seconds": .double(seconds(d)),
            "message": .string(message),
        ]
        if let next = details["next_step"] { o["next_step"] = next }
        return .object(o)
    }

    private func seconds(_ d: Duration) -> Double { (Double(d / .milliseconds(1)) / 100).rounded() / 10 }

    private func planText(_ p: RecoverResult, vg: String) -> String {
        var out = "Recovery of VG \(vg) on host \(host)\n"
        out += "  Lockspace: \(p.lockspace?.rawValue ?? "-") — \(p.reason ?? "-")\n"
        if let f = p.fenced, !f.isNull {
            out +=
                "  Fenced: \(f["complete"]?.boolValue == true ? "yes, all I/O of the VG fails on this host" : "PARTIALLY") (by \(text(f["source"])), \(f["lvs"]?.arrayValue?.count ?? 0) LVs, \(text(f["duration_ms"])) ms)\n"
        }
        let paths = p.paths ?? []
        if !paths.isEmpty {
            out +=
                "  Path: " + paths.map { "\($0.device) \($0.state.rawValue)\($0.readable ? ", readable" : "")" }.joined(separator: "; ")
                + "\n"
        }
        let lvs = p.lvs ?? []
        out +=
            lvs.isEmpty
            ? "  LVs: none recorded or mapped on this host\n"
            : "  LVs:\n"
                + table(
                    ["NAME", "MODE", "DEVICE", "OPEN"],
                    lvs.map { [$0.name, $0.mode?.rawValue ?? "-", $0.device.rawValue, String($0.open)] }
                )
                .split(separator: "\n").map { "    \($0)\n" }.joined()
        if let problem = p.vms_problem {
            out += "  VMs: cannot list them: \(problem)\n"
        } else if p.hypervisor == false {
            out += "  VMs: not handled (no libvirt_uri on that host)\n"
        } else {
            let vms = p.vms ?? []
            out +=
                vms.isEmpty
                ? "  VMs: none use these LVs\n"
                : "  VMs using them: " + vms.map { "\($0.name)\($0.running ? " (running)" : "")" }.joined(separator: ", ") + "\n"
        }
        if p.needs_recovery == true {
            out += "  Steps:\n"
            for (i, st) in (p.steps ?? []).enumerated() { out += "    \(i + 1). \(st.step.rawValue): \(st.action)\n" }
        } else {
            out += "  \(p.message)\n"
        }
        return out
    }

    private func summaryText(_ r: RecoverySummary?, vg: String, took: Duration) -> String {
        var out = "Recovered VG \(vg) on \(host) in \(seconds(took)) s.\n"
        let re = r?.reactivated ?? []
        out +=
            re.isEmpty
            ? "  Re-activated: none\n"
            : "  Re-activated: " + re.map { "\($0.name) (\($0.mode?.rawValue ?? "-"))" }.joined(separator: ", ") + "\n"
        for l in r?.left_alone ?? [] { out += "  Left alone: \(l.name) — \(l.reason ?? "-")\n" }
        let started = r?.vms_started ?? []
        if !started.isEmpty { out += "  VMs started: " + started.joined(separator: ", ") + "\n" }
        for v in r?.vms_not_started ?? [] { out += "  VM left stopped: \(v.name) — \(v.reason)\n" }
        return out
    }
}
