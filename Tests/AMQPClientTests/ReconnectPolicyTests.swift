import Testing

@testable import AMQPClient

@Suite struct ReconnectPolicyTests {
    private func delays(_ p: inout ReconnectPolicy, _ n: Int) -> [Duration] {
        (0..<n).map { _ in p.attemptFailed() }
    }

    @Test func oneHostDoublesFromInitialUpToMax() {
        var p = ReconnectPolicy(initialDelay: .seconds(1), maxDelay: .seconds(30), hostCount: 1)
        #expect(delays(&p, 7).map { $0 / .seconds(1) } == [1, 2, 4, 8, 16, 30, 30])
        #expect(p.hostIndex == 0)
    }

    @Test func everyHostIsTriedOnceWithoutWaitingBeforeEachBackoff() {
        var p = ReconnectPolicy(initialDelay: .milliseconds(100), maxDelay: .seconds(1), hostCount: 3)
        var hosts: [Int] = [p.hostIndex]
        var got: [Duration] = []
        for _ in 0..<9 {
            got.append(p.attemptFailed())
            hosts.append(p.hostIndex)
        }
        #expect(
            got == [
                .zero, .zero, .milliseconds(100), .zero, .zero, .milliseconds(200),
                .zero, .zero, .milliseconds(400),
            ])
        #expect(hosts == [0, 1, 2, 0, 1, 2, 0, 1, 2, 0])
    }

    @Test func connectingResetsTheCountButStaysOnTheHostThatWorked() {
        var p = ReconnectPolicy(initialDelay: .seconds(1), maxDelay: .seconds(30), hostCount: 2)
        _ = delays(&p, 5)
        #expect(p.failedAttempts == 5 && p.hostIndex == 1)
        p.connected()
        #expect(p.failedAttempts == 0 && p.hostIndex == 1)
        #expect(delays(&p, 2) == [.zero, .seconds(1)])
    }

    @Test func aLostConnectionWaitsTheInitialDelayAndStartsCountingAgain() {
        var p = ReconnectPolicy(initialDelay: .seconds(2), maxDelay: .seconds(30), hostCount: 1)
        _ = delays(&p, 4)
        #expect(p.connectionLost() == .seconds(2))
        #expect(p.failedAttempts == 0)
        #expect(p.attemptFailed() == .seconds(2))
    }

    @Test func theDoublingStopsGrowingLongBeforeItCouldOverflow() {
        var p = ReconnectPolicy(initialDelay: .seconds(1), maxDelay: .seconds(86_400 * 365), hostCount: 1)
        let all = delays(&p, 200)
        #expect(all.max() == .seconds(1024))  // 2^10: the exponent is capped
        #expect(all.last == .seconds(1024))
    }

    @Test func jitterIsAppliedToEveryWaitAndClampedToTheLimits() {
        var p = ReconnectPolicy(
            initialDelay: .seconds(1), maxDelay: .seconds(4), hostCount: 2,
            jitter: { $0 * 3 })
        // No wait between hosts (nothing to spread); each wait tripled, never past maxDelay.
        #expect(delays(&p, 6) == [.zero, .seconds(3), .zero, .seconds(4), .zero, .seconds(4)])
        var q = ReconnectPolicy(
            initialDelay: .seconds(1), maxDelay: .seconds(4), hostCount: 1,
            jitter: { _ in .seconds(-5) })
        #expect(q.attemptFailed() == .zero)
        #expect(q.connectionLost() == .zero)
    }

    @Test func nonsenseSettingsStayTotal() {
        var p = ReconnectPolicy(initialDelay: .seconds(-1), maxDelay: .seconds(-1), hostCount: 0)
        #expect(delays(&p, 3) == [.zero, .zero, .zero])
        #expect(p.hostIndex == 0)
    }

    @Test func theFirstHostIsChosenAndTheRotationGoesOnFromIt() {
        var p = ReconnectPolicy(initialDelay: .seconds(1), maxDelay: .seconds(4), hostCount: 3, firstHost: 2)
        #expect(p.hostIndex == 2)
        _ = p.attemptFailed()
        #expect(p.hostIndex == 0)
        // Out-of-range and negative indexes wrap instead of trapping.
        #expect(ReconnectPolicy(initialDelay: .zero, maxDelay: .zero, hostCount: 3, firstHost: 7).hostIndex == 1)
        #expect(ReconnectPolicy(initialDelay: .zero, maxDelay: .zero, hostCount: 3, firstHost: -1).hostIndex == 2)
    }

    @Test func halfToFullJitterStaysWithinHalfAndAllOfTheDelay() {
        for d in [Duration.seconds(4), .milliseconds(1500), .nanoseconds(3)] {
            for _ in 0..<200 {
                let j = ReconnectPolicy.halfToFull(d)
                #expect(j >= d / 2 && j <= d)
            }
        }
        #expect(ReconnectPolicy.halfToFull(.zero) == .zero)
    }
}
