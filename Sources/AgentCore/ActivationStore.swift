import RPCWire
import SharedLVM
import Synchronization
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// One LV this agent activated, and how.
public struct ActivationRecord: Sendable, Hashable, Comparable {
    public var vg: String
    public var name: String
    public var mode: LVActivationMode

    public init(vg: String, name: String, mode: LVActivationMode) {
        self.vg = vg
        self.name = name
        self.mode = mode
    }

    public var key: String { "\(vg)/\(name)" }

    public static func < (a: Self, b: Self) -> Bool { (a.vg, a.name) < (b.vg, b.name) }

    var json: JSONValue { ["vg": .string(vg), "name": .string(name), "mode": .string(mode.rawValue)] }
}

public struct StoreError: Error, Sendable, CustomStringConvertible {
    public var message: String
    public var description: String { message }
}

/// The LVs this agent has active and in which mode, persisted in
/// `<state_dir>/activations.json` so that after a reboot the agent re-activates exactly
/// those before it reports ready.
///
/// Every change rewrites the file atomically and durably: write `activations.json.tmp`,
/// fsync it, rename it over `activations.json`, fsync the directory. After a power loss
/// the file is either the old or the new version, never a mix.
///
/// ```json
/// {"activations": [{"mode": "exclusive", "name": "volume-1", "vg": "vg1"}], "format": 1, "host": "cmp-1"}
/// ```
public final class ActivationStore: Sendable {
    public static let fileName = "activations.json"
    static let format: Int64 = 1

    public let directory: String
    public let path: String
    let host: String
    private let records: Mutex<[String: ActivationRecord]>

    /// What `init` found: the records, and a problem if the file could not be used
    /// (it is then moved aside to `activations.json.corrupt` and the store starts empty).
    public let loadProblem: String?

    /// Opens (creating the directory, mode 0700, if needed) and loads the store.
    /// Throws only when the directory cannot be created or is not writable.
    public init(directory: String, host: String) throws(StoreError) {
        self.directory = directory
        self.path = directory + "/" + Self.fileName
        self.host = host
        try FileIO.makeDirectories(directory)
        guard access(directory, W_OK) == 0 else {
            throw StoreError(message: "state directory \(directory) is not writable: \(FileIO.errorText(errno))")
        }
        var problem: String?
        var loaded: [String: ActivationRecord] = [:]
        do {
            if let bytes = try FileIO.read(path) {
                loaded = try Self.decode(bytes, path: path)
            }
        } catch {
            problem = error.message
            // Keep the unreadable file for the operator; start empty.
            _ = rename(path, path + ".corrupt")
        }
        self.loadProblem = problem
        self.records = Mutex(loaded)
    }

    public var all: [ActivationRecord] { records.withLock { Array($0.values) }.sorted() }

    public func record(vg: String, name: String) -> ActivationRecord? {
        records.withLock { $0["\(vg)/\(name)"] }
    }

    /// Records (or changes the mode of) an activation and persists it.
    public func set(_ record: ActivationRecord) throws(StoreError) {
        try update { $0[record.key] = record }
    }

    /// Forgets an activation and persists that; no-op if it was not recorded.
    public func remove(vg: String, name: String) throws(StoreError) {
        guard record(vg: vg, name: name) != nil else { return }
        try update { $0["\(vg)/\(name)"] = nil }
    }

    private func update(_ change: (inout [String: ActivationRecord]) -> Void) throws(StoreError) {
        // Changes are applied and written under one lock so the file always matches the
        // order of changes; writes are small (one line per active LV).
        try records.withLock { (r: inout [String: ActivationRecord]) throws(StoreError) in
            var next = r
            change(&next)
            try FileIO.writeAtomically(path, Array(Self.encode(next, host: host).utf8), directory: directory)
            r = next
        }
    }

    static func encode(_ records: [String: ActivationRecord], host: String) -> String {
        let list = records.values.sorted().map(\.json)
        return JSONWriter.serialize(["format": .int(format), "host": .string(host), "activations": .array(list)]) + "\n"
    }

    static func decode(_ bytes: [UInt8], path: String) throws(StoreError) -> [String: ActivationRecord] {
        let doc: JSONValue
        do { doc = try JSONValue.parse(bytes) } catch {
            throw StoreError(message: "\(path) is not valid JSON: \(error)")
        }
        guard doc["format"]?.int64Value == format, let list = doc["activations"]?.arrayValue else {
            throw StoreError(message: "\(path) is not an activation store of format \(format)")
        }
        var out: [String: ActivationRecord] = [:]
        for item in list {
            guard let vg = item["vg"]?.stringValue, let name = item["name"]?.stringValue,
                  let mode = item["mode"]?.stringValue.flatMap(LVActivationMode.init(rawValue:)) else {
                throw StoreError(message: "\(path) has an unreadable entry \(JSONWriter.serialize(item))")
            }
            let r = ActivationRecord(vg: vg, name: name, mode: mode)
            out[r.key] = r
        }
        return out
    }
}

/// Small file helpers on Glibc (the agent avoids Foundation to stay small).
enum FileIO {
    static func errorText(_ code: Int32) -> String { String(cString: strerror(code)) }

    static func read(_ path: String) throws(StoreError) -> [UInt8]? {
        do { return try DurableFile.read(path) } catch { throw StoreError(message: error.message) }
    }

    static func writeAtomically(_ path: String, _ bytes: [UInt8], directory: String) throws(StoreError) {
        do { try DurableFile.writeAtomically(path, bytes) } catch { throw StoreError(message: error.message) }
    }

    /// `mkdir -p` with mode 0700 for the directories it creates.
    static func makeDirectories(_ path: String) throws(StoreError) {
        var current = path.hasPrefix("/") ? "" : "."
        for part in path.split(separator: "/") {
            current += "/" + part
            if mkdir(current, 0o700) != 0 && errno != EEXIST {
                throw StoreError(message: "cannot create directory \(current): \(errorText(errno))")
            }
        }
    }
}
