import RPCWire
import Testing

@testable import AgentCore

/// What each announcement carries (issue 17): full when changed, forced or every Nth time.
@Suite struct AnnouncementPlannerTests {
    let a: JSONValue = ["host": "h", "active_lvs": []]
    let b: JSONValue = ["host": "h", "active_lvs": [["vg": "vg0", "name": "volume-1", "mode": "exclusive"]]]

    @Test func anUnchangedReportGoesAsHeartbeatsNamingTheLastFullOne() {
        var p = AnnouncementPlanner(fullEvery: 3)
        #expect(p.next(report: a, sentAt: 10, force: false) == .full(report: a))
        #expect(p.next(report: a, sentAt: 20, force: false) == .heartbeat(reportSentAt: 10))
        #expect(p.next(report: a, sentAt: 30, force: false) == .heartbeat(reportSentAt: 10))
        // The third after a full one is full again, unchanged or not.
        #expect(p.next(report: a, sentAt: 40, force: false) == .full(report: a))
        #expect(p.next(report: a, sentAt: 50, force: false) == .heartbeat(reportSentAt: 40))
    }

    @Test func aChangedOrForcedReportGoesInFullAtOnce() {
        var p = AnnouncementPlanner(fullEvery: 6)
        _ = p.next(report: a, sentAt: 10, force: false)
        #expect(p.next(report: b, sentAt: 11, force: false) == .full(report: b))
        #expect(p.next(report: b, sentAt: 12, force: true) == .full(report: b))
        #expect(p.next(report: b, sentAt: 13, force: false) == .heartbeat(reportSentAt: 12))
    }

    @Test func aFullReportNotSentIsSentAgain() {
        var p = AnnouncementPlanner(fullEvery: 6)
        let first = p.next(report: a, sentAt: 10, force: false)
        p.sendFailed(first)
        #expect(p.next(report: a, sentAt: 20, force: false) == .full(report: a))
        // A lost heartbeat changes nothing.
        let hb = p.next(report: a, sentAt: 30, force: false)
        p.sendFailed(hb)
        #expect(p.next(report: a, sentAt: 40, force: false) == .heartbeat(reportSentAt: 20))
    }

    @Test func fullEveryOneIsTheOldBehaviour() {
        var p = AnnouncementPlanner(fullEvery: 1)
        for t in 0..<4 { #expect(p.next(report: a, sentAt: Double(t), force: false) == .full(report: a)) }
        #expect(AnnouncementPlanner(fullEvery: 0).fullEvery == 1)
    }
}
