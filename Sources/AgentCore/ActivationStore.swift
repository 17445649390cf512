import HostSupport
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

/// A change of an LV's activation that was about to run when the store was written: the
/// intent is made durable BEFORE the LVM command and settled (cleared, with the record
/// updated) after it, so an agent killed in between finds it at its next start and
/// reconciles it with what LVM shows (`AgentService.reconcileIntents`).
public struct ActivationIntent: Sendable, Hashable {
    public enum Operation: Sendable, Hashable {
        case activate(LVActivationMode)
        case deactivate
    }

    public var vg: String
    public var name: String
    public var operation: Operation

    public init(vg: String, name: String, operation: Operation) {
        self.vg = vg
        self.name = name
        self.operation = operation
    }

    public var key: String { "\(vg)/\(name)" }

    var json: JSONValue {
        switch operation {
        case .activate(let mode):
            return ["vg": .string(vg), "name": .string(name), "op": "activate", "mode": .string(mode.rawValue)]
        case .deactivate:
            return ["vg": .string(vg), "name": .string(name), "op": "deactivate"]
        }
    }

    init?(json: JSONValue) {
        guard let vg = json["vg"]?.stringValue, let name = json["name"]?.stringValue else { return nil }
        switch json["op"]?.stringValue {
        case "activate"?:
            guard let mode = json["mode"]?.stringValue.flatMap(LVActivationMode.init(rawValue:)) else { return nil }
            self.init(vg: vg, name: name, operation: .activate(mode))
        case "deactivate"?:
            self.init(vg: vg, name: name, operation: .deactivate)
        default:
            return nil
        }
    }
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
/// {"activations": [{"mode": "exclusive", "name": "volume-1", "vg": "vg1"}], "format": 1, "host": "cmp-1",
///  "intents": [{"name": "volume-2", "op": "activate", "mode": "shared", "vg": "vg1"}]}
/// ```
///
/// `intents` (absent when empty; an older agent ignores it) are the activations and
/// deactivations in progress: written before the LVM command, settled after it.
public final class ActivationStore: Sendable {
    public static let fileName = "activations.json"
    static let format: Int64 = 1

    public let directory: String
    public let path: String
    let host: String
    private let records: Mutex<State>

    struct State {
        var records: [String: ActivationRecord] = [:]
        var intents: [String: ActivationIntent] = [:]
        /// Tests: consulted before each write with what is written ("intent", "settle");
        /// false makes that write and every later one fail, as if the process died there.
        var crashBefore: (@Sendable (String) -> Bool)?
        var dead = false
    }

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
        // Temp files of a write that a crash interrupted (DurableFile names them by pid).
        Self.removeTemporaries(directory: directory, prefix: Self.fileName + ".tmp.")
        var problem: String?
        var loaded = State()
        do {
            if let bytes = try FileIO.read(path) {
                (loaded.records, loaded.intents) = try Self.decode(bytes, path: path)
            }
        } catch {
            problem = error.message
            // Keep the unreadable file for the operator; start empty.
            _ = rename(path, path + ".corrupt")
        }
        self.loadProblem = problem
        self.records = Mutex(loaded)
    }

    public var all: [ActivationRecord] { records.withLock { Array($0.records.values) }.sorted() }

    public func record(vg: String, name: String) -> ActivationRecord? {
        records.withLock { $0.records["\(vg)/\(name)"] }
    }

    /// Changes in progress (or interrupted by a crash, until reconciled).
    public var intents: [ActivationIntent] {
        records.withLock { Array($0.intents.values) }.sorted { $0.key < $1.key }
    }

    public func intent(vg: String, name: String) -> ActivationIntent? {
        records.withLock { $0.intents["\(vg)/\(name)"] }
    }

    /// Records (or changes the mode of) an activation and persists it; settles an intent.
    public func set(_ record: ActivationRecord) throws(StoreError) {
        try update("settle") {
            $0.records[record.key] = record; $0.intents[record.key] = nil
        }
    }

    /// Records several activations (adoption, AdoptionSurvey.swift) in ONE durable write, so a
    /// crash leaves all of them or none; settles their intents. Writes the file even when
    /// `records` is empty: its existence marks that the first start's adoption ran.
    public func setAll(_ records: [ActivationRecord]) throws(StoreError) {
        try update("settle") {
            for record in records {
                $0.records[record.key] = record; $0.intents[record.key] = nil
            }
        }
    }

    /// Whether the file exists (false at an agent's very first start on this host).
    public var fileExists: Bool { access(path, F_OK) == 0 }

    /// Forgets an activation and persists that (settling an intent); no-op if neither exists.
    public func remove(vg: String, name: String) throws(StoreError) {
        let key = "\(vg)/\(name)"
        guard records.withLock({ $0.records[key] != nil || $0.intents[key] != nil }) else { return }
        try update("settle") {
            $0.records[key] = nil; $0.intents[key] = nil
        }
    }

    /// Makes `intent` durable before the LVM command it describes runs.
    public func begin(_ intent: ActivationIntent) throws(StoreError) {
        try update("intent") { $0.intents[intent.key] = intent }
    }

    /// Drops an intent whose command did not change anything (the record stays as it is).
    public func abandon(vg: String, name: String) throws(StoreError) {
        let key = "\(vg)/\(name)"
        guard records.withLock({ $0.intents[key] != nil }) else { return }
        try update("settle") { $0.intents[key] = nil }
    }

    /// Tests: simulate a crash before the first write for which `point` returns false.
    func crash(before point: @escaping @Sendable (String) -> Bool) {
        records.withLock { $0.crashBefore = point }
    }

    private func update(_ what: String, _ change: (inout State) -> Void) throws(StoreError) {
        // Changes are applied and written under one lock so the file always matches the
        // order of changes; writes are small (one line per active LV).
        try records.withLock { (r: inout State) throws(StoreError) in
            if r.dead || r.crashBefore.map({ !$0(what) }) == true {
                r.dead = true
                throw StoreError(message: "simulated crash before the \(what) write")
            }
            var next = r
            change(&next)
            try FileIO.writeAtomically(path, Array(Self.encode(next.records, next.intents, host: host).utf8), directory: directory)
            r = next
        }
    }

    static func encode(_ records: [String: ActivationRecord], _ intents: [String: ActivationIntent] = [:], host: String) -> String {
        let list = records.values.sorted().map(\.json)
        var doc: [String: JSONValue] = ["format": .int(format), "host": .string(host), "activations": .array(list)]
        if !intents.isEmpty { doc["intents"] = .array(intents.values.sorted { $0.key < $1.key }.map(\.json)) }
        return JSONWriter.serialize(.object(doc)) + "\n"
    }

    /// Unlinks `prefix*` files of `directory` (temp files left by an interrupted write).
    static func removeTemporaries(directory: String, prefix: String) {
        guard let d = opendir(directory) else { return }
        var names: [String] = []
        while let entry = readdir(d) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
            }
            if name.hasPrefix(prefix) { names.append(name) }
        }
        closedir(d)
        for name in names { unlink(directory + "/" + name) }
    }

    static func decode(_ bytes: [UInt8], path: String) throws(StoreError) -> ([String: ActivationRecord], [String: ActivationIntent]) {
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
                let mode = item["mode"]?.stringValue.flatMap(LVActivationMode.init(rawValue:))
            else {
                throw StoreError(message: "\(path) has an unreadable entry \(JSONWriter.serialize(item))")
            }
            let r = ActivationRecord(vg: vg, name: name, mode: mode)
            out[r.key] = r
        }
        var intents: [String: ActivationIntent] = [:]
        for item in doc["intents"]?.arrayValue ?? [] {
            guard let i = ActivationIntent(json: item) else {
                throw StoreError(message: "\(path) has an unreadable intent \(JSONWriter.serialize(item))")
            }
            intents[i.key] = i
        }
        return (out, intents)
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
