import RPCWire

#if canImport(Glibc)
import Glibc
#endif

/// The caller's absolute deadline, carried in the request context as Unix seconds.
///
/// oslo's per-message TTL (`expiration`) only covers the time a request waits in
/// the broker's queue; a server that counts it from receipt can overestimate by
/// the time the message sat queued. Swift callers and the Cinder driver therefore also send
/// `_context_aos_deadline`; other Python callers get the TTL rule alone.
/// Clocks are assumed NTP-synchronised; `skewAllowance` absorbs small offsets.
public enum RPCDeadline {
    public static let contextKey = "aos_deadline"
    public static let skewAllowance: Duration = .milliseconds(500)

    public static func wallClockNow() -> Double {
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
    }

    /// The context key of the wall-clock time (Unix seconds) by which a server must take the
    /// request, or its caller's call monitor has given up on it: no heartbeat can reach the
    /// caller in time. The Cinder driver sets it (publish + call_monitor_timeout - 2 s; the
    /// first heartbeat comes 1 s after a server takes a request), so that a request left in the
    /// queue while its server was down is not run after its caller was told it failed.
    public static let startByKey = "aos_start_by"

    /// Whether the context's `aos_start_by` has passed (with `skewAllowance`); false when absent/invalid.
    public static func startByPassed(_ context: [String: JSONValue], wallNow: Double = wallClockNow()) -> Bool {
        guard let unix = context[startByKey]?.doubleValue, unix.isFinite, unix > 0 else { return false }
        return wallNow > unix + 0.5  // skewAllowance
    }

    /// The deadline on this process's monotonic clock, or nil when absent/invalid.
    public static func instant(
        from context: [String: JSONValue],
        now: ContinuousClock.Instant = .now
    ) -> ContinuousClock.Instant? {
        guard let unix = context[contextKey]?.doubleValue, unix.isFinite, unix > 0 else { return nil }
        let remaining = unix - wallClockNow()
        // Cap absurd values (a caller with a clock far ahead) at one day.
        let capped = max(-86_400, min(86_400, remaining))
        return now + .milliseconds(Int64(capped * 1000)) + skewAllowance
    }
}
