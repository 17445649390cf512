import Testing

@testable import SharedLVM

struct SanlockStatusTests {
    /// From the seed (operators' guide), verbatim.
    static let seed = """
        daemon b83efaba-0b75-4b30-9b61-9d78195468c3.cn-193980.
        p -1 helper
        p -1 listener
        p 1010 lvmlockd
        p -1 status
        s lvm_sanlock:212:/dev/mapper/vol-lvmlock:0
        r lvm_sanlock:i2gjby-VEc6-APGD-x9if-ldk2-oxxI-XOwExz:/dev/mapper/vol-lvmlock:77594624:4 p 1010
        r lvm_sanlock:PDHtUW-8i1O-ECi4-cxmj-pSAF-hZs2-MVqmcF:/dev/mapper/vol-lvmlock:70254592:2 p 1010
        """

    @Test func parsesSeed() throws {
        let status = try SanlockStatus.parse(Self.seed)
        #expect(status.daemon == "b83efaba-0b75-4b30-9b61-9d78195468c3.cn-193980.")
        #expect(
            status.lockspaces == [
                .init(name: "lvm_sanlock", vg: "vol", hostId: 212, path: "/dev/mapper/vol-lvmlock", offset: 0)
            ])
        #expect(status.lockspace(forVG: "vol")?.hostId == 212)
        #expect(status.resources.count == 2)
        let first = try #require(status.resource(lvUUID: "i2gjby-VEc6-APGD-x9if-ldk2-oxxI-XOwExz"))
        #expect(first.mode == .exclusive)
        #expect(first.leaseVersion == 4)
        #expect(first.offset == 77_594_624)
        #expect(first.pid == 1010)
        #expect(first.lockspace == "lvm_sanlock")
        #expect(first.path == "/dev/mapper/vol-lvmlock")
    }

    @Test func sharedLockAndJoiningLockspace() throws {
        let text = """
            daemon 1b0b2c9e-host2
            p 433 lvmlockd
            s lvm_my-vg:2:/dev/mapper/my--vg-lvmlock:0 ADD
            s lvm_vol:2:/dev/mapper/vol-lvmlock:0
            r lvm_vol:PDHtUW-8i1O-ECi4-cxmj-pSAF-hZs2-MVqmcF:/dev/mapper/vol-lvmlock:70254592:SH p 433
            """
        let status = try SanlockStatus.parse(text)
        #expect(status.lockspace(forVG: "my-vg")?.transition == "ADD")
        #expect(status.lockspace(forVG: "vol")?.transition == nil)
        let r = try #require(status.resources.first)
        #expect(r.mode == .shared && r.leaseVersion == nil && r.pid == 433)
    }

    @Test func escapedColonInPath() throws {
        let status = try SanlockStatus.parse(#"s lvm_vol:7:/dev/disk/by-path/ip-10.0.0.1\:3260-lun-0:0"#)
        #expect(status.lockspaces.first?.path == "/dev/disk/by-path/ip-10.0.0.1:3260-lun-0")
        #expect(status.lockspaces.first?.vg == "vol")
    }

    @Test func emptyWhenNothingJoined() throws {
        let status = try SanlockStatus.parse("daemon abc\np -1 helper\n")
        #expect(status.lockspaces.isEmpty && status.resources.isEmpty)
    }

    @Test func malformedLinesAreErrors() {
        #expect(throws: LVMError.self) { try SanlockStatus.parse("s lvm_vol:notanumber:/dev/mapper/vol-lvmlock:0") }
        #expect(throws: LVMError.self) { try SanlockStatus.parse("r lvm_vol:uuid:/dev/mapper/vol-lvmlock:1:XX p 1") }
    }
}
