/// The spellings of an LV's device path, reduced to "VG/LV" so that a disk configured as
/// /dev/mapper/… still matches the /dev/VG/LV path the agent reports. Purely textual: no
/// filesystem access, so /dev/dm-N and other symlink targets are not recognised.
public enum LVDevicePath {
    /// "VG/LV" for /dev/VG/LV, /dev/mapper/VG-LV and /dev/disk/by-id/dm-name-VG-LV; nil for
    /// anything else (including device-mapper names of LVM's internal layers, e.g. VG-LV-real,
    /// which have more than one separating dash).
    public static func canonical(_ path: String) -> String? {
        guard path.hasPrefix("/dev/") else { return nil }
        let parts = path.dropFirst(5).split(separator: "/", omittingEmptySubsequences: false)
        switch parts.count {
        case 2 where parts[0] == "mapper":
            return fromDMName(parts[1])
        case 3 where parts[0] == "disk" && parts[1] == "by-id" && parts[2].hasPrefix("dm-name-"):
            return fromDMName(parts[2].dropFirst(8))
        case 2 where parts[0] != "disk":
            // LVM refuses a VG named like an existing /dev entry, so /dev/mapper and
            // /dev/disk are never VGs; anything else shaped VG/LV with valid names is.
            guard isName(parts[0]), isName(parts[1]) else { return nil }
            return "\(parts[0])/\(parts[1])"
        default:
            return nil
        }
    }

    /// The key disks and wanted devices are compared by; the prefixes keep a non-LV path
    /// that happens to read "vg/lv" from equalling a canonical LV.
    static func matchKey(_ path: String) -> String {
        canonical(path).map { "lv:" + $0 } ?? "path:" + path
    }

    /// Splits a device-mapper name the way libdevmapper's dm_split_lvm_name does: scanning
    /// from the left, "--" is a literal dash and a single "-" separates VG from LV.
    static func fromDMName(_ name: Substring) -> String? {
        var vg = "", lv = "", inLV = false
        var i = name.startIndex
        while i < name.endIndex {
            let c = name[i]
            let next = name.index(after: i)
            if c == "-" {
                if next < name.endIndex && name[next] == "-" {
                    if inLV { lv.append("-") } else { vg.append("-") }
                    i = name.index(after: next)
                    continue
                }
                if inLV { return nil }  // a second separator: an internal layer, not an LV
                inLV = true
            } else if inLV {
                lv.append(c)
            } else {
                vg.append(c)
            }
            i = next
        }
        guard inLV, isName(Substring(vg)), isName(Substring(lv)) else { return nil }
        return "\(vg)/\(lv)"
    }

    /// LVM's character rules for VG and LV names (the reserved-word rules do not matter for
    /// recognising a path).
    static func isName(_ s: Substring) -> Bool {
        guard !s.isEmpty, s.utf8.count <= 127, s.first != "-", s != ".", s != ".." else { return false }
        return s.unicodeScalars.allSatisfy { c in
            (c >= "a" && c <= "z") || (c >= "A" && c <= "Z") || (c >= "0" && c <= "9")
                || c == "+" || c == "_" || c == "." || c == "-"
        }
    }
}
