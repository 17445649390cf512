/// Name rules of lvm2 (lib/misc/lvm-string.c: `validate_name`, `apply_lvname_restrictions`),
/// checked before any command runs so bad input never reaches LVM and the caller gets a
/// message saying exactly what is wrong.
public enum LVName {
    /// lvm2's NAME_LEN is 128 including the terminating NUL.
    public static let maxLength = 127

    /// Substrings lvm2 reserves for internal sub-LVs (mirror/raid/thin/cache/vdo/writecache).
    public static let reservedSubstrings = [
        "_cdata", "_cmeta", "_corig", "_cpool", "_cvol", "_imeta", "_iorig", "_mimage", "_mlog",
        "_pmspare", "_rimage", "_rmeta", "_tdata", "_tmeta", "_vdata", "_vorigin", "_wcorig",
    ]
    public static let reservedPrefixes = ["snapshot", "pvmove"]

    /// Throws `invalid_argument` unless `name` is a valid LV name.
    public static func validate(_ name: String) throws(LVMError) {
        try NameRules.validateCommon(name, kind: "LV")
        for prefix in reservedPrefixes where name.hasPrefix(prefix) {
            throw .invalid("LV name \"\(name)\" is invalid: names starting with \"\(prefix)\" are reserved by LVM")
        }
        // A byte search: `validateCommon` let only ASCII through, and `String.contains` with
        // Foundation in the module resolved to Foundation's (a CFString search, ~10 % of a
        // simulated agent's CPU per lv_info in aos-bench path). On the name's own UTF-8 and
        // needles converted once: every LV operation validates its name (the agent, then the
        // backend), and an array per needle was ~45 allocations of a simulated lv_info's ~170.
        if let reserved = firstReservedSubstring(in: name) {
            throw .invalid("LV name \"\(name)\" is invalid: names containing \"\(reserved)\" are reserved by LVM")
        }
        // lvmlockd keeps its sanlock leases in the hidden LV "lvmlock".
        if name == "lvmlock" {
            throw .invalid("LV name \"lvmlock\" is reserved for lvmlockd's sanlock leases")
        }
    }

    /// `reservedSubstrings` as bytes, converted once.
    private static let reservedSubstringBytes: [[UInt8]] = reservedSubstrings.map { Array($0.utf8) }

    /// The first of `reservedSubstrings` that occurs in `name`, compared byte by byte.
    static func firstReservedSubstring(in name: String) -> String? {
        var name = name  // withUTF8 is mutating (it may make the storage contiguous): a copy, not the caller's
        return name.withUTF8 { bytes -> String? in
            for (i, needle) in reservedSubstringBytes.enumerated() where containsASCII(bytes, needle) {
                return reservedSubstrings[i]
            }
            return nil
        }
    }

    /// Whether `needle` occurs in `haystack` (an empty needle does).
    static func containsASCII(_ haystack: UnsafeBufferPointer<UInt8>, _ needle: [UInt8]) -> Bool {
        guard !needle.isEmpty else { return true }
        guard needle.count <= haystack.count else { return false }
        for start in 0...(haystack.count - needle.count) where haystack[start] == needle[0] {
            var k = 1
            while k < needle.count && haystack[start + k] == needle[k] { k += 1 }
            if k == needle.count { return true }
        }
        return false
    }
}

public enum VGName {
    public static let maxLength = 127

    /// Throws `invalid_argument` unless `name` is a valid VG name.
    public static func validate(_ name: String) throws(LVMError) {
        try NameRules.validateCommon(name, kind: "VG")
    }
}

enum NameRules {
    static func validateCommon(_ name: String, kind: String) throws(LVMError) {
        if name.isEmpty { throw .invalid("\(kind) name is empty") }
        if name.utf8.count > LVName.maxLength {
            throw .invalid("\(kind) name is \(name.utf8.count) characters long; the limit is \(LVName.maxLength)")
        }
        // '-' separates VG and LV in device-mapper names, so a leading one is ambiguous.
        if name.hasPrefix("-") { throw .invalid("\(kind) name \"\(name)\" is invalid: it must not start with '-'") }
        if name == "." || name == ".." { throw .invalid("\(kind) name \"\(name)\" is invalid") }
        for scalar in name.unicodeScalars where !isAllowed(scalar) {
            let shown =
                scalar.isASCII && scalar.value >= 0x20 && scalar.value < 0x7f
                ? "'\(Character(scalar))'" : "U+\(String(scalar.value, radix: 16, uppercase: true))"
            throw .invalid("\(kind) name \"\(printable(name))\" is invalid: character \(shown) is not allowed (only A-Z a-z 0-9 + _ . -)")
        }
    }

    static func isAllowed(_ s: Unicode.Scalar) -> Bool {
        switch s {
        case "a"..."z", "A"..."Z", "0"..."9", "+", "_", ".", "-": return true
        default: return false
        }
    }

    /// Keeps control characters out of messages and logs.
    static func printable(_ text: String) -> String {
        String(String.UnicodeScalarView(text.unicodeScalars.map { $0.value < 0x20 || $0.value == 0x7f ? "?" : $0 }))
    }
}

/// Size rules: LVM rounds a byte size up to whole extents itself, so any positive size is
/// acceptable; the cap only catches nonsense (a wrapped negative, a unit mix-up).
public enum LVSize {
    public static let maxBytes: UInt64 = 1 << 50  // 1 PiB

    public static func validate(_ bytes: UInt64) throws(LVMError) {
        if bytes == 0 { throw .invalid("size must be positive") }
        if bytes > maxBytes {
            throw .invalid("size \(bytes) bytes is larger than the limit of \(maxBytes) bytes (1 PiB)")
        }
    }

    /// `bytes` rounded up to whole extents, as lvcreate/lvextend do.
    public static func roundUp(_ bytes: UInt64, extentSize: UInt64) -> UInt64 {
        precondition(extentSize > 0)
        return (bytes + extentSize - 1) / extentSize * extentSize
    }
}

extension LVMError {
    /// Validates a VG/LV pair; used at the top of every backend method (the real one and the simulator).
    public static func checkNames(vg: String, lv: String? = nil) throws(LVMError) {
        try VGName.validate(vg)
        if let lv { try LVName.validate(lv) }
    }
}
