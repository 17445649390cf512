/// LV tags (`lvchange --addtag/--deltag`, `lv_tags` in `lvs`): words kept in the VG's
/// metadata, which every host of a shared VG reads. lvm2 accepts 1 to 1024 characters of
/// `A-Z a-z 0-9 _ + . - / = ! : # &` (lib/misc/lvm-string.c `validate_tag`); a leading `-`
/// would read as an option and `@` names a tag in LVM's arguments, so neither starts one.
public enum LVTag {
    public static let maxLength = 1024

    /// Throws `invalid_argument` unless lvm2 accepts `tag`.
    public static func validate(_ tag: String) throws(LVMError) {
        if tag.isEmpty { throw .invalid("LV tag is empty") }
        if tag.utf8.count > maxLength {
            throw .invalid("LV tag is \(tag.utf8.count) characters long; the limit is \(maxLength)")
        }
        if tag.hasPrefix("-") { throw .invalid("LV tag \"\(NameRules.printable(tag))\" is invalid: it must not start with '-'") }
        for byte in tag.utf8 where !isAllowed(byte) {
            throw .invalid(
                "LV tag \"\(NameRules.printable(tag))\" is invalid: only A-Z a-z 0-9 _ + . - / = ! : # & are allowed")
        }
    }

    static func isAllowed(_ b: UInt8) -> Bool {
        switch b {
        case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "0")...UInt8(ascii: "9"):
            return true
        default:
            return Array("_+.-/=!:#&".utf8).contains(b)
        }
    }
}

/// The evacuate record (docs/agent.md, "Released activations"): the tag `aos-released.<host>`
/// on an LV says that the activation `<host>` had was released while that host's agent was
/// down (nova evacuated the server). The returning agent must not restore it.
///
/// Host names map to tags totally and reversibly: `A-Z a-z 0-9 . -` stay as they are, every
/// other byte of the UTF-8 name (`_` included) becomes `_` and two upper-case hex digits.
/// A host name of the usual form (`cmp-1.example.org`) is its own encoding; the longest
/// (255 bytes, all escaped) gives a 778-character tag, within lvm2's 1024.
public enum ReleaseTag {
    public static let prefix = "aos-released."

    /// The tag for `host`; nil for an empty name or one whose tag would exceed lvm2's limit.
    public static func tag(for host: String) -> String? {
        guard !host.isEmpty else { return nil }
        var out = prefix
        for byte in host.utf8 {
            switch byte {
            case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "0")...UInt8(ascii: "9"),
                UInt8(ascii: "."), UInt8(ascii: "-"):
                out.unicodeScalars.append(Unicode.Scalar(byte))
            default:
                out += "_" + hex(byte)
            }
        }
        return out.utf8.count <= LVTag.maxLength ? out : nil
    }

    /// The host a release tag names; nil when `tag` is not a well-formed release tag.
    public static func host(fromTag tag: String) -> String? {
        guard tag.hasPrefix(prefix) else { return nil }
        let body = Array(tag.utf8.dropFirst(prefix.utf8.count))
        guard !body.isEmpty else { return nil }
        var bytes: [UInt8] = []
        var i = 0
        while i < body.count {
            let b = body[i]
            if b == UInt8(ascii: "_") {
                guard i + 2 < body.count, let hi = nibble(body[i + 1]), let lo = nibble(body[i + 2]) else { return nil }
                let value = hi << 4 | lo
                // Only escaped bytes are escaped: a canonical tag decodes, anything else is not ours.
                guard !isPlain(value) else { return nil }
                bytes.append(value)
                i += 3
            } else {
                guard isPlain(b) else { return nil }
                bytes.append(b)
                i += 1
            }
        }
        let host = String(decoding: bytes, as: UTF8.self)
        // Invalid UTF-8 decodes with replacement characters: not a tag this code wrote.
        return Array(host.utf8) == bytes ? host : nil
    }

    /// The hosts named by the release tags among `tags`, sorted.
    public static func releasedHosts(_ tags: [String]) -> [String] {
        tags.compactMap(host(fromTag:)).sorted()
    }

    static func isPlain(_ b: UInt8) -> Bool {
        switch b {
        case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "0")...UInt8(ascii: "9"),
            UInt8(ascii: "."), UInt8(ascii: "-"):
            return true
        default: return false
        }
    }

    static func hex(_ b: UInt8) -> String {
        let digits = Array("0123456789ABCDEF".utf8)
        return String(decoding: [digits[Int(b >> 4)], digits[Int(b & 0xF)]], as: UTF8.self)
    }

    static func nibble(_ c: UInt8) -> UInt8? {
        switch c {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): return c - UInt8(ascii: "0")
        case UInt8(ascii: "A")...UInt8(ascii: "F"): return c - UInt8(ascii: "A") + 10
        default: return nil
        }
    }
}
