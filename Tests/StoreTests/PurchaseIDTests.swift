import Billing
import Consuming
import Contract
import Foundation
import Kafka
import MatometeTestSupport
import PostgresNIO
import Processing
import Store
import Testing

/// A merchant's charge or subscription id names one purchase on one line,
/// across every line and every worker; a repeat is answered as the original.
@Suite("Purchase ids and repeats on a real PostgreSQL")
struct PurchaseIDTests {
    @Test(
        "The same charge or subscription id on another line is a duplicate_conflict, within a batch or across batches")
    func sameIDOnAnotherLine() async throws {
        let database = try await TestDatabase.create(partitions: 4)
        try await database.withStore { store in
            try await store.upsertMerchant(Merchant(id: "mdup", name: "Duplicates"))
            try await store.importLines(Make.lines(4), openCycle: .november)
            let feeder = Feeder(store)
            let first = try await feeder.apply([
                Make.charge("mdup", "dup-c", line: "L0000000", 700),
                Make.subscription("mdup", "dup-s", line: "L0000001", 300),
            ])
            let second = try await feeder.apply([
                Make.charge("mdup", "dup-c", line: "L0000002", 700),
                Make.subscription("mdup", "dup-s", line: "L0000003", 300),
                // Nothing of the merchant's is on the other lines to cancel.
                Make.cancelCharge("mdup", "dup-c", line: "L0000002"),
                // In one batch: the first line takes the id, the second is refused.
                Make.charge("mdup", "both", line: "L0000003", 100), Make.charge("mdup", "both", line: "L0000002", 100),
                // The original line's repeat is still a repeat.
                Make.charge("mdup", "dup-c", line: "L0000000", 700),
            ])
            #expect(first == [.accepted(.november), .accepted(.november)])
            #expect(
                second == [
                    .rejected(.duplicateConflict, .november), .rejected(.duplicateConflict, .november),
                    .rejected(.unknownCharge, .november), .accepted(.november),
                    .rejected(.duplicateConflict, .november), .accepted(.november),
                ])
            var totals: [Int64] = []
            for line in Make.lines(4) { totals.append(try await store.lineStatement(line.id)?.total.amount ?? -1) }
            #expect(totals == [700, 300, 0, 100])
            let holders = try await store.client.fetch(
                "SELECT kind, purchase_id, line_id FROM purchase_ids ORDER BY purchase_id",
                (String, String, String).self,
                logger: TestServer.logger)
            #expect(
                holders.map { "\($0.0) \($0.1) \($0.2)" } == [
                    "charge both L0000003", "charge dup-c L0000000", "subscription dup-s L0000001",
                ])
        }
    }

    @Test("Two workers adding the same id on lines of two partitions at the same moment: exactly one line gets it")
    func twoWorkersAtOnce() async throws {
        let database = try await TestDatabase.create(partitions: 4)
        try await database.withStore { store in
            try await store.upsertMerchant(Merchant(id: "mdup", name: "Duplicates"))
            try await store.importLines(Make.lines(2, prefix: "A") + Make.lines(2, prefix: "B"), openCycle: .november)
        }
        let rounds = 40
        let barrier = Barrier(parties: 2)
        // Two workers: each its own connection pool, its own partition, its own lines.
        let outcomes = try await withThrowingTaskGroup(of: (Int, [Outcome], Int).self) { group in
            for worker in 0..<2 {
                group.addTask {
                    try await database.withStore { store in
                        let feeder = Feeder(store, partition: Int32(worker))
                        var outcomes: [Outcome] = []
                        var claimedFirst = 0
                        for round in 0..<rounds {
                            let line = "\(worker == 0 ? "A" : "B")000000\(round % 2)"
                            let requests =
                                round.isMultiple(of: 2)
                                ? [Make.charge("mdup", "race-\(round)", line: line, 100)]
                                : [Make.subscription("mdup", "race-\(round)", line: line, 10)]
                            // Both start the round together; a batch that lost the race is applied again, as the worker does.
                            await barrier.arrive()
                            while true {
                                do {
                                    outcomes += try await feeder.apply(requests)
                                    break
                                } catch let error as StoreError where error.code == .purchaseIDClaimed {
                                    #expect(StoreFailure(error) == .raced)
                                    claimedFirst += 1
                                }
                            }
                        }
                        return (worker, outcomes, claimedFirst)
                    }
                }
            }
            var byWorker: [Int: [Outcome]] = [:]
            var races = 0
            for try await (worker, outcomes, lost) in group {
                byWorker[worker] = outcomes
                races += lost
            }
            // How often the claim itself decided (the rest were decided by reading it): for the log.
            print("two workers, \(rounds) ids: \(races) batches lost the race at the claim and were applied again")
            return byWorker
        }
        for round in 0..<rounds {
            let pair = [outcomes[0]![round], outcomes[1]![round]]
            #expect(
                pair.filter(\.isAccepted).count == 1
                    && pair.filter { $0.rejection == .duplicateConflict }.count == 1, "round \(round): \(pair)")
        }
        try await database.withStore { store in
            let counts = try await store.client.fetch(
                """
                SELECT (SELECT count(*) FROM charges)::int, (SELECT count(*) FROM subscriptions)::int,
                       (SELECT count(*) FROM purchase_ids)::int,
                       (SELECT sum(open_spend_yen) FROM lines)::bigint
                """, (Int, Int, Int, Int64).self, logger: TestServer.logger)
            #expect(counts.first?.0 == rounds / 2)
            #expect(counts.first?.1 == rounds / 2)
            #expect(counts.first?.2 == rounds)
            #expect(counts.first?.3 == Int64(rounds / 2 * 100 + rounds / 2 * 10))
        }
    }

    @Test(
        "An id claimed by a transaction still open: the batch waits for it, fails as claimed, and applied again is refused"
    )
    func claimedMeanwhile() async throws {
        let database = try await TestDatabase.create(partitions: 4)
        try await database.withStore { store in
            try await store.upsertMerchant(Merchant(id: "mdup", name: "Duplicates"))
            try await store.importLines(Make.lines(2), openCycle: .november)
            let feeder = Feeder(store)
            try await store.client.withConnection { other in
                try await other.query("BEGIN", logger: TestServer.logger)
                try await other.query(
                    "INSERT INTO purchase_ids (merchant_id, kind, purchase_id, line_id) VALUES ('mdup', 'charge', 'c-1', 'L0000001')",
                    logger: TestServer.logger)
                let racing = Task { try await feeder.apply([Make.charge("mdup", "c-1", line: "L0000000", 500)]) }
                // Until the batch waits on the open claim.
                try await eventually("the batch waits on the claim") {
                    try await store.client.fetch(
                        """
                        SELECT count(*)::int FROM pg_stat_activity
                        WHERE datname = current_database() AND wait_event_type = 'Lock'
                        """, Int.self, logger: TestServer.logger
                    ).first == 1
                }
                try await other.query("COMMIT", logger: TestServer.logger)
                let error = await #expect(throws: StoreError.self) { try await racing.value }
                #expect(error?.code == .purchaseIDClaimed)
                #expect(error.map(StoreFailure.init) == .raced)
            }
            #expect(try await store.lineStatement("L0000000")?.total == 0)
            #expect(try await store.storedOffset(feeder.cursor) == nil)
            let again = try await RequestProcessor(store: store).apply(
                [SourcedRequest(Make.charge("mdup", "c-1", line: "L0000000", 500), offset: 0)], from: feeder.cursor,
                expectedOffset: nil, nextOffset: 1)
            #expect(again == [.rejected(.duplicateConflict, .november)])
        }
    }

    @Test(
        "A repeat gets the first answer whatever its authorization's age; another use of it is reused; a first use late is expired"
    )
    func repeatsGetTheFirstAnswer() async throws {
        let database = try await TestDatabase.create(partitions: 4)
        try await database.withStore { store in
            try await store.upsertMerchant(Merchant(id: "m1", name: "Points shop"))
            var lines = Make.lines(2)
            lines[1].spendingLimit = 100
            try await store.importLines(lines, openCycle: .november)
            let processor = RequestProcessor(store: store)
            let cursor = PartitionCursor(consumerGroup: "g", topic: "matomete.charges", partition: 0)
            var offset: Int64 = 0
            func send(
                _ request: BillingRequest, token: String, expiresAt: Int64 = 1_000, at now: Int64
            ) async throws
                -> Outcome
            {
                defer { offset += 1 }
                return try await processor.apply(
                    [
                        SourcedRequest(
                            request, offset: offset,
                            authorization: UsedAuthorization(tokenID: token, expiresAt: expiresAt))
                    ], from: cursor, expectedOffset: offset == 0 ? nil : offset, nextOffset: offset + 1, now: now)[0]
            }
            let accepted = Make.charge("m1", "c-1", line: "L0000000", 500)
            let refused = Make.charge("m1", "c-2", line: "L0000001", 500)
            #expect(try await send(accepted, token: "t1", at: 900) == .accepted(.november))
            #expect(try await send(refused, token: "t2", at: 900) == .rejected(.spendingLimitExceeded, .november))
            // Long after the authorizations expired: the same answers.
            #expect(try await send(accepted, token: "t1", at: 5_000) == .accepted(.november))
            #expect(try await send(refused, token: "t2", at: 5_000) == .rejected(.spendingLimitExceeded, .november))
            // The limit lifted: the refused request's repeat is still answered as the first time; a new authorization decides afresh.
            try await store.client.query(
                "UPDATE lines SET spending_limit_yen = NULL WHERE line_id = 'L0000001'", logger: TestServer.logger)
            #expect(try await send(refused, token: "t2", at: 900) == .rejected(.spendingLimitExceeded, .november))
            #expect(try await send(refused, token: "t3", at: 900) == .accepted(.november))
            // The same authorization for anything else is reused, early or late.
            #expect(
                try await send(Make.charge("m1", "c-9", line: "L0000000", 500), token: "t1", at: 900)
                    == .rejected(.authorizationReused, .november))
            // A repeat with the accepted request's authorization is the first answer, whatever else differs.
            #expect(
                try await send(Make.charge("m1", "c-1", line: "L0000000", 500, "other words"), token: "t1", at: 9_000)
                    == .accepted(.november))
            // A use refused before answers were kept: its repeat is refused as reused, never decided afresh.
            try await store.client.query(
                """
                INSERT INTO used_authorizations (line_id, token_id, merchant_id, request_kind, reference, accepted, expires_at)
                VALUES ('L0000001', 'legacy', 'm1', 'charge', 'c-7', false, to_timestamp(1000))
                """, logger: TestServer.logger)
            #expect(
                try await send(Make.charge("m1", "c-7", line: "L0000001", 50), token: "legacy", at: 900)
                    == .rejected(.authorizationReused, .november))
            // A first use after expiry is expired, before any rule of the line is looked at.
            try await store.client.query(
                "UPDATE lines SET status = 'suspended' WHERE line_id = 'L0000000'", logger: TestServer.logger)
            #expect(
                try await send(Make.charge("m1", "c-4", line: "L0000000", 500), token: "t4", at: 1_001)
                    == .rejected(.authorizationExpired, .november))
            #expect(try await store.lineStatement("L0000000")?.total == 500)
            #expect(try await store.lineStatement("L0000001")?.total == 500)
        }
    }
}

extension PurchaseIDTests {
    @Test("A purchase added before ids were claimed: its id is claimed by its first accepted repeat, and then held")
    func legacyPurchaseClaimedByRepeat() async throws {
        let database = try await TestDatabase.create(partitions: 4)
        try await database.withStore { store in
            try await store.upsertMerchant(Merchant(id: "m1", name: "Points shop"))
            try await store.importLines(Make.lines(2), openCycle: .november)
            try await store.client.query(
                """
                INSERT INTO charges (line_id, merchant_id, charge_id, amount_yen, description, cycle, status)
                VALUES ('L0000000', 'm1', 'old', 300, 'item', '2026-11', 'active')
                """, logger: TestServer.logger)
            let feeder = Feeder(store)
            #expect(try await feeder.apply([Make.charge("m1", "old", line: "L0000000", 300)]) == [.accepted(.november)])
            #expect(
                try await feeder.apply([Make.charge("m1", "old", line: "L0000001", 300)])
                    == [.rejected(.duplicateConflict, .november)])
            #expect(
                try await store.client.fetch(
                    "SELECT line_id FROM purchase_ids WHERE purchase_id = 'old'", String.self, logger: TestServer.logger
                )
                    == ["L0000000"])
        }
    }

    @Test("A charge or subscription on the cancellations topic is invalid_request, with or without an authorization")
    func wrongTopicFirst() async throws {
        let database = try await TestDatabase.create(partitions: 4)
        try await database.withStore { store in
            let applier = RequestApplier(
                processor: RequestProcessor(store: store), group: "g",
                accepts: [.chargeCancellation, .subscriptionCancellation, .lineTermination], signatures: nil)
            let partition = KafkaTopicPartition(topic: "matomete.cancellations", partition: 0)
            for json in [
                #"{"type":"charge","merchantId":"m1","chargeId":"c","lineId":"L0000001","amount":5,"description":"d"}"#,
                #"{"type":"subscription","merchantId":"m1","subscriptionId":"s","lineId":"L0000001","monthlyAmount":5,"description":"d","authorization":"t"}"#,
            ] {
                let message = KafkaConsumerMessage(
                    topicPartition: partition, offset: 0, key: ArraySlice("L0000001".utf8), value: ArraySlice(json.utf8)
                )
                guard case .refused(let refused) = applier.prepare(message) else {
                    Issue.record("not refused: \(json)")
                    continue
                }
                #expect(refused.reason == .invalidRequest)
            }
        }
    }
}

/// Lets several tasks start a step together.
actor Barrier {
    private let parties: Int
    private var arrived = 0
    private var waiting: [CheckedContinuation<Void, Never>] = []

    init(parties: Int) { self.parties = parties }

    /// Returns once `parties` tasks have arrived (then the next round begins).
    func arrive() async {
        arrived += 1
        if arrived == parties {
            arrived = 0
            let released = waiting
            waiting = []
            for continuation in released { continuation.resume() }
            return
        }
        await withCheckedContinuation { waiting.append($0) }
    }
}

@Suite("Close commands on a real PostgreSQL")
struct CloseCommandTests {
    @Test("A close of a month that has not begun is dead-lettered, even where early closes are allowed")
    func futureMonthNeverCloses() async throws {
        let database = try await TestDatabase.create(partitions: 4)
        try await database.withStore { store in
            let applier = CycleCommandApplier(
                store: store, group: "g", topics: Topics(), allowEarlyClose: true, logger: TestServer.logger)
            let current = BillingCycle(containing: Int64(Date().timeIntervalSince1970))
            let partition = KafkaTopicPartition(topic: "matomete.billing-cycles", partition: 0)
            let messages = [current.next, current].enumerated().map { offset, cycle in
                let message = KafkaConsumerMessage(
                    topicPartition: partition, offset: KafkaOffset(Int64(offset)),
                    value: ArraySlice(CycleCommand.closeMessage(cycle).utf8))
                return (message: message, prepared: applier.prepare(message))
            }
            #expect(
                try await applier.apply([PreparedBatch(partition: partition, messages: messages, expectedOffset: nil)])
                    == [2])
            #expect(try await store.closeStatus(current.next) == nil)
            #expect(try await store.closeStatus(current) != nil)
            let letters = try await store.outboxMessages(topic: "matomete.dead-letters")
            #expect(letters.count == 1)
            #expect(letters.first?.headers.values.contains { $0.contains("has not begun") } == true)
        }
    }
}

@Suite("The default spending limit on a real PostgreSQL")
struct DefaultSpendingLimitTests {
    @Test(
        "The default spending limit set in the store applies from the next batch; 0 is none; a line's own limit stays")
    func defaultLimit() async throws {
        let database = try await TestDatabase.create(partitions: 4)
        try await database.withStore { store in
            try await store.upsertMerchant(Merchant(id: "m1", name: "Points shop"))
            var lines = Make.lines(2)
            lines[1].spendingLimit = 5_000
            try await store.importLines(lines, openCycle: .november)
            #expect(try await store.defaultSpendingLimit() == nil)
            let feeder = Feeder(store)
            try await store.setDefaultSpendingLimit(1_000)
            #expect(try await store.defaultSpendingLimit() == 1_000)
            #expect(
                try await feeder.apply([
                    Make.charge("m1", "a", line: "L0000000", 1_500), Make.charge("m1", "b", line: "L0000001", 1_500),
                ]) == [.rejected(.spendingLimitExceeded, .november), .accepted(.november)])
            try await store.setDefaultSpendingLimit(0)
            #expect(
                try await feeder.apply([Make.charge("m1", "a", line: "L0000000", 900_000)]) == [.accepted(.november)])
            await #expect(throws: StoreError.self) { try await store.setDefaultSpendingLimit(-1) }
        }
    }
}
