/// The argv of every command the real backend runs, written as an operator would type it.
/// Shared with the simulator so its errors carry the same argv the real backend would show.
public enum LVMCommands {
    static func lvPath(_ vg: String, _ lv: String) -> String { "\(vg)/\(lv)" }
    static func bytes(_ size: UInt64) -> String { "\(size)b" }

    /// `-an` creates without activating. lvcreate cannot zero an inactive LV and would warn
    /// "not zeroed", so say `-Zn` explicitly. When activating, wipe old signatures without
    /// prompting (`-Wy --yes`): a prompt with no terminal would fail the command.
    public static func create(vg: String, name: String, sizeBytes: UInt64, activate: Bool) -> [String] {
        let activation = activate ? ["-aey", "-Wy", "--yes"] : ["-an", "-Zn"]
        return ["lvcreate"] + activation + ["-n", name, "-L", bytes(sizeBytes), vg]
    }

    public static func extend(vg: String, name: String, newSizeBytes: UInt64, sharedUpdate: Bool) -> [String] {
        ["lvextend"] + (sharedUpdate ? ["--lockopt", "shupdate"] : []) + ["-L", bytes(newSizeBytes), lvPath(vg, name)]
    }

    /// No `--yes`: lvremove must never answer its own "remove active LV?" question.
    public static func remove(vg: String, name: String) -> [String] {
        ["lvremove", lvPath(vg, name)]
    }

    public static func activate(vg: String, name: String, mode: LVActivationMode) -> [String] {
        ["lvchange", mode == .exclusive ? "-aey" : "-asy", lvPath(vg, name)]
    }

    public static func deactivate(vg: String, name: String) -> [String] {
        ["lvchange", "-an", lvPath(vg, name)]
    }

    public static func refresh(vg: String, name: String) -> [String] {
        ["lvchange", "--refresh", lvPath(vg, name)]
    }

    static let reportOptions = ["--reportformat", "json", "--units", "b", "--nosuffix"]

    public static func listLVs(vg: String) -> [String] {
        ["lvs"] + reportOptions + ["-o", LVMReport.lvFields.joined(separator: ","), vg]
    }

    public static func lvInfo(vg: String, name: String) -> [String] {
        ["lvs"] + reportOptions + ["-o", LVMReport.lvFields.joined(separator: ","), lvPath(vg, name)]
    }

    public static func vgInfo(vg: String) -> [String] {
        ["vgs"] + reportOptions + ["-o", LVMReport.vgFields.joined(separator: ","), vg]
    }

    public static func lockStart(vg: String) -> [String] { ["vgchange", "--lock-start", vg] }
    public static func lockStop(vg: String) -> [String] { ["vgchange", "--lock-stop", vg] }
    public static func sanlockStatus() -> [String] { ["sanlock", "client", "status"] }
    /// The cheapest command that takes the VG lock: its warnings tell a killed lockspace.
    public static func probe(vg: String) -> [String] { ["vgs", "--noheadings", "-o", "vg_name", vg] }
    public static func dropLockspace(vg: String) -> [String] { ["lvmlockctl", "--drop", vg] }

    public static func deviceSize(vg: String, name: String) -> [String] {
        ["blockdev", "--getsize64", "/dev/\(vg)/\(name)"]
    }

    /// Bytes to zero: the request rounded up to 4 KiB (O_DIRECT writes must be
    /// block-aligned), never past the end of the LV; nil means the whole LV.
    public static func zeroCount(requested: UInt64?, lvSize: UInt64) -> UInt64 {
        guard let requested else { return lvSize }
        return min(LVSize.roundUp(requested, extentSize: 4096), lvSize)
    }

    /// Direct I/O so the zeros reach the shared disk, not this host's page cache;
    /// `count_bytes` makes `count` a byte count, so sizes need not be MiB multiples.
    public static func zero(vg: String, name: String, bytes: UInt64) -> [String] {
        [
            "dd", "if=/dev/zero", "of=/dev/\(vg)/\(name)", "bs=1M", "count=\(bytes)",
            "iflag=count_bytes", "oflag=direct", "conv=fsync", "status=none",
        ]
    }
}
