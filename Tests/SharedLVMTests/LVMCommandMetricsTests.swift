import SharedLVM
import Testing

/// The `command` label of the LVM command metrics: the program, from a fixed set.
struct LVMCommandMetricsTests {
    @Test func commandIsTheProgramFromAFixedSet() {
        #expect(
            LVMCommandMetrics.command(of: LVMCommands.create(vg: "vg", name: "volume-1", sizeBytes: 1 << 30, activate: false)) == "lvcreate"
        )
        #expect(LVMCommandMetrics.command(of: LVMCommands.activate(vg: "vg", name: "volume-1", mode: .shared)) == "lvchange")
        #expect(LVMCommandMetrics.command(of: LVMCommands.sanlockStatus()) == "sanlock")
        #expect(LVMCommandMetrics.command(of: LVMCommands.vgInfo(vg: "vg")) == "vgs")
        // Job I/O runs under ionice: the program after its options.
        #expect(LVMCommandMetrics.command(of: LVMCommands.copy(source: "/dev/vg/a", target: "/dev/vg/b", offset: 0, length: 1)) == "dd")
        #expect(LVMCommandMetrics.command(of: LVMCommands.zeroOut(device: "/dev/vg/a", offset: 0, length: 1)) == "blkdiscard")
        #expect(LVMCommandMetrics.command(of: ["/usr/sbin/lvs", "vg"]) == "lvs")
        #expect(LVMCommandMetrics.command(of: ["volume-1"]) == "other")
        #expect(LVMCommandMetrics.command(of: []) == "other")
        #expect(LVMCommandMetrics.command(of: ["ionice", "-c2"]) == "other")
    }
}
