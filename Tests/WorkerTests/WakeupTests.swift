import Testing

@testable import Workers

@Suite("Waking the outbox relay")
struct WakeupTests {
    private func elapsed(_ body: () async -> Void) async -> Duration {
        let start = ContinuousClock.now
        await body()
        return ContinuousClock.now - start
    }

    @Test("A wake-up given while nobody waits ends the next wait at once, and only that one")
    func pendingWakeup() async {
        let wakeup = Wakeup()
        wakeup.signal()
        wakeup.signal()  // two calls before a wait count as one
        #expect(await elapsed { await wakeup.wait(upTo: .seconds(10)) } < .seconds(5))
        #expect(await elapsed { await wakeup.wait(upTo: .milliseconds(100)) } >= .milliseconds(100))
    }

    @Test("A wake-up during a wait ends it; a wait's timer cannot end a later wait")
    func wakeupDuringWait() async {
        let wakeup = Wakeup()
        let waker = Task {
            try await Task.sleep(for: .milliseconds(20))
            wakeup.signal()  // ends the first wait, long before its 200 ms timer
            try await Task.sleep(for: .milliseconds(580))
            wakeup.signal()  // ends the second
        }
        #expect(await elapsed { await wakeup.wait(upTo: .milliseconds(200)) } < .milliseconds(190))
        // The first wait's timer fires while this one waits: it must not end it.
        let second = await elapsed { await wakeup.wait(upTo: .seconds(10)) }
        #expect(second >= .milliseconds(450) && second < .seconds(5))
        waker.cancel()
    }
}
