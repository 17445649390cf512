import FoundationEssentials
import HostSupport
import SharedLVM

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// The file-backed mode of `SimulatedCluster`: the cluster state (VGs, LVs, lock table,
/// per-host devices, host ids) as one JSON document that several processes share.
///
/// Each operation: `flock(LOCK_EX)` on `<path>.lock` (a separate file, because the state
/// file itself is replaced by rename), read and decode the state, apply the operation,
/// and — only when it succeeded and changed something — write `<path>.tmp.<pid>`, fsync
/// it and rename it over `<path>`. Readers never see a half-written file.
///
/// The file is read every time, but decoded only when its bytes differ from those this
/// process last read or wrote (`State.fileSnapshot`), and encoded only when the operation
/// changed the state: a query (`lv_info`, `lvs`) then costs a read of the file, not a
/// JSON round trip of the whole cluster (it was ~45 % of a simulated agent's CPU per call).
enum SimulatedStateFile {
    struct Document: Codable {
        var format: Int
        var vgs: [String: SimulatedCluster.VG]
        var hostIds: [String: Int]
        var random: UInt64
    }

    static let format = 1

    static func withLockedState<T: Sendable>(
        path: String, _ s: inout SimulatedCluster.State, _ body: (inout SimulatedCluster.State) throws(LVMError) -> T
    ) throws(LVMError) -> T {
        let lockFD = open(path + ".lock", O_RDWR | O_CREAT | O_CLOEXEC, 0o644)
        guard lockFD >= 0 else { throw failure("cannot open \(path).lock", errno) }
        defer { close(lockFD) }  // closing releases the flock
        while flock(lockFD, LOCK_EX) != 0 {
            if errno != EINTR { throw failure("cannot lock \(path).lock", errno) }
        }
        let original = try readFile(path)
        if let original, !original.isEmpty, original != s.fileSnapshot {
            let document: Document
            do {
                document = try JSONDecoder().decode(Document.self, from: Data(original))
            } catch {
                throw LVMError(code: .internal, message: "simulated state file \(path) is not readable: \(error)")
            }
            guard document.format == format else {
                throw LVMError(code: .internal, message: "simulated state file \(path) has format \(document.format), expected \(format)")
            }
            s.vgs = document.vgs
            s.hostIds = document.hostIds
            s.random = document.random
        }
        // Until this operation has completed: a body that throws may have changed `s` halfway.
        s.fileSnapshot = nil
        let (vgs, hostIds, random) = (s.vgs, s.hostIds, s.random)
        let result = try body(&s)
        if let original, !original.isEmpty, s.vgs == vgs, s.hostIds == hostIds, s.random == random {
            s.fileSnapshot = original  // unchanged: nothing to encode or write
            return result
        }
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        let bytes: [UInt8]
        do {
            bytes = Array(try encoder.encode(Document(format: format, vgs: s.vgs, hostIds: s.hostIds, random: s.random)))
        } catch {
            throw LVMError(code: .internal, message: "cannot encode simulated state: \(error)")
        }
        if bytes != original { try writeAtomically(path, bytes) }
        s.fileSnapshot = bytes
        return result
    }

    static func readFile(_ path: String) throws(LVMError) -> [UInt8]? {
        do { return try DurableFile.read(path) } catch {
            throw LVMError(code: .internal, message: "simulated state: \(error.message)")
        }
    }

    static func writeAtomically(_ path: String, _ bytes: [UInt8]) throws(LVMError) {
        do { try DurableFile.writeAtomically(path, bytes, mode: 0o644) } catch {
            throw LVMError(code: .internal, message: "simulated state: \(error.message)")
        }
    }

    static func failure(_ what: String, _ code: Int32) -> LVMError {
        LVMError(code: .internal, message: "\(what): \(String(cString: strerror(code)))")
    }
}
