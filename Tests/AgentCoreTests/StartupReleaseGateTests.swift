import Testing

@testable import AgentCore

/// `[agent] release_startup_pages` fires once, only when the agent both serves and has
/// announced itself (in either order), and answers the key's value.
struct StartupReleaseGateTests {
    @Test func firesOnceAfterBothMilestonesInEitherOrder() {
        for order in [[StartupReleaseGate.Milestone.serving, .announced], [.announced, .serving]] {
            var gate = StartupReleaseGate(enabled: true)
            #expect(gate.reached(order[0]) == nil)
            #expect(gate.reached(order[0]) == nil)
            #expect(gate.reached(order[1]) == true)
            // Later announcements (every interval) and reconnections: never again.
            #expect(gate.reached(.announced) == nil)
            #expect(gate.reached(.serving) == nil)
        }
    }

    @Test func disabledAnswersFalseOnce() {
        var gate = StartupReleaseGate(enabled: false)
        #expect(gate.reached(.announced) == nil)
        #expect(gate.reached(.serving) == false)
        #expect(gate.reached(.announced) == nil)
    }
}
