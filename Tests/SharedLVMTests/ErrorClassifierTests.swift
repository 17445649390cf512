import HostCommands
import Testing

@testable import SharedLVM

/// Every text here was seen in the lab (lvm-lab-notes.md), with LVM's two-space indent.
struct ErrorClassifierTests {
    struct Case: Sendable, CustomStringConvertible {
        var stderr: String
        var exit: Int32 = 5
        var code: LVMErrorCode
        var line: String? = nil
        var description: String { "\(code.rawValue): \(stderr.prefix(60))" }
    }

    static let cases: [Case] = [
        Case(
            stderr: "  LV locked by other host: vol/lv1\n  Failed to lock logical volume vol/lv1.\n",
            code: .lockedByOtherHost, line: "LV locked by other host: vol/lv1"),
        Case(stderr: "  LV locked by other host: vol/lv1\n", code: .lockedByOtherHost),
        Case(stderr: "  LV is already locked with incompatible mode: vol/lv1\n", code: .incompatibleLockMode),
        Case(stderr: "  Cannot access VG vol due to failed lock.\n", code: .lockspaceNotStarted),
        Case(stderr: "  Global lock failed: check that global lockspace is started\n", code: .lockspaceNotStarted),
        Case(stderr: "  VG vol lock failed: storage failed for sanlock leases\n", code: .lockStorageFailed),
        // ELMERR (-221, sanlock's generic error) is no proof that the lease storage failed,
        // and the "not found" after it must not read as a missing VG.
        Case(
            stderr: "  VG vol lock skipped: error -221\n  Volume group \"vol\" not found\n  Cannot process volume group vol\n",
            code: .internal, line: "VG vol lock skipped: error -221"),
        Case(stderr: "  VG vol stop failed: LVs must first be deactivated\n", code: .busy),
        Case(stderr: "  Logical volume vol/volume-1 in use.\n", code: .busy),
        // lvremove of an LV active here, its prompt answered by /dev/null (lvm2 yes_no_prompt: EOF is no).
        Case(
            stderr: "  Do you really want to remove active logical volume vol/volume-1? [y/n]: [n]\n"
                + "  Logical volume vol/volume-1 not removed.\n", code: .busy),
        Case(stderr: "  Failed to find logical volume \"vol/x\"\n", code: .notFound),
        Case(
            stderr: "  Volume group \"vol\" not found\n  Cannot process volume group vol\n", code: .notFound,
            line: "Volume group \"vol\" not found"),
        Case(
            stderr: "  Volume group \"vol\" has insufficient free space (447 extents): 2560 required.\n",
            code: .insufficientSpace),
        Case(stderr: "  Logical Volume \"dup\" already exists in volume group \"vol\"\n", code: .alreadyExists),
        Case(stderr: "  New size given (2 extents) not larger than existing size (4 extents)\n", code: .sizeConflict),
        Case(stderr: "  New size (4 extents) matches existing size (4 extents).\n", code: .sizeConflict),
        Case(
            stderr: "  lvchange: unrecognized option '--bogus'\n  Error during parsing of command line.\n", exit: 3,
            code: .invalidArgument, line: "Error during parsing of command line."),
        Case(
            stderr: "  /usr/sbin/modprobe failed: 1\n  Required device-mapper target(s) not detected in your kernel.\n",
            code: .internal, line: "Required device-mapper target(s) not detected in your kernel."),
        Case(stderr: "", code: .internal),
        // A warning alone on a successful command is not an error.
        Case(stderr: "  Skipping global lock: lockspace not found or started\n", exit: 0, code: .internal),
    ]

    /// Texts from lvm2's lib/locking/lvmlockd.c that really mean the lease storage failed
    /// (EVGKILLED, ELOCKIO), in each form it prints them.
    static let leaseStorageFailed: [String] = [
        "  VG vol lock failed: storage failed for sanlock leases\n",
        "  VG vol lock skipped: storage failed for sanlock leases\n  Reading VG vol without a lock.\n",
        "  VG vol lock failed: storage errors for sanlock leases\n",
        "  LV vol/volume-1 lock failed: storage failed for sanlock leases\n",
        "  LV vol/volume-1 lock failed: storage errors for sanlock leases\n",
        "  Global lock failed: storage failed for sanlock leases\n",
        "  Global lock failed: storage errors for sanlock leases\n",
        "  Skipping global lock: storage failed for sanlock leases\n",
        "  VG vol lock failed: error -217\n",
        "  LV vol/volume-1 lock failed: error -218\n",
    ]

    /// Look-alikes: lock failures that do not mean the lease storage failed (a lock held
    /// elsewhere, sanlock's generic error, an I/O timeout LVM retries, lease repair,
    /// orphans) and must never mark the lockspace lost.
    static let lookAlikes: [(stderr: String, code: LVMErrorCode)] = [
        ("  VG vol lock failed: error -11\n", .internal),
        ("  VG vol lock failed: held by other host\n  Cannot process volume group vol\n", .internal),
        ("  VG vol lock failed: held by other host (host_id 2 gen 4)\n", .internal),
        ("  Global lock failed: held by other host\n", .internal),
        ("  Global lock failed: error -11\n", .internal),
        ("  VG vol lock failed: error -221\n", .internal),
        ("  VG vol lock failed: lock manager error.\n", .internal),
        ("  Global lock failed: lock manager error\n", .internal),
        ("  VG vol lock failed: io timeout\n", .internal),
        ("  LV vol/volume-1 lock failed: io timeout.\n", .internal),
        ("  LV vol/volume-1 lock failed: sanlock lease needs repair.\n", .internal),
        ("  VG vol lock failed: orphan lock needs to be adopted.\n", .internal),
        ("  LV vol/volume-1 lock failed: adopt found no orphan.\n", .internal),
        ("  LV vol/volume-1 lock failed: error -5\n", .internal),
        ("  VG vol lock failed: error -225\n  Volume group \"vol\" not found\n", .internal),
        ("  LV vol/volume-1 lock failed: error -2\n", .internal),
        ("  LV locked by other host: vol/volume-1 (host_id 2)\n  Failed to lock logical volume vol/volume-1.\n", .lockedByOtherHost),
        ("  LV vol/volume-1 lock failed: lockspace is inactive\n", .internal),
        ("  VG vol lock failed: lock start in progress\n", .internal),
    ]

    @Test(arguments: leaseStorageFailed)
    func leaseStorageFailureIsRecognised(_ stderr: String) {
        #expect(LVMErrorClassifier.classify(exitStatus: 5, stderr: stderr) == .lockStorageFailed)
    }

    @Test func lookAlikesAreNotALostLockspace() {
        for (stderr, code) in Self.lookAlikes {
            #expect(LVMErrorClassifier.classify(exitStatus: 5, stderr: stderr) == code, "\(stderr)")
        }
    }

    @Test(arguments: cases)
    func classifies(_ c: Case) {
        #expect(LVMErrorClassifier.classify(exitStatus: c.exit, stderr: c.stderr) == c.code)
        if let line = c.line {
            #expect(LVMErrorClassifier.diagnose(exitStatus: c.exit, stderr: c.stderr).line == line)
        }
    }

    @Test func errorForTimeoutAndSignal() {
        let argv = ["lvchange", "-aey", "vol/x"]
        let timedOut = LVMErrorClassifier.error(for: CommandResult(argv: argv, termination: .timedOut))
        #expect(timedOut.code == .timedOut)
        #expect(timedOut.argv == argv)
        let killed = LVMErrorClassifier.error(for: CommandResult(argv: argv, termination: .signaled(9)))
        #expect(killed.code == .internal)
        #expect(killed.termination == .signaled(9))
    }

    @Test func errorKeepsArgvStderrAndStatus() {
        let stderr = "  LV locked by other host: vol/lv1\n  Failed to lock logical volume vol/lv1.\n"
        let error = LVMErrorClassifier.error(
            for: CommandResult(
                argv: ["lvchange", "-asy", "vol/lv1"],
                termination: .exited(5), stderr: stderr))
        #expect(
            error
                == LVMError(
                    code: .lockedByOtherHost, message: "LV locked by other host: vol/lv1",
                    stderr: stderr, argv: ["lvchange", "-asy", "vol/lv1"], termination: .exited(5)))
        #expect(error.description.contains("locked_by_other_host"))
        #expect(error.description.contains("lvchange -asy vol/lv1"))
    }

    @Test func wireCodesAreStable() {
        #expect(
            LVMErrorCode.allCases.map(\.rawValue) == [
                "not_found", "already_exists", "insufficient_space", "size_conflict", "locked_by_other_host",
                "incompatible_lock_mode", "lockspace_not_started", "lock_storage_failed", "lockspace_lost", "busy",
                "not_active", "timed_out", "invalid_argument", "internal",
            ])
    }
}
