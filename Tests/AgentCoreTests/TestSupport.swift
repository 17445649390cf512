import RPCWire
import SharedLVM
import SimulatedLVM
import Testing

@testable import AgentCore

#if canImport(Glibc)
import Glibc
#endif

/// A fresh temporary directory (removed by the OS's tmp cleanup; tests use unique names).
func makeTempDir(_ prefix: String = "aos-agent-test") -> String {
    var template = Array("/tmp/\(prefix).XXXXXX".utf8CString)
    let path = template.withUnsafeMutableBufferPointer { buf -> String in
        guard let p = mkdtemp(buf.baseAddress!) else { fatalError("mkdtemp failed") }
        return String(cString: p)
    }
    return path
}

func readFile(_ path: String) -> String? {
    guard let f = fopen(path, "rb") else { return nil }
    defer { fclose(f) }
    var out: [UInt8] = []
    var chunk = [UInt8](repeating: 0, count: 4096)
    while true {
        let n = fread(&chunk, 1, chunk.count, f)
        out.append(contentsOf: chunk[0..<n])
        if n < chunk.count { break }
    }
    return String(decoding: out, as: UTF8.self)
}

func writeFile(_ path: String, _ text: String) {
    let f = fopen(path, "wb")!
    _ = text.utf8CString.withUnsafeBufferPointer { fwrite($0.baseAddress, 1, $0.count - 1, f) }
    fclose(f)
}

let GiB: Int64 = 1 << 30
let MiB: Int64 = 1 << 20

/// One simulated cluster with VG "vg1" (10 GiB) and agents on it.
struct Cluster {
    let sim: SimulatedCluster
    let root: String

    init(vgSize: UInt64 = 10 << 30, stateFile: String? = nil) {
        sim = stateFile.map { SimulatedCluster(stateFile: $0) } ?? SimulatedCluster()
        sim.ensureVolumeGroup("vg1", sizeBytes: vgSize)
        root = makeTempDir()
    }

    /// A booted agent for `host` (state dir `<root>/<host>` unless given).
    func agent(
        _ host: String, hostId: Int, stateDir: String? = nil, maxConcurrent: Int = 4,
        volumeGroups: [String] = ["vg1"], boot: Bool = true, lvNames: LVNamePolicy = .all
    ) async throws -> AgentService {
        let backend = SimulatedLVMBackend(cluster: sim, hostName: host, hostId: hostId)
        return try await makeAgent(
            backend, host: host, hostId: hostId, stateDir: stateDir ?? "\(root)/\(host)",
            maxConcurrent: maxConcurrent, volumeGroups: volumeGroups, boot: boot, lvNames: lvNames)
    }
}

/// The agents of these tests manage every LV (`lv_name_pattern = *`): their short names
/// (v1, kept, …) are not Cinder's; LVNamePolicyTests covers the default.
func makeAgent(
    _ backend: any LVMBackend, host: String, hostId: Int, stateDir: String, maxConcurrent: Int = 4,
    volumeGroups: [String] = ["vg1"], boot: Bool = true, lvNames: LVNamePolicy = .all
) async throws -> AgentService {
    let config = AgentServiceConfiguration(
        host: host, hostId: hostId, volumeGroups: volumeGroups, stateDirectory: stateDir,
        maxConcurrentLVM: maxConcurrent, volumeClear: .none, pvWaitTimeout: .milliseconds(200),
        pvPollInterval: .milliseconds(20), lvNames: lvNames)
    let agent = try AgentService(configuration: config, backend: backend)
    if boot { await agent.boot() }
    return agent
}

extension AgentService {
    /// Creates each LV (1 GiB) in vg1 and activates it in `mode` (nil: leaves it inactive).
    func createLVs(_ names: [String], activate mode: String? = nil) async throws {
        for name in names {
            try await call("create_lv", ["vg": "vg1", "name": .string(name), "size_gb": 1])
            if let mode { try await call("activate_lv", ["vg": "vg1", "name": .string(name), "mode": .string(mode)]) }
        }
    }

    /// `handle` with keyword-style arguments, returning the result as an object.
    @discardableResult
    func call(
        _ method: String, _ args: [String: JSONValue] = [:],
        deadline: ContinuousClock.Instant? = nil
    ) async throws -> [String: JSONValue] {
        let result = try await handle(method: method, args: args, deadline: deadline)
        guard case .object(let o) = result else {
            Issue.record("\(method) returned a non-object: \(result)")
            return [:]
        }
        return o
    }
}

/// Runs `body`, expects a ServiceError with `code`, returns it.
@discardableResult
func expectError(
    _ code: String, sourceLocation: SourceLocation = #_sourceLocation,
    _ body: () async throws -> Void
) async -> ServiceError? {
    do {
        try await body()
    } catch let e as ServiceError {
        #expect(e.code == code, "expected \(code), got \(e)", sourceLocation: sourceLocation)
        return e
    } catch {
        Issue.record("expected ServiceError \(code), got \(error)", sourceLocation: sourceLocation)
        return nil
    }
    Issue.record("expected ServiceError \(code), but it succeeded", sourceLocation: sourceLocation)
    return nil
}
