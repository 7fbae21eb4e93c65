import Billing
import Contract
import Foundation
import MatometeTestSupport
import PostgresNIO
import Processing
import Store
import Testing

/// Collection and payouts against a real database: worked by hand, over three periods.
@Suite("Payouts in the store")
struct PayoutStoreTests {
    /// Applies reports as the collection worker does: one batch, its offsets moved.
    final class Collector: @unchecked Sendable {
        // @unchecked Sendable: used from one task at a time.
        let store: BillingStore
        private var offset: Int64 = 0
        private var stored = false

        init(_ store: BillingStore) { self.store = store }

        @discardableResult
        func apply(_ reports: [CollectionReport]) async throws -> [CollectionOutcome] {
            let move = OffsetMove(
                PartitionCursor(consumerGroup: "collection-worker", topic: "matomete.collections", partition: 0),
                from: stored ? offset : nil, to: offset + Int64(reports.count))
            let outcomes = try await store.applyCollections(moving: [move], reports: reports) { state in
                reports.map { state.lines[$0.lineID]!.apply($0, firstOpenPeriod: state.firstOpenPeriod) }
            }
            offset += Int64(reports.count)
            stored = true
            return outcomes
        }
    }

    static func day(_ text: String) -> CalendarDay { CalendarDay(text)! }

    static func pay(
        _ line: String, _ id: String, _ amount: Yen, _ cycle: BillingCycle, on date: String
    )
        -> CollectionReport
    {
        CollectionReport(
            lineID: LineID(rawValue: line), cycle: cycle,
            event: .payment(PaymentID(rawValue: id), amount: amount, receivedOn: day(date)), sentOn: nil)
    }

    static func publish(_ statement: PayoutStatement, _ payableOn: CalendarDay) throws -> [OutboxMessage] {
        let message = PayoutMessage(statement, payableOn: payableOn)
        return [
            OutboxMessage(
                topic: "matomete.payouts", key: message.merchantId, id: message.id, payload: try message.jsonBytes())
        ]
    }

    @Test(
        "Paid out period by period: the fee in proportion, a written-off part without fee, a bill below zero settled on the bill, a negative carry recovered, a late payment paid in the next period"
    )
    func periods() async throws {
        let database = try await TestDatabase.create(partitions: 2)
        try await database.withStore { store in
            try await store.upsertMerchant(Merchant(id: "m-a", name: "A"))
            try await store.upsertMerchant(Merchant(id: "m-b", name: "B"))
            try await store.importLines(Make.lines(4), openCycle: .november)
            let feeder = Feeder(store)
            // November: L0 a ¥1,000; L1 a ¥1,000 + b ¥500; L2 b ¥300; L3 a ¥700.
            try await feeder.apply([
                Make.charge("m-a", "a0", line: "L0000000", 1_000), Make.charge("m-a", "a1", line: "L0000001", 1_000),
                Make.charge("m-b", "b1", line: "L0000001", 500), Make.charge("m-b", "b2", line: "L0000002", 300),
                Make.charge("m-a", "a3", line: "L0000003", 700),
            ])
            try await store.closeAll(.november, publishing: CloseMessages())
            // December: a0 credited (−¥1,000) on L0 with b ¥400: L0's bill is −¥600. L1 a ¥200.
            try await feeder.apply([
                Make.cancelCharge("m-a", "a0", line: "L0000000"), Make.charge("m-b", "b0", line: "L0000000", 400),
                Make.charge("m-a", "a1d", line: "L0000001", 200),
            ])
            try await store.closeAll(.december, publishing: CloseMessages())
            // Settlements, launch tariff: November a 3 lines ¥2,700 → 5 % = ¥135; b 2 lines ¥800 → 2 × ¥31.5 = ¥63.
            // December a ¥−800 → no fee; b 1 line ¥400 → ¥31.
            let fees = Dictionary(
                uniqueKeysWithValues: try await store.settlements(.november).map { ($0.merchantID.rawValue, $0.fee) })
            #expect(fees == ["m-a": 135, "m-b": 63])

            let collector = Collector(store)
            let november = try await collector.apply([
                Self.pay("L0000000", "p0", 1_000, .november, on: "2026-12-10"),
                Self.pay("L0000001", "p1", 1_500, .november, on: "2026-12-10"),
                CollectionReport(
                    lineID: "L0000002", cycle: .november, event: .writeOff(writtenOffOn: Self.day("2026-12-20")),
                    sentOn: nil),
                Self.pay("L0000000", "z", 1, .december, on: "2027-01-05"),  // a bill below zero: nothing to collect
            ])
            #expect(
                november.map { $0.rejection?.code ?? "accepted" } == [
                    "accepted", "accepted", "accepted", "nothing_to_collect",
                ])

            // December's period: a collected ¥2,000 of ¥2,700 → fee ⌊135 × 2,000 / 2,700⌋ = ¥100;
            // b collected ¥500 of ¥800, wrote off ¥300 → fee ⌊63 × 500 / 800⌋ = ¥39.
            let first = try await store.runPayouts(.december, payableOn: Self.day("2027-01-31"), publish: Self.publish)
            #expect(!first.alreadyRun)
            #expect(
                first.statements.map(\.statement) == [
                    PayoutStatement(
                        merchantID: "m-a", period: .december,
                        lines: [
                            PayoutLine(
                                cycle: .november, collected: 2_000, reversed: 0, writtenOff: 0, fee: 100, payable: 1_900
                            )
                        ],
                        carriedIn: 0, amountPayable: 1_900, carriedOut: 0),
                    PayoutStatement(
                        merchantID: "m-b", period: .december,
                        lines: [
                            PayoutLine(
                                cycle: .november, collected: 500, reversed: 0, writtenOff: 300, fee: 39, payable: 461)
                        ],
                        carriedIn: 0, amountPayable: 461, carriedOut: 0),
                ])
            let again = try await store.runPayouts(.december, payableOn: Self.day("2027-01-31"), publish: Self.publish)
            #expect(again.alreadyRun && again.statements.map(\.statement) == first.statements.map(\.statement))
            let skipping = await #expect(throws: StoreError.self) {
                _ = try await store.runPayouts(.january.next, payableOn: Self.day("2027-03-31"), publish: Self.publish)
            }
            #expect(skipping?.code == .payoutOutOfOrder)

            // January: L1's December bill paid; L0's bill of −¥600 settled on the bill (a −¥1,000, b +¥400).
            try await collector.apply([Self.pay("L0000001", "p1d", 200, .december, on: "2027-01-05")])
            let second = try await store.runPayouts(.january, payableOn: Self.day("2027-02-28"), publish: Self.publish)
            #expect(
                second.statements.map(\.statement) == [
                    PayoutStatement(
                        merchantID: "m-a", period: .january,
                        lines: [
                            PayoutLine(
                                cycle: .december, collected: -800, reversed: 0, writtenOff: 0, fee: 0, payable: -800)
                        ],
                        carriedIn: 0, amountPayable: 0, carriedOut: -800),
                    PayoutStatement(
                        merchantID: "m-b", period: .january,
                        lines: [
                            PayoutLine(
                                cycle: .december, collected: 400, reversed: 0, writtenOff: 0, fee: 31, payable: 369)
                        ],
                        carriedIn: 0, amountPayable: 369, carriedOut: 0),
                ])

            // A payment dated in December, reported after December and January were paid out: paid in February,
            // with the rest of November's fee; the carry is recovered from it.
            try await collector.apply([Self.pay("L0000003", "p3", 700, .november, on: "2026-12-15")])
            let third = try await store.runPayouts(
                .january.next, payableOn: Self.day("2027-03-31"), publish: Self.publish)
            #expect(
                third.statements.map(\.statement) == [
                    PayoutStatement(
                        merchantID: "m-a", period: .january.next,
                        lines: [
                            PayoutLine(
                                cycle: .november, collected: 700, reversed: 0, writtenOff: 0, fee: 35, payable: 665)
                        ],
                        carriedIn: -800, amountPayable: 0, carriedOut: -135)
                ])
            // Every position reconciles; November is all paid out or written off, December all paid out.
            let positions = try await store.collectionPositions()
            #expect(positions.count == 4 && positions.allSatisfy(\.reconciles))
            for position in positions {
                #expect(position.open == .zero && position.toPayOut == .zero, "\(position)")
                #expect(position.paidOut + position.writtenOffNet == position.net, "\(position)")
            }
            #expect(try await store.outboxMessages(topic: "matomete.payouts").count == 5)
        }
    }
}
