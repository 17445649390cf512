import HostSupport
import Synchronization
import Testing

/// The async primitives' promises: FIFO hand-over, and a cancelled waiter that leaves the
/// queue at once and holds nothing afterwards. Waits poll the observable queue length
/// (`Task.yield`), never a clock.
struct AsyncLocksTests {
    final class Log: Sendable {
        let entries = Mutex<[String]>([])
        func add(_ s: String) { entries.withLock { $0.append(s) } }
        var all: [String] { entries.withLock { $0 } }
    }

    @Test func semaphoreHandsSlotsOverInArrivalOrder() async {
        let s = AsyncSemaphore(1)
        await s.acquire()
        let log = Log()
        var waiters: [Task<Void, Never>] = []
        for i in 0..<3 {
            waiters.append(
                Task {
                    await s.acquire()
                    log.add("\(i)")
                    s.release()
                })
            while s.waiting < i + 1 { await Task.yield() }
        }
        s.release()
        for w in waiters { await w.value }
        #expect(log.all == ["0", "1", "2"])
        #expect(s.available == 1)
    }

    @Test func cancelledSemaphoreWaiterLeavesTheQueueAndLeaksNoSlot() async {
        let s = AsyncSemaphore(1)
        await s.acquire()
        let cancelled = Task { () -> String in
            do { try await s.acquireUnlessCancelled(); return "acquired" } catch { return "cancelled" }
        }
        let log = Log()
        while s.waiting < 1 { await Task.yield() }
        let later = Task {
            await s.acquire()
            log.add("later")
        }
        while s.waiting < 2 { await Task.yield() }
        cancelled.cancel()
        #expect(await cancelled.value == "cancelled")
        #expect(s.waiting == 1, "the cancelled waiter left the queue at once")
        s.release()  // goes to `later`, not to the cancelled waiter
        await later.value
        #expect(log.all == ["later"])
        s.release()
        #expect(s.available == 1, "no slot leaked and none invented")
        #expect(s.waiting == 0)
    }

    @Test func alreadyCancelledTaskDoesNotWaitForASlot() async {
        let s = AsyncSemaphore(1)
        await s.acquire()
        let t = Task { () -> Bool in
            withUnsafeCurrentTask { $0?.cancel() }
            do { try await s.acquireUnlessCancelled(); return true } catch { return false }
        }
        #expect(await t.value == false)
        #expect(s.waiting == 0)
        s.release()
        #expect(s.available == 1)
    }

    @Test func uncancellableAcquireWaitsThroughCancellation() async {
        let s = AsyncSemaphore(1)
        await s.acquire()
        let t = Task {
            await s.acquire(); return "acquired"
        }
        while s.waiting < 1 { await Task.yield() }
        t.cancel()
        s.release()
        #expect(await t.value == "acquired")
        #expect(s.available == 0)
        s.release()
    }

    @Test func keyedLockIsFIFOPerKeyAndIndependentAcrossKeys() async {
        let l = KeyedAsyncLock()
        await l.lock("a")
        await l.lock("b")  // another key does not wait for "a"
        #expect(l.heldKeys == 2)
        let log = Log()
        var waiters: [Task<Void, Never>] = []
        for i in 0..<3 {
            waiters.append(
                Task {
                    await l.lock("a")
                    log.add("\(i)")
                    l.unlock("a")
                })
            while l.waiting(for: "a") < i + 1 { await Task.yield() }
        }
        l.unlock("a")
        for w in waiters { await w.value }
        #expect(log.all == ["0", "1", "2"])
        l.unlock("b")
        #expect(l.heldKeys == 0, "keys without holders take no memory")
    }

    @Test func cancelledLockWaiterLeavesTheQueueAndNeverHoldsTheKey() async {
        let l = KeyedAsyncLock()
        await l.lock("vg/lv")
        let cancelled = Task { () -> String in
            do { try await l.lockUnlessCancelled("vg/lv"); return "locked" } catch { return "cancelled" }
        }
        while l.waiting(for: "vg/lv") < 1 { await Task.yield() }
        cancelled.cancel()
        #expect(await cancelled.value == "cancelled")
        #expect(l.waiting(for: "vg/lv") == 0)
        l.unlock("vg/lv")
        #expect(l.heldKeys == 0, "the key is free: the cancelled waiter did not inherit it")
        // And it can be taken again at once.
        try? await l.lockUnlessCancelled("vg/lv")
        #expect(l.heldKeys == 1)
        l.unlock("vg/lv")
    }

    @Test func oneShotDeliversTheFirstValueToEveryWaiter() async {
        let o = OneShot<Int>()
        let a = Task { await o.value() }
        let b = Task { try? await o.valueUnlessCancelled() }
        while o.waiting < 2 { await Task.yield() }
        #expect(o.fulfil(1))
        #expect(!o.fulfil(2), "later values are dropped")
        #expect(await a.value == 1)
        #expect(await b.value == 1)
        #expect(await o.value() == 1)
    }

    @Test func cancelledOneShotWaiterLeavesAndTheOtherStillGetsTheValue() async {
        let o = OneShot<String>()
        let cancelled = Task { () -> String in
            do { return try await o.valueUnlessCancelled() } catch { return "cancelled" }
        }
        let patient = Task { await o.value() }
        while o.waiting < 2 { await Task.yield() }
        cancelled.cancel()
        #expect(await cancelled.value == "cancelled")
        #expect(o.waiting == 1)
        patient.cancel()  // value() does not give up on cancellation
        o.fulfil("done")
        #expect(await patient.value == "done")
    }
}

struct RetryPolicyTests {
    @Test func delaysDoubleUpToTheMaximum() {
        let p = RetryPolicy(initial: .seconds(1), maximum: .seconds(5))
        #expect((1...5).map { p.delay(afterFailures: $0) } == [.seconds(1), .seconds(2), .seconds(4), .seconds(5), .seconds(5)])
        #expect(p.delay(afterFailures: 1000) == .seconds(5))
        #expect(RetryPolicy.fixed(.seconds(3)).delay(afterFailures: 7) == .seconds(3))
    }

    @Test func runStopsWhenDoneOrOutOfTries() async {
        let calls = Mutex(0)
        let bumpCalls: () async -> Int = {
            calls.withLock {
                $0 += 1; return $0
            }
        }
        let done = await RetryPolicy.fixed(.zero, attempts: 4).run(until: { $0 >= 2 }, bumpCalls)
        #expect(done.value == 2 && done.tries == 2)
        calls.withLock { $0 = 0 }
        let exhausted = await RetryPolicy.fixed(.zero, attempts: 4).run(until: { _ in false }, bumpCalls)
        #expect(exhausted.tries == 4)
        #expect(calls.withLock { $0 } == 4)
    }

    @Test func cancellationEndsTheRetriesWithoutSleeping() async {
        let calls = Mutex(0)
        let t = Task {
            await RetryPolicy(initial: .seconds(3600)).run(until: { _ in false }) {
                calls.withLock { $0 += 1 }
                withUnsafeCurrentTask { $0?.cancel() }
            }
        }
        let outcome = await t.value
        #expect(outcome.tries == 1, "a cancelled task does not sleep an hour for its next try")
        #expect(calls.withLock { $0 } == 1)
    }
}
