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

    /// `lvchange --addtag`: VG metadata only; lvm2 takes the VG lock, not the LV lock, so any
    /// host with the lockspace started can tag an LV active elsewhere.
    public static func addTag(vg: String, name: String, tag: String) -> [String] {
        ["lvchange", "--addtag", tag, lvPath(vg, name)]
    }

    public static func removeTag(vg: String, name: String, tag: String) -> [String] {
        ["lvchange", "--deltag", tag, lvPath(vg, name)]
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

    /// `lvrename VG OLD NEW` (a job's hidden name, or its final one).
    public static func rename(vg: String, from: String, to: String) -> [String] {
        ["lvrename", vg, from, to]
    }

    /// Job I/O yields the disk to the VMs: best-effort class, lowest priority.
    static let jobIOPriority = ["ionice", "-c2", "-n7"]

    /// Asks the device to zero a range itself (WRITE SAME / WRITE ZEROES); fails where the
    /// device cannot, and the caller then writes zeros.
    public static func zeroOut(device: String, offset: UInt64, length: UInt64) -> [String] {
        jobIOPriority + ["blkdiscard", "--zeroout", "--offset", "\(offset)", "--length", "\(length)", device]
    }

    /// Writes `length` bytes from `input` (`/dev/zero`, `/dev/urandom`) at `offset`, direct I/O
    /// (the data must reach the shared disk, not this host's page cache), byte-addressed.
    public static func fill(device: String, input: String, offset: UInt64, length: UInt64) -> [String] {
        jobIOPriority + [
            "dd", "if=\(input)", "of=\(device)", "bs=4M", "seek=\(offset)", "count=\(length)",
            "iflag=count_bytes,fullblock", "oflag=direct,seek_bytes", "conv=fsync,notrunc", "status=none",
        ]
    }

    /// Copies `length` bytes at `offset` from one device to the same offset of another, direct
    /// I/O both ways (no host cache holds stale blocks of a shared LV), byte-addressed.
    public static func copy(source: String, target: String, offset: UInt64, length: UInt64) -> [String] {
        jobIOPriority + [
            "dd", "if=\(source)", "of=\(target)", "bs=4M", "skip=\(offset)", "seek=\(offset)", "count=\(length)",
            "iflag=direct,skip_bytes,count_bytes,fullblock", "oflag=direct,seek_bytes", "conv=fsync,notrunc",
            "status=none",
        ]
    }
}
