import AOSAPI
import RPCWire
import SharedLVM

/// The agent's API edge: one place that maps each `AgentMethod` to its typed request, checks
/// it, admits it, runs its handler and encodes its typed result.
///
/// The order of checks is part of the contract: argument errors first (`invalid_argument`,
/// then `unknown_vg`; nothing runs), then `lv_not_managed`, then `not_ready`/`lockspace_lost`;
/// then the request waits for its LV and a slot, and the caller's deadline is checked again
/// (`expired`) before anything runs.
extension AgentService {
    /// Runs one request. Every failure is a `ServiceError` with a stable code.
    public func handle(
        method: String, args: [String: JSONValue],
        deadline: ContinuousClock.Instant? = nil
    ) async throws(ServiceError) -> JSONValue {
        guard let m = AgentMethod(rawValue: method) else {
            throw ServiceError(
                .unknownMethod, "the agent has no method '\(JSONValue.printable(method))'",
                details: ["host": .string(host)])
        }
        switch m {
        case .createLV:
            let r = try decode(CreateLVRequest.self, args, m)
            let lv = try target(m, vg: r.vg, name: r.name)
            let size = try requestedSize(m, bytes: r.size_bytes, gb: r.size_gb)
            try admit(m, lv)
            return try await withLV(lv, deadline) { () async throws(ServiceError) in try await self.createLV(lv, size) }.wireValue()
        case .extendLV:
            let r = try decode(ExtendLVRequest.self, args, m)
            let lv = try target(m, vg: r.vg, name: r.name)
            let size = try requestedSize(m, bytes: r.size_bytes, gb: r.size_gb)
            try admit(m, lv)
            return try await withLV(lv, deadline) { () async throws(ServiceError) in
                try await self.extendLV(lv, size, sharedUpdate: r.shared_update ?? false)
            }.wireValue()
        case .refreshLV, .deactivateLV:
            let r = try decode(LVRequest.self, args, m)
            let lv = try target(m, vg: r.vg, name: r.name)
            try admit(m, lv)
            return try await withLV(lv, deadline) { () async throws(ServiceError) -> JSONValue in
                m == .refreshLV ? try await self.refreshLV(lv).wireValue() : try await self.deactivateLV(lv).wireValue()
            }
        case .deleteLV:
            let r = try decode(DeleteLVRequest.self, args, m)
            let lv = try target(m, vg: r.vg, name: r.name)
            let clear = r.volume_clear ?? configuration.volumeClear
            let clearMiB = r.volume_clear_size_mb ?? Int64(configuration.volumeClearSizeMiB)
            guard clearMiB >= 0, UInt64(clearMiB) <= LVSize.maxBytes >> 20 else {
                throw invalid(
                    m, "volume_clear_size_mb",
                    "argument 'volume_clear_size_mb' must be between 0 and \(LVSize.maxBytes >> 20), got \(clearMiB)")
            }
            try admit(m, lv)
            return try await withLV(lv, deadline) { () async throws(ServiceError) in
                try await self.deleteLV(lv, clear: clear, clearMiB: UInt64(clearMiB))
            }.wireValue()
        case .activateLV:
            let r = try decode(ActivateLVRequest.self, args, m)
            let lv = try target(m, vg: r.vg, name: r.name)
            try admit(m, lv)
            let mode = (r.mode ?? .exclusive).lvm
            return try await withLV(lv, deadline) { () async throws(ServiceError) in try await self.activateLV(lv, mode) }.wireValue()
        case .releaseLV:
            let r = try decode(ReleaseLVRequest.self, args, m)
            let lv = try target(m, vg: r.vg, name: r.name)
            let tag = try releaseTag(m, r.host)
            try admit(m, lv)
            return try await withLV(lv, deadline) { () async throws(ServiceError) in
                try await self.releaseLV(lv, for: r.host, tag: tag)
            }.wireValue()
        case .lvInfo:
            let r = try decode(LVInfoRequest.self, args, m)
            let lv = try target(m, vg: r.vg, name: r.name)
            return try await withLV(lv, deadline) { () async throws(ServiceError) in try await self.lvInfo(lv) }.wireValue()
        case .listLVs:
            let vg = try servedVG(m, decode(ListLVsRequest.self, args, m).vg)
            return try await withSlot(deadline) { () async throws(ServiceError) in try await self.listLVs(vg) }.wireValue()
        case .vgInfo:
            let vg = try servedVG(m, decode(VGInfoRequest.self, args, m).vg)
            return try await withSlot(deadline) { () async throws(ServiceError) in try await self.vgInfo(vg) }.wireValue()
        case .lockStatus:
            _ = try decode(NoArguments.self, args, m)
            return try await withSlot(deadline) { () async throws(ServiceError) in try await self.lockStatus() }.wireValue()
        case .health:
            _ = try decode(NoArguments.self, args, m)
            return try healthReport().wireValue()
        case .checkHost:
            _ = try decode(NoArguments.self, args, m)
            return try await checkHost().wireValue()
        case .recover:
            let r = try decode(RecoverRequest.self, args, m)
            let vg = try servedVG(m, r.vg)
            try requireBooted(m)
            return try await LockspaceRecovery(agent: self, vg: vg)
                .run(r.step ?? .plan, force: r.force ?? false, deadline: deadline).wireValue()
        case .copyLV:
            let r = try decode(CopyLVRequest.self, args, m)
            let source = try target(m, vg: r.vg, name: r.source, argument: "source")
            let copy = try target(m, vg: r.vg, name: r.target, argument: "target")
            let size = try r.size_bytes.map { (b) throws(ServiceError) in try requestedSize(m, bytes: b, gb: nil) }
            try admit(m, source)
            try admit(m, copy)
            return try await withLV(copy, deadline) { () async throws(ServiceError) in
                try await self.copyLV(source, target: copy, size: size, verify: r.verify ?? false)
            }.wireValue()
        case .renameLV:
            let r = try decode(RenameLVRequest.self, args, m)
            let source = try target(m, vg: r.vg, name: r.name)
            let renamed = try target(m, vg: r.vg, name: r.new_name, argument: "new_name")
            try admit(m, source)
            try admit(m, renamed)
            return try await withLVs(source, renamed, deadline) { () async throws(ServiceError) in
                try await self.renameLV(source, to: renamed.name)
            }.wireValue()
        case .listJobs:
            _ = try decode(NoArguments.self, args, m)
            return try listJobs().wireValue()
        case .jobInfo, .cancelJob:
            let id = try decode(JobRequest.self, args, m).id
            guard (1...64).contains(id.utf8.count), id.utf8.allSatisfy({ $0 >= 0x21 && $0 < 0x7f }) else {
                throw invalid(m, "id", "argument 'id' must be a job id (1 to 64 printable characters), got \"\(JSONValue.printable(id))\"")
            }
            if m == .jobInfo { return try jobInfo(id).wireValue() }
            try requireBooted(m)
            return try cancelJob(id).wireValue()
        case .auditReport:
            let r = try decode(AuditReportRequest.self, args, m)
            let vgs = try r.vg.map { (vg) throws(ServiceError) in [try servedVG(m, vg)] } ?? configuration.volumeGroups
            let limit = r.limit ?? AuditLimits.defaultLVs
            guard (1...AuditLimits.maxLVs).contains(limit) else {
                throw invalid(m, "limit", "argument 'limit' must be between 1 and \(AuditLimits.maxLVs), got \(limit)")
            }
            return try await withSlot(deadline) { () async throws(ServiceError) in
                await self.auditReport(vgs: vgs, activeOnly: r.active_only ?? false, limit: Int(limit))
            }.wireValue()
        case .auditFix:
            let r = try decode(AuditFixRequest.self, args, m)
            let lv = try target(m, vg: r.vg, name: r.name)
            try admit(m, lv)
            return try await withLV(lv, deadline) { () async throws(ServiceError) in
                try await self.auditFix(lv, r.action, mode: r.mode)
            }.wireValue()
        case .startLockspace:
            let vg = try servedVG(m, decode(StartLockspaceRequest.self, args, m).vg)
            try requireBooted(m)
            return try await withSlot(deadline, vg: vg) { () async throws(ServiceError) in
                try await self.startLockspaceRequest(vg)
            }.wireValue()
        }
    }

    // MARK: - Checks

    private func decode<R: APIRequest>(_ type: R.Type, _ args: [String: JSONValue], _ m: AgentMethod) throws(ServiceError) -> R {
        try R.decode(args, method: m.rawValue, details: ["host": .string(host)])
    }

    /// `invalid_argument` naming the method and the argument.
    func invalid(_ m: AgentMethod, _ argument: String, _ message: String) -> ServiceError {
        ServiceError(
            .invalidArgument, "\(m.rawValue): \(message)",
            details: ["host": .string(host), "method": .string(m.rawValue), "argument": .string(argument)])
    }

    /// A valid VG name this agent serves.
    private func servedVG(_ m: AgentMethod, _ vg: String) throws(ServiceError) -> String {
        do { try VGName.validate(vg) } catch { throw invalid(m, "vg", error.message) }
        guard configuration.volumeGroups.contains(vg) else {
            let served = configuration.volumeGroups.joined(separator: ", ")
            throw ServiceError(
                .unknownVG,
                "volume group \"\(JSONValue.printable(vg))\" is not served by the agent on host \(host) (it serves: \(served.isEmpty ? "none" : served))",
                details: ["host": .string(host), "vg": .string(vg)])
        }
        return vg
    }

    /// A served VG and a valid LV name (the VG is reported first).
    private func target(_ m: AgentMethod, vg: String, name: String, argument: String = "name") throws(ServiceError) -> LVRef {
        let vg = try servedVG(m, vg)
        do { try LVName.validate(name) } catch { throw invalid(m, argument, error.message) }
        return LVRef(vg: vg, name: name)
    }

    /// `release_lv`'s `host`: another host (this one deactivates its own LVs), a host name as
    /// the controller accepts one, and its release tag.
    private func releaseTag(_ m: AgentMethod, _ released: String) throws(ServiceError) -> String {
        guard !released.isEmpty, released.utf8.count <= 255, released.unicodeScalars.allSatisfy({ $0.value > 0x20 && $0.value < 0x7f }),
            let tag = ReleaseTag.tag(for: released)
        else {
            throw invalid(
                m, "host",
                "argument 'host' must be a host name (1 to 255 printable ASCII characters), got \"\(JSONValue.printable(released))\"")
        }
        guard released != host else {
            throw invalid(m, "host", "argument 'host' names this host (\(host)): its own activations are deactivated with deactivate_lv")
        }
        return tag
    }

    /// `size_bytes` (integer bytes) or `size_gb` (integer GiB): exactly one, positive, at most
    /// `LVSize.maxBytes`.
    private func requestedSize(_ m: AgentMethod, bytes: Int64?, gb: Int64?) throws(ServiceError) -> UInt64 {
        switch (bytes, gb) {
        case (nil, nil):
            throw invalid(m, "size_bytes", "a size is required: give 'size_bytes' (integer bytes) or 'size_gb' (integer GiB)")
        case (.some, .some):
            throw invalid(m, "size_bytes", "give either 'size_bytes' or 'size_gb', not both")
        case (let b?, nil):
            guard b > 0 else { throw invalid(m, "size_bytes", "argument 'size_bytes' must be positive, got \(b)") }
            guard UInt64(b) <= LVSize.maxBytes else {
                throw invalid(m, "size_bytes", "argument 'size_bytes' = \(b) exceeds the limit of \(LVSize.maxBytes) bytes (1 PiB)")
            }
            return UInt64(b)
        case (nil, let g?):
            guard g > 0 else { throw invalid(m, "size_gb", "argument 'size_gb' must be positive, got \(g)") }
            guard UInt64(g) <= LVSize.maxBytes >> 30 else {
                throw invalid(m, "size_gb", "argument 'size_gb' = \(g) exceeds the limit of \(LVSize.maxBytes >> 30) GiB (1 PiB)")
            }
            return UInt64(g) << 30
        }
    }

    /// Mutating methods touch only the LVs of `[agent] lv_name_pattern`, and only when the
    /// agent is ready and the VG's lockspace was not lost.
    private func admit(_ m: AgentMethod, _ lv: LVRef) throws(ServiceError) {
        if JobLVName.isJobLV(lv.name) {
            throw ServiceError(
                .lvNotManaged,
                "LV \(lv) belongs to a job of the agent (\(JobLVName.wipePrefix)*, \(JobLVName.copyPrefix)* and \(JobLVName.cowPrefix)* LVs are "
                    + "wiped, being copied or read by a copy); \(m.rawValue) refused. See list_jobs",
                details: ["host": .string(host), "vg": .string(lv.vg), "lv": .string(lv.name), "method": .string(m.rawValue)])
        }
        guard configuration.lvNames.manages(lv.name) else {
            throw ServiceError(
                .lvNotManaged,
                "LV \(lv) is not managed by the agent on host \(host): its name matches no pattern of "
                    + "[agent] lv_name_pattern (\(configuration.lvNames)); \(m.rawValue) refused. "
                    + "Add a glob for it to lv_name_pattern if aos should manage it",
                details: [
                    "host": .string(host), "vg": .string(lv.vg), "lv": .string(lv.name), "method": .string(m.rawValue),
                    "option": "[agent] lv_name_pattern",
                    "patterns": .array(configuration.lvNames.patterns.map(JSONValue.string)),
                ])
        }
        if let refusal = state.read({ $0.refusal(of: m, vg: lv.vg, host: host) }) { throw refusal }
    }

    /// `recover` and `start_lockspace` need a finished boot (a lost lockspace is what they are for).
    private func requireBooted(_ m: AgentMethod) throws(ServiceError) {
        guard state.read({ $0.ready }) else {
            throw ServiceError(
                .notReady, "the agent on host \(host) is not ready yet; \(m.rawValue) refused",
                details: ["host": .string(host)])
        }
    }
}

/// One LV of a served VG, with a valid name.
struct LVRef: Sendable, Hashable, CustomStringConvertible {
    var vg: String
    var name: String
    /// `vg/name`: the key of its lock and its activation record.
    var description: String { "\(vg)/\(name)" }
}
