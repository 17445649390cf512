import Foundation
import HostCommands
import SharedLVM
import Synchronization
import Testing

@testable import Hypervisor

/// The same behaviour, checked against InMemoryHypervisor and against the real `virsh` with
/// libvirt's built-in test driver (`test:///PATH/node.xml`, no daemon). That driver lives
/// inside each virsh process, so every invocation starts again from the XML: scenarios
/// assert what one call does, never state carried from an earlier call.
enum Fixture {
    static let domains: [Domain] = [
        Domain(
            name: "vm-a", running: true,
            disks: ["/dev/vgtest/volume-1", "/var/lib/nova/instances/a&b/disk 'x\"<>.qcow2"]),
        Domain(
            name: "vm-b", running: true,
            disks: ["/dev/mapper/vg--test-volume--2", "/dev/disk/by-id/dm-name-vgtest-volume--4"]),
        Domain(name: "vm-off", running: false, disks: ["/dev/vgtest/volume-3"]),
    ]

    /// A node for the test driver. Disks without a path (network, empty CD-ROM) are added
    /// to vm-a: virsh shows them, and they must not appear in `disks`.
    static func nodeXML() -> String {
        var xml = "<node>\n"
        for domain in domains {
            xml += "<domain type='test' xmlns:test='http://libvirt.org/schemas/domain/test/1.0'>\n"
            xml += "<name>\(domain.name)</name><memory>65536</memory><os><type>hvm</type></os>\n<devices>\n"
            for (i, disk) in domain.disks.enumerated() {
                let target = "vd" + String(UnicodeScalar(UInt8(ascii: "a") + UInt8(i)))
                let (type, attribute) = disk.hasPrefix("/dev/") ? ("block", "dev") : ("file", "file")
                xml +=
                    "<disk type='\(type)' device='disk'><source \(attribute)=\"\(escape(disk))\"/><target dev='\(target)' bus='virtio'/></disk>\n"
            }
            if domain.name == "vm-a" {
                xml +=
                    "<disk type='network' device='disk'><source protocol='rbd' name='pool/img'><host name='mon1' port='6789'/></source><target dev='vdz' bus='virtio'/></disk>\n"
                xml += "<disk type='file' device='cdrom'><target dev='hdc' bus='ide'/><readonly/></disk>\n"
            }
            xml += "</devices>\n"
            if !domain.running { xml += "<test:runstate>5</test:runstate>\n" }  // 5 = VIR_DOMAIN_SHUTOFF
            xml += "</domain>\n"
        }
        return xml + "</node>\n"
    }

    static func escape(_ s: String) -> String {
        s.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;")
            .replacingOccurrences(of: ">", with: "&gt;").replacingOccurrences(of: "\"", with: "&quot;")
            .replacingOccurrences(of: "'", with: "&apos;")
    }
}

/// A fresh test-driver node on disk, removed by `close()`.
struct TestDriverNode {
    let dir: URL
    var uri: String { "test://" + dir.appendingPathComponent("node.xml").path }

    init() throws {
        dir = FileManager.default.temporaryDirectory.appendingPathComponent("aos-hv-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        try Fixture.nodeXML().write(to: dir.appendingPathComponent("node.xml"), atomically: true, encoding: .utf8)
    }

    func close() { try? FileManager.default.removeItem(at: dir) }
}

let virshPresent = FileManager.default.isExecutableFile(atPath: "/usr/bin/virsh")

struct Scenario: Sendable, CustomTestStringConvertible {
    let name: String
    let body: @Sendable (any Hypervisor) async throws -> Void
    init(_ name: String, _ body: @escaping @Sendable (any Hypervisor) async throws -> Void) {
        self.name = name
        self.body = body
    }
    var testDescription: String { name }

    static func expectError(
        _ kind: HypervisorError.Kind, mentioning text: String,
        _ body: () async throws(HypervisorError) -> Void
    ) async {
        do {
            try await body()
            Issue.record("expected a \(kind) error mentioning \(text)")
        } catch {
            #expect(error.kind == kind, "\(error)")
            #expect(error.message.contains(text), "\(error)")
        }
    }

    static let all: [Scenario] = [
        Scenario("lists every domain with its state and disks in XML order") { hv in
            let domains = try await hv.domains()
            #expect(domains.sorted { $0.name < $1.name } == Fixture.domains)
        },
        Scenario("matches LV devices in every spelling") { hv in
            let matches = try await hv.domains(usingAnyOf: [
                "/dev/mapper/vgtest-volume--1", "/dev/vg-test/volume-2", "/dev/vgtest/volume-4",
                "/dev/disk/by-id/dm-name-vgtest-volume--3", "/dev/vgtest/volume-99",
            ])
            #expect(matches.map(\.domain.name).sorted() == ["vm-a", "vm-b", "vm-off"])
            let disks = Dictionary(uniqueKeysWithValues: matches.map { ($0.domain.name, $0.disks) })
            #expect(disks["vm-a"] == ["/dev/vgtest/volume-1"])
            #expect(disks["vm-b"] == ["/dev/mapper/vg--test-volume--2", "/dev/disk/by-id/dm-name-vgtest-volume--4"])
            #expect(disks["vm-off"] == ["/dev/vgtest/volume-3"])
            #expect(try await hv.domains(usingAnyOf: ["/dev/othervg/volume-1"]).isEmpty)
        },
        Scenario("stop of a running domain succeeds") { hv in
            try await hv.stop("vm-a")
        },
        Scenario("stop of a shut-off domain is a no-op") { hv in
            try await hv.stop("vm-off")
        },
        Scenario("start of a running domain is a no-op") { hv in
            try await hv.start("vm-b")
        },
        Scenario("start of a shut-off domain succeeds") { hv in
            try await hv.start("vm-off")
        },
        Scenario("stop and start of an unknown domain fail as domainNotFound") { hv in
            await expectError(.domainNotFound, mentioning: "'no-such-vm' does not exist") { () async throws(HypervisorError) in
                try await hv.stop("no-such-vm")
            }
            await expectError(.domainNotFound, mentioning: "'no-such-vm' does not exist") { () async throws(HypervisorError) in
                try await hv.start("no-such-vm")
            }
        },
        Scenario("unsafe names are rejected before anything runs") { hv in
            for name in ["-vm-a", "vm-a\n", "", String(repeating: "v", count: 256), "1"] {
                await expectError(.invalidArgument, mentioning: "invalid libvirt domain name") { () async throws(HypervisorError) in
                    try await hv.stop(name)
                }
                await expectError(.invalidArgument, mentioning: "invalid libvirt domain name") { () async throws(HypervisorError) in
                    try await hv.start(name)
                }
            }
        },
    ]
}

struct BehaviourTests {
    @Test(arguments: Scenario.all)
    func inMemory(_ scenario: Scenario) async throws {
        try await scenario.body(InMemoryHypervisor(domains: Fixture.domains))
    }

    @Test(
        .enabled(if: virshPresent, "/usr/bin/virsh is absent (Debian: apt-get install libvirt-clients)"),
        arguments: Scenario.all)
    func realVirsh(_ scenario: Scenario) async throws {
        let node = try TestDriverNode()
        defer { node.close() }
        try await scenario.body(VirshHypervisor(uri: node.uri))
    }
}

/// Passes commands to the real runner and remembers them.
final class RecordingExecutor: CommandExecuting {
    private let recorded = Mutex<[[String]]>([])
    let runner = CommandRunner()
    var calls: [[String]] { recorded.withLock { $0 } }

    func run(_ argv: [String], timeout: Duration) async throws(CommandLaunchError) -> CommandResult {
        recorded.withLock { $0.append(argv) }
        return try await runner.run(argv, timeout: timeout)
    }
}

/// Proves that the argv VirshHypervisor builds really changes the domain: its command is
/// replayed inside one virsh process (`virsh -c URI 'CMD; domstate X'`), the only way the
/// test driver keeps state from one command to the next.
@Suite(.enabled(if: virshPresent, "/usr/bin/virsh is absent (Debian: apt-get install libvirt-clients)"))
struct RealVirshEffectTests {
    /// The states of `name` before and after running `argv` (minus "virsh -c URI") in one process.
    func replay(_ argv: [String], thenStateOf name: String, uri: String) async throws -> [String] {
        #expect(argv.allSatisfy { !$0.contains("'") })
        let command = argv.dropFirst(3).map { "'\($0)'" }.joined(separator: " ")
        let result = try await CommandRunner().run(
            ["virsh", "-c", uri, "domstate \(name); \(command); domstate \(name)"], timeout: .seconds(30))
        #expect(result.termination.isSuccess, "\(result.stderr)")
        let states: Set<String> = ["running", "shut off"]
        return result.stdout.split(separator: "\n").map { String($0).trimmingSpaces() }.filter(states.contains)
    }

    @Test func destroyReallyStops() async throws {
        let node = try TestDriverNode()
        defer { node.close() }
        let exec = RecordingExecutor()
        try await VirshHypervisor(uri: node.uri, executor: exec).stop("vm-a")
        #expect(exec.calls == [["virsh", "-c", node.uri, "destroy", "vm-a"]])
        #expect(try await replay(exec.calls[0], thenStateOf: "vm-a", uri: node.uri) == ["running", "shut off"])
    }

    @Test func startReallyStarts() async throws {
        let node = try TestDriverNode()
        defer { node.close() }
        let exec = RecordingExecutor()
        try await VirshHypervisor(uri: node.uri, executor: exec).start("vm-off")
        #expect(exec.calls == [["virsh", "-c", node.uri, "start", "vm-off"]])
        #expect(try await replay(exec.calls[0], thenStateOf: "vm-off", uri: node.uri) == ["shut off", "running"])
    }

    @Test func unreadableNodeFileIsAClearListingError() async {
        let hv = VirshHypervisor(uri: "test:///nonexistent/aos-hv/node.xml")
        let error = await #expect(throws: HypervisorError.self) { try await hv.domains() }
        #expect(
            error?.message.hasPrefix("cannot list libvirt domains at URI test:///nonexistent/aos-hv/node.xml: ") == true,
            "\(String(describing: error))")
        #expect(error?.message.contains("failed to connect to the hypervisor") == true)
        #expect(error?.termination == .exited(1))
    }
}
