import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// Gives freed heap memory back to the system after a flood of large messages.
///
/// Glibc raises its mmap threshold dynamically (up to 32 MiB) once a large block is
/// freed, after which megabyte-sized bodies come from the heap and stay there as free
/// chunks; a fixed threshold keeps them mmapped (unmapped on free). `trim()` returns
/// free pages at the top and inside every arena (`malloc_trim(0)`).
enum MemoryReturn {
    /// Blocks from this size are mmapped; messages this large count as "large".
    static let largeMessageBytes = 256 * 1024
    private static let configured = Atomic<Bool>(false)

    /// glibc's `M_MMAP_THRESHOLD` (malloc.h, not exported by the Glibc module).
    private static let mmapThresholdParam: Int32 = -3

    static func configure() {
        guard !configured.exchange(true, ordering: .acquiringAndReleasing) else { return }
        #if canImport(Glibc)
        // Looked up at run time: malloc.h is not part of the Glibc module, and another libc
        // simply has neither function (then this is a no-op).
        guard let sym = dlsym(UnsafeMutableRawPointer(bitPattern: 0), "mallopt") else { return }
        typealias Mallopt = @convention(c) (Int32, Int32) -> Int32
        _ = unsafeBitCast(sym, to: Mallopt.self)(mmapThresholdParam, Int32(largeMessageBytes))
        #endif
    }

    static func trim() {
        #if canImport(Glibc)
        guard let sym = dlsym(UnsafeMutableRawPointer(bitPattern: 0), "malloc_trim") else { return }
        typealias MallocTrim = @convention(c) (Int) -> Int32
        _ = unsafeBitCast(sym, to: MallocTrim.self)(0)
        #endif
    }
}
