import RPCWire

/// Decides what each announcement carries (issue 17): the full `health()` report when it
/// changed since the last full one, when asked to (a change of the active LVs, a
/// (re)connection to the broker) and at least every `fullEvery`-th time; otherwise a heartbeat
/// naming the last full one by its `sent_at`. A heartbeat is ~150 bytes however many LVs the
/// host holds, and costs the controller no report to decode.
public struct AnnouncementPlanner: Sendable {
    public enum Announcement: Sendable, Equatable {
        case full(report: JSONValue)
        /// "Alive; my report is still the one I sent in full at `reportSentAt`."
        case heartbeat(reportSentAt: Double)
    }

    /// `[agent] full_announce_every` (1: every announcement is full, as before heartbeats).
    public let fullEvery: Int
    private var lastFull: (report: JSONValue, sentAt: Double)?
    private var heartbeatsSinceFull = 0

    public init(fullEvery: Int) { self.fullEvery = max(1, fullEvery) }

    /// The announcement to send now, with `report` the current `health()` and `sentAt` its time.
    public mutating func next(report: JSONValue, sentAt: Double, force: Bool) -> Announcement {
        if !force, let last = lastFull, last.report == report, heartbeatsSinceFull + 1 < fullEvery {
            heartbeatsSinceFull += 1
            return .heartbeat(reportSentAt: last.sentAt)
        }
        lastFull = (report, sentAt)
        heartbeatsSinceFull = 0
        return .full(report: report)
    }

    /// The last announcement could not be sent: if it was a full one, no controller has it, so
    /// the next one is full again (a heartbeat naming it would make every controller ask).
    public mutating func sendFailed(_ announcement: Announcement) {
        if case .full = announcement { lastFull = nil }
    }
}
