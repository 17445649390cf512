import LVMTestSupport
import Testing

@testable import SharedLVM

/// The real backend against a scripted executor: exact argv, parsing, classification.
struct RealLVMBackendTests {
    static let lvFields = "lv_name,vg_name,lv_uuid,lv_size,lv_attr,lv_active,lv_active_locally,lv_active_exclusively,lv_lockargs,lv_tags"
    static let vgFields =
        "vg_name,vg_uuid,vg_attr,vg_size,vg_free,vg_extent_size,vg_extent_count,vg_free_count,lv_count,pv_count,vg_missing_pv_count,vg_lock_type,vg_lock_args,vg_mda_size,vg_mda_free"
    static let report = ["--reportformat", "json", "--units", "b", "--nosuffix"]

    static func lvJSON(_ name: String, size: UInt64, attr: String = "-wi-------", uuid: String = "abcdef-1234-5678-9abc-def0-1234-567890")
        -> String
    {
        let active = attr.dropFirst(4).first == "a"
        return """
            {"report":[{"lv":[{"lv_name":"\(name)","vg_name":"vol","lv_uuid":"\(uuid)","lv_size":"\(size)","lv_attr":"\(attr)","lv_active":"\(active ? "active" : "")","lv_active_locally":"\(active ? "active locally" : "")","lv_active_exclusively":"\(active ? "active exclusively" : "")","lv_lockargs":"1.0.0:70254592"}]}]}
            """
    }

    static let vgJSON = """
        {"report":[{"vg":[{"vg_name":"vol","vg_uuid":"u","vg_attr":"wz--ns","vg_size":"1069547520","vg_free":"532676608","vg_extent_size":"4194304","vg_extent_count":"255","vg_free_count":"127","lv_count":"3","pv_count":"1","vg_missing_pv_count":"0","vg_lock_type":"sanlock","vg_lock_args":"1.0.0:lvmlock","vg_mda_size":"1044480","vg_mda_free":"1039360"}]}]}
        """

    let exec = ScriptedCommandExecutor()
    var backend: RealLVMBackend { RealLVMBackend(executor: exec) }

    @Test func createInactive() async throws {
        exec.on(["lvcreate"], stderr: "  WARNING: Logical volume vol/v1 not zeroed.\n")
        exec.on(["lvs"], stdout: Self.lvJSON("v1", size: 8 << 20))
        let lv = try await backend.createLV(vg: "vol", name: "v1", sizeBytes: 5 << 20, activate: false)
        #expect(
            exec.calls == [
                ["lvcreate", "-an", "-Zn", "-n", "v1", "-L", "5242880b", "vol"],
                ["lvs"] + Self.report + ["-o", Self.lvFields, "vol/v1"],
            ])
        #expect(lv.sizeBytes == 8 << 20 && !lv.activeLocally)
    }

    @Test func createActive() async throws {
        exec.on(["lvs"], stdout: Self.lvJSON("v1", size: 8 << 20, attr: "-wi-a-----"))
        let lv = try await backend.createLV(vg: "vol", name: "v1", sizeBytes: 8 << 20, activate: true)
        #expect(exec.calls.first == ["lvcreate", "-aey", "-Wy", "--yes", "-n", "v1", "-L", "8388608b", "vol"])
        #expect(lv.activeLocally)
    }

    @Test func createFailures() async throws {
        exec.on(
            ["lvcreate", "-an", "-Zn", "-n", "dup"], exit: 5, stderr: "  Logical Volume \"dup\" already exists in volume group \"vol\"\n")
        exec.on(
            ["lvcreate", "-an", "-Zn", "-n", "big"], exit: 5,
            stderr: "  Volume group \"vol\" has insufficient free space (447 extents): 2560 required.\n")
        await #expect(
            throws: LVMError(
                code: .alreadyExists, message: "Logical Volume \"dup\" already exists in volume group \"vol\"",
                stderr: "  Logical Volume \"dup\" already exists in volume group \"vol\"\n",
                argv: ["lvcreate", "-an", "-Zn", "-n", "dup", "-L", "4194304b", "vol"],
                termination: .exited(5))
        ) {
            _ = try await backend.createLV(vg: "vol", name: "dup", sizeBytes: 4 << 20, activate: false)
        }
        let error = await #expect(throws: LVMError.self) {
            _ = try await backend.createLV(vg: "vol", name: "big", sizeBytes: 10 << 30, activate: false)
        }
        #expect(error?.code == .insufficientSpace)
        #expect(exec.calls.count == 2, "no lvs after a failed lvcreate")
    }

    @Test func badInputRunsNothing() async {
        await #expect(throws: LVMError.self) { _ = try await backend.createLV(vg: "vol", name: "x y", sizeBytes: 1, activate: false) }
        await #expect(throws: LVMError.self) { _ = try await backend.createLV(vg: "vol", name: "ok", sizeBytes: 0, activate: false) }
        await #expect(throws: LVMError.self) { try await backend.activate(vg: "-vol", name: "ok", mode: .exclusive) }
        await #expect(throws: LVMError.self) { try await backend.removeLV(vg: "vol", name: "snapshot1") }
        await #expect(throws: LVMError.self) { try await backend.extendLV(vg: "vol", name: "a", newSizeBytes: 0, sharedUpdate: false) }
        await #expect(throws: LVMError.self) {
            _ = try await backend.fillRange(vg: "vol", name: "../x", offset: 0, length: 1, fill: .zeros)
        }
        await #expect(throws: LVMError.self) { try await backend.renameLV(vg: "vol", from: "a", to: "b c") }
        await #expect(throws: LVMError.self) {
            try await backend.copyRange(vg: "vol", source: "a", target: "-b", offset: 0, length: 1)
        }
        #expect(exec.calls.isEmpty)
    }

    @Test func activationArgv() async throws {
        try await backend.activate(vg: "vol", name: "v1", mode: .exclusive)
        try await backend.activate(vg: "vol", name: "v1", mode: .shared)
        try await backend.deactivate(vg: "vol", name: "v1")
        try await backend.refresh(vg: "vol", name: "v1")
        #expect(
            exec.calls == [
                ["lvchange", "-aey", "vol/v1"], ["lvchange", "-asy", "vol/v1"],
                ["lvchange", "-an", "vol/v1"], ["lvchange", "--refresh", "vol/v1"],
            ])
    }

    @Test func tagArgvAndChecks() async throws {
        try await backend.addTag(vg: "vol", name: "v1", tag: "aos-released.cmp-1")
        try await backend.removeTag(vg: "vol", name: "v1", tag: "aos-released.cmp-1")
        #expect(
            exec.calls == [
                ["lvchange", "--addtag", "aos-released.cmp-1", "vol/v1"], ["lvchange", "--deltag", "aos-released.cmp-1", "vol/v1"],
            ])
        exec.reset()
        for bad in ["", "-x", "a b", "@t", "a,b", String(repeating: "t", count: 1025)] {
            await #expect(throws: LVMError.self) { try await backend.addTag(vg: "vol", name: "v1", tag: bad) }
        }
        #expect(exec.calls.isEmpty, "nothing runs for a bad tag")
    }

    @Test func activationConflicts() async throws {
        exec.on(
            ["lvchange", "-asy"], exit: 5,
            stderr: "  LV locked by other host: vol/lv1\n  Failed to lock logical volume vol/lv1.\n")
        exec.on(["lvchange", "-aey"], exit: 5, stderr: "  Cannot access VG vol due to failed lock.\n")
        exec.on(["lvchange", "-an"], exit: 5, stderr: "  Logical volume vol/lv1 in use.\n")
        let sh = await #expect(throws: LVMError.self) { try await backend.activate(vg: "vol", name: "lv1", mode: .shared) }
        #expect(sh?.code == .lockedByOtherHost)
        #expect(sh?.message == "LV locked by other host: vol/lv1")
        let ex = await #expect(throws: LVMError.self) { try await backend.activate(vg: "vol", name: "lv1", mode: .exclusive) }
        #expect(ex?.code == .lockspaceNotStarted)
        let an = await #expect(throws: LVMError.self) { try await backend.deactivate(vg: "vol", name: "lv1") }
        #expect(an?.code == .busy)
    }

    @Test func extendArgvAndErrors() async throws {
        try await backend.extendLV(vg: "vol", name: "v1", newSizeBytes: 16 << 20, sharedUpdate: false)
        exec.on(
            ["lvextend", "--lockopt", "shupdate"],
            stderr: "  WARNING: extending LV with a shared lock, other hosts may require LV refresh.\n")
        try await backend.extendLV(vg: "vol", name: "v1", newSizeBytes: 16 << 20, sharedUpdate: true)
        #expect(
            exec.calls == [
                ["lvextend", "-L", "16777216b", "vol/v1"],
                ["lvextend", "--lockopt", "shupdate", "-L", "16777216b", "vol/v1"],
            ])
        exec.on(["lvextend", "-L"], exit: 5, stderr: "  LV is already locked with incompatible mode: vol/v1\n")
        let error = await #expect(throws: LVMError.self) {
            try await backend.extendLV(vg: "vol", name: "v1", newSizeBytes: 32 << 20, sharedUpdate: false)
        }
        #expect(error?.code == .incompatibleLockMode)
    }

    @Test func extendToCurrentSizeIsNoOp() async throws {
        exec.on(["lvextend"], exit: 5, stderr: "  New size (4 extents) matches existing size (4 extents).\n")
        exec.on(["lvs"], stdout: Self.lvJSON("v1", size: 16 << 20))
        exec.on(["vgs"], stdout: Self.vgJSON)
        try await backend.extendLV(vg: "vol", name: "v1", newSizeBytes: 15 << 20, sharedUpdate: false)
        let error = await #expect(throws: LVMError.self) {
            try await backend.extendLV(vg: "vol", name: "v1", newSizeBytes: 8 << 20, sharedUpdate: false)
        }
        #expect(error?.code == .sizeConflict)
        #expect(error?.argv.first == "lvextend")
    }

    @Test func removeChecksLocalActivationFirst() async throws {
        exec.on(["lvs"], stdout: Self.lvJSON("v1", size: 4 << 20, attr: "-wi-a-----"), once: true)
        let busy = await #expect(throws: LVMError.self) { try await backend.removeLV(vg: "vol", name: "v1") }
        #expect(busy?.code == .busy)
        #expect(busy?.argv == ["lvremove", "vol/v1"])
        #expect(!exec.calls.contains { $0.first == "lvremove" })

        exec.on(["lvs"], stdout: Self.lvJSON("v1", size: 4 << 20))
        try await backend.removeLV(vg: "vol", name: "v1")
        #expect(exec.calls.last == ["lvremove", "vol/v1"])

        exec.on(["lvremove"], exit: 5, stderr: "  LV locked by other host: vol/v1\n")
        let locked = await #expect(throws: LVMError.self) { try await backend.removeLV(vg: "vol", name: "v1") }
        #expect(locked?.code == .lockedByOtherHost)
    }

    @Test func removeInactiveRunsLvremoveAlone() async throws {
        try await backend.removeInactiveLV(vg: "vol", name: "v1")
        #expect(exec.calls == [["lvremove", "vol/v1"]])

        exec.on(["lvremove"], exit: 5, stderr: "  LV locked by other host: vol/v1\n")
        let locked = await #expect(throws: LVMError.self) { try await backend.removeInactiveLV(vg: "vol", name: "v1") }
        #expect(locked?.code == .lockedByOtherHost)
        let invalid = await #expect(throws: LVMError.self) { try await backend.removeInactiveLV(vg: "vol", name: "-x") }
        #expect(invalid?.code == .invalidArgument)
        #expect(exec.calls.count == 2)
    }

    @Test func listHidesInternalLVs() async throws {
        exec.on(
            ["lvs"], stdout: ReportModelsTests.lvsAll,
            stderr: "  Skipping global lock: lockspace not found or started\n  Reading VG vol without a lock.\n")
        let lvs = try await backend.listLVs(vg: "vol")
        #expect(exec.calls == [["lvs"] + Self.report + ["-o", Self.lvFields, "vol"]])
        #expect(lvs.map(\.name) == ["volume-0d6c493f-697f-48d5-a2dd-8d7aa2c5542c", "volume-697bd726-e4ae-4c6f-8180-f7dee51421cf"])
    }

    @Test func lvInfoNotFound() async throws {
        exec.on(["lvs"], exit: 5, stderr: "  Failed to find logical volume \"vol/x\"\n")
        let error = await #expect(throws: LVMError.self) { _ = try await backend.lvInfo(vg: "vol", name: "x") }
        #expect(error?.code == .notFound)
    }

    @Test func unparsableReportIsInternal() async throws {
        exec.on(["lvs"], stdout: "not json")
        let error = await #expect(throws: LVMError.self) { _ = try await backend.listLVs(vg: "vol") }
        #expect(error?.code == .internal)
        #expect(error?.argv.first == "lvs")
    }

    @Test func vgInfoAndBootWait() async throws {
        exec.on(["vgs"], stdout: Self.vgJSON)
        let vg = try await backend.vgInfo(vg: "vol")
        #expect(exec.calls == [["vgs"] + Self.report + ["-o", Self.vgFields, "vol"]])
        #expect(vg.shared && vg.freeBytes == 532_676_608)
        #expect(try await backend.pvsPresent(vg: "vol"))
        exec.on(["vgs"], exit: 5, stderr: "  Volume group \"vol\" not found\n  Cannot process volume group vol\n")
        #expect(try await backend.pvsPresent(vg: "vol") == false)
    }

    @Test func lockspaceCommands() async throws {
        exec.on(["sanlock"], stdout: SanlockStatusTests.seed)
        try await backend.lockStart(vg: "vol")
        try await backend.lockStop(vg: "vol")
        #expect(try await backend.lockspaceStarted(vg: "vol"))
        #expect(try await backend.lockspaceStarted(vg: "other") == false)
        let status = try await backend.lockStatus()
        #expect(status.resources.count == 2)
        #expect(
            exec.calls == [
                ["vgchange", "--lock-start", "vol"], ["vgchange", "--lock-stop", "vol"],
                ["sanlock", "client", "status"], ["sanlock", "client", "status"], ["sanlock", "client", "status"],
            ])
        #expect(exec.timeouts.first == .seconds(300), "lock-start gets the long timeout")
    }

    @Test func lockStartThatSilentlyDidNothing() async throws {
        exec.on(["vgchange", "--lock-start"], stderr: "  Skipping global lock: storage failed for sanlock leases\n")
        let error = await #expect(throws: LVMError.self) { try await backend.lockStart(vg: "vol") }
        #expect(error?.code == .lockStorageFailed)
        exec.on(["vgchange", "--lock-start"], stderr: "  Skipping global lock: storage errors for sanlock leases\n")
        let io = await #expect(throws: LVMError.self) { try await backend.lockStart(vg: "vol") }
        #expect(io?.code == .lockStorageFailed && io?.message == "Skipping global lock: storage errors for sanlock leases")
        // A look-alike (the global lock held elsewhere) is not a lost lockspace.
        exec.on(["vgchange", "--lock-start"], stderr: "  Skipping global lock: held by other host\n")
        try await backend.lockStart(vg: "vol")
        exec.on(["vgchange", "--lock-stop"], exit: 5, stderr: "  VG vol stop failed: LVs must first be deactivated\n")
        let stop = await #expect(throws: LVMError.self) { try await backend.lockStop(vg: "vol") }
        #expect(stop?.code == .busy)
    }

    @Test func deviceSize() async throws {
        exec.on(["blockdev"], stdout: "16777216\n", once: true)
        #expect(try await backend.deviceSize(vg: "vol", name: "v1") == 16 << 20)
        #expect(exec.calls.last == ["blockdev", "--getsize64", "/dev/vol/v1"])
        exec.on(["blockdev"], exit: 1, stderr: "blockdev: cannot open /dev/vol/v1: No such file or directory\n")
        #expect(try await backend.deviceSize(vg: "vol", name: "v1") == nil)
    }

    @Test func zeroingAsksTheDeviceFirstThenWritesZeros() async throws {
        #expect(try await backend.fillRange(vg: "vol", name: "v1", offset: 4 << 20, length: 1 << 20, fill: .zeroOffload) == .zeroOffload)
        #expect(
            exec.calls.last == [
                "ionice", "-c2", "-n7", "blkdiscard", "--zeroout", "--offset", "4194304", "--length", "1048576", "/dev/vol/v1",
            ])
        exec.on(
            ["ionice", "-c2", "-n7", "blkdiscard"], exit: 1,
            stderr: "blkdiscard: BLKZEROOUT: /dev/vol/v1 ioctl failed: Operation not supported\n")
        #expect(try await backend.fillRange(vg: "vol", name: "v1", offset: 0, length: 1 << 20, fill: .zeroOffload) == .zeros)
        #expect(
            exec.calls.last == [
                "ionice", "-c2", "-n7", "dd", "if=/dev/zero", "of=/dev/vol/v1", "bs=4M", "seek=0", "count=1048576",
                "iflag=count_bytes,fullblock", "oflag=direct,seek_bytes", "conv=fsync,notrunc", "status=none",
            ])
        #expect(try await backend.fillRange(vg: "vol", name: "v1", offset: 0, length: 1 << 20, fill: .random) == .random)
        #expect(exec.calls.last?.contains("if=/dev/urandom") == true)
    }

    @Test func copyIsDirectAndByteAddressed() async throws {
        try await backend.copyRange(vg: "vol", source: "v1", target: "aos-copy-1", offset: 64 << 20, length: 8 << 20)
        #expect(
            exec.calls.last == [
                "ionice", "-c2", "-n7", "dd", "if=/dev/vol/v1", "of=/dev/vol/aos-copy-1", "bs=4M", "skip=67108864", "seek=67108864",
                "count=8388608", "iflag=direct,skip_bytes,count_bytes,fullblock", "oflag=direct,seek_bytes", "conv=fsync,notrunc",
                "status=none",
            ])
        try await backend.renameLV(vg: "vol", from: "aos-copy-1", to: "volume-2")
        #expect(exec.calls.last == ["lvrename", "vol", "aos-copy-1", "volume-2"])
    }

    @Test func cowSnapshotsAreMadeAndRemovedOnlyWhereActive() async throws {
        let active = Self.lvJSON("aos-cow-1", size: 256 << 20, attr: "swi-a-s---")
        // (each `on` goes before the earlier ones: the answers in reverse order of the calls)
        exec.on(["lvs"], stdout: Self.lvJSON("aos-cow-1", size: 256 << 20, attr: "swi---s---"), once: true)
        exec.on(["lvs"], stdout: Self.lvJSON("volume-1", size: 1 << 30, attr: "owi-a-s---"), once: true)
        exec.on(["lvs"], stdout: Self.lvJSON("aos-cow-1", size: 256 << 20, attr: "swi-I-s---"), once: true)
        exec.on(["lvs"], stdout: active, once: true)
        exec.on(["lvs"], stdout: active, once: true)
        let snap = try await backend.createSnapshot(vg: "vol", origin: "volume-1", name: "aos-cow-1", cowBytes: 256 << 20)
        #expect(exec.calls.first == ["lvcreate", "-s", "-L", "268435456b", "-n", "aos-cow-1", "vol/volume-1"])
        #expect(snap.isSnapshot && snap.activeLocally && !snap.snapshotInvalid)
        try await backend.removeSnapshot(vg: "vol", name: "aos-cow-1")
        #expect(exec.calls.last == ["lvremove", "--yes", "vol/aos-cow-1"])
        // Overflowed: still a snapshot, and says so.
        #expect(try await backend.lvInfo(vg: "vol", name: "aos-cow-1").snapshotInvalid)
        // Not a snapshot, or not active here: nothing is removed.
        let removals = exec.calls.filter { $0.first == "lvremove" }.count
        for name in ["volume-1", "aos-cow-1"] {
            do {
                try await backend.removeSnapshot(vg: "vol", name: name)
                Issue.record("removeSnapshot(\(name)) removed it")
            } catch {
                #expect(error.code == (name == "volume-1" ? .invalidArgument : .notActive))
            }
        }
        #expect(exec.calls.filter { $0.first == "lvremove" }.count == removals)
    }

    @Test func jobIOOnAMissingDeviceIsNotActive() async throws {
        exec.on(["ionice", "-c2", "-n7", "dd"], exit: 1, stderr: "dd: failed to open '/dev/vol/v1': No such file or directory\n")
        let error = await #expect(throws: LVMError.self) {
            _ = try await backend.fillRange(vg: "vol", name: "v1", offset: 0, length: 1 << 20, fill: .zeros)
        }
        #expect(error?.code == .notActive)
    }

    @Test func timeoutBecomesTimedOut() async throws {
        let exec = ScriptedCommandExecutor([.init(prefix: ["lvchange"], termination: .timedOut)])
        let backend = RealLVMBackend(executor: exec, timeouts: .init(command: .seconds(7)))
        let error = await #expect(throws: LVMError.self) { try await backend.activate(vg: "vol", name: "v1", mode: .shared) }
        #expect(error?.code == .timedOut)
        #expect(exec.timeouts == [.seconds(7)])
    }
}
