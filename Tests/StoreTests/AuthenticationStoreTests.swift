import Billing
import Foundation
import MatometeTestSupport
import PostgresNIO
import Store
import Testing

@Suite("Purchase credentials, lock-outs and line addresses in the store")
struct AuthenticationStoreTests {
    @Test(
        "Failures lock an ID for the line they came from only, known and unknown IDs alike; a line at its limit locks"
    )
    func lockouts() async throws {
        let database = try await TestDatabase.create(partitions: 4)
        try await database.withStore { store in
            // A purchase ID is issued for a line that exists only.
            await #expect(throws: StoreError.self) {
                try await store.issueCredential(
                    purchaseID: "P-1", lineID: "L0000001", hash: [1], salt: [2], logRounds: 10, blockSize: 8,
                    parallelism: 1)
            }
            try await store.importLines([Line(id: "L0000001", type: .hikariNext)], openCycle: .november)
            try await store.issueCredential(
                purchaseID: "P-1", lineID: "L0000001", hash: [1, 2, 3], salt: [4, 5], logRounds: 10, blockSize: 8,
                parallelism: 1)
            let policy = LockoutPolicy(failuresPerID: 2, failuresPerLine: 3, duration: .seconds(60))
            /// Counts a failure; whether it reached a limit.
            @Sendable func fail(_ id: String, _ line: String, _ policy: LockoutPolicy) async throws -> Bool {
                try await store.recordFailedAttempt(purchaseID: id, lines: [line], policy: policy).reachedLimit
            }
            @Sendable func lineCount(_ line: String) async throws -> Int? {
                try await store.client.fetch(
                    "SELECT failed_attempts FROM line_lockouts WHERE line_id = \(line)", Int.self,
                    logger: TestServer.logger
                ).first
            }
            // Two failures for P-1 from line 9 lock P-1 there, not on its own line 1.
            #expect(try await !fail("P-1", "L0000009", policy))
            #expect(try await fail("P-1", "L0000009", policy))
            #expect(try await store.lockedUntil(purchaseID: "P-1", lines: ["L0000009"]) != nil)
            #expect(try await store.lockedUntil(purchaseID: "P-1", lines: ["L0000001"]) == nil)
            #expect(try await store.lineLockedUntil("L0000009") == nil)
            // An ID nobody holds counts and locks exactly like one that exists.
            #expect(try await !fail("P-none", "L0000008", policy))
            #expect(try await fail("P-none", "L0000008", policy))
            #expect(try await store.lockedUntil(purchaseID: "P-none", lines: ["L0000008"]) != nil)
            // Line 9's third failure, whatever the ID, locks the line for every ID.
            #expect(try await fail("P-none", "L0000009", policy))
            #expect(try await store.lineLockedUntil("L0000009") != nil)
            #expect(try await store.lockedUntil(purchaseID: "P-other", lines: ["L0000009"]) != nil)
            #expect(try await store.lockouts(purchaseID: "P-none").map(\.failedAttempts) == [2, 1])
            // Past a limit already (another attempt locked it meanwhile): over the limit, nothing to check.
            #expect(
                try await store.recordFailedAttempt(purchaseID: "P-x", lines: ["L0000009"], policy: policy).overLimit)
            // A success takes its own count back and clears the ID's count from its own line; the line's
            // other failures stay (a success on one's own ID never wipes one's guesses at others').
            #expect(try await !fail("P-other", "L0000001", policy))
            #expect(try await !fail("P-1", "L0000001", policy))
            try await store.recordSuccessfulAttempt(
                purchaseID: "P-1", lineID: "L0000001", lines: ["L0000001"], policy: policy)
            #expect(try await store.lockouts(purchaseID: "P-1").map(\.lineID) == ["L0000009"])
            #expect(try await lineCount("L0000001") == 1)
            // A check turned away unrun takes its count back, lifting the lock it set.
            #expect(try await fail("P-3", "L0000006", policy) == false)
            #expect(try await fail("P-3", "L0000006", policy))
            try await store.takeBackAttempt(purchaseID: "P-3", lines: ["L0000006"], policy: policy)
            #expect(try await store.lockedUntil(purchaseID: "P-3", lines: ["L0000006"]) == nil)
            #expect(try await store.lockouts(purchaseID: "P-3").map(\.failedAttempts) == [1])
            // When a lock ends, counting starts over: the next failure is the first, not a new lock.
            let brief = LockoutPolicy(failuresPerID: 2, failuresPerLine: 100, duration: .seconds(1))
            #expect(try await !fail("P-2", "L0000007", brief))
            #expect(try await fail("P-2", "L0000007", brief))
            try await Task.sleep(for: .milliseconds(1_100))
            #expect(try await store.lockedUntil(purchaseID: "P-2", lines: ["L0000007"]) == nil)
            #expect(try await !fail("P-2", "L0000007", brief))
            #expect(try await store.lockouts(purchaseID: "P-2").map(\.failedAttempts) == [1])
            // Unlocking a line clears its own lock and every ID's for it.
            #expect(try await store.unlock(lineID: "L0000009"))
            #expect(try await store.lockedUntil(purchaseID: "P-none", lines: ["L0000009"]) == nil)
            #expect(try await store.lockouts(purchaseID: "P-none").map(\.lineID) == ["L0000008"])
            #expect(try await store.revokeCredential(purchaseID: "P-1"))
            #expect(try await !store.revokeCredential(purchaseID: "P-1"))
            #expect(try await store.credential(purchaseID: "P-1")?.isRevoked == true)
        }
    }

    @Test("Addresses: IPv4 and IPv6 prefixes find their line; a new import replaces a line's prefixes")
    func addresses() async throws {
        let database = try await TestDatabase.create(partitions: 4)
        try await database.withStore { store in
            try await store.importLines(
                [Line(id: "L1", type: .hikariNext), Line(id: "L2", type: .hikariNext)], openCycle: .november)
            try await store.assignAddresses(["L1": ["10.0.0.0/24", "2001:db8:1::/48"], "L2": ["10.0.1.0/24"]])
            #expect(try await store.lines(at: "10.0.0.200") == ["L1"])
            #expect(try await store.lines(at: "2001:db8:1:ffff::1") == ["L1"])
            #expect(try await store.lines(at: "10.0.1.1") == ["L2"])
            #expect(try await store.lines(at: "10.0.2.1").isEmpty)
            try await store.assignAddresses(["L1": ["10.0.2.0/24"], "L2": []])
            #expect(try await store.lines(at: "10.0.0.200").isEmpty)
            #expect(try await store.lines(at: "10.0.2.1") == ["L1"])
            #expect(try await store.lines(at: "10.0.1.1").isEmpty)
            // An address belongs to one line; lines must exist. Refused whole: nothing changes.
            await #expect(throws: StoreError.self) { try await store.assignAddresses(["L2": ["10.0.2.128/25"]]) }
            await #expect(throws: StoreError.self) { try await store.assignAddresses(["L3": ["10.0.9.0/24"]]) }
            #expect(try await store.lines(at: "10.0.2.200") == ["L1"])
        }
    }
}
