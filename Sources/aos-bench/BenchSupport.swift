import ArgumentParser
import Foundation
import Synchronization

/// Starts a child (argv only, no shell) and waits for its READY line on stdout.
func startChild(
    _ executable: URL, _ arguments: [String], environment: [String: String]? = nil,
    stderr: Pipe? = nil
) throws -> Process {
    let p = Process()
    p.executableURL = executable
    p.arguments = arguments
    if let environment { p.environment = environment }
    let out = Pipe()
    p.standardOutput = out
    if let stderr { p.standardError = stderr }
    try p.run()
    var buffer = Data()
    while !String(decoding: buffer, as: UTF8.self).contains("READY") {
        let chunk = out.fileHandleForReading.availableData
        if chunk.isEmpty {
            p.terminate()
            throw ValidationError("\(executable.lastPathComponent) exited before READY")
        }
        buffer.append(chunk)
    }
    return p
}

func ms(_ d: Duration) -> Double { Double(d.components.seconds) * 1000 + Double(d.components.attoseconds) / 1e15 }
func fmt(_ v: Double) -> String { String(format: "%.3f", v) }

func rssKB(pid: Int32, field: String = "VmRSS:") -> Int {
    guard let s = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8) else { return -1 }
    for line in s.split(separator: "\n") where line.hasPrefix(field) {
        let parts = line.split(separator: " ", omittingEmptySubsequences: true)
        return parts.count > 1 ? Int(parts[1]) ?? -1 : -1
    }
    return -1
}

/// A lock a closure can capture.
final class Locked<T: Sendable>: Sendable {
    private let m: Mutex<T>
    init(_ value: T) { m = Mutex(value) }
    func withLock<R: Sendable>(_ body: (inout T) -> R) -> R { m.withLock { body(&$0) } }
}
