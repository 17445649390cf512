import AOSAPI
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// Ctrl-C (SIGINT) while aosctl waits for an answer: the request is already on the broker and
/// its server runs it whether or not anyone waits, so the operator is told so, with where to
/// look, instead of a silent exit (docs/cli.md, "Interrupted commands"). Exit status 130, as a
/// shell reports a SIGINT.
enum Interrupt {
    /// Calls awaiting their reply that change state (`MethodTraits.mutating`), and that do not.
    static let mutatingCalls = Atomic<Int>(0)
    static let readCalls = Atomic<Int>(0)

    /// Installs the handler; before any call (the counters are created here, not in the handler).
    static func install() {
        _ = mutatingCalls.load(ordering: .relaxed) + readCalls.load(ordering: .relaxed)
        // Only async-signal-safe work in the handler: two atomic loads, write(2), _exit(2).
        signal(SIGINT) { _ in
            let message: StaticString =
                Interrupt.mutatingCalls.load(ordering: .relaxed) > 0
                ? """
                \naosctl: interrupted while waiting for the answer; the request was sent and may still run \
                (or have run). Check before retrying: aosctl volume show, aosctl jobs list, aosctl agents.\n
                """
                : Interrupt.readCalls.load(ordering: .relaxed) > 0
                    ? "\naosctl: interrupted; the query changed nothing.\n"
                    : "\naosctl: interrupted.\n"
            _ = write(2, message.utf8Start, message.utf8CodeUnitCount)
            _exit(130)
        }
    }

    /// Counts `body` as a call awaiting its answer while it runs.
    static func waiting<T>(mutating: Bool, _ body: () async throws(CLIError) -> T) async throws(CLIError) -> T {
        if mutating { mutatingCalls.add(1, ordering: .relaxed) } else { readCalls.add(1, ordering: .relaxed) }
        defer {
            if mutating { mutatingCalls.subtract(1, ordering: .relaxed) } else { readCalls.subtract(1, ordering: .relaxed) }
        }
        return try await body()
    }
}
