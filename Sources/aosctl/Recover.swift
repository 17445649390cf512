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
    @Flag(help: "Act even where the agent finds no sign that the lease storage failed (no fence record, LVM reports no lease failure): every step refuses such a VG otherwise. Only when you know the lockspace was lost.")
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
        let health = try await s.agent(host, "health")
        let served = health["vgs"]?.objectValue ?? [:]
        let troubled = served.keys.sorted().filter { v in
            served[v]?["lockspace"]?.stringValue != "started" || served[v]?["fenced"] != nil
        }
        return troubled.isEmpty ? served.keys.sorted() : troubled
    }

    private func step(_ s: Session, _ vg: String, _ step: String) async throws(CLIError) -> JSONValue {
        var args: [String: JSONValue] = ["vg": .string(vg), "step": .string(step)]
        if force, step != "plan" { args["force"] = true }
        return try await s.agent(host, "recover", args)
    }

    /// One VG: (the JSON document, the human text, the error that stopped it).
    private func recover(_ s: Session, vg: String) async -> (JSONValue, String, CLIError?) {
        var doc: [String: JSONValue] = ["host": .string(host), "vg": .string(vg), "executed": .bool(execute), "steps": .array([])]
        let plan: JSONValue
        do { plan = try await step(s, vg, "plan") } catch { return (.object(doc), "", error) }
        doc["plan"] = plan
        var out = planText(plan, vg: vg)
        let needed = plan["needs_recovery"]?.boolValue ?? true
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
        let names = (plan["steps"]?.arrayValue ?? []).compactMap { $0["step"]?.stringValue }
        var steps: [JSONValue] = []
        let clock = ContinuousClock()
        let total = clock.now
        for (i, name) in names.enumerated() {
            let label = "[\(i + 1)/\(names.count)] \(name)"
            let start = clock.now
            var r: JSONValue
            do {
                r = try await step(s, vg, name)
                if name == "wait_path", r["ready"]?.boolValue != true {
                    stderrLine("\(label): \(text(r["message"])); waiting up to \(pathTimeout) s")
                    let deadline = start + .seconds(pathTimeout)
                    while r["ready"]?.boolValue != true {
                        guard clock.now < deadline else {
                            let e = CLIError(.timedOut,
                                             "the shared disk did not become readable on \(host) within \(pathTimeout) s: \(text(r["message"]))",
                                             details: ["step": .string(name), "hint": .string("next: check the path (multipath -ll, dmsetup info -c), then run aosctl recover --host \(host) --vg \(vg) --execute again")])
                            steps.append(stepRecord(name, "failed", clock.now - start, e.message))
                            doc["steps"] = .array(steps)
                            return (.object(doc), out, e)
                        }
                        try? await Task.sleep(for: .seconds(2))
                        r = try await step(s, vg, name)
                    }
                }
            } catch {
                stderrLine("\(label): FAILED after \(seconds(clock.now - start)) s")
                steps.append(stepRecord(name, "failed", clock.now - start, error.message, details: error.details))
                doc["steps"] = .array(steps)
                out += "Step \(name) failed. Nothing after it was done.\n"
                if let next = error.details["next_step"]?.stringValue { out += "Next manual step: \(next)\n" }
                return (.object(doc), out, error)
            }
            let status = r["status"]?.stringValue ?? "ok"
            stderrLine("\(label): \(status) (\(seconds(clock.now - start)) s) \(text(r["message"]))")
            var rec = stepRecord(name, status, clock.now - start, r["message"]?.stringValue ?? "")
            if case .object(var o) = rec, case .object(let extra) = r {
                for k in ["reactivated", "left_alone", "stopped", "started", "not_started", "deactivated", "paths"] where extra[k] != nil { o[k] = extra[k] }
                rec = .object(o)
            }
            steps.append(rec)
            if name == "finish", case .object(var result)? = r["result"] {
                result["nothing_to_do"] = false
                doc["result"] = .object(result)
            }
        }
        doc["steps"] = .array(steps)
        doc["seconds"] = .double(seconds(clock.now - total))
        out += summaryText(doc["result"], vg: vg, took: clock.now - total)
        return (.object(doc), out, nil)
    }

    private func stepRecord(_ name: String, _ status: String, _ d: Duration, _ message: String,
                            details: [String: JSONValue] = [:]) -> JSONValue {
        var o: [String: JSONValue] = ["step": .string(name), "status": .string(status), "seconds": .double(seconds(d)),
                                      "message": .string(message)]
        if let next = details["next_step"] { o["next_step"] = next }
        return .object(o)
    }

    private func seconds(_ d: Duration) -> Double { (Double(d / .milliseconds(1)) / 100).rounded() / 10 }

    private func planText(_ p: JSONValue, vg: String) -> String {
        var out = "Recovery of VG \(vg) on host \(host)\n"
        out += "  Lockspace: \(text(p["lockspace"])) — \(text(p["reason"]))\n"
        if let f = p["fenced"], !f.isNull {
            out += "  Fenced: \(f["complete"]?.boolValue == true ? "yes, all I/O of the VG fails on this host" : "PARTIALLY") (by \(text(f["source"])), \(f["lvs"]?.arrayValue?.count ?? 0) LVs, \(text(f["duration_ms"])) ms)\n"
        }
        let paths = p["paths"]?.arrayValue ?? []
        if !paths.isEmpty {
            out += "  Path: " + paths.map { "\(text($0["device"])) \(text($0["state"]))\($0["readable"]?.boolValue == true ? ", readable" : "")" }
                .joined(separator: "; ") + "\n"
        }
        let lvs = p["lvs"]?.arrayValue ?? []
        out += lvs.isEmpty ? "  LVs: none recorded or mapped on this host\n"
            : "  LVs:\n" + table(["NAME", "MODE", "DEVICE", "OPEN"], lvs.map { [text($0["name"]), text($0["mode"]), text($0["device"]), text($0["open"])] })
                .split(separator: "\n").map { "    \($0)\n" }.joined()
        if let problem = p["vms_problem"]?.stringValue {
            out += "  VMs: cannot list them: \(problem)\n"
        } else if p["hypervisor"]?.boolValue == false {
            out += "  VMs: not handled (no libvirt_uri on that host)\n"
        } else {
            let vms = p["vms"]?.arrayValue ?? []
            out += vms.isEmpty ? "  VMs: none use these LVs\n"
                : "  VMs using them: " + vms.map { "\(text($0["name"]))\($0["running"]?.boolValue == true ? " (running)" : "")" }.joined(separator: ", ") + "\n"
        }
        if p["needs_recovery"]?.boolValue == true {
            out += "  Steps:\n"
            for (i, st) in (p["steps"]?.arrayValue ?? []).enumerated() { out += "    \(i + 1). \(text(st["step"])): \(text(st["action"]))\n" }
        } else {
            out += "  \(text(p["message"]))\n"
        }
        return out
    }

    private func summaryText(_ r: JSONValue?, vg: String, took: Duration) -> String {
        var out = "Recovered VG \(vg) on \(host) in \(seconds(took)) s.\n"
        let re = r?["reactivated"]?.arrayValue ?? []
        let left = r?["left_alone"]?.arrayValue ?? []
        out += re.isEmpty ? "  Re-activated: none\n" : "  Re-activated: " + re.map { "\(text($0["name"])) (\(text($0["mode"])))" }.joined(separator: ", ") + "\n"
        for l in left { out += "  Left alone: \(text(l["name"])) — \(text(l["reason"]))\n" }
        let started = r?["vms_started"]?.arrayValue ?? []
        if !started.isEmpty { out += "  VMs started: " + started.map { text($0) }.joined(separator: ", ") + "\n" }
        for v in r?["vms_not_started"]?.arrayValue ?? [] { out += "  VM left stopped: \(text(v["name"])) — \(text(v["reason"]))\n" }
        return out
    }
}
