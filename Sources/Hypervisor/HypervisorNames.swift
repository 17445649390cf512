/// Checks on user-supplied text before it becomes a virsh argument. argv rules out shell
/// injection, but virsh still parses its own options and looks domains up by ID and UUID
/// before name, so some names would reach the wrong place.
enum HypervisorNames {
    static let maxNameBytes = 255
    static let maxURIBytes = 4096

    static func validateDomain(_ name: String) throws(HypervisorError) {
        if let problem = domainProblem(name) {
            throw HypervisorError(
                kind: .invalidArgument,
                message: "invalid libvirt domain name \(quoted(name)): \(problem)")
        }
    }

    static func domainProblem(_ name: String) -> String? {
        if name.isEmpty { return "it is empty" }
        if name.utf8.count > maxNameBytes { return "it is longer than \(maxNameBytes) bytes" }
        if name.hasPrefix("-") { return "it starts with '-' (virsh would read it as an option)" }
        if name.unicodeScalars.contains(where: isControl) { return "it contains control characters" }
        // virsh resolves a domain argument as ID first, then UUID, then name: "7" could
        // destroy whichever domain has ID 7.
        if name.utf8.allSatisfy({ $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9") }) {
            return "it is all digits, and virsh would take it as a domain ID"
        }
        if isUUID(name) { return "it has the form of a UUID, and virsh would take it as a domain UUID" }
        return nil
    }

    static func validateURI(_ uri: String) throws(HypervisorError) {
        let problem: String?
        if uri.isEmpty {
            problem = "it is empty"
        } else if uri.utf8.count > maxURIBytes {
            problem = "it is longer than \(maxURIBytes) bytes"
        } else if uri.hasPrefix("-") {
            problem = "it starts with '-'"
        } else if uri.unicodeScalars.contains(where: isControl) {
            problem = "it contains control characters"
        } else {
            problem = nil
        }
        if let problem {
            throw HypervisorError(
                kind: .invalidArgument,
                message: "invalid libvirt URI \(quoted(uri)): \(problem); set it to e.g. qemu:///system")
        }
    }

    static func isControl(_ c: Unicode.Scalar) -> Bool {
        c.properties.generalCategory == .control
    }

    static func isUUID(_ s: String) -> Bool {
        // libvirt accepts UUIDs with or without dashes (virUUIDParse).
        let hex = s.utf8.filter { $0 != UInt8(ascii: "-") }
        return hex.count == 32 && (s.utf8.count == 32 || s.utf8.count == 36)
            && hex.allSatisfy { ($0 >= 48 && $0 <= 57) || ($0 >= 97 && $0 <= 102) || ($0 >= 65 && $0 <= 70) }
    }

    /// For messages: control characters shown escaped so a hostile name cannot forge log lines.
    static func quoted(_ text: String) -> String {
        var out = "'"
        for c in text.prefix(300).unicodeScalars {
            out += isControl(c) ? c.escaped(asASCII: true) : String(c)
        }
        return out + (text.count > 300 ? "…'" : "'")
    }
}
