import AOSAPI
import RPCWire
import SharedLVM
import SimulatedLVM
import Testing

@testable import AgentCore

/// Jobs (docs/agent.md, "Jobs"): wipe on delete, copy, progress, limits, cancel, restart.
/// Rate-limited jobs park in `ManualJobClock` sleeps between chunks; the tests move that
/// clock, so nothing waits on real time.
@Suite(.timeLimit(.minutes(1))) struct WipeJobTests {
    @Test func deleteReturnsAtOnceAndTheWipeClearsAndRemoves() async throws {
        let c = JobCluster()
        let a = try await c.agent("host-a", hostId: 1)
        try await a.createLVs(["volume-1"])
        c.sim.writeData(vg: "vg1", lv: "volume-1", tag: 7, bytes: 1 << 30)
        c.sim.clearCalls()

        let job = try await a.startJob("delete_lv", ["vg": "vg1", "name": "volume-1"])
        #expect(job.kind == .wipe && job.source == "volume-1" && job.target == JobLVName.wipe(job.id))
        #expect(job.total_bytes == GiB)
        // The volume is gone under its name at once; its extents are held by the hidden LV.
        #expect(!c.names().contains("volume-1"))
        await a.waitForJob(job.id)
        let done = try await a.job(job.id)
        #expect(done.state == .succeeded && done.done_bytes == GiB && done.method == "zeroout" && done.attempts == 1)
        #expect(!c.names().contains(job.target))
        let methods = c.sim.calls(host: "host-a").map(\.method)
        #expect(methods.first == "lvInfo" && methods.contains("renameLV"))
        #expect(Array(methods.suffix(2)) == ["deactivate", "removeLV"])
        // The data was cleared before the LV went (seen on the last chunk's LV state).
        let fills = c.sim.calls(host: "host-a").filter { $0.method == "fillRange" }
        #expect(fills.count == 16 && fills.allSatisfy { $0.arguments.last == "zeroOffload" })
    }

    /// `audit_report` names the agent's jobs, so the audit tells a running wipe's LV from an
    /// orphan one (no agent holds its job).
    @Test func auditReportNamesTheJobsOfItsLVs() async throws {
        let c = JobCluster()
        let a = try await c.agent("host-a", hostId: 1, bytesPerSecond: 1 << 20, chunk: 1 << 20)
        try await a.call("create_lv", ["vg": "vg1", "name": "volume-1", "size_bytes": .int(2 * MiB)])
        let job = try await a.startJob("delete_lv", ["vg": "vg1", "name": "volume-1"])
        await c.clock.sleepers(atLeast: 1)
        let raw = try await a.handle(method: "audit_report", args: [:])
        let report = try JSONValueDecoder().decode(AuditReportResult.self, from: raw)
        #expect(report.job_ids == [job.id])
        #expect(report.vgs.first?.lvs.map(\.name) == [job.target])
        #expect(DriftAudit.compute(DriftInput(reports: [report])).findings.isEmpty)
        var orphaned = report
        orphaned.job_ids = []  // the same LV, but its agent lost its jobs
        #expect(DriftAudit.compute(DriftInput(reports: [orphaned])).findings.map(\.kind) == [.orphanJobLV])
    }

    @Test func theWipeClearsTheData() async throws {
        let c = JobCluster()
        // A rate limit parks the job before the removal, so the cleared LV can be looked at.
        let a = try await c.agent("host-a", hostId: 1, bytesPerSecond: 1 << 20, chunk: 1 << 20)
        try await a.call("create_lv", ["vg": "vg1", "name": "volume-1", "size_bytes": .int(2 * MiB)])
        c.sim.writeData(vg: "vg1", lv: "volume-1", tag: 7, bytes: 2 << 20)
        let job = try await a.startJob("delete_lv", ["vg": "vg1", "name": "volume-1"])
        await c.clock.sleepers(atLeast: 1)
        #expect(c.sim.data(vg: "vg1", lv: job.target) == [1: 7], "first MiB cleared, second not yet")
        let running = try await a.job(job.id)
        #expect(running.state == .running && running.done_bytes == MiB)
        c.clock.release()
        await a.waitForJob(job.id)
        #expect(try await a.job(job.id).state == .succeeded)
    }

    @Test func withoutOffloadItWritesZerosAndSaysSo() async throws {
        let c = JobCluster()
        c.sim.setZeroOffload(false)
        let a = try await c.agent("host-a", hostId: 1)
        try await a.createLVs(["volume-1"])
        let job = try await a.startJob("delete_lv", ["vg": "vg1", "name": "volume-1"])
        await a.waitForJob(job.id)
        #expect(try await a.job(job.id).method == "write_zeros")
        let fills = c.sim.calls(host: "host-a").filter { $0.method == "fillRange" }.map { $0.arguments.last }
        #expect(fills.first == "zeroOffload" && fills.dropFirst().allSatisfy { $0 == "zeros" }, "asks the device once")
    }

    @Test func shredWritesRandomThenZeros() async throws {
        let c = JobCluster()
        let a = try await c.agent("host-a", hostId: 1, clear: .shred)
        try await a.call("create_lv", ["vg": "vg1", "name": "volume-1", "size_bytes": .int(64 * MiB)])
        let job = try await a.startJob("delete_lv", ["vg": "vg1", "name": "volume-1"])
        await a.waitForJob(job.id)
        #expect(try await a.job(job.id).method == "shred")
        let fills = c.sim.calls(host: "host-a").filter { $0.method == "fillRange" }.map { $0.arguments.last }
        #expect(fills == ["random", "zeros"])
    }

    @Test func noneRemovesAtOnceAndClearSizeLimitsTheWipe() async throws {
        let c = JobCluster()
        let a = try await c.agent("host-a", hostId: 1)
        try await a.createLVs(["volume-1", "volume-2"])
        let r = try await a.call("delete_lv", ["vg": "vg1", "name": "volume-1", "volume_clear": "none"])
        #expect(r["job"] == .null && r["changed"] == true)
        #expect(!c.names().contains("volume-1"))
        let job = try await a.startJob("delete_lv", ["vg": "vg1", "name": "volume-2", "volume_clear_size_mb": 100])
        #expect(job.total_bytes == 100 * MiB)
        await a.waitForJob(job.id)
        #expect(try await a.job(job.id).done_bytes == 100 * MiB)
    }

    @Test func anLVHeldElsewhereIsNotRenamed() async throws {
        let c = JobCluster()
        let a = try await c.agent("host-a", hostId: 1)
        let b = try await c.agent("host-b", hostId: 2)
        try await a.createLVs(["volume-1"])
        try await b.call("activate_lv", ["vg": "vg1", "name": "volume-1"])
        await expectError("locked_by_other_host") { try await a.call("delete_lv", ["vg": "vg1", "name": "volume-1"]) }
        #expect(c.names().contains("volume-1"))
        #expect(try await a.call("list_jobs")["jobs"] == .array([]), "a refused delete leaves no job")
    }

    @Test func aFailedWipeStaysVisibleAndIsRetried() async throws {
        let c = JobCluster()
        let a = try await c.agent("host-a", hostId: 1)
        try await a.createLVs(["volume-1"])
        c.sim.failNextIO(1)
        let job = try await a.startJob("delete_lv", ["vg": "vg1", "name": "volume-1"])
        await c.clock.sleepers(atLeast: 1)  // the backoff
        let failed = try await a.job(job.id)
        #expect(failed.state == .failed && failed.error?.code == "internal" && failed.attempts == 1)
        #expect(failed.next_attempt_at == c.clock.wallNow + 10)
        let list = try await a.call("list_jobs")
        #expect(list["failed"] == 1 && list["wiping_bytes"] == .int(GiB))
        let vg = try await a.call("vg_info", ["vg": "vg1"])
        #expect(vg["wiping_lv_count"] == 1 && vg["wiping_bytes"] == .int(GiB) && vg["volume_clear"] == "zero")
        await expectError("busy") { try await a.call("cancel_job", ["id": .string(job.id)]) }
        c.clock.advance(by: 10)
        await a.waitForJob(job.id)
        let done = try await a.job(job.id)
        #expect(done.state == .succeeded && done.attempts == 2 && done.error == nil && done.next_attempt_at == nil)
        #expect(try await a.call("vg_info", ["vg": "vg1"])["wiping_lv_count"] == 0)
    }

    @Test func jobLVsAreRefusedWhateverThePattern() async throws {
        let c = JobCluster()
        let a = try await c.agent("host-a", hostId: 1)
        for method in ["delete_lv", "activate_lv", "deactivate_lv", "refresh_lv"] {
            let e = await expectError("lv_not_managed") { try await a.call(method, ["vg": "vg1", "name": "aos-wipe-1"]) }
            #expect(e?.message.contains("belongs to a job") == true)
        }
        await expectError("lv_not_managed") {
            try await a.call("copy_lv", ["vg": "vg1", "source": "volume-1", "target": "aos-copy-2"])
        }
        await expectError("not_found") { try await a.call("job_info", ["id": "nope"]) }
        await expectError("invalid_argument") { try await a.call("job_info", ["id": ""]) }
    }
}

@Suite(.timeLimit(.minutes(1))) struct JobLimitTests {
    @Test func theRateLimitPacesChunksAndTheProgressShowsIt() async throws {
        let c = JobCluster()
        let a = try await c.agent("host-a", hostId: 1, bytesPerSecond: 2 << 20, chunk: 64 << 20)
        try await a.call("create_lv", ["vg": "vg1", "name": "volume-1", "size_bytes": .int(8 * MiB)])
        let job = try await a.startJob("delete_lv", ["vg": "vg1", "name": "volume-1"])
        var seen: [JobInfo] = []
        for _ in 0..<3 {
            await c.clock.sleepers(atLeast: 1)
            seen.append(try await a.job(job.id))
            c.clock.advance(by: 1)
        }
        await a.waitForJob(job.id)
        // 2 MiB/s: chunks of 2 MiB, the first at once, then one per second of the job clock.
        #expect(seen.map(\.done_bytes) == [2 * MiB, 4 * MiB, 6 * MiB])
        let last = try #require(seen.last)
        #expect(last.rate_bytes_per_second == Double(6 << 20) / 2)
        #expect(last.eta_seconds == Double(2 << 20) / (Double(6 << 20) / 2))
        #expect(seen.first?.eta_seconds == nil, "no rate before the clock moved")
        #expect(try await a.job(job.id).state == .succeeded)
    }

    @Test func atMostMaxConcurrentJobsRun() async throws {
        let c = JobCluster()
        let a = try await c.agent("host-a", hostId: 1, bytesPerSecond: 1 << 20, maxJobs: 1, chunk: 1 << 20)
        for name in ["volume-1", "volume-2"] {
            try await a.call("create_lv", ["vg": "vg1", "name": .string(name), "size_bytes": .int(4 * MiB)])
        }
        let first = try await a.startJob("delete_lv", ["vg": "vg1", "name": "volume-1"])
        await c.clock.sleepers(atLeast: 1)
        let second = try await a.startJob("delete_lv", ["vg": "vg1", "name": "volume-2"])
        let list = try await a.call("list_jobs")
        #expect(list["running"] == 1 && list["queued"] == 1)
        #expect(try await a.job(second.id).state == .queued)
        c.clock.release()
        await a.waitForJob(first.id)
        await a.waitForJob(second.id)
        // One at a time: every chunk of the second comes after the last of the first.
        let fills = c.sim.calls(host: "host-a").filter { $0.method == "fillRange" }.map { $0.arguments[1] }
        #expect(fills == Array(repeating: first.target, count: 4) + Array(repeating: second.target, count: 4))
        #expect(try await a.job(second.id).state == .succeeded)
    }
}

@Suite(.timeLimit(.minutes(1))) struct CopyJobTests {
    @Test func copyMakesTheTargetOnlyWhenComplete() async throws {
        let c = JobCluster()
        let a = try await c.agent("host-a", hostId: 1, bytesPerSecond: 1 << 20, chunk: 1 << 20)
        try await a.call("create_lv", ["vg": "vg1", "name": "volume-src", "size_bytes": .int(4 * MiB)])
        c.sim.writeData(vg: "vg1", lv: "volume-src", tag: 5, bytes: 3 << 20)
        let job = try await a.startJob(
            "copy_lv", ["vg": "vg1", "source": "volume-src", "target": "volume-dst", "size_bytes": .int(8 * MiB), "verify": true])
        #expect(job.kind == .copy && job.total_bytes == 4 * MiB && job.verify)
        await c.clock.sleepers(atLeast: 1)
        #expect(!c.names().contains("volume-dst"), "a half-copied LV never carries the target's name")
        #expect(c.names().contains(JobLVName.copy(job.id)))
        #expect(c.sim.lockHolders(vg: "vg1", lv: "volume-src")?.shared == ["host-a"], "the source is held shared for the copy")
        // The same request again is the same job.
        let again = try await a.call("copy_lv", ["vg": "vg1", "source": "volume-src", "target": "volume-dst"])
        #expect(again["changed"] == false && again["job"]?["id"] == .string(job.id))
        c.clock.release()
        await a.waitForJob(job.id)
        let done = try await a.job(job.id)
        #expect(done.state == .succeeded && done.checksum != nil)
        #expect(c.sim.data(vg: "vg1", lv: "volume-dst") == [0: 5, 1: 5, 2: 5])
        #expect(!c.names().contains(JobLVName.copy(job.id)))
        let holders = c.sim.lockHolders(vg: "vg1", lv: "volume-src")
        #expect(holders?.exclusive == nil && holders?.shared == [], "the source is released again")
        let target = try await a.call("lv_info", ["vg": "vg1", "name": "volume-dst"])
        #expect(target["size_bytes"] == .int(8 * MiB) && target["active"] == false)
    }

    @Test func copyReadsWhereTheSourceIsHeld() async throws {
        let c = JobCluster()
        let a = try await c.agent("host-a", hostId: 1)
        let b = try await c.agent("host-b", hostId: 2)
        try await a.createLVs(["volume-src"])
        try await b.call("activate_lv", ["vg": "vg1", "name": "volume-src"])
        c.sim.writeData(vg: "vg1", lv: "volume-src", tag: 9, bytes: 1 << 20)
        // Not the holder: the job fails and leaves nothing.
        let wrong = try await a.startJob("copy_lv", ["vg": "vg1", "source": "volume-src", "target": "volume-x"])
        await a.waitForJob(wrong.id)
        let failed = try await a.job(wrong.id)
        #expect(failed.state == .failed && failed.error?.code == "locked_by_other_host")
        #expect(!c.names().contains(JobLVName.copy(wrong.id)) && !c.names().contains("volume-x"))
        // The holder copies; its exclusive activation stays as it was.
        let right = try await b.startJob("copy_lv", ["vg": "vg1", "source": "volume-src", "target": "volume-x"])
        await b.waitForJob(right.id)
        #expect(try await b.job(right.id).state == .succeeded)
        #expect(c.sim.data(vg: "vg1", lv: "volume-x") == [0: 9])
        #expect(c.sim.lockHolders(vg: "vg1", lv: "volume-src")?.exclusive == "host-b")
    }

    @Test func cancelRemovesTheHalfWrittenTarget() async throws {
        let c = JobCluster()
        let a = try await c.agent("host-a", hostId: 1, bytesPerSecond: 1 << 20, chunk: 1 << 20)
        try await a.call("create_lv", ["vg": "vg1", "name": "volume-src", "size_bytes": .int(8 * MiB)])
        let job = try await a.startJob("copy_lv", ["vg": "vg1", "source": "volume-src", "target": "volume-dst"])
        await c.clock.sleepers(atLeast: 1)
        let asked = try await a.call("cancel_job", ["id": .string(job.id)])
        #expect(asked["cancel_requested"] == true)
        await a.waitForJob(job.id)
        #expect(try await a.job(job.id).state == .cancelled)
        #expect(c.names() == ["volume-src"])
        #expect(c.sim.lockHolders(vg: "vg1", lv: "volume-src")?.shared == [])
    }

    @Test func copyChecksItsArguments() async throws {
        let c = JobCluster()
        let a = try await c.agent("host-a", hostId: 1)
        try await a.createLVs(["volume-src", "volume-dst"])
        await expectError("already_exists") {
            try await a.call("copy_lv", ["vg": "vg1", "source": "volume-src", "target": "volume-dst"])
        }
        await expectError("size_conflict") {
            try await a.call("copy_lv", ["vg": "vg1", "source": "volume-src", "target": "volume-new", "size_bytes": .int(MiB)])
        }
        await expectError("not_found") { try await a.call("copy_lv", ["vg": "vg1", "source": "volume-none", "target": "volume-new"]) }
        await expectError("invalid_argument") { try await a.call("copy_lv", ["vg": "vg1", "source": "volume-src", "target": "a b"]) }
        #expect(c.names() == ["volume-dst", "volume-src"], "refused copies create nothing")
    }
}

@Suite(.timeLimit(.minutes(1))) struct JobRestartTests {
    @Test func aRestartResumesFromTheLastCheckpoint() async throws {
        let c = JobCluster()
        let a = try await c.agent("host-a", hostId: 1, bytesPerSecond: 1 << 20, chunk: 1 << 20)
        try await a.call("create_lv", ["vg": "vg1", "name": "volume-1", "size_bytes": .int(16 * MiB)])
        let job = try await a.startJob("delete_lv", ["vg": "vg1", "name": "volume-1"])
        for _ in 0..<7 {  // 8 MiB done; the checkpoint every 5 s of job time has 6 MiB on disk
            await c.clock.sleepers(atLeast: 1)
            c.clock.advance(by: 1)
        }
        await c.clock.sleepers(atLeast: 1)
        let path = "\(c.root)/host-a/\(JobFile.name)"
        let atCrash = try #require(readFile(path))
        // A graceful stop writes the exact progress; a crash leaves the last checkpoint.
        await a.stopJobs()
        let stopped = JobFile(directory: "\(c.root)/host-a", host: "host-a").load().records.first
        #expect(stopped?.doneBytes == 8 << 20 && stopped?.state == .queued)
        writeFile(path, atCrash)
        c.sim.clearCalls()

        let again = try await c.agent("host-a", hostId: 1)
        await again.waitForJob(job.id)
        let done = try await again.job(job.id)
        #expect(done.state == .succeeded && done.attempts == 2)
        let offsets = c.sim.calls(host: "host-a").filter { $0.method == "fillRange" }.map { $0.arguments[2] }
        #expect(offsets.first == "\(6 << 20)", "resumed at the checkpoint, not from the start")
        #expect(!c.names().contains(job.target))
    }

    @Test func aJobWhoseCallNeverFinishedIsDropped() async throws {
        let c = JobCluster()
        let a = try await c.agent("host-a", hostId: 1)
        try await a.createLVs(["volume-1", "volume-2"])
        // As if the agent died between recording these jobs and the rename/create.
        var wipe = JobRecord(
            id: "w1", kind: .wipe, vg: "vg1", source: "volume-1", target: "aos-wipe-w1", hidden: "aos-wipe-w1",
            totalBytes: 1 << 30, createdAt: 1)
        wipe.clear = .zero
        let copy = JobRecord(
            id: "c1", kind: .copy, vg: "vg1", source: "volume-2", target: "volume-3", hidden: "aos-copy-c1",
            totalBytes: 1 << 30, createdAt: 2)
        _ = try await SimulatedLVMBackend(cluster: c.sim, hostName: "host-a", hostId: 1)
            .createLV(vg: "vg1", name: "aos-copy-c1", sizeBytes: 1 << 30, activate: false)
        try FileIO.makeDirectories("\(c.root)/host-b")
        try JobFile(directory: "\(c.root)/host-b", host: "host-b").save([wipe, copy])

        let b = try await c.agent("host-b", hostId: 2)
        #expect(b.listJobs().jobs.isEmpty)
        #expect(c.names() == ["volume-1", "volume-2"], "the volume stays; the half-created copy target goes")
    }
}

@Suite(.timeLimit(.minutes(1))) struct JobBoundTests {
    @Test func copiesArePendingAtMostSixtyFourPerAgent() async throws {
        let c = JobCluster()
        let a = try await c.agent("host-a", hostId: 1, bytesPerSecond: 1 << 20, chunk: 1 << 20)
        try await a.call("create_lv", ["vg": "vg1", "name": "volume-src", "size_bytes": .int(4 * MiB)])
        var ids: [String] = []
        for i in 0..<64 {
            ids.append(try await a.startJob("copy_lv", ["vg": "vg1", "source": "volume-src", "target": .string("volume-c\(i)")]).id)
        }
        let refused = await expectError("busy") {
            try await a.call("copy_lv", ["vg": "vg1", "source": "volume-src", "target": "volume-c64"])
        }
        #expect(refused?.details["pending_copies"] == 64)
        #expect(!c.names().contains("volume-c64"))
        c.clock.release()
        for id in ids { await a.waitForJob(id) }
        #expect(try await a.call("list_jobs")["jobs"]?.arrayValue?.count == 64)
        _ = try await a.startJob("copy_lv", ["vg": "vg1", "source": "volume-src", "target": "volume-c64"])
    }
}
