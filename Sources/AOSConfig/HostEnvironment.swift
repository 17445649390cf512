#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// What the host tells a process, read without Foundation: its host name, the process
/// environment, and whether a file exists / what a text file holds (configuration files).
public enum HostEnvironment {
    /// The host name (gethostname), as nova and cinder use for `host`; "localhost" if unknown.
    public static func hostName() -> String {
        var buffer = [CChar](repeating: 0, count: 256)
        guard gethostname(&buffer, buffer.count - 1) == 0 else { return "localhost" }
        let bytes = buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }
        let name = String(decoding: bytes, as: UTF8.self)
        return name.isEmpty ? "localhost" : name
    }

    /// The process environment (only needed where Foundation's ProcessInfo is not at hand).
    public static func environment() -> [String: String] {
        var result: [String: String] = [:]
        var pointer = environ
        while let entry = pointer.pointee {
            let pair = String(cString: entry)
            if let eq = pair.firstIndex(of: "=") {
                result[String(pair[..<eq])] = String(pair[pair.index(after: eq)...])
            }
            pointer += 1
        }
        return result
    }

    /// Whether `path` exists (any file type).
    public static func fileExists(_ path: String) -> Bool {
        access(path, F_OK) == 0
    }

    /// Reads a whole text file (UTF-8). The error names the file and the reason.
    public static func readTextFile(_ path: String) throws(ConfigError) -> String {
        guard let file = fopen(path, "rb") else {
            throw ConfigError(file: path, "cannot open: \(String(cString: strerror(errno)))")
        }
        defer { fclose(file) }
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = fread(&chunk, 1, chunk.count, file)
            if n > 0 { bytes.append(contentsOf: chunk[0..<n]) }
            if n < chunk.count {
                if ferror(file) != 0 {
                    throw ConfigError(file: path, "cannot read: \(String(cString: strerror(errno)))")
                }
                break
            }
            if bytes.count > 16 << 20 { throw ConfigError(file: path, "file is larger than 16 MiB") }
        }
        return String(decoding: bytes, as: UTF8.self)
    }
}
