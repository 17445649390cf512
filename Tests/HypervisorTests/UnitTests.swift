import HostCommands
import LVMTestSupport
import SharedLVM
import Testing

@testable import Hypervisor

struct LVDevicePathTests {
    @Test(arguments: [
        ("/dev/vgtest/volume-1", "vgtest/volume-1"),
        ("/dev/vg-test/volume-2", "vg-test/volume-2"),
        ("/dev/mapper/vgtest-volume--1", "vgtest/volume-1"),
        ("/dev/mapper/vg--test-volume--2", "vg-test/volume-2"),
        ("/dev/mapper/a---b", "a-/b"),  // libdevmapper pairs dashes from the left
        ("/dev/disk/by-id/dm-name-vg--test-volume--2", "vg-test/volume-2"),
        ("/dev/vg_sanlock/volume-0b1c+x.y", "vg_sanlock/volume-0b1c+x.y"),
    ])
    func lvSpellings(path: String, expected: String) {
        #expect(LVDevicePath.canonical(path) == expected)
    }

    @Test(arguments: [
        "", "/dev/sda", "/dev/dm-3", "vgtest/volume-1", "/dev/vgtest/", "/dev//volume-1", "/dev/vgtest/volume-1/",
        "/dev/mapper/control", "/dev/mapper/vgtest-volume--1-real", "/dev/mapper/-lv", "/dev/mapper/vg-",
        "/dev/disk/by-id/dm-uuid-LVM-abc", "/dev/disk/by-path/x", "/dev/disk/by-id/dm-name-nosep",
        "/dev/mapper/vg", "/dev/vg/-lv", "/dev/vg/..", "/dev/vg/lv with space", "/dev/vg/lv\n",
        "/var/lib/nova/instances/x/disk", "/dev/disk/lv",
    ])
    func notLVPaths(path: String) {
        #expect(LVDevicePath.canonical(path) == nil)
    }

    @Test func matchKeySeparatesLVsFromOtherPaths() {
        #expect(LVDevicePath.matchKey("/dev/vg/lv") == LVDevicePath.matchKey("/dev/mapper/vg-lv"))
        #expect(LVDevicePath.matchKey("vg/lv") != LVDevicePath.matchKey("/dev/vg/lv"))
        #expect(LVDevicePath.matchKey("/srv/a.img") == LVDevicePath.matchKey("/srv/a.img"))
    }
}

struct NameValidationTests {
    @Test(arguments: ["instance-0000002a", "vm 1", "vm.é", String(repeating: "a", count: 255), "7a", "0x1"])
    func accepted(name: String) throws {
        try HypervisorNames.validateDomain(name)
    }

    @Test(arguments: [
        ("", "empty"), ("-vm", "starts with '-'"), ("--help", "starts with '-'"), ("vm\n1", "control"),
        ("vm\u{7f}", "control"), ("vm\u{85}", "control"), ("a\tb", "control"),
        (String(repeating: "a", count: 256), "longer than 255"), (String(repeating: "é", count: 128), "longer than 255"),
        ("42", "domain ID"), ("0d8e63d2-6f8d-4b43-9a36-d1a1f8d1d2e0", "UUID"), ("0D8E63D26F8D4B439A36D1A1F8D1D2E0", "UUID"),
    ])
    func rejected(name: String, reason: String) {
        let error = #expect(throws: HypervisorError.self) { try HypervisorNames.validateDomain(name) }
        #expect(error?.kind == .invalidArgument)
        #expect(error?.message.contains(reason) == true, "\(error?.message ?? "")")
        #expect(error?.argv == [])
        #expect(error?.message.contains("\n") == false)
    }

    @Test(arguments: ["", "-c", "qemu:///system\n", String(repeating: "u", count: 4097)])
    func rejectedURIs(uri: String) {
        #expect(throws: HypervisorError.self) { try HypervisorNames.validateURI(uri) }
    }
}

struct DomainXMLTests {
    @Test func libvirtStyleDump() throws {
        let xml = """
            <domain type='kvm' id='3' xmlns:qemu='http://libvirt.org/schemas/domain/qemu/1.0'>
              <name>instance-00000001</name>
              <metadata><nova:instance xmlns:nova="http://openstack.org/xmlns/libvirt/nova/1.1"><nova:name>a &lt;b&gt;</nova:name></nova:instance></metadata>
              <devices>
                <emulator>/usr/bin/qemu-system-x86_64</emulator>
                <disk type='block' device='disk'>
                  <driver name='qemu' type='raw' cache='none' io='native'/>
                  <source dev='/dev/vg_sanlock/volume-1' index='2'/>
                  <backingStore/>
                  <target dev='vda' bus='virtio'/>
                  <serial>1</serial>
                </disk>
                <disk type="file" device="disk">
                  <source file="/var/lib/nova/instances/a&amp;b/disk &quot;x&quot; &apos;y&apos; &#60;&#x3e;">
                    <seclabel model='dac' relabel='no'/>
                  </source>
                  <backingStore type='file' index='3'>
                    <format type='raw'/>
                    <source file='/var/lib/nova/instances/_base/abc'/>
                  </backingStore>
                  <mirror type='file' file='/tmp/copy' format='raw' job='copy'>
                    <source file='/tmp/copy'/>
                  </mirror>
                  <target dev='vdb' bus='virtio'/>
                </disk>
                <!-- <disk type='block'><source dev='/dev/commented/out'/></disk> -->
                <disk type='network' device='disk'>
                  <source protocol='rbd' name='pool/img'><host name='mon1' port='6789'/></source>
                </disk>
                <disk type='file' device='cdrom'><target dev='hdc' bus='ide'/><readonly/></disk>
                <disk type = 'block' device = 'disk' ><source  dev = "/dev/mapper/vg-lv" /></disk>
                <hostdev mode='subsystem'><source><address domain='0x0000'/></source></hostdev>
                <interface type='bridge'><source bridge='br0'/></interface>
              </devices>
              <seclabel type='dynamic' model='apparmor'><label>a>b</label></seclabel>
            </domain>

            """
        #expect(
            try DomainXML.diskSources(xml) == [
                "/dev/vg_sanlock/volume-1",
                "/var/lib/nova/instances/a&b/disk \"x\" 'y' <>",
                "/dev/mapper/vg-lv",
            ])
    }

    @Test func attributeValuesMayContainTheOtherQuoteAndGreaterThan() throws {
        let xml = #"<domain><devices><disk><source file="/a'b>c"/></disk><disk><source dev='/x"y'/></disk></devices></domain>"#
        #expect(try DomainXML.diskSources(xml) == ["/a'b>c", "/x\"y"])
    }

    @Test func noDisks() throws {
        #expect(try DomainXML.diskSources("<?xml version='1.0'?><domain><devices/></domain>") == [])
        #expect(try DomainXML.diskSources("<domain><disk><source dev='/dev/not/under-devices'/></disk></domain>") == [])
    }

    @Test(arguments: [
        "<domain><devices><disk><source dev='/dev/a/b'/></disk></devices>",  // truncated
        "<domain><devices><disk><source dev='/dev/a/b/></disk></devices></domain>",
        "<domain><devices><disk><source dev=/dev/a/b/></disk></devices></domain>",
        "<domain><devices><disk><source dev='/dev/a&nbsp;b'/></disk></devices></domain>",
        "<domain><devices><disk><source dev='/dev/a&amp b'/></disk></devices></domain>",
        "<domain><devices></disk></devices></domain>",
        "<domain><!-- unterminated </domain>",
        "<domain><devices><disk><source dev",
    ])
    func malformedThrows(xml: String) {
        #expect(throws: DomainXML.ParseError.self) { try DomainXML.diskSources(xml) }
    }
}

/// VirshHypervisor against canned virsh answers: the exact argv and the error mapping.
struct VirshScriptedTests {
    static let uri = "qemu:///system"
    static func virsh(_ args: String...) -> [String] { ["virsh", "-c", uri] + args }

    static func dump(_ disks: String...) -> String {
        "<domain type='kvm'><devices>" + disks.map { "<disk type='block'><source dev='\($0)'/></disk>" }.joined() + "</devices></domain>\n"
    }

    @Test func listsDomainsWithStateAndDisks() async throws {
        let exec = ScriptedCommandExecutor()
        exec.on(Self.virsh("list", "--all", "--name"), stdout: "vm1\nvm 2\n\n")
        exec.on(Self.virsh("domstate", "vm1"), stdout: "paused\n\n")
        exec.on(Self.virsh("domstate", "vm 2"), stdout: "shut off\n\n")
        exec.on(Self.virsh("dumpxml", "vm1"), stdout: Self.dump("/dev/vg/a", "/dev/mapper/vg-b"))
        exec.on(Self.virsh("dumpxml", "vm 2"), stdout: Self.dump())
        let hv = VirshHypervisor(uri: Self.uri, executor: exec, timeout: .seconds(7))
        let domains = try await hv.domains()
        #expect(
            domains == [
                Domain(name: "vm1", running: true, disks: ["/dev/vg/a", "/dev/mapper/vg-b"]),
                Domain(name: "vm 2", running: false, disks: []),
            ])
        #expect(
            exec.calls == [
                Self.virsh("list", "--all", "--name"),
                Self.virsh("domstate", "vm1"), Self.virsh("dumpxml", "vm1"),
                Self.virsh("domstate", "vm 2"), Self.virsh("dumpxml", "vm 2"),
            ])
        #expect(exec.timeouts.allSatisfy { $0 == .seconds(7) })
    }

    @Test(arguments: ["running", "idle", "paused", "in shutdown", "crashed", "pmsuspended", "no state"])
    func activeStates(state: String) async throws {
        let exec = ScriptedCommandExecutor()
        exec.on(Self.virsh("list"), stdout: "vm1\n")
        exec.on(Self.virsh("domstate"), stdout: "\(state)\n\n")
        exec.on(Self.virsh("dumpxml"), stdout: Self.dump())
        #expect(try await VirshHypervisor(uri: Self.uri, executor: exec).domains().map(\.running) == [true])
    }

    @Test func unknownStateIsAnError() async {
        let exec = ScriptedCommandExecutor()
        exec.on(Self.virsh("list"), stdout: "vm1\n")
        exec.on(Self.virsh("domstate"), stdout: "blocked-ish\n")
        let error = await #expect(throws: HypervisorError.self) { try await VirshHypervisor(uri: Self.uri, executor: exec).domains() }
        #expect(error?.message.contains("unexpected output from virsh domstate: 'blocked-ish'") == true)
    }

    @Test func domainVanishingAfterTheListingIsLeftOut() async throws {
        let exec = ScriptedCommandExecutor()
        // `on` puts a response before the earlier ones: general answers first.
        exec.on(Self.virsh("list"), stdout: "gone1\ngone2\nvm\n")
        exec.on(Self.virsh("domstate"), stdout: "running\n")
        exec.on(Self.virsh("dumpxml"), stdout: Self.dump("/dev/vg/lv"))
        exec.on(Self.virsh("domstate", "gone1"), exit: 1, stderr: "error: failed to get domain 'gone1'\n")
        exec.on(Self.virsh("dumpxml", "gone2"), exit: 1, stderr: "error: failed to get domain 'gone2'\n")
        #expect(
            try await VirshHypervisor(uri: Self.uri, executor: exec).domains()
                == [Domain(name: "vm", running: true, disks: ["/dev/vg/lv"])])
    }

    @Test func listingFailureSaysWhatToCheck() async {
        let exec = ScriptedCommandExecutor()
        let stderr =
            "error: failed to connect to the hypervisor\nerror: Failed to connect socket to '/var/run/libvirt/libvirt-sock': No such file or directory\n"
        exec.on(Self.virsh("list"), exit: 1, stderr: stderr)
        let error = await #expect(throws: HypervisorError.self) { try await VirshHypervisor(uri: Self.uri, executor: exec).domains() }
        #expect(error?.kind == .failed)
        #expect(
            error?.message == "cannot list libvirt domains at URI qemu:///system: failed to connect to the hypervisor; "
                + "Failed to connect socket to '/var/run/libvirt/libvirt-sock': No such file or directory; "
                + "check that libvirtd is running and that the URI is right")
        #expect(error?.argv == Self.virsh("list", "--all", "--name"))
        #expect(error?.stderr == stderr)
        #expect(error?.termination == .exited(1))
    }

    @Test func unsafeListedNameIsAnErrorNotSkipped() async {
        let exec = ScriptedCommandExecutor()
        exec.on(Self.virsh("list"), stdout: "ok\n-evil\n")
        let error = await #expect(throws: HypervisorError.self) { try await VirshHypervisor(uri: Self.uri, executor: exec).domains() }
        #expect(error?.message.contains("'-evil'") == true)
        #expect(exec.calls == [Self.virsh("list", "--all", "--name")])  // checked before any per-domain call
    }

    @Test func unparsableXMLIsAnError() async {
        let exec = ScriptedCommandExecutor()
        exec.on(Self.virsh("list"), stdout: "vm\n")
        exec.on(Self.virsh("domstate"), stdout: "running\n")
        exec.on(Self.virsh("dumpxml"), stdout: "<domain><devices>")
        let error = await #expect(throws: HypervisorError.self) { try await VirshHypervisor(uri: Self.uri, executor: exec).domains() }
        #expect(error?.message.contains("cannot read the disks of libvirt domain 'vm'") == true)
        #expect(error?.argv == Self.virsh("dumpxml", "vm"))
    }

    @Test func stopAndStartArgv() async throws {
        let exec = ScriptedCommandExecutor()
        let hv = VirshHypervisor(uri: Self.uri, executor: exec)
        try await hv.stop("instance-1")
        try await hv.start("instance 2")
        #expect(exec.calls == [Self.virsh("destroy", "instance-1"), Self.virsh("start", "instance 2")])
    }

    @Test func idempotentTexts() async throws {
        let exec = ScriptedCommandExecutor()
        // The exact texts of virsh 9.0 (test driver and qemu driver share them).
        exec.on(
            Self.virsh("destroy"), exit: 1,
            stderr: "error: Failed to destroy domain 'vm'\nerror: Requested operation is not valid: domain is not running\n")
        exec.on(Self.virsh("start", "vm"), exit: 1, stderr: "error: Domain is already active\n")
        exec.on(
            Self.virsh("start", "raced"), exit: 1,
            stderr: "error: Failed to start domain 'raced'\nerror: Requested operation is not valid: domain is already running\n")
        let hv = VirshHypervisor(uri: Self.uri, executor: exec)
        try await hv.stop("vm")
        try await hv.start("vm")
        try await hv.start("raced")
    }

    @Test func unknownDomain() async {
        let exec = ScriptedCommandExecutor([], fallback: .exited(1))
        exec.on(Self.virsh("destroy"), exit: 1, stderr: "error: failed to get domain 'nope'\n")
        exec.on(Self.virsh("start"), exit: 1, stderr: "error: failed to get domain 'nope'\n")
        let hv = VirshHypervisor(uri: Self.uri, executor: exec)
        for op in [hv.stop, hv.start] as [@Sendable (String) async throws(HypervisorError) -> Void] {
            let error = await #expect(throws: HypervisorError.self) { try await op("nope") }
            #expect(error?.kind == .domainNotFound)
            #expect(
                error?.message
                    == "libvirt domain 'nope' does not exist at URI qemu:///system; check the name with `virsh -c qemu:///system list --all`"
            )
        }
    }

    @Test func otherFailuresKeepEverything() async {
        let exec = ScriptedCommandExecutor()
        let stderr = "error: Failed to start domain 'vm'\nerror: Cannot access storage file '/dev/vg/lv': No such file or directory\n"
        exec.on(Self.virsh("start"), exit: 1, stderr: stderr)
        exec.on(
            Self.virsh("destroy"), exit: 1,
            stderr: "error: Failed to destroy domain 'vm'\nerror: Failed to terminate process 4242 with SIGKILL: Device or resource busy\n")
        let hv = VirshHypervisor(uri: Self.uri, executor: exec)
        let startError = await #expect(throws: HypervisorError.self) { try await hv.start("vm") }
        #expect(startError?.kind == .failed)
        #expect(
            startError?.message.hasPrefix(
                "cannot start libvirt domain 'vm' at URI qemu:///system: Failed to start domain 'vm'; Cannot access storage file '/dev/vg/lv'"
            ) == true)
        #expect(startError?.stderr == stderr)
        #expect(startError?.argv == Self.virsh("start", "vm"))
        let stopError = await #expect(throws: HypervisorError.self) { try await hv.stop("vm") }
        #expect(stopError?.message.hasPrefix("cannot stop (virsh destroy) libvirt domain 'vm'") == true)
        #expect(stopError?.description.hasSuffix("[virsh -c qemu:///system destroy vm, exit 1]") == true)
    }

    @Test func timeoutAndMissingVirsh() async {
        let exec = ScriptedCommandExecutor([.init(prefix: ["virsh"], termination: .timedOut)])
        let error = await #expect(throws: HypervisorError.self) {
            try await VirshHypervisor(uri: Self.uri, executor: exec, timeout: .seconds(3)).stop("vm")
        }
        #expect(error?.termination == .timedOut)
        #expect(error?.message.contains("did not finish within 3") == true)

        let runner = CommandRunner(searchPath: "/nonexistent")
        let missing = await #expect(throws: HypervisorError.self) { try await VirshHypervisor(uri: Self.uri, executor: runner).domains() }
        #expect(missing?.message.hasPrefix("cannot run virsh (is libvirt-clients installed?)") == true)
        #expect(missing?.argv == Self.virsh("list", "--all", "--name"))
    }

    @Test func badInputRunsNothing() async {
        let exec = ScriptedCommandExecutor()
        let error = await #expect(throws: HypervisorError.self) { try await VirshHypervisor(uri: Self.uri, executor: exec).stop("-x") }
        #expect(error?.kind == .invalidArgument)
        let uriError = await #expect(throws: HypervisorError.self) {
            try await VirshHypervisor(uri: "--readonly", executor: exec).domains()
        }
        #expect(uriError?.kind == .invalidArgument)
        #expect(exec.calls.isEmpty)
    }
}

struct InMemoryTests {
    @Test func keepsStateRecordsCallsAndFails() async throws {
        let hv = InMemoryHypervisor(domains: [
            Domain(name: "vm1", running: true, disks: ["/dev/vg/a"]),
            Domain(name: "vm2", running: false, disks: []),
        ])
        try await hv.stop("vm1")
        try await hv.stop("vm1")
        #expect(hv.current.map(\.running) == [false, false])
        try await hv.start("vm2")
        hv.failing = ["vm1"]
        let error = await #expect(throws: HypervisorError.self) { try await hv.start("vm1") }
        #expect(error?.kind == .failed)
        #expect(try await hv.domains().map(\.running) == [false, true])
        #expect(hv.calls == ["stop vm1", "stop vm1", "start vm2", "start vm1"])
        hv.listingFails = true
        await #expect(throws: HypervisorError.self) { try await hv.domains() }
    }

    @Test func matchingAcrossSpellings() async throws {
        let hv = InMemoryHypervisor(domains: [
            Domain(name: "a", running: true, disks: ["/dev/mapper/vg--x-lv--1", "/srv/cd.iso"]),
            Domain(name: "b", running: false, disks: ["/dev/disk/by-id/dm-name-vg--x-lv--2", "/dev/vg-x/lv-1"]),
            Domain(name: "c", running: true, disks: ["/dev/vg-x/lv-3"]),
        ])
        let matches = try await hv.domains(usingAnyOf: ["/dev/vg-x/lv-1", "/dev/mapper/vg--x-lv--2", "/srv/cd.iso"])
        #expect(matches.map(\.domain.name) == ["a", "b"])
        #expect(
            matches.map(\.disks) == [
                ["/dev/mapper/vg--x-lv--1", "/srv/cd.iso"],
                ["/dev/disk/by-id/dm-name-vg--x-lv--2", "/dev/vg-x/lv-1"],
            ])
        #expect(try await hv.domains(usingAnyOf: []).isEmpty)
    }
}
