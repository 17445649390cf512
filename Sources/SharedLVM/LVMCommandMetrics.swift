import CoreMetrics
import HostCommands

/// LVM command metrics, recorded on the one path every command of the real backend takes
/// (`RealLVMBackend.runLogged`), through swift-metrics (docs/operations.md "Metrics"):
/// - `aos_lvm_command_duration_seconds{command}`: every run, failed or not;
/// - `aos_lvm_command_failures_total{command, code}`: runs that did not exit 0, by the
///   `LVMErrorCode` they classify as (`timed_out` for a killed one).
///
/// `command` is the program (`lvcreate`, `lvchange`, `vgs`, `sanlock`, `dd`…; the `ionice`
/// prefix of job I/O skipped), one of a fixed set, else `other`: never an LV or VG name.
public enum LVMCommandMetrics {
    static let commands: Set<String> = [
        "lvcreate", "lvextend", "lvremove", "lvchange", "lvrename", "lvs", "vgs", "vgchange", "pvs", "sanlock",
        "lvmlockctl", "blockdev", "blkdiscard", "dd", "dmsetup",
    ]

    public static func command(of argv: [String]) -> String {
        var rest = argv[...]
        if rest.first == "ionice" { rest = rest.drop(while: { $0.hasPrefix("-") || $0 == "ionice" }) }
        guard let program = rest.first else { return "other" }
        let base = program.split(separator: "/").last.map(String.init) ?? program
        return commands.contains(base) ? base : "other"
    }

    /// Records one finished run; `failure` is its classified error when it did not exit 0.
    public static func record(argv: [String], duration: Duration, failure: LVMErrorCode?) {
        record(command: command(of: argv), duration: duration, failure: failure)
    }

    /// `command` must be one of `commands` or `other` (the simulated backend names its own).
    public static func record(command: String, duration: Duration, failure: LVMErrorCode?) {
        let command = commands.contains(command) ? command : "other"
        Timer(label: "aos_lvm_command_duration_seconds", dimensions: [("command", command)]).recordNanoseconds(
            duration.components.seconds &* 1_000_000_000 &+ duration.components.attoseconds / 1_000_000_000)
        if let failure {
            Counter(label: "aos_lvm_command_failures_total", dimensions: [("command", command), ("code", failure.rawValue)])
                .increment()
        }
    }
}
