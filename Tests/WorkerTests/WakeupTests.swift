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
        // Margins wide enough for a loaded machine: the first wait's timer (1 s) fires about a second
        // into the second wait, which only the second signal (at about 2 s) may end.
        let waker = Task {
            try await Task.sleep(for: .milliseconds(20))
            wakeup.signal()  // ends the first wait, long before its 1 s timer
            try await Task.sleep(for: .milliseconds(1980))
            wakeup.signal()  // ends the second
        }
        #expect(await elapsed { await wakeup.wait(upTo: .seconds(1)) } < .milliseconds(900))
        // The first wait's timer fires while this one waits: it must not end it.
        let second = await elapsed { await wakeup.wait(upTo: .seconds(10)) }
        #expect(second >= .milliseconds(1500) && second < .seconds(8))
        waker.cancel()
    }
}
