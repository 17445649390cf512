import AOSAPI
import RPCWire

/// Plain-text table: a header row and left-aligned columns separated by two spaces.
func table(_ header: [String], _ rows: [[String]]) -> String {
    var widths = header.map(\.count)
    for r in rows { for (i, c) in r.enumerated() where i < widths.count { widths[i] = max(widths[i], c.count) } }
    func line(_ cells: [String]) -> String {
        var out = ""
        for (i, c) in cells.enumerated() {
            out += i == cells.count - 1 ? c : c + String(repeating: " ", count: widths[i] - c.count + 2)
        }
        return out
    }
    return ([line(header)] + rows.map(line)).joined(separator: "\n") + "\n"
}

/// "1.0 GiB", "512 MiB", "0 B".
func humanSize(_ v: JSONValue?) -> String { humanSize(v?.int64Value) }

func humanSize(_ bytes: Int64?) -> String {
    guard let b = bytes else { return "-" }
    let units = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"]
    var x = Double(b)
    var u = 0
    while x >= 1024, u < units.count - 1 { x /= 1024; u += 1 }
    if u == 0 { return "\(b) B" }
    let rounded = (x * 10).rounded() / 10
    return rounded == rounded.rounded() ? "\(Int(rounded)) \(units[u])" : "\(rounded) \(units[u])"
}

/// `[{host, mode}]` → "host-a (exclusive)", "host-a, host-b (shared)", "-".
func activeOnText(_ v: JSONValue?) -> String {
    let list = v?.arrayValue ?? []
    if list.isEmpty { return "-" }
    return list.map { "\($0["host"]?.stringValue ?? "?") (\($0["mode"]?.stringValue ?? "?"))" }.joined(separator: ", ")
}

func activeOnText(_ list: [ActiveOn]) -> String {
    list.isEmpty ? "-" : list.map { "\($0.host) (\($0.mode.rawValue))" }.joined(separator: ", ")
}

/// " Active on: host-a (shared)." when the result has `active_on` (the agent's results do not).
func activeOnSuffix(_ r: JSONValue) -> String {
    r["active_on"] != nil ? " Active on: \(activeOnText(r["active_on"]))." : ""
}

func text(_ v: JSONValue?) -> String {
    switch v {
    case nil, .null?: return "-"
    case .string(let s)?: return s
    case .bool(let b)?: return b ? "yes" : "no"
    case .int(let i)?: return String(i)
    case .double(let d)?: return String(d)
    case let other?: return JSONWriter.serialize(other)
    }
}

/// Parses a size: "10G", "10GiB", "512M", "1T", "4096B"; a plain number means GiB (as Cinder counts).
func parseSize(_ s: String) -> Int64? {
    let t = s.trimmingCharacters(in: " ").uppercased()
    var digits = ""
    var unit = ""
    for ch in t {
        if unit.isEmpty, ch.isNumber { digits.append(ch) } else { unit.append(ch) }
    }
    guard let n = Int64(digits), n > 0 else { return nil }
    let shift: Int64
    switch unit {
    case "", "G", "GB", "GIB": shift = 30
    case "B": shift = 0
    case "K", "KB", "KIB": shift = 10
    case "M", "MB", "MIB": shift = 20
    case "T", "TB", "TIB": shift = 40
    default: return nil
    }
    guard n <= (Int64(1) << 50) >> shift else { return nil }
    return n << shift
}

extension String {
    func trimmingCharacters(in c: Character) -> String {
        var s = Substring(self)
        while s.first == c { s = s.dropFirst() }
        while s.last == c { s = s.dropLast() }
        return String(s)
    }
}
