import Billing
import Contract
import Foundation
import MatometeTestSupport
import PostgresNIO
import Processing
import Store
import Testing

@Suite("Closing cycles and settling")
struct CycleCloseTests {
    /// Two months for three merchants on 40 lines: charges, subscriptions,
    /// cancellations before and after the close, a termination; returns what
    /// was accepted, for the reconciliation.
    static func scenario(_ store: BillingStore) async throws {
        try await store.upsertMerchant(Merchant(id: "m-points", name: "Points shop"))
        try await store.upsertMerchant(Merchant(id: "m-farm", name: "Farming game"))
        try await store.upsertMerchant(Merchant(id: "m-video", name: "Video service"))
        try await store.importLines(Make.lines(40), openCycle: .november)
    }

    @Test("Sums reconcile across two cycles: accepted − cancelled + credits = line bills = settlements' gross")
    func reconciliation() async throws {
        let database = try await TestDatabase.create(partitions: 4)
        try await database.withStore { store in
            try await Self.scenario(store)
            let feeder = Feeder(store)
            var november: [BillingRequest] = []
            for line in 0..<40 {
                let id = "L\(String(format: "%07d", line))"
                november.append(Make.charge("m-points", "p-\(line)", line: id, 1_000))  // ¥1,000: 5% merchant
                november.append(Make.charge("m-farm", "f-\(line)", line: id, 100))  // ¥100: per-line merchant
                if line % 4 == 0 { november.append(Make.subscription("m-video", "v-\(line)", line: id, 500)) }
            }
            november.append(Make.cancelCharge("m-farm", "f-0", line: "L0000000"))  // removed from November
            november.append(Make.lineTermination("L0000039"))
            november.append(Make.charge("m-points", "late", line: "L0000039", 700))  // refused: terminated
            let outcomes = try await feeder.apply(november)
            #expect(outcomes.filter { !$0.isAccepted }.map(\.rejection) == [.lineTerminated])

            try await store.closeAll(.november, maxLines: 7, publishing: CloseMessages())
            let novemberSettlements = try await store.settlements(.november).map(SettlementMessage.init)
            // Accepted: 40 × 1,000 + 39 × 100 (one cancelled) + 10 × 500.
            let novemberExpected: Int64 = 40_000 + 3_900 + 5_000
            let novemberBills = try await billTotal(store, .november)
            #expect(novemberBills == novemberExpected)
            #expect(novemberSettlements.map(\.grossAmount).reduce(0, +) == novemberExpected)
            let points = try #require(novemberSettlements.first { $0.merchantId == "m-points" })
            #expect(
                points.lines == 40 && points.feeRule == "percentage" && points.fee == 2_000
                    && points.netAmount == 38_000)
            let farm = try #require(novemberSettlements.first { $0.merchantId == "m-farm" })
            #expect(farm.lines == 39 && farm.feeRule == "per-line" && farm.fee == 1_228)  // 39 × 31.5 = 1,228.5
            let video = try #require(novemberSettlements.first { $0.merchantId == "m-video" })
            #expect(video.lines == 10 && video.grossAmount == 5_000 && video.feeRule == "per-line" && video.fee == 315)

            // December: cancel a November charge (a credit), cancel a subscription, charge more.
            let december: [BillingRequest] = [
                Make.cancelCharge("m-points", "p-1", line: "L0000001"),  // credit −1,000 on December
                Make.cancelSubscription("m-video", "v-4", line: "L0000004"),  // billed in December, not after
                Make.charge("m-points", "p-dec", line: "L0000002", 2_000),
                Make.cancelCharge("m-points", "p-dec", line: "L0000002"),  // removed again
                Make.charge("m-farm", "f-dec", line: "L0000003", 450),
            ]
            let decemberOutcomes = try await feeder.apply(december)
            #expect(decemberOutcomes.allSatisfy { $0.isAccepted })
            try await store.closeAll(.december, maxLines: 5, publishing: CloseMessages())
            // Subscriptions of the 9 live lines (L39 terminated, its v-36 continues? no: v-36 is on L36).
            // Subscriptions: lines 0,4,…,36 = 10, none on L39, so all 10 billed in December.
            let decemberExpected: Int64 = -1_000 + 10 * 500 + 450
            #expect(try await billTotal(store, .december) == decemberExpected)
            let decemberSettlements = try await store.settlements(.december).map(SettlementMessage.init)
            #expect(decemberSettlements.map(\.grossAmount).reduce(0, +) == decemberExpected)
            let pointsDecember = try #require(decemberSettlements.first { $0.merchantId == "m-points" })
            #expect(
                pointsDecember.grossAmount == -1_000 && pointsDecember.creditAmount == -1_000 && pointsDecember.fee == 0
            )
            #expect(pointsDecember.netAmount == -1_000)

            // January: v-4 is no longer billed.
            try await store.closeAll(.january, publishing: CloseMessages())
            #expect(try await billTotal(store, .january) == 9 * 500)
            // Every line got exactly one bill per cycle, published once.
            let bills = try await store.outboxMessages(topic: "matomete.line-bills")
            #expect(bills.count == 3 * 40)
            #expect(Set(bills.map(\.id)).count == bills.count)
        }
    }

    @Test("Closing a closed cycle changes nothing; cycles close in order")
    func closeIsIdempotentAndOrdered() async throws {
        let database = try await TestDatabase.create(partitions: 2)
        try await database.withStore { store in
            try await Self.scenario(store)
            let feeder = Feeder(store)
            try await feeder.apply([Make.charge("m-points", "c", line: "L0000001", 800)])
            await #expect(throws: StoreError.self) { _ = try await store.startClose(.december) }
            try await store.closeAll(.november, publishing: CloseMessages())
            let before = try await store.outboxMessages(topic: "matomete.settlements")
            try await store.closeAll(.november, publishing: CloseMessages())
            let status = try #require(try await store.closeStatus(.november))
            #expect(status.isClosed && status.linesClosed == 40 && status.shardsDone == 2)
            #expect(try await store.outboxMessages(topic: "matomete.settlements") == before)
        }
    }

    @Test("A close interrupted mid-shard and resumed by another process gives the same bills")
    func interruptedClose() async throws {
        @Sendable func prepare(_ store: BillingStore) async throws {
            try await Self.scenario(store)
            let feeder = Feeder(store)
            var requests: [BillingRequest] = []
            for line in 0..<40 {
                let id = "L\(String(format: "%07d", line))"
                requests.append(Make.charge("m-points", "p-\(line)", line: id, Int64(100 + line * 37)))
                if line % 3 == 0 { requests.append(Make.subscription("m-video", "v-\(line)", line: id, 300)) }
            }
            try await feeder.apply(requests)
        }
        let straight = try await TestDatabase.create(partitions: 3)
        let interrupted = try await TestDatabase.create(partitions: 3)
        try await straight.withStore { store in
            try await prepare(store)
            try await store.closeAll(.november, maxLines: 1000, publishing: CloseMessages())
        }
        try await interrupted.withStore { store in
            try await prepare(store)
            _ = try await store.startClose(.november)
            // Part of shard 0 and 1, then the process "dies" (its client goes away).
            _ = try await store.closeChunk(.november, shard: 0, maxLines: 3, publishing: CloseMessages())
            _ = try await store.closeChunk(.november, shard: 1, maxLines: 4, publishing: CloseMessages())
            _ = try await store.closeChunk(.november, shard: 0, maxLines: 2, publishing: CloseMessages())
        }
        try await interrupted.withStore { store in
            // A chunk whose transaction never commits leaves no trace.
            await #expect(throws: (any Error).self) {
                try await store.client.withTransaction(logger: TestServer.logger) { connection in
                    try await connection.query(
                        "UPDATE cycle_close_shards SET lines_closed = lines_closed + 1000 WHERE shard = 2",
                        logger: TestServer.logger)
                    throw CancellationError()
                }
            }
            try await store.closeAll(.november, maxLines: 5, publishing: CloseMessages())
        }
        let straightBills = try await straight.withStore { try await bills($0) }
        let resumedBills = try await interrupted.withStore { try await bills($0) }
        #expect(straightBills.count == 40)
        #expect(resumedBills == straightBills)
        let straightSettlements = try await straight.withStore {
            try await $0.settlements(.november).map(SettlementMessage.init)
        }
        let resumedSettlements = try await interrupted.withStore {
            try await $0.settlements(.november).map(SettlementMessage.init)
        }
        #expect(resumedSettlements == straightSettlements)
        #expect(straightSettlements.count == 2)
    }

    /// Each line's bill for a cycle, as published.
    func bills(_ store: BillingStore) async throws -> [String: LineBillMessage] {
        let messages = try await store.outboxMessages(topic: "matomete.line-bills").map {
            try JSONDecoder().decode(LineBillMessage.self, from: Data($0.payload))
        }
        return Dictionary(uniqueKeysWithValues: messages.map { ($0.id, $0) })
    }

    func billTotal(_ store: BillingStore, _ cycle: BillingCycle) async throws -> Int64 {
        try await bills(store).values.filter { $0.cycle == cycle.description }.map(\.total).reduce(0, +)
    }
}

extension Make {
    static func lineTermination(_ line: String) -> BillingRequest {
        .lineTermination(LineTermination(lineID: LineID(rawValue: line)))
    }
}
