import Testing

@testable import HostSupport

#if canImport(Glibc)
import Glibc
#endif

/// /proc/PID/maps parsing (hostile-ish input: every line the kernel might write, and some it
/// does not) and the choice of what the agent pages out: only its executable's mappings.
struct StartupPagesTests {
    static let exe = "/usr/bin/aos-agent"

    static let maps = """
        55d0a0000000-55d0a0400000 r--p 00000000 fe:00 4242                       /usr/bin/aos-agent
        55d0a0400000-55d0a2400000 r-xp 00400000 fe:00 4242                       /usr/bin/aos-agent
        55d0a2400000-55d0a2500000 r--p 02400000 fe:00 4242                       /usr/bin/aos-agent
        55d0a2500000-55d0a2600000 rw-p 02500000 fe:00 4242                       /usr/bin/aos-agent
        55d0a2600000-55d0a2700000 rw-p 00000000 00:00 0                          [heap]
        7f0000000000-7f0000021000 rw-p 00000000 00:00 0
        7f1000000000-7f1000010000 r--p 00000000 fe:00 777                        /usr/lib/x86_64-linux-gnu/libc.so.6
        7f1000010000-7f1000100000 r-xp 00010000 fe:00 777                        /usr/lib/x86_64-linux-gnu/libc.so.6
        7f2000000000-7f2000001000 r--s 00000000 00:05 99                         /dev/shm/a file with spaces
        7ffd00000000-7ffd00021000 rw-p 00000000 00:00 0                          [stack]
        7ffd00100000-7ffd00102000 r-xp 00000000 00:00 0                          [vdso]
        ffffffffff600000-ffffffffff601000 --xp 00000000 00:00 0                  [vsyscall]
        """

    @Test func parsesEveryKernelLine() {
        let m = ProcMaps.parse(Self.maps)
        #expect(m.count == 12)
        #expect(
            m[1]
                == ProcMapping(
                    start: 0x55d0_a040_0000, end: 0x55d0_a240_0000, readable: true, writable: false, executable: true,
                    shared: false, offset: 0x40_0000, device: "fe:00", inode: 4242, path: Self.exe))
        #expect(m[4].path == "[heap]" && m[4].inode == 0 && m[4].writable)
        #expect(m[5].path == "" && m[5].size == 0x21000)
        #expect(m[8].path == "/dev/shm/a file with spaces" && m[8].shared && !m[8].writable)
        #expect(m[11].start == 0xffff_ffff_ff60_0000 && !m[11].readable && m[11].executable)
    }

    @Test func skipsMalformedLines() {
        let bad: [Substring] = [
            "", " ", "garbage", "55d0a0000000 r--p 00000000 fe:00 4242 /x",  // no range
            "55d0a0000000-55d0a0000000 r--p 00000000 fe:00 4242 /x",  // empty range
            "55d0a0400000-55d0a0000000 r--p 00000000 fe:00 4242 /x",  // end before start
            "55d0a0000000-55d0a0400000 r--q 00000000 fe:00 4242 /x",  // bad flag
            "55d0a0000000-55d0a0400000 r-- 00000000 fe:00 4242 /x",  // short perms
            "55d0a0000000-55d0a0400000 r--p 0000zz00 fe:00 4242 /x",  // bad offset
            "55d0a0000000-55d0a0400000 r--p 00000000 fe00 4242 /x",  // bad device
            "55d0a0000000-55d0a0400000 r--p 00000000 fe:00 -4242 /x",  // signed inode
            "55d0a0000000-55d0a0400000 r--p 00000000 fe:00 42x2 /x",  // bad inode
            "55d0a0000000-55d0a0400000 r--p 00000000 fe:00",  // no inode
            "+5d0a0000000-55d0a0400000 r--p 00000000 fe:00 1 /x",  // sign in hex
            "1ffffffffffffffff-2ffffffffffffffff r--p 00000000 fe:00 1 /x",  // overflow
            "55d0a0000000-55d0a0400000  r--p 00000000 fe:00 1 /x",  // double space
            "55d0a0000000-55d0a0400000 r--p 00000000 fe:00 99999999999999999999999 /x",  // inode overflow
        ]
        for line in bad { #expect(ProcMaps.parseLine(line) == nil, "\(line)") }
        // A text of only bad lines, CRs and NULs parses to nothing, without trapping.
        #expect(ProcMaps.parse(bad.joined(separator: "\n") + "\r\n\0\n\u{FFFD}") == [])
        // No path, no trailing blank: an anonymous mapping.
        #expect(ProcMaps.parseLine("1000-2000 rw-p 00000000 00:00 0")?.path == "")
    }

    @Test func selectsOnlyTheExecutablesMappings() {
        let selected = ProcMaps.executableMappings(ProcMaps.parse(Self.maps), executablePath: Self.exe, executableInode: 4242)
        #expect(selected.map(\.offset) == [0, 0x40_0000, 0x240_0000, 0x250_0000])
        #expect(selected.allSatisfy { $0.path == Self.exe && $0.inode == 4242 })
    }

    @Test func selectionNeedsPathAndInode() {
        let m = ProcMaps.parse(Self.maps)
        // Another file at the same path (replaced binary: its inode differs): nothing.
        #expect(ProcMaps.executableMappings(m, executablePath: Self.exe, executableInode: 4243).isEmpty)
        // The inode of a library, the executable's path: nothing.
        #expect(ProcMaps.executableMappings(m, executablePath: Self.exe, executableInode: 777).isEmpty)
        // Anonymous mappings have inode 0: never selected.
        #expect(ProcMaps.executableMappings(m, executablePath: "", executableInode: 0).isEmpty)
        #expect(ProcMaps.executableMappings(m, executablePath: "[heap]", executableInode: 0).isEmpty)
        // A path with spaces is matched whole.
        #expect(ProcMaps.executableMappings(m, executablePath: "/dev/shm/a file with spaces", executableInode: 99).count == 1)
        #expect(ProcMaps.executableMappings(m, executablePath: "/dev/shm/a file", executableInode: 99).isEmpty)
    }

    @Test func aDeletedExecutableIsStillItself() {
        // dpkg replaced the binary while the agent ran: maps and /proc/self/exe both say " (deleted)".
        let text = """
            1000-2000 r-xp 00000000 fe:00 4242 /usr/bin/aos-agent (deleted)
            2000-3000 rw-p 00001000 fe:00 4242 /usr/bin/aos-agent (deleted)
            4000-5000 r-xp 00000000 fe:00 5555 /usr/bin/aos-agent
            """
        let m = ProcMaps.parse(text)
        for path in [Self.exe + " (deleted)", Self.exe] {
            #expect(ProcMaps.executableMappings(m, executablePath: path, executableInode: 4242).map(\.start) == [0x1000, 0x2000])
        }
    }

    @Test func statusFields() {
        let status = "Name:\taos-agent\nVmRSS:\t   24012 kB\nRssAnon:\t    2900 kB\nRssFile:\t x kB\nThreads:\t7\n"
        #expect(ProcMaps.statusKilobytes("VmRSS", in: status) == 24012)
        #expect(ProcMaps.statusKilobytes("RssAnon", in: status) == 2900)
        #expect(ProcMaps.statusKilobytes("RssFile", in: status) == nil)
        #expect(ProcMaps.statusKilobytes("Threads", in: status) == nil)
        #expect(ProcMaps.statusKilobytes("VmHWM", in: status) == nil)
        #expect(ProcMaps.statusKilobytes("RSS", in: status) == nil)
    }

    /// This test process's own maps: the parser takes every line the kernel writes, and the
    /// selection finds the test executable's mappings, its code and its writable segment.
    @Test func ownMapsParseWhole() throws {
        let text = try #require(StartupPages.text("/proc/self/maps", limit: 16 << 20))
        let lines = text.split(separator: "\n").count
        let m = ProcMaps.parse(text)
        #expect(m.count == lines)
        let exe = try #require(StartupPages.executable())
        let selected = ProcMaps.executableMappings(m, executablePath: exe.path, executableInode: exe.inode)
        #expect(!selected.isEmpty)
        #expect(selected.contains { $0.executable })
        #expect(selected.contains { $0.writable })
        #expect(selected.allSatisfy { $0.inode == exe.inode })
    }

    /// Paging out this process's own code is harmless: the hint changes no contents, and the
    /// code runs on afterwards (EINVAL on kernels before 5.4 is reported, not thrown).
    @Test func releaseLeavesTheProcessRunning() {
        let outcome = StartupPages.release()
        if outcome.failureCode == nil {
            #expect(outcome.mappings > 0 && outcome.bytesAdvised > 0)
        } else {
            #expect(outcome.unsupported || outcome.failureCode == ENOMEM)
        }
        #expect(outcome.rssBeforeKB != nil && outcome.rssAfterKB != nil)
        // Code of this binary runs again after its pages were paged out.
        #expect(ProcMaps.parseLine("1000-2000 r-xp 00000000 fe:00 1 /x")?.executable == true)
    }
}
