import SharedLVM

/// Two hosts on one shared VG, as the behaviour suite needs them. Both hosts must have
/// the VG's lockspace started when a scenario begins (scenarios leave it that way).
public struct LVMBehaviourHosts: Sendable {
    public var a: any LVMBackend
    public var b: any LVMBackend
    public var vg: String
    /// Prefix of every LV name a scenario creates, so a real VG can be reused across runs.
    public var namePrefix: String
    /// Holds (true) or releases (false) the LV's device open on host A, like a VM does.
    /// nil where that cannot be arranged; scenarios that need it are then skipped.
    public var setOpenOnA: (@Sendable (_ lv: String, _ open: Bool) async throws -> Void)?

    public init(
        a: any LVMBackend, b: any LVMBackend, vg: String, namePrefix: String = "bt-",
        setOpenOnA: (@Sendable (_ lv: String, _ open: Bool) async throws -> Void)? = nil
    ) {
        self.a = a
        self.b = b
        self.vg = vg
        self.namePrefix = namePrefix
        self.setOpenOnA = setOpenOnA
    }

    public func lv(_ suffix: String) -> String { namePrefix + suffix }

    /// Creates `lv(suffix)` on host A, inactive, then activates it there in `mode` if given.
    /// Returns its name.
    public func newLV(_ suffix: String, sizeBytes: UInt64, activeOnA mode: LVActivationMode? = nil) async throws(LVMError) -> String {
        let name = lv(suffix)
        _ = try await a.createLV(vg: vg, name: name, sizeBytes: sizeBytes, activate: false)
        if let mode { try await a.activate(vg: vg, name: name, mode: mode) }
        return name
    }
}

/// A named behavioural check, written once and run against the simulator here and
/// against real lvm2 + lvmlockd + sanlock in the VM lab.
public struct LVMBehaviourScenario: Sendable, CustomStringConvertible {
    public let name: String
    let body: @Sendable (LVMBehaviourHosts) async throws -> Void

    public init(_ name: String, _ body: @escaping @Sendable (LVMBehaviourHosts) async throws -> Void) {
        self.name = name
        self.body = body
    }

    public var description: String { name }

    /// Runs the scenario, then removes every LV it created (also when it failed).
    public func run(_ hosts: LVMBehaviourHosts) async throws {
        do {
            try await body(hosts)
        } catch {
            await LVMBehaviourSuite.cleanUp(hosts)
            throw error
        }
        await LVMBehaviourSuite.cleanUp(hosts)
    }
}

/// A failed expectation, with the scenario step that failed.
public struct LVMBehaviourFailure: Error, Sendable, CustomStringConvertible {
    public var message: String
    public var description: String { message }
}

public enum LVMBehaviourSuite {
    static let MiB: UInt64 = 1 << 20

    /// Runs every scenario with fresh hosts from `makeHosts` (called with the scenario name);
    /// returns the failures by scenario name (empty: all passed).
    public static func runAll(
        makeHosts: @Sendable (_ scenario: String) async throws -> LVMBehaviourHosts
    ) async -> [(scenario: String, error: any Error)] {
        var failures: [(scenario: String, error: any Error)] = []
        for scenario in scenarios {
            do {
                try await scenario.run(try await makeHosts(scenario.name))
            } catch {
                failures.append((scenario.name, error))
            }
        }
        return failures
    }

    /// Best effort: release devices, deactivate on both hosts, remove the scenario's LVs.
    static func cleanUp(_ h: LVMBehaviourHosts) async {
        if (try? await h.b.lockspaceStarted(vg: h.vg)) == false { try? await h.b.lockStart(vg: h.vg) }
        if (try? await h.a.lockspaceStarted(vg: h.vg)) == false { try? await h.a.lockStart(vg: h.vg) }
        guard let lvs = try? await h.a.listLVs(vg: h.vg) else { return }
        for lv in lvs where lv.name.hasPrefix(h.namePrefix) {
            try? await h.setOpenOnA?(lv.name, false)
            try? await h.a.deactivate(vg: h.vg, name: lv.name)
            try? await h.b.deactivate(vg: h.vg, name: lv.name)
            try? await h.a.removeLV(vg: h.vg, name: lv.name)
        }
    }

    // MARK: Expectations

    static func expect(_ condition: Bool, _ message: @autoclosure () -> String) throws {
        if !condition { throw LVMBehaviourFailure(message: message()) }
    }

    static func expectError(
        _ code: LVMErrorCode, _ step: String, _ operation: () async throws(LVMError) -> Void
    ) async throws {
        do {
            try await operation()
        } catch {
            try expect(error.code == code, "\(step): expected \(code.rawValue), got \(error)")
            return
        }
        throw LVMBehaviourFailure(message: "\(step): expected \(code.rawValue), but it succeeded")
    }

    static func lockMode(_ host: any LVMBackend, _ uuid: String) async throws -> LVActivationMode? {
        try await host.lockStatus().resource(lvUUID: uuid)?.mode
    }

    // MARK: Scenarios

    public static let scenarios: [LVMBehaviourScenario] = [
        LVMBehaviourScenario("create inactive") { h in
            let name = h.lv("inactive")
            let extent = try await h.a.vgInfo(vg: h.vg).extentSizeBytes
            let created = try await h.a.createLV(vg: h.vg, name: name, sizeBytes: 5 * MiB, activate: false)
            try expect(
                created.sizeBytes == LVSize.roundUp(5 * MiB, extentSize: extent),
                "size rounded up to extents: \(created.sizeBytes)")
            try expect(!created.activeLocally, "created LV must be inactive on A")
            let onB = try await h.b.lvInfo(vg: h.vg, name: name)
            try expect(onB.uuid == created.uuid && onB.sizeBytes == created.sizeBytes, "B sees the same LV")
            try expect(!onB.activeLocally, "inactive on B")
            let listed = try await h.b.listLVs(vg: h.vg)
            try expect(listed.contains { $0.name == name }, "B lists the new LV")
            try expect(!listed.contains { $0.isInternal }, "internal LVs ([lvmlock]) are hidden")
            try expect(try await lockMode(h.a, created.uuid) == nil, "no lock held after create -an")
            try expect(try await h.a.deviceSize(vg: h.vg, name: name) == nil, "no device on A")
        },
        LVMBehaviourScenario("create active takes exclusive lock") { h in
            let name = h.lv("active")
            let lv = try await h.a.createLV(vg: h.vg, name: name, sizeBytes: 8 * MiB, activate: true)
            try expect(lv.activeLocally, "active on creator")
            try expect(try await lockMode(h.a, lv.uuid) == .exclusive, "creator holds ex lock")
            try await expectError(.lockedByOtherHost, "B -aey") { () throws(LVMError) in
                try await h.b.activate(vg: h.vg, name: name, mode: .exclusive)
            }
        },
        LVMBehaviourScenario("duplicate create") { h in
            let name = try await h.newLV("dup", sizeBytes: 4 * MiB)
            try await expectError(.alreadyExists, "create again on B") { () throws(LVMError) in
                _ = try await h.b.createLV(vg: h.vg, name: name, sizeBytes: 4 * MiB, activate: false)
            }
            try await expectError(.alreadyExists, "create again on A") { () throws(LVMError) in
                _ = try await h.a.createLV(vg: h.vg, name: name, sizeBytes: 8 * MiB, activate: false)
            }
        },
        LVMBehaviourScenario("extend grows, shrink refused, same size is a no-op") { h in
            let name = try await h.newLV("grow", sizeBytes: 8 * MiB)
            try await h.b.extendLV(vg: h.vg, name: name, newSizeBytes: 16 * MiB, sharedUpdate: false)
            try expect(try await h.a.lvInfo(vg: h.vg, name: name).sizeBytes == 16 * MiB, "A sees 16 MiB")
            try await expectError(.sizeConflict, "shrink to 8 MiB") { () throws(LVMError) in
                try await h.a.extendLV(vg: h.vg, name: name, newSizeBytes: 8 * MiB, sharedUpdate: false)
            }
            try await h.a.extendLV(vg: h.vg, name: name, newSizeBytes: 16 * MiB, sharedUpdate: false)
            try expect(try await h.a.lvInfo(vg: h.vg, name: name).sizeBytes == 16 * MiB, "still 16 MiB")
        },
        LVMBehaviourScenario("exclusive on A refuses B, then moves to B") { h in
            let name = h.lv("ex")
            let lv = try await h.a.createLV(vg: h.vg, name: name, sizeBytes: 4 * MiB, activate: false)
            try await h.a.activate(vg: h.vg, name: name, mode: .exclusive)
            try await h.a.activate(vg: h.vg, name: name, mode: .exclusive)  // idempotent
            try await expectError(.lockedByOtherHost, "B -aey") { () throws(LVMError) in
                try await h.b.activate(vg: h.vg, name: name, mode: .exclusive)
            }
            try await expectError(.lockedByOtherHost, "B -asy") { () throws(LVMError) in
                try await h.b.activate(vg: h.vg, name: name, mode: .shared)
            }
            try expect(try await h.a.lvInfo(vg: h.vg, name: name).activeLocally, "active on A")
            try expect(!(try await h.b.lvInfo(vg: h.vg, name: name).activeLocally), "not active on B")
            try expect(try await lockMode(h.a, lv.uuid) == .exclusive, "A holds ex")
            try await h.a.deactivate(vg: h.vg, name: name)
            try await h.b.activate(vg: h.vg, name: name, mode: .exclusive)
            try expect(try await lockMode(h.b, lv.uuid) == .exclusive, "B holds ex")
            try expect(try await lockMode(h.a, lv.uuid) == nil, "A holds nothing")
        },
        LVMBehaviourScenario("shared on both; upgrade only when alone") { h in
            let name = h.lv("sh")
            let lv = try await h.a.createLV(vg: h.vg, name: name, sizeBytes: 4 * MiB, activate: false)
            try await h.a.activate(vg: h.vg, name: name, mode: .shared)
            try await h.b.activate(vg: h.vg, name: name, mode: .shared)
            try expect(try await lockMode(h.a, lv.uuid) == .shared, "A holds sh")
            try expect(try await lockMode(h.b, lv.uuid) == .shared, "B holds sh")
            try await expectError(.lockedByOtherHost, "A -aey while B shares") { () throws(LVMError) in
                try await h.a.activate(vg: h.vg, name: name, mode: .exclusive)
            }
            try await h.b.deactivate(vg: h.vg, name: name)
            try await h.a.activate(vg: h.vg, name: name, mode: .exclusive)
            try expect(try await lockMode(h.a, lv.uuid) == .exclusive, "A upgraded to ex")
        },
        LVMBehaviourScenario("downgrade exclusive to shared on the holder") { h in
            let name = h.lv("down")
            let lv = try await h.a.createLV(vg: h.vg, name: name, sizeBytes: 4 * MiB, activate: false)
            try await h.a.activate(vg: h.vg, name: name, mode: .exclusive)
            try await h.a.activate(vg: h.vg, name: name, mode: .shared)
            try expect(try await h.a.lvInfo(vg: h.vg, name: name).activeLocally, "still active on A")
            try await h.b.activate(vg: h.vg, name: name, mode: .shared)
            try expect(try await lockMode(h.a, lv.uuid) == .shared, "A holds sh")
            try expect(try await lockMode(h.b, lv.uuid) == .shared, "B holds sh")
        },
        LVMBehaviourScenario("extend while shared needs shupdate; others refresh") { h in
            let name = try await h.newLV("shext", sizeBytes: 8 * MiB, activeOnA: .shared)
            try await h.b.activate(vg: h.vg, name: name, mode: .shared)
            try await expectError(.incompatibleLockMode, "plain lvextend while shared") { () throws(LVMError) in
                try await h.a.extendLV(vg: h.vg, name: name, newSizeBytes: 16 * MiB, sharedUpdate: false)
            }
            try await h.a.extendLV(vg: h.vg, name: name, newSizeBytes: 16 * MiB, sharedUpdate: true)
            try expect(try await h.a.deviceSize(vg: h.vg, name: name) == 16 * MiB, "A's device grew")
            try expect(try await h.b.deviceSize(vg: h.vg, name: name) == 8 * MiB, "B's device keeps the old size")
            try expect(try await h.b.lvInfo(vg: h.vg, name: name).sizeBytes == 16 * MiB, "B's metadata says 16 MiB")
            try await h.b.refresh(vg: h.vg, name: name)
            try expect(try await h.b.deviceSize(vg: h.vg, name: name) == 16 * MiB, "B sees 16 MiB after refresh")
        },
        LVMBehaviourScenario("extend on exclusive holder only") { h in
            let name = try await h.newLV("exext", sizeBytes: 8 * MiB, activeOnA: .exclusive)
            try await expectError(.lockedByOtherHost, "B extends A's LV") { () throws(LVMError) in
                try await h.b.extendLV(vg: h.vg, name: name, newSizeBytes: 12 * MiB, sharedUpdate: false)
            }
            try await h.a.extendLV(vg: h.vg, name: name, newSizeBytes: 12 * MiB, sharedUpdate: false)
            try expect(try await h.a.deviceSize(vg: h.vg, name: name) == 12 * MiB, "holder's device grew")
        },
        LVMBehaviourScenario("remove refused while active, then works") { h in
            let name = try await h.newLV("rm", sizeBytes: 4 * MiB, activeOnA: .exclusive)
            try await expectError(.lockedByOtherHost, "B removes LV active on A") { () throws(LVMError) in
                try await h.b.removeLV(vg: h.vg, name: name)
            }
            try await expectError(.busy, "A removes its active LV") { () throws(LVMError) in
                try await h.a.removeLV(vg: h.vg, name: name)
            }
            try await h.a.deactivate(vg: h.vg, name: name)
            try await h.b.removeLV(vg: h.vg, name: name)
            try await expectError(.notFound, "lvInfo after remove") { () throws(LVMError) in
                _ = try await h.a.lvInfo(vg: h.vg, name: name)
            }
            try expect(!(try await h.a.listLVs(vg: h.vg)).contains { $0.name == name }, "not listed")
        },
        LVMBehaviourScenario("not found") { h in
            let name = h.lv("missing")
            try await expectError(.notFound, "lvInfo") { () throws(LVMError) in _ = try await h.a.lvInfo(vg: h.vg, name: name) }
            try await expectError(.notFound, "-aey") { () throws(LVMError) in
                try await h.a.activate(vg: h.vg, name: name, mode: .exclusive)
            }
            try await expectError(.notFound, "-asy") { () throws(LVMError) in
                try await h.a.activate(vg: h.vg, name: name, mode: .shared)
            }
            try await expectError(.notFound, "-an") { () throws(LVMError) in try await h.a.deactivate(vg: h.vg, name: name) }
            try await expectError(.notFound, "refresh") { () throws(LVMError) in try await h.a.refresh(vg: h.vg, name: name) }
            try await expectError(.notFound, "extend") { () throws(LVMError) in
                try await h.a.extendLV(vg: h.vg, name: name, newSizeBytes: 8 * MiB, sharedUpdate: false)
            }
            try await expectError(.notFound, "remove") { () throws(LVMError) in try await h.a.removeLV(vg: h.vg, name: name) }
            try await expectError(.notFound, "vgInfo of a missing VG") { () throws(LVMError) in
                _ = try await h.a.vgInfo(vg: h.vg + "-missing")
            }
            try expect(try await h.a.pvsPresent(vg: h.vg + "-missing") == false, "missing VG has no PVs present")
        },
        LVMBehaviourScenario("insufficient space") { h in
            let vg = try await h.a.vgInfo(vg: h.vg)
            try await expectError(.insufficientSpace, "create larger than free") { () throws(LVMError) in
                _ = try await h.a.createLV(vg: h.vg, name: h.lv("huge"), sizeBytes: vg.freeBytes + 64 * MiB, activate: false)
            }
            let name = h.lv("small")
            let lv = try await h.a.createLV(vg: h.vg, name: name, sizeBytes: 4 * MiB, activate: false)
            try await expectError(.insufficientSpace, "extend larger than free") { () throws(LVMError) in
                try await h.a.extendLV(
                    vg: h.vg, name: name, newSizeBytes: lv.sizeBytes + vg.freeBytes + 64 * MiB,
                    sharedUpdate: false)
            }
        },
        LVMBehaviourScenario("lockspace not started") { h in
            let name = try await h.newLV("nols", sizeBytes: 4 * MiB)
            try await h.b.activate(vg: h.vg, name: name, mode: .exclusive)
            try await expectError(.busy, "lock-stop with an active LV") { () throws(LVMError) in
                try await h.b.lockStop(vg: h.vg)
            }
            try await h.b.deactivate(vg: h.vg, name: name)
            try await h.b.lockStop(vg: h.vg)
            try expect(try await h.b.lockspaceStarted(vg: h.vg) == false, "B's lockspace stopped")
            try await expectError(.lockspaceNotStarted, "create without lockspace") { () throws(LVMError) in
                _ = try await h.b.createLV(vg: h.vg, name: h.lv("nols2"), sizeBytes: 4 * MiB, activate: false)
            }
            try await expectError(.lockspaceNotStarted, "-aey without lockspace") { () throws(LVMError) in
                try await h.b.activate(vg: h.vg, name: name, mode: .exclusive)
            }
            try await expectError(.lockspaceNotStarted, "extend without lockspace") { () throws(LVMError) in
                try await h.b.extendLV(vg: h.vg, name: name, newSizeBytes: 8 * MiB, sharedUpdate: false)
            }
            try await expectError(.lockspaceNotStarted, "remove without lockspace") { () throws(LVMError) in
                try await h.b.removeLV(vg: h.vg, name: name)
            }
            _ = try await h.b.lvInfo(vg: h.vg, name: name)  // reports still work
            try await h.b.lockStart(vg: h.vg)
            try expect(try await h.b.lockspaceStarted(vg: h.vg), "B's lockspace started again")
            try await h.b.activate(vg: h.vg, name: name, mode: .exclusive)
        },
        LVMBehaviourScenario("busy while the device is open") { h in
            guard let setOpen = h.setOpenOnA else { return }
            let name = try await h.newLV("open", sizeBytes: 4 * MiB, activeOnA: .exclusive)
            try await setOpen(name, true)
            try expect(try await h.a.lvInfo(vg: h.vg, name: name).deviceOpen, "attr shows the device open")
            try await expectError(.busy, "-an while open") { () throws(LVMError) in try await h.a.deactivate(vg: h.vg, name: name) }
            try await expectError(.busy, "remove while open") { () throws(LVMError) in try await h.a.removeLV(vg: h.vg, name: name) }
            try await setOpen(name, false)
            try await h.a.deactivate(vg: h.vg, name: name)
        },
        LVMBehaviourScenario("deactivate is idempotent") { h in
            let name = try await h.newLV("idem", sizeBytes: 4 * MiB)
            try await h.a.deactivate(vg: h.vg, name: name)
            try await h.b.deactivate(vg: h.vg, name: name)
            try await h.a.activate(vg: h.vg, name: name, mode: .shared)
            try await h.a.activate(vg: h.vg, name: name, mode: .shared)
            try await h.a.deactivate(vg: h.vg, name: name)
            try await h.a.deactivate(vg: h.vg, name: name)
        },
        LVMBehaviourScenario("job I/O needs the LVs active here") { h in
            let name = try await h.newLV("fill", sizeBytes: 4 * MiB)
            let copy = try await h.newLV("fillcopy", sizeBytes: 4 * MiB)
            try await expectError(.notActive, "fill while inactive") { () throws(LVMError) in
                _ = try await h.a.fillRange(vg: h.vg, name: name, offset: 0, length: MiB, fill: .zeros)
            }
            try await h.a.activate(vg: h.vg, name: name, mode: .exclusive)
            try await expectError(.notActive, "copy into an inactive LV") { () throws(LVMError) in
                try await h.a.copyRange(vg: h.vg, source: name, target: copy, offset: 0, length: MiB)
            }
            _ = try await h.a.fillRange(vg: h.vg, name: name, offset: MiB, length: MiB, fill: .random)
            let used = try await h.a.fillRange(vg: h.vg, name: name, offset: 0, length: MiB, fill: .zeroOffload)
            try expect(used == .zeroOffload || used == .zeros, "zeroing says how it zeroed")
            try await h.a.activate(vg: h.vg, name: copy, mode: .exclusive)
            try await h.a.copyRange(vg: h.vg, source: name, target: copy, offset: 0, length: 4 * MiB)
            let a = try await h.a.checksum(vg: h.vg, name: name, length: 4 * MiB)
            let b = try await h.a.checksum(vg: h.vg, name: copy, length: 4 * MiB)
            try expect(a == b, "a copy has the source's checksum")
            _ = try await h.a.fillRange(vg: h.vg, name: copy, offset: 0, length: 4 * MiB, fill: .zeros)
            try expect(try await h.a.checksum(vg: h.vg, name: copy, length: 4 * MiB) != a, "zeroed: another checksum")
            try await h.a.deactivate(vg: h.vg, name: copy)
        },
        LVMBehaviourScenario("rename needs the LV inactive everywhere and a free name") { h in
            let name = try await h.newLV("ren", sizeBytes: 4 * MiB)
            let other = try await h.newLV("renother", sizeBytes: 4 * MiB)
            try await expectError(.alreadyExists, "rename onto an existing LV") { () throws(LVMError) in
                try await h.a.renameLV(vg: h.vg, from: name, to: other)
            }
            try await h.b.activate(vg: h.vg, name: name, mode: .exclusive)
            try await expectError(.lockedByOtherHost, "rename while B holds it") { () throws(LVMError) in
                try await h.a.renameLV(vg: h.vg, from: name, to: name + "x")
            }
            try await h.b.deactivate(vg: h.vg, name: name)
            try await h.a.renameLV(vg: h.vg, from: name, to: name + "x")
            try await h.a.removeLV(vg: h.vg, name: name + "x")
        },
        LVMBehaviourScenario("tags: VG metadata any host changes, also while another host holds the LV") { h in
            let name = try await h.newLV("tags", sizeBytes: 4 * MiB, activeOnA: .exclusive)
            let tag = ReleaseTag.tag(for: "cmp-1.example_org")!
            try expect(try await h.a.lvInfo(vg: h.vg, name: name).tags.isEmpty, "a new LV has no tags")
            try await h.b.addTag(vg: h.vg, name: name, tag: tag)  // B tags A's exclusive LV
            try await h.b.addTag(vg: h.vg, name: name, tag: "other:tag")
            try expect(try await h.a.lvInfo(vg: h.vg, name: name).tags.sorted() == ["other:tag", tag].sorted(), "A sees both tags")
            try expect(try await h.a.lvInfo(vg: h.vg, name: name).activeLocally, "still active on A")
            let listed = try await h.b.listLVs(vg: h.vg).first { $0.name == name }
            try expect(listed?.tags.contains(tag) == true, "list_lvs reports the tags")
            try await h.a.removeTag(vg: h.vg, name: name, tag: tag)
            try expect(try await h.b.lvInfo(vg: h.vg, name: name).tags == ["other:tag"], "B sees the tag removed")
            try await h.a.removeTag(vg: h.vg, name: name, tag: "other:tag")
            try expect(try await h.b.lvInfo(vg: h.vg, name: name).tags.isEmpty, "no tags left")
            for bad in ["", "-x", "a b", "a,b", "@x", String(repeating: "t", count: 1025)] {
                try await expectError(.invalidArgument, "tag \"\(bad)\"") { () throws(LVMError) in
                    try await h.a.addTag(vg: h.vg, name: name, tag: bad)
                }
            }
            try await expectError(.notFound, "tag a missing LV") { () throws(LVMError) in
                try await h.a.addTag(vg: h.vg, name: h.lv("missing"), tag: tag)
            }
        },
        LVMBehaviourScenario("invalid input is refused") { h in
            for bad in [
                "", "bad name", "-x", "snapshot1", "pvmove0", "x_tmeta", "x_rimage_0", ".", "..", "a/b", "lvmlock",
                String(repeating: "x", count: 128),
            ] {
                try await expectError(.invalidArgument, "create \"\(bad)\"") { () throws(LVMError) in
                    _ = try await h.a.createLV(vg: h.vg, name: bad, sizeBytes: 4 * MiB, activate: false)
                }
            }
            try await expectError(.invalidArgument, "size 0") { () throws(LVMError) in
                _ = try await h.a.createLV(vg: h.vg, name: h.lv("zero-size"), sizeBytes: 0, activate: false)
            }
            try await expectError(.invalidArgument, "size above 1 PiB") { () throws(LVMError) in
                _ = try await h.a.createLV(vg: h.vg, name: h.lv("too-big"), sizeBytes: LVSize.maxBytes + 1, activate: false)
            }
            try await expectError(.invalidArgument, "bad VG name") { () throws(LVMError) in
                try await h.a.activate(vg: "vg;rm", name: h.lv("x"), mode: .exclusive)
            }
        },
        LVMBehaviourScenario("a COW snapshot freezes the origin's content and needs it exclusive here") { h in
            let origin = try await h.newLV("cow-origin", sizeBytes: 8 * MiB)
            let snap = h.lv("cow-snap")
            // An inactive origin: lvcreate -s takes its lock for the moment; the snapshot is inactive.
            let inactive = try await h.a.createSnapshot(vg: h.vg, origin: origin, name: snap, cowBytes: 8 * MiB)
            try expect(inactive.isSnapshot && !inactive.activeLocally, "an inactive snapshot: \(inactive.attr)")
            try await expectError(.notActive, "removeSnapshot of a snapshot not active here") { () throws(LVMError) in
                try await h.a.removeSnapshot(vg: h.vg, name: snap)
            }
            try await h.a.activate(vg: h.vg, name: origin, mode: .exclusive)
            try expect(try await h.a.lvInfo(vg: h.vg, name: snap).activeLocally, "activating the origin activates its snapshot")
            try await h.a.removeSnapshot(vg: h.vg, name: snap)
            try await h.a.deactivate(vg: h.vg, name: origin)
            try await h.b.activate(vg: h.vg, name: origin, mode: .exclusive)
            try await expectError(.lockedByOtherHost, "snapshot on A of an origin held by B") { () throws(LVMError) in
                _ = try await h.a.createSnapshot(vg: h.vg, origin: origin, name: snap, cowBytes: 8 * MiB)
            }
            try await h.b.deactivate(vg: h.vg, name: origin)
            try await h.a.activate(vg: h.vg, name: origin, mode: .shared)
            try await expectError(.incompatibleLockMode, "snapshot of an origin active shared") { () throws(LVMError) in
                _ = try await h.a.createSnapshot(vg: h.vg, origin: origin, name: snap, cowBytes: 8 * MiB)
            }
            try await h.a.activate(vg: h.vg, name: origin, mode: .exclusive)
            _ = try await h.a.fillRange(vg: h.vg, name: origin, offset: 0, length: 4 * MiB, fill: .random)
            let before = try await h.a.checksum(vg: h.vg, name: origin, length: 8 * MiB)
            let created = try await h.a.createSnapshot(vg: h.vg, origin: origin, name: snap, cowBytes: 8 * MiB)
            try expect(created.isSnapshot && created.activeLocally && !created.snapshotInvalid, "an active snapshot: \(created.attr)")
            try expect(try await h.a.lvInfo(vg: h.vg, name: origin).attr.volumeType == .origin, "the LV is an origin now")
            try expect(try await h.a.checksum(vg: h.vg, name: snap, length: 8 * MiB) == before, "the snapshot reads the origin")
            _ = try await h.a.fillRange(vg: h.vg, name: origin, offset: 0, length: 8 * MiB, fill: .zeros)
            try expect(try await h.a.checksum(vg: h.vg, name: snap, length: 8 * MiB) == before, "later writes do not show")
            try expect(!(try await h.a.lvInfo(vg: h.vg, name: snap).snapshotInvalid), "8 MiB of writes fit 8 MiB of COW")
            try await expectError(.lockedByOtherHost, "B takes the origin while A's snapshot exists") { () throws(LVMError) in
                try await h.b.activate(vg: h.vg, name: origin, mode: .shared)
            }
            try await expectError(.invalidArgument, "removeSnapshot of a volume") { () throws(LVMError) in
                try await h.a.removeSnapshot(vg: h.vg, name: origin)
            }
            try await h.a.removeSnapshot(vg: h.vg, name: snap)
            try expect(!(try await h.a.listLVs(vg: h.vg)).contains { $0.name == snap }, "the snapshot is gone")
            try expect(try await h.a.lvInfo(vg: h.vg, name: origin).activeLocally, "the origin stays active")
            try await h.a.deactivate(vg: h.vg, name: origin)
        },
        LVMBehaviourScenario("boot wait sees the PVs") { h in
            try expect(try await h.a.pvsPresent(vg: h.vg), "PVs present on A")
            try expect(try await h.a.lockspaceStarted(vg: h.vg), "A's lockspace started")
            let status = try await h.a.lockStatus()
            try expect(status.lockspace(forVG: h.vg) != nil, "sanlock status lists the VG lockspace")
        },
    ]
}
