import FoundationEssentials

/// One LV as `lvs --reportformat json --units b --nosuffix` reports it on this host.
public struct LogicalVolume: Sendable, Hashable {
    public var name: String
    public var vg: String
    public var uuid: String
    public var sizeBytes: UInt64
    public var attr: LVAttr
    /// `lv_active`: active **on this host** (lvm2 cannot see other hosts).
    public var active: Bool
    public var activeLocally: Bool
    /// A device-mapper notion, true even when the lock is shared; never use it as lock mode.
    public var activeExclusively: Bool
    /// `lv_lockargs`, e.g. `1.0.0:70254592` (sanlock lease version and offset).
    public var lockArgs: String
    /// `lv_tags`: the LV's tags (VG metadata, the same on every host), in LVM's order.
    public var tags: [String]

    public init(
        name: String, vg: String, uuid: String, sizeBytes: UInt64, attr: LVAttr,
        active: Bool, activeLocally: Bool, activeExclusively: Bool, lockArgs: String, tags: [String] = []
    ) {
        self.name = name
        self.vg = vg
        self.uuid = uuid
        self.sizeBytes = sizeBytes
        self.attr = attr
        self.active = active
        self.activeLocally = activeLocally
        self.activeExclusively = activeExclusively
        self.lockArgs = lockArgs
        self.tags = tags
    }

    /// Internal LVs (`[lvmlock]`, `[x_rimage_0]`, …) are shown in brackets by `lvs -a`.
    public var isInternal: Bool { name.hasPrefix("[") || name == "lvmlock" }
    public var path: String { "/dev/\(vg)/\(name)" }
    public var deviceOpen: Bool { attr.deviceOpen ?? false }
}

/// One VG as `vgs --reportformat json --units b --nosuffix` reports it.
public struct VolumeGroup: Sendable, Hashable {
    public var name: String
    public var uuid: String
    /// `vg_attr`, 6 letters: permissions, resizeable, exported, partial, allocation, clustered/shared.
    public var attr: String
    public var sizeBytes: UInt64
    public var freeBytes: UInt64
    public var extentSizeBytes: UInt64
    public var extentCount: UInt64
    public var freeExtentCount: UInt64
    public var lvCount: Int
    public var pvCount: Int
    public var missingPVCount: Int
    /// `sanlock`, `dlm`, `none` or empty.
    public var lockType: String
    public var lockArgs: String
    /// Metadata area size and free space: the VG metadata grows with every LV, and a full
    /// metadata area stops all LV creation, so operators want to see it.
    public var metadataAreaSizeBytes: UInt64
    public var metadataAreaFreeBytes: UInt64

    public init(
        name: String, uuid: String, attr: String, sizeBytes: UInt64, freeBytes: UInt64,
        extentSizeBytes: UInt64, extentCount: UInt64, freeExtentCount: UInt64,
        lvCount: Int, pvCount: Int, missingPVCount: Int, lockType: String, lockArgs: String,
        metadataAreaSizeBytes: UInt64, metadataAreaFreeBytes: UInt64
    ) {
        self.name = name
        self.uuid = uuid
        self.attr = attr
        self.sizeBytes = sizeBytes
        self.freeBytes = freeBytes
        self.extentSizeBytes = extentSizeBytes
        self.extentCount = extentCount
        self.freeExtentCount = freeExtentCount
        self.lvCount = lvCount
        self.pvCount = pvCount
        self.missingPVCount = missingPVCount
        self.lockType = lockType
        self.lockArgs = lockArgs
        self.metadataAreaSizeBytes = metadataAreaSizeBytes
        self.metadataAreaFreeBytes = metadataAreaFreeBytes
    }

    /// Sixth attr letter `s`: a shared (lvmlockd) VG.
    public var shared: Bool { Array(attr).count >= 6 && Array(attr)[5] == "s" }
    public var partial: Bool { Array(attr).count >= 4 && Array(attr)[3] == "p" }
}

/// Decoding of lvm2's JSON reports. Every value is a string there; sizes are bytes
/// because we always pass `--units b --nosuffix`.
public enum LVMReport {
    /// Field list for `lvs -o`; keys in the JSON equal these ids.
    public static let lvFields = [
        "lv_name", "vg_name", "lv_uuid", "lv_size", "lv_attr", "lv_active",
        "lv_active_locally", "lv_active_exclusively", "lv_lockargs", "lv_tags",
    ]
    /// Field list for `vgs -o`.
    public static let vgFields = [
        "vg_name", "vg_uuid", "vg_attr", "vg_size", "vg_free", "vg_extent_size",
        "vg_extent_count", "vg_free_count", "lv_count", "pv_count", "vg_missing_pv_count",
        "vg_lock_type", "vg_lock_args", "vg_mda_size", "vg_mda_free",
    ]

    private struct Document: Decodable {
        struct Section: Decodable {
            var lv: [[String: String]]?
            var vg: [[String: String]]?
        }
        var report: [Section]
    }

    /// All LVs in the report, internal ones included (callers decide what to hide).
    public static func decodeLVs(_ json: String) throws(LVMError) -> [LogicalVolume] {
        try rows(json, \.lv).map { (row) throws(LVMError) in try logicalVolume(row) }
    }

    public static func decodeVGs(_ json: String) throws(LVMError) -> [VolumeGroup] {
        try rows(json, \.vg).map { (row) throws(LVMError) in try volumeGroup(row) }
    }

    private static func rows(
        _ json: String, _ key: KeyPath<Document.Section, [[String: String]]?>
    ) throws(LVMError) -> [[String: String]] {
        let document: Document
        do {
            document = try JSONDecoder().decode(Document.self, from: Data(json.utf8))
        } catch {
            throw LVMError(code: .internal, message: "cannot parse LVM JSON report: \(error)")
        }
        return document.report.flatMap { $0[keyPath: key] ?? [] }
    }

    static func logicalVolume(_ row: [String: String]) throws(LVMError) -> LogicalVolume {
        let attrText = try field(row, "lv_attr")
        guard let attr = LVAttr(attrText) else {
            throw LVMError(code: .internal, message: "unexpected lv_attr \"\(attrText)\"")
        }
        return LogicalVolume(
            name: try field(row, "lv_name"),
            vg: try field(row, "vg_name"),
            uuid: row["lv_uuid"] ?? "",
            sizeBytes: try number(row, "lv_size"),
            attr: attr,
            active: flag(row["lv_active"]),
            activeLocally: flag(row["lv_active_locally"]),
            activeExclusively: flag(row["lv_active_exclusively"]),
            lockArgs: row["lv_lockargs"] ?? "",
            // A comma-separated list ("" without tags); absent in reports of other field lists.
            tags: (row["lv_tags"] ?? "").split(separator: ",").map(String.init).filter { !$0.isEmpty }
        )
    }

    static func volumeGroup(_ row: [String: String]) throws(LVMError) -> VolumeGroup {
        VolumeGroup(
            name: try field(row, "vg_name"),
            uuid: row["vg_uuid"] ?? "",
            attr: row["vg_attr"] ?? "",
            sizeBytes: try number(row, "vg_size"),
            freeBytes: try number(row, "vg_free"),
            extentSizeBytes: try number(row, "vg_extent_size"),
            extentCount: try number(row, "vg_extent_count"),
            freeExtentCount: try number(row, "vg_free_count"),
            lvCount: Int(try number(row, "lv_count")),
            pvCount: Int(try number(row, "pv_count")),
            missingPVCount: Int(try number(row, "vg_missing_pv_count")),
            lockType: row["vg_lock_type"] ?? "",
            lockArgs: row["vg_lock_args"] ?? "",
            metadataAreaSizeBytes: try number(row, "vg_mda_size"),
            metadataAreaFreeBytes: try number(row, "vg_mda_free")
        )
    }

    private static func field(_ row: [String: String], _ key: String) throws(LVMError) -> String {
        guard let value = row[key] else {
            throw LVMError(code: .internal, message: "LVM report lacks field \(key)")
        }
        return value
    }

    private static func number(_ row: [String: String], _ key: String) throws(LVMError) -> UInt64 {
        let text = try field(row, key)
        // Some counters are empty for non-applicable rows; treat that as zero.
        if text.isEmpty { return 0 }
        guard let value = UInt64(text) else {
            throw LVMError(code: .internal, message: "LVM report field \(key) is not a byte count: \"\(text)\"")
        }
        return value
    }

    /// Binary fields print their name ("active", "active locally") or "" unless
    /// `--binary` is given (then "1"/"0"); accept both.
    private static func flag(_ value: String?) -> Bool {
        guard let value, !value.isEmpty, value != "0" else { return false }
        return true
    }
}
