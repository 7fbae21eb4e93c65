import Billing
import Foundation
import MatometeTestSupport
import PostgresNIO
import Store
import Testing

@Suite("Purchase credentials, lock-outs and line addresses in the store")
struct AuthenticationStoreTests {
    @Test("Failed attempts lock the purchase ID and the line at their limits; success clears counts, not locks")
    func lockouts() async throws {
        let database = try await TestDatabase.create(partitions: 4)
        try await database.withStore { store in
            try await store.issueCredential(
                purchaseID: "P-1", lineID: "L0000001", hash: [1, 2, 3], salt: [4, 5], logRounds: 10, blockSize: 8,
                parallelism: 1)
            let policy = LockoutPolicy(failuresPerID: 2, failuresPerLine: 3, duration: .seconds(60))
            #expect(try await !store.recordFailedAttempt(purchaseID: "P-1", lines: ["L0000009"], policy: policy))
            #expect(try await store.recordFailedAttempt(purchaseID: "P-1", lines: ["L0000009"], policy: policy))
            let credential = try #require(try await store.credential(purchaseID: "P-1"))
            #expect(credential.failedAttempts == 2)
            #expect((credential.lockedUntil ?? .distantPast) > Date())
            #expect(try await store.lineLockedUntil("L0000009") == nil)
            // Unknown IDs still count against the line they came from.
            #expect(try await store.recordFailedAttempt(purchaseID: nil, lines: ["L0000009"], policy: policy))
            #expect(try await store.lineLockedUntil("L0000009") != nil)
            // A success elsewhere clears the ID's count, but a running line lock stays.
            try await store.recordSuccessfulAttempt(purchaseID: "P-1", lineID: "L0000009")
            #expect(try await store.credential(purchaseID: "P-1")?.failedAttempts == 0)
            #expect(try await store.lineLockedUntil("L0000009") != nil)
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
