import HostCommands
import Logging

/// `LVMBackend` on real lvm2 + lvmlockd + sanlock: runs the commands of `LVMCommands`
/// through a `CommandExecuting` and turns failures into `LVMError` via `LVMErrorClassifier`.
public struct RealLVMBackend: LVMBackend {
    public struct Timeouts: Sendable {
        /// Ordinary LVM commands take 0.3–1 s; a failing `-asy` ~6 s (lvmlockd retries).
        public var command: Duration
        /// `vgchange --lock-start` took up to 24 s in the lab with sanlock's default I/O timeout.
        public var lockStart: Duration
        /// Zeroing gets `command` plus the time to write at this rate (bytes per second).
        public var zeroMinimumBytesPerSecond: UInt64
        /// Waits before running again a command that found the VG (or global) lock held by
        /// another host, each jittered down to half (see `execute`); its length is the number
        /// of extra tries.
        public var lockContentionBackoff: [Duration]

        public init(
            command: Duration = .seconds(120), lockStart: Duration = .seconds(300),
            zeroMinimumBytesPerSecond: UInt64 = 10 << 20,
            lockContentionBackoff: [Duration] = [.milliseconds(500), .seconds(1), .seconds(2), .seconds(4)]
        ) {
            self.command = command
            self.lockStart = lockStart
            self.zeroMinimumBytesPerSecond = zeroMinimumBytesPerSecond
            self.lockContentionBackoff = lockContentionBackoff
        }
    }

    public let executor: any CommandExecuting
    public let timeouts: Timeouts
    /// Every command is logged at debug level with its outcome and duration; failures are
    /// the caller's to log, since only it knows whether a failure is expected.
    public let logger: Logger

    public init(
        executor: any CommandExecuting = CommandRunner(), timeouts: Timeouts = Timeouts(),
        logger: Logger = Logger(label: "aos.lvm")
    ) {
        self.executor = executor
        self.timeouts = timeouts
        self.logger = logger
    }

    /// Runs a command; throws the classified error unless it exited 0.
    ///
    /// A command that failed because another host held the VG lock (or the global lock) while
    /// changing the VG's metadata changed nothing: lvm2 refuses before it writes, after its own
    /// `lvmlockd_lock_retries` (3, a second apart). Under a burst of changes from several hosts
    /// that is not enough, so it runs again after `lockContentionBackoff` (jittered, so the
    /// hosts do not retry in step) before the caller sees the error.
    @discardableResult
    func execute(_ argv: [String], timeout: Duration? = nil) async throws(LVMError) -> CommandResult {
        var backoff = timeouts.lockContentionBackoff[...]
        while true {
            let result = try await runLogged(argv, timeout: timeout ?? timeouts.command)
            if result.termination.isSuccess { return result }
            guard LVMErrorClassifier.lockHeldByOtherHost(result.stderr), let wait = backoff.popFirst() else {
                throw LVMErrorClassifier.error(for: result)
            }
            let jittered = wait / 2 + (wait / 2) * Double.random(in: 0...1)
            logger.notice(
                "the VG lock is held by another host; running the command again",
                metadata: [
                    "argv": .string(argv.joined(separator: " ")), "after_ms": .stringConvertible(Int(jittered / .milliseconds(1))),
                    "tries_left": .stringConvertible(backoff.count),
                ])
            do { try await Task.sleep(for: jittered) } catch { throw LVMErrorClassifier.error(for: result) }
        }
    }

    func runLogged(_ argv: [String], timeout: Duration) async throws(LVMError) -> CommandResult {
        let clock = ContinuousClock()
        let start = clock.now
        let result: CommandResult
        do { result = try await executor.run(argv, timeout: timeout) } catch {
            let e = LVMError(error)
            LVMCommandMetrics.record(argv: argv, duration: clock.now - start, failure: e.code)
            throw e
        }
        LVMCommandMetrics.record(
            argv: argv, duration: clock.now - start,
            failure: result.termination.isSuccess ? nil : LVMErrorClassifier.error(for: result).code)
        logger.debug(
            "lvm command finished",
            metadata: [
                "argv": .string(argv.joined(separator: " ")),
                "result": .string(result.termination.description),
                "duration_ms": .stringConvertible(Int((clock.now - start) / .milliseconds(1))),
            ])
        return result
    }

    public func createLV(vg: String, name: String, sizeBytes: UInt64, activate: Bool) async throws(LVMError) -> LogicalVolume {
        try LVMError.checkNames(vg: vg, lv: name)
        try LVSize.validate(sizeBytes)
        try await execute(LVMCommands.create(vg: vg, name: name, sizeBytes: sizeBytes, activate: activate))
        return try await lvInfo(vg: vg, name: name)
    }

    public func extendLV(vg: String, name: String, newSizeBytes: UInt64, sharedUpdate: Bool) async throws(LVMError) {
        try LVMError.checkNames(vg: vg, lv: name)
        try LVSize.validate(newSizeBytes)
        do {
            try await execute(LVMCommands.extend(vg: vg, name: name, newSizeBytes: newSizeBytes, sharedUpdate: sharedUpdate))
        } catch  where error.code == .sizeConflict {
            // lvextend refuses "extending" to the current size; a retried request must succeed.
            let lv = try await lvInfo(vg: vg, name: name)
            let extent = try await vgInfo(vg: vg).extentSizeBytes
            if extent > 0, lv.sizeBytes == LVSize.roundUp(newSizeBytes, extentSize: extent) { return }
            throw error
        }
    }

    public func removeLV(vg: String, name: String) async throws(LVMError) {
        try LVMError.checkNames(vg: vg, lv: name)
        let argv = LVMCommands.remove(vg: vg, name: name)
        // lvremove would ask "remove active logical volume?"; the agent never wants that.
        let lv = try await lvInfo(vg: vg, name: name)
        if lv.activeLocally {
            throw LVMError(
                code: .busy, message: "Logical volume \(vg)/\(name) is active on this host; deactivate it first.",
                argv: argv)
        }
        try await execute(argv)
    }

    public func removeInactiveLV(vg: String, name: String) async throws(LVMError) {
        try LVMError.checkNames(vg: vg, lv: name)
        try await execute(LVMCommands.remove(vg: vg, name: name))
    }

    public func activate(vg: String, name: String, mode: LVActivationMode) async throws(LVMError) {
        try LVMError.checkNames(vg: vg, lv: name)
        try await execute(LVMCommands.activate(vg: vg, name: name, mode: mode))
    }

    public func deactivate(vg: String, name: String) async throws(LVMError) {
        try LVMError.checkNames(vg: vg, lv: name)
        try await execute(LVMCommands.deactivate(vg: vg, name: name))
    }

    public func addTag(vg: String, name: String, tag: String) async throws(LVMError) {
        try LVMError.checkNames(vg: vg, lv: name)
        try LVTag.validate(tag)
        try await execute(LVMCommands.addTag(vg: vg, name: name, tag: tag))
    }

    public func removeTag(vg: String, name: String, tag: String) async throws(LVMError) {
        try LVMError.checkNames(vg: vg, lv: name)
        try LVTag.validate(tag)
        try await execute(LVMCommands.removeTag(vg: vg, name: name, tag: tag))
    }

    public func refresh(vg: String, name: String) async throws(LVMError) {
        try LVMError.checkNames(vg: vg, lv: name)
        try await execute(LVMCommands.refresh(vg: vg, name: name))
    }

    public func listLVs(vg: String) async throws(LVMError) -> [LogicalVolume] {
        try LVMError.checkNames(vg: vg)
        let result = try await execute(LVMCommands.listLVs(vg: vg))
        return try decode(result) { json throws(LVMError) in try LVMReport.decodeLVs(json) }.filter { !$0.isInternal }
    }

    public func lvInfo(vg: String, name: String) async throws(LVMError) -> LogicalVolume {
        try LVMError.checkNames(vg: vg, lv: name)
        let result = try await execute(LVMCommands.lvInfo(vg: vg, name: name))
        let lvs = try decode(result) { json throws(LVMError) in try LVMReport.decodeLVs(json) }
        guard let lv = lvs.first(where: { $0.name == name }) else {
            throw LVMError(
                code: .notFound, message: "Failed to find logical volume \"\(vg)/\(name)\"",
                stderr: result.stderr, argv: result.argv, termination: result.termination)
        }
        return lv
    }

    public func vgInfo(vg: String) async throws(LVMError) -> VolumeGroup {
        try LVMError.checkNames(vg: vg)
        let result = try await execute(LVMCommands.vgInfo(vg: vg))
        let vgs = try decode(result) { json throws(LVMError) in try LVMReport.decodeVGs(json) }
        guard let info = vgs.first(where: { $0.name == vg }) else {
            throw LVMError(
                code: .notFound, message: "Volume group \"\(vg)\" not found",
                stderr: result.stderr, argv: result.argv, termination: result.termination)
        }
        return info
    }

    public func lockStart(vg: String) async throws(LVMError) {
        try LVMError.checkNames(vg: vg)
        let result = try await execute(LVMCommands.lockStart(vg: vg), timeout: timeouts.lockStart)
        // Before `lvmlockctl --drop`, lock-start of a killed lockspace exits 0 and does
        // nothing ("Skipping global lock: storage failed for sanlock leases").
        // The same for lease I/O errors (ELOCKIO: "storage errors for sanlock leases").
        let needles = ["storage failed for sanlock leases", "storage errors for sanlock leases"]
        if needles.contains(where: { result.stderr.contains($0) }) {
            let line =
                result.stderr.split(whereSeparator: \.isNewline)
                .first { l in needles.contains { l.contains($0) } }.map { $0.trimmingWhitespace() } ?? ""
            throw LVMError(
                code: .lockStorageFailed, message: line, stderr: result.stderr,
                argv: result.argv, termination: result.termination)
        }
    }

    public func lockspaceProblem(vg: String) async throws(LVMError) -> LVMErrorCode? {
        try LVMError.checkNames(vg: vg)
        // Short: with queued I/O every LVM command hangs until the path returns.
        let result = try await runLogged(LVMCommands.probe(vg: vg), timeout: .seconds(30))
        if result.termination == .timedOut {
            throw LVMError(
                code: .timedOut,
                message: "vgs \(vg) did not finish within 30 s: LVM hangs, the path to the shared disk is probably down with queued I/O",
                stderr: result.stderr, argv: result.argv, termination: result.termination)
        }
        // After the path returns, vgs of a killed lockspace exits 0 with "VG … lock skipped:
        // storage failed for sanlock leases": read the warnings whatever the exit status.
        let (code, _) = LVMErrorClassifier.diagnose(exitStatus: 5, stderr: result.stderr)
        if code == .lockStorageFailed || code == .lockspaceNotStarted { return code }
        guard result.termination.isSuccess else { throw LVMErrorClassifier.error(for: result) }
        return try await lockspaceStarted(vg: vg) ? nil : .lockspaceNotStarted
    }

    public func dropLockspace(vg: String) async throws(LVMError) {
        try LVMError.checkNames(vg: vg)
        try await execute(LVMCommands.dropLockspace(vg: vg))
    }

    public func lockStop(vg: String) async throws(LVMError) {
        try LVMError.checkNames(vg: vg)
        try await execute(LVMCommands.lockStop(vg: vg))
    }

    public func lockspaceStarted(vg: String) async throws(LVMError) -> Bool {
        try LVMError.checkNames(vg: vg)
        guard let lockspace = try await lockStatus().lockspace(forVG: vg) else { return false }
        return lockspace.transition == nil
    }

    public func lockStatus() async throws(LVMError) -> SanlockStatus {
        let result = try await execute(LVMCommands.sanlockStatus())
        do {
            return try SanlockStatus.parse(result.stdout)
        } catch {
            throw LVMError(
                code: .internal, message: error.message, stderr: result.stderr, argv: result.argv,
                termination: result.termination)
        }
    }

    public func deviceSize(vg: String, name: String) async throws(LVMError) -> UInt64? {
        try LVMError.checkNames(vg: vg, lv: name)
        let result = try await runLogged(LVMCommands.deviceSize(vg: vg, name: name), timeout: timeouts.command)
        if !result.termination.isSuccess {
            // An inactive LV has no device node.
            if result.stderr.contains("No such file or directory") { return nil }
            throw LVMErrorClassifier.error(for: result)
        }
        guard let size = UInt64(result.stdout.trimmingWhitespace()) else {
            throw LVMError(
                code: .internal, message: "blockdev printed \"\(result.stdout.trimmingWhitespace())\"",
                argv: result.argv, termination: result.termination)
        }
        return size
    }

    public func renameLV(vg: String, from: String, to: String) async throws(LVMError) {
        try LVMError.checkNames(vg: vg, lv: from)
        try LVMError.checkNames(vg: vg, lv: to)
        try await execute(LVMCommands.rename(vg: vg, from: from, to: to))
    }

    public func fillRange(
        vg: String, name: String, offset: UInt64, length: UInt64, fill: RangeFill
    ) async throws(LVMError) -> RangeFill {
        try LVMError.checkNames(vg: vg, lv: name)
        let device = devicePath(vg: vg, name: name)
        let timeout = ioTimeout(length)
        if fill == .zeroOffload {
            let argv = LVMCommands.zeroOut(device: device, offset: offset, length: length)
            let result = try await runLogged(argv, timeout: timeout)
            // BLKZEROOUT succeeds on any device; only the queue limit says who wrote the zeros.
            if result.termination.isSuccess { return BlockDeviceInfo.hasWriteZeroesOffload(device) == false ? .zeros : .zeroOffload }
            // No WRITE ZEROES / WRITE SAME on this device (or no blkdiscard): write them.
            logger.info(
                "device cannot zero a range itself; writing zeros", metadata: ["device": "\(device)", "stderr": "\(result.stderr)"])
        }
        let input = fill == .random ? "/dev/urandom" : "/dev/zero"
        try await io(LVMCommands.fill(device: device, input: input, offset: offset, length: length), timeout: timeout)
        return fill == .random ? .random : .zeros
    }

    public func copyRange(vg: String, source: String, target: String, offset: UInt64, length: UInt64) async throws(LVMError) {
        try LVMError.checkNames(vg: vg, lv: source)
        try LVMError.checkNames(vg: vg, lv: target)
        let argv = LVMCommands.copy(
            source: devicePath(vg: vg, name: source), target: devicePath(vg: vg, name: target), offset: offset, length: length)
        try await io(argv, timeout: ioTimeout(length))
    }

    public func checksum(vg: String, name: String, length: UInt64) async throws(LVMError) -> String {
        try LVMError.checkNames(vg: vg, lv: name)
        return try await DeviceChecksum.sha256(path: devicePath(vg: vg, name: name), length: length)
    }

    /// A job's chunk gets `command` plus the time to move it at `zeroMinimumBytesPerSecond`.
    private func ioTimeout(_ length: UInt64) -> Duration {
        timeouts.command + .seconds(Int64(clamping: length / max(timeouts.zeroMinimumBytesPerSecond, 1)))
    }

    /// A dd of job I/O; a missing device node means the LV is not active here.
    private func io(_ argv: [String], timeout: Duration) async throws(LVMError) {
        let result = try await runLogged(argv, timeout: timeout)
        guard result.termination.isSuccess else {
            var error = LVMErrorClassifier.error(for: result)
            if result.stderr.contains("No such file or directory") { error.code = .notActive }
            throw error
        }
    }

    public func pvsPresent(vg: String) async throws(LVMError) -> Bool {
        do {
            return try await vgInfo(vg: vg).missingPVCount == 0
        } catch  where error.code == .notFound {
            return false
        }
    }

    private func decode<T>(_ result: CommandResult, _ body: (String) throws(LVMError) -> T) throws(LVMError) -> T {
        do {
            return try body(result.stdout)
        } catch {
            throw LVMError(
                code: .internal, message: error.message, stderr: result.stderr, argv: result.argv,
                termination: result.termination)
        }
    }
}
