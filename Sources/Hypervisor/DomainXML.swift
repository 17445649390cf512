/// Reads the disk sources out of `virsh dumpxml` output. Not a general XML parser: it
/// tokenises tags (respecting quotes, comments, CDATA, processing instructions), keeps
/// the element path, and takes `dev`/`file` only from a `<source>` directly under
/// `/domain/devices/disk` — a `<source>` inside `<backingStore>` or `<mirror>` is a
/// backing image or copy target, not the disk the VM has open as its device.
/// Malformed input throws: a VM whose disks we cannot read must not look disk-less.
enum DomainXML {
    struct ParseError: Error, Equatable {
        var reason: String
    }

    static func diskSources(_ xml: String) throws(ParseError) -> [String] {
        let bytes = Array(xml.utf8)
        var stack: [String] = []
        var sources: [String] = []
        var i = 0

        func starts(_ s: String, at p: Int) -> Bool {
            var q = p
            for b in s.utf8 {
                guard q < bytes.count, bytes[q] == b else { return false }
                q += 1
            }
            return true
        }
        func skipPast(_ end: String, from p: Int) throws(ParseError) -> Int {
            var q = p
            while q < bytes.count {
                if starts(end, at: q) { return q + end.utf8.count }
                q += 1
            }
            throw ParseError(reason: "unterminated markup (missing \(end))")
        }
        func isSpace(_ b: UInt8) -> Bool { b == 0x20 || b == 0x09 || b == 0x0A || b == 0x0D }
        func text(_ a: Int, _ b: Int) -> String { String(decoding: bytes[a..<b], as: UTF8.self) }

        while i < bytes.count {
            guard bytes[i] == UInt8(ascii: "<") else { i += 1; continue }
            if starts("<!--", at: i) { i = try skipPast("-->", from: i + 4); continue }
            if starts("<![CDATA[", at: i) { i = try skipPast("]]>", from: i + 9); continue }
            if starts("<?", at: i) { i = try skipPast("?>", from: i + 2); continue }
            if starts("<!", at: i) { i = try skipPast(">", from: i + 2); continue }

            if starts("</", at: i) {
                let end = try skipPast(">", from: i + 2)
                let name = text(i + 2, end - 1).trimmingSpaces()
                guard stack.last == name else {
                    throw ParseError(reason: "closing tag </\(name)> does not match <\(stack.last ?? "")>")
                }
                stack.removeLast()
                i = end
                continue
            }

            // Start tag: name, then attributes, then '>' or '/>'.
            var p = i + 1
            while p < bytes.count, !isSpace(bytes[p]), bytes[p] != UInt8(ascii: "/"), bytes[p] != UInt8(ascii: ">") { p += 1 }
            let name = text(i + 1, p)
            guard !name.isEmpty else { throw ParseError(reason: "empty tag name") }
            var attributes: [String: String] = [:]
            var selfClosing = false
            while true {
                while p < bytes.count, isSpace(bytes[p]) { p += 1 }
                guard p < bytes.count else { throw ParseError(reason: "unterminated tag <\(name)>") }
                if bytes[p] == UInt8(ascii: ">") { p += 1; break }
                if starts("/>", at: p) { selfClosing = true; p += 2; break }
                let nameStart = p
                while p < bytes.count, !isSpace(bytes[p]), bytes[p] != UInt8(ascii: "="), bytes[p] != UInt8(ascii: ">") { p += 1 }
                let attribute = text(nameStart, p)
                while p < bytes.count, isSpace(bytes[p]) { p += 1 }
                guard !attribute.isEmpty, p < bytes.count, bytes[p] == UInt8(ascii: "=") else {
                    throw ParseError(reason: "malformed attribute in <\(name)>")
                }
                p += 1
                while p < bytes.count, isSpace(bytes[p]) { p += 1 }
                guard p < bytes.count, bytes[p] == UInt8(ascii: "'") || bytes[p] == UInt8(ascii: "\"") else {
                    throw ParseError(reason: "unquoted attribute \(attribute) in <\(name)>")
                }
                let quote = bytes[p]
                let valueStart = p + 1
                p = valueStart
                while p < bytes.count, bytes[p] != quote { p += 1 }
                guard p < bytes.count else { throw ParseError(reason: "unterminated attribute \(attribute) in <\(name)>") }
                attributes[attribute] = try decodeEntities(text(valueStart, p))
                p += 1
            }
            if name == "source", stack == ["domain", "devices", "disk"],
                let path = attributes["dev"] ?? attributes["file"]
            {
                sources.append(path)
            }
            if !selfClosing { stack.append(name) }
            i = p
        }
        guard stack.isEmpty else { throw ParseError(reason: "document ends inside <\(stack.last!)>") }
        return sources
    }

    /// The five predefined entities and numeric character references; anything else is
    /// malformed (libvirt never writes it), so it throws rather than yield a wrong path.
    static func decodeEntities(_ s: String) throws(ParseError) -> String {
        guard s.contains("&") else { return s }
        var out = ""
        var rest = Substring(s)
        while let amp = rest.firstIndex(of: "&") {
            out += rest[..<amp]
            guard let semi = rest[amp...].firstIndex(of: ";") else {
                throw ParseError(reason: "unterminated entity in \(s)")
            }
            let entity = rest[rest.index(after: amp)..<semi]
            switch entity {
            case "amp": out += "&"
            case "apos": out += "'"
            case "quot": out += "\""
            case "lt": out += "<"
            case "gt": out += ">"
            default:
                var value: UInt32?
                if entity.hasPrefix("#x") || entity.hasPrefix("#X") {
                    value = UInt32(entity.dropFirst(2), radix: 16)
                } else if entity.hasPrefix("#") {
                    value = UInt32(entity.dropFirst(1), radix: 10)
                }
                guard let value, let scalar = Unicode.Scalar(value) else {
                    throw ParseError(reason: "unknown entity &\(entity); in \(s)")
                }
                out.unicodeScalars.append(scalar)
            }
            rest = rest[rest.index(after: semi)...]
        }
        return out + rest
    }
}

extension String {
    func trimmingSpaces() -> String {
        let scalars = unicodeScalars
        let isSpace: (Unicode.Scalar) -> Bool = { $0 == " " || $0 == "\t" || $0 == "\n" || $0 == "\r" }
        guard let first = scalars.firstIndex(where: { !isSpace($0) }),
            let last = scalars.lastIndex(where: { !isSpace($0) })
        else { return "" }
        return String(scalars[first...last])
    }
}
