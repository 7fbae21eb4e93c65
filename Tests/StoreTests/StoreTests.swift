import Billing
import Consuming
import Contract
import Foundation
import Kafka
import MatometeTestSupport
import PostgresNIO
import Store
import Synchronization
import Testing

@testable import Processing

@Suite("The line-state store on a real PostgreSQL")
struct StoreTests {
    @Test("Migrations build the schema from an empty database, once")
    func migrationsFromEmpty() async throws {
        let database = try await TestDatabase.create(partitions: 4)
        try await database.withClient { client in
            let again = try await Migrator().migrate(client, partitions: 4, logger: TestServer.logger)
            #expect(again.isEmpty)
            let children = try await client.fetch(
                """
                SELECT count(*)::int FROM pg_inherits i JOIN pg_class p ON p.oid = i.inhparent
                WHERE p.relname IN ('lines', 'charges', 'subscriptions', 'credits', 'line_bills', 'used_authorizations',
                                    'request_results')
                """, Int.self, logger: TestServer.logger)
            #expect(children == [28])
            let versions = try await client.fetch(
                "SELECT version FROM schema_migrations ORDER BY version", Int.self, logger: TestServer.logger)
            #expect(versions == Array(1...Migrator.latestVersion))
        }
        try await database.withStore { store in #expect(store.partitions == 4) }
    }

    @Test("Per-line queries read one partition (EXPLAIN)")
    func partitionPruning() async throws {
        let database = try await TestDatabase.create(partitions: 8)
        try await database.withClient { client in
            for table in ["lines", "charges", "subscriptions", "credits", "line_bills", "request_results"] {
                let plan = try await client.fetch(
                    PostgresQuery(unsafeSQL: "EXPLAIN SELECT * FROM \(table) WHERE line_id = 'L0000042'"), String.self,
                    logger: TestServer.logger
                ).joined(separator: "\n")
                let scanned = Set(plan.matches(of: /\b(\w+)_p(\d+)\b/).map { "\($0.1)_p\($0.2)" })
                #expect(scanned.count == 1, "\(table) plan scans \(scanned.sorted()):\n\(plan)")
            }
            // The batch statements prune with `= ANY(array)` at execution time.
            let plan = try await client.fetch(
                """
                EXPLAIN (ANALYZE, COSTS OFF) SELECT * FROM lines WHERE line_id = ANY(\(["L0000001", "L0000002"]))
                """, String.self, logger: TestServer.logger
            ).joined(separator: "\n")
            let scanned = Set(plan.matches(of: /\b(lines_p\d+)\b/).map { String($0.1) })
            #expect(scanned.count <= 2, "scans \(scanned.sorted()):\n\(plan)")
        }
    }

    @Test("Importing lines adds new ones and updates existing ones without touching their cycle")
    func importLines() async throws {
        let database = try await TestDatabase.create()
        try await database.withStore { store in
            let csv = """
                line_id,line_type,flets_net,status,spending_limit
                L0000001,hikari-next,false,active,
                L0000002,adsl,true,active,10000
                L0000003,adsl,false,suspended,0
                """
            let lines = try LineCSV.parse(csv)
            #expect(lines.count == 3)
            #expect(lines[1].isEligible && !lines[2].isEligible)
            #expect(try await store.importLines(lines, openCycle: .november) == 3)
            var changed = lines[0]
            changed.status = .suspended
            #expect(try await store.importLines([changed], openCycle: .december) == 1)
            let statement = try #require(try await store.lineStatement("L0000001"))
            #expect(statement.line.status == .suspended)
            #expect(statement.openCycle == .november)
            #expect(throws: StoreError.self) { try LineCSV.parse("line_id,line_type\n,hikari-next") }
        }
    }

    @Test("A repeated request is a harmless repeat; a stale offset writer is refused and changes nothing")
    func repeatsAndCompareAndSet() async throws {
        let database = try await TestDatabase.create()
        try await database.withStore { store in
            try await store.upsertMerchant(Merchant(id: "m1", name: "Points shop"))
            try await store.importLines(Make.lines(3), openCycle: .november)
            let feeder = Feeder(store)
            let first = try await feeder.apply([Make.charge("m1", "c-1", line: "L0000001", 500)])
            let again = try await feeder.apply([
                Make.charge("m1", "c-1", line: "L0000001", 500), Make.charge("m1", "c-1", line: "L0000001", 900),
            ])
            #expect(first == [.accepted(.november)])
            #expect(again == [.accepted(.november), .rejected(.duplicateConflict, .november)])
            #expect(try await store.lineStatement("L0000001")?.total == 500)

            // Another worker still believing the partition is at offset 1 is refused.
            let stale = await #expect(throws: StoreError.self) {
                try await RequestProcessor(store: store).apply(
                    [SourcedRequest(Make.charge("m1", "c-2", line: "L0000002", 700), offset: 1)], from: feeder.cursor,
                    expectedOffset: 1, nextOffset: 2)
            }
            #expect(stale?.code == .staleOffset)
            let fresh = await #expect(throws: StoreError.self) {
                try await RequestProcessor(store: store).apply(
                    [SourcedRequest(Make.charge("m1", "c-2", line: "L0000002", 700), offset: 0)], from: feeder.cursor,
                    expectedOffset: nil, nextOffset: 1)
            }
            #expect(fresh?.code == .staleOffset)
            #expect(try await store.lineStatement("L0000002")?.total == 0)
            #expect(try await store.storedOffset(feeder.cursor) == 3)
            // Results: one per applied request, none for the refused batches.
            #expect(try await store.outboxMessages(topic: "matomete.merchant.m1.results").count == 3)
        }
    }

    @Test("Several partitions' batches in one transaction: each offset moves, and one stale offset rolls back all")
    func batchesTogether() async throws {
        let database = try await TestDatabase.create()
        try await database.withStore { store in
            try await store.upsertMerchant(Merchant(id: "m1", name: "Points shop"))
            try await store.importLines(Make.lines(4), openCycle: .november)
            func cursor(_ partition: Int32) -> PartitionCursor {
                PartitionCursor(consumerGroup: "g", topic: "matomete.charges", partition: partition)
            }
            func batch(_ partition: Int32, _ charges: [(String, String)], from offset: Int64?) -> PartitionBatch {
                let start = offset ?? 0
                return PartitionBatch(
                    charges.enumerated().map { index, charge in
                        SourcedRequest(Make.charge("m1", charge.0, line: charge.1, 300), offset: start + Int64(index))
                    }, from: cursor(partition), expectedOffset: offset, nextOffset: start + Int64(charges.count))
            }
            // Two partitions, the same line in both: applied in one go.
            let outcomes = try await RequestProcessor(store: store).apply([
                batch(0, [("c-1", "L0000001"), ("c-2", "L0000002")], from: nil),
                batch(1, [("c-3", "L0000001")], from: nil),
            ])
            #expect(outcomes.map(\.count) == [2, 1])
            #expect(outcomes.joined().allSatisfy { $0 == .accepted(.november) })
            #expect(try await store.storedOffset(cursor(0)) == 2)
            #expect(try await store.storedOffset(cursor(1)) == 1)
            #expect(try await store.lineStatement("L0000001")?.total == 600)

            // Partition 1 moved on elsewhere: nothing of either batch is applied.
            let stale = await #expect(throws: StoreError.self) {
                try await RequestProcessor(store: store).apply([
                    batch(0, [("c-4", "L0000003")], from: 2),
                    batch(1, [("c-5", "L0000004")], from: 0),
                ])
            }
            #expect(stale?.code == .staleOffset)
            #expect(try await store.storedOffset(cursor(0)) == 2, "the other partition's offset is rolled back too")
            #expect(try await store.lineStatement("L0000003")?.total == 0)
            #expect(try await store.outboxMessages(topic: "matomete.merchant.m1.results").count == 3)

            // A batch that expects no stored offset where one is stored, listed first or last.
            for order in [[0, 1], [1, 0]] {
                let batches = [batch(0, [("c-6", "L0000003")], from: 2), batch(1, [("c-7", "L0000004")], from: nil)]
                let unexpected = await #expect(throws: StoreError.self) {
                    try await RequestProcessor(store: store).apply(order.map { batches[$0] })
                }
                #expect(unexpected?.code == .staleOffset)
            }
            // The same partition twice in one transaction moves it once: refused.
            let twice = await #expect(throws: StoreError.self) {
                try await RequestProcessor(store: store).apply([
                    batch(0, [("c-8", "L0000003")], from: 2), batch(0, [("c-9", "L0000003")], from: 2),
                ])
            }
            #expect(twice?.code == .staleOffset)
            #expect(try await store.storedOffset(cursor(0)) == 2)
            #expect(try await store.storedOffset(cursor(1)) == 1)
            #expect(try await store.outboxMessages(topic: "matomete.merchant.m1.results").count == 3)
        }
    }

    @Test("Two writers hammering the same lines: no deadlock, no lost update")
    func concurrentWriters() async throws {
        let database = try await TestDatabase.create()
        try await database.withStore { store in
            try await store.upsertMerchant(Merchant(id: "m1", name: "Points shop"))
            let lines = Make.lines(12)
            try await store.importLines(
                lines.map {
                    var line = $0; line.spendingLimit = 0; return line
                }, openCycle: .november)
            let ids = lines.map(\.id.rawValue)
            try await withThrowingTaskGroup(of: Void.self) { group in
                for worker in 0..<2 {
                    group.addTask {
                        let feeder = Feeder(store, partition: Int32(worker))
                        for batch in 0..<40 {
                            // Each batch touches most lines, in an order of its own.
                            let order = worker == 0 ? ids : ids.reversed()
                            try await feeder.apply(
                                order.enumerated().map { index, line in
                                    Make.charge("m1", "w\(worker)-b\(batch)-\(index)", line: line, Int64(1 + index))
                                })
                        }
                    }
                }
                try await group.waitForAll()
            }
            var total: Yen = 0
            for line in ids {
                let statement = try #require(try await store.lineStatement(LineID(rawValue: line)))
                #expect(statement.items.count == 80)
                total = total + statement.total
            }
            // Each batch charges 1 + 2 + … + 12 = 78 yen; 2 workers × 40 batches.
            #expect(total == Yen(78 * 80))
            let spends = try await store.client.fetch(
                "SELECT sum(open_spend_yen)::bigint FROM lines", Int64.self, logger: TestServer.logger)
            #expect(spends == [78 * 80])
        }
    }

    @Test("Requests on the same record within one batch are stored in their final state")
    func sameBatchChanges() async throws {
        let database = try await TestDatabase.create()
        try await database.withStore { store in
            try await store.upsertMerchant(Merchant(id: "m1", name: "Video"))
            try await store.importLines(Make.lines(1), openCycle: .november)
            let feeder = Feeder(store)
            let outcomes = try await feeder.apply([
                Make.charge("m1", "c-1", line: "L0000000", 500), Make.cancelCharge("m1", "c-1", line: "L0000000"),
                Make.subscription("m1", "s-1", line: "L0000000", 300),
                Make.cancelSubscription("m1", "s-1", line: "L0000000"),
                Make.charge("m1", "c-2", line: "L0000000", 200),
            ])
            #expect(outcomes.allSatisfy { $0.isAccepted })
            let statement = try #require(try await store.lineStatement("L0000000"))
            #expect(statement.items.map(\.reference) == ["c-2", "s-1"])  // s-1 billed for its only month
            let activity = try await store.merchantActivity("m1")
            #expect(activity.first { $0.reference == "c-1" }?.status == "cancelled")
            #expect(activity.first { $0.reference == "s-1" }?.endCycle == .november)
            // A repeat in a later batch sees the stored final state.
            #expect(
                try await feeder.apply([Make.cancelCharge("m1", "c-1", line: "L0000000")]) == [.accepted(.november)])
            try await store.closeAll(.november, publishing: CloseMessages())
            #expect(try await store.lineStatement("L0000000")?.items.isEmpty == true)
        }
    }

    @Test("Outbox messages are claimed by one relay at a time, leased, and gone once acknowledged")
    func outboxClaims() async throws {
        let database = try await TestDatabase.create()
        try await database.withStore { store in
            try await store.upsertMerchant(Merchant(id: "m1", name: "Video"))
            try await store.importLines(Make.lines(3), openCycle: .november)
            // A relay listening: woken once when listening starts, then by the commit.
            let wakes = Atomic(0)
            let listening = Task { try await store.listenForOutbox { wakes.add(1, ordering: .relaxed) } }
            defer { listening.cancel() }
            try await eventually("listening started") { wakes.load(ordering: .relaxed) == 1 }
            try await Feeder(store).apply((0..<5).map { Make.charge("m1", "c-\($0)", line: "L0000001", 100) })
            try await eventually("the commit announced") { wakes.load(ordering: .relaxed) == 2 }
            #expect(try await store.outboxBacklog() == 5)
            let first = try await store.claimOutbox(limit: 3)
            let second = try await store.claimOutbox(limit: 10)
            #expect(first.count == 3 && second.count == 2)
            #expect(Set(first.map(\.message.id)).isDisjoint(with: second.map(\.message.id)))
            #expect(
                first.allSatisfy { $0.message.topic == "matomete.merchant.m1.results" && $0.message.key == "L0000001" })
            // A relay that dies without acknowledging: after its lease the messages come back.
            try await store.acknowledge(second.map(\.sequence))
            #expect(try await store.claimOutbox(limit: 10).isEmpty)
            let expired = try await store.claimOutbox(limit: 10, lease: .zero)
            #expect(expired.isEmpty)  // still leased by the first claim
            try await store.client.query(
                "UPDATE outbox SET claimed_until = now() - interval '1 second'", logger: TestServer.logger)
            let again = try await store.claimOutbox(limit: 10)
            #expect(again.map(\.message.id) == first.map(\.message.id))
            try await store.acknowledge(again.map(\.sequence))
            #expect(try await store.outboxBacklog() == 0)
        }
    }

    @Test("An outbox claim selects its batch once, whatever plan PostgreSQL picks for it")
    func outboxClaimPlan() async throws {
        // A busy outbox drains to empty between bursts; analysed then, its
        // statistics say "no rows" while the next burst fills it. PostgreSQL
        // then joins with nested loops, and a claim whose batch were a joined
        // subquery would select and lock it again for every outbox row: the
        // relay stalled for minutes at 36,000 messages. Here nested loops are
        // all the planner may use, from the start.
        let database = try await TestDatabase.create()
        try await database.withClient { client in
            for setting in ["enable_hashjoin", "enable_hashagg", "enable_mergejoin", "enable_material", "enable_sort"] {
                try await client.query(
                    PostgresQuery(unsafeSQL: "ALTER DATABASE \(database.name) SET \(setting) = off"),
                    logger: TestServer.logger)
            }
        }
        try await database.withStore { store in
            try await store.client.query(
                """
                INSERT INTO outbox (topic, message_key, message_id, payload)
                SELECT 'matomete.merchant.m1.results', 'm1', 'r-' || n, '\\x7b7d'::bytea FROM generate_series(1, 8000) n
                """, logger: TestServer.logger)
            let clock = ContinuousClock()
            var claimed: [ClaimedMessage] = []
            let elapsed = try await clock.measure {
                claimed = try await store.claimOutbox(limit: 500)
            }
            #expect(claimed.map(\.message.id) == (1...500).map { "r-\($0)" })
            // Once: a few milliseconds. Once per row: 8,000 index scans and
            // lockings of up to 500 rows, over ten seconds.
            #expect(elapsed < .seconds(2), "claiming 500 of 8,000 messages took \(elapsed)")
            let next = try await store.claimOutbox(limit: 500)
            #expect(next.first?.message.id == "r-501" && next.count == 500)
        }
    }

    @Test("Support desk and merchant site queries")
    func queries() async throws {
        let database = try await TestDatabase.create()
        try await database.withStore { store in
            try await store.upsertMerchant(Merchant(id: "m1", name: "Video"))
            try await store.importLines(Make.lines(2), openCycle: .november)
            let feeder = Feeder(store)
            try await feeder.apply([
                Make.charge("m1", "c-1", line: "L0000000", 500), Make.charge("m1", "c-2", line: "L0000000", 300),
                Make.subscription("m1", "s-1", line: "L0000000", 980), Make.cancelCharge("m1", "c-2", line: "L0000000"),
            ])
            let open = try #require(try await store.lineStatement("L0000000"))
            #expect(!open.isClosed)
            #expect(open.items.map(\.reference) == ["c-1", "s-1"])
            #expect(open.total == 1_480)
            try await store.closeAll(.november, publishing: CloseMessages())
            let closed = try #require(try await store.lineStatement("L0000000", cycle: .november))
            #expect(closed.isClosed)
            #expect(closed.items == open.items)
            let december = try #require(try await store.lineStatement("L0000000"))
            #expect(december.cycle == .december)
            #expect(december.items.map(\.reference) == ["s-1"])
            let activity = try await store.merchantActivity("m1")
            #expect(Set(activity.map(\.reference)) == ["c-1", "c-2", "s-1"])
            #expect(activity.first { $0.reference == "c-2" }?.status == "cancelled")
            #expect(try await store.lineStatement("L9999999") == nil)
        }
    }

    @Test("Every result a merchant is told is kept: by line and by merchant, newest first, refusals with their reason")
    func resultsHistory() async throws {
        let database = try await TestDatabase.create(partitions: 4)
        try await database.withStore { store in
            try await store.upsertMerchant(Merchant(id: "m1", name: "Points shop"))
            try await store.upsertMerchant(Merchant(id: "m2", name: "Farm"))
            try await store.importLines(Make.lines(3), openCycle: .november)
            let cursor = PartitionCursor(consumerGroup: "g", topic: "matomete.charges", partition: 5)
            let refused = RefusedRequest(
                merchantID: "m2", requestType: "charge", requestID: "c-9", lineID: "L0000001",
                reason: .authorizationInvalid)
            try await RequestProcessor(store: store).apply(
                [
                    SourcedRequest(Make.charge("m1", "c-1", line: "L0000001", 500), offset: 0),
                    SourcedRequest(Make.charge("m1", "c-1", line: "L0000001", 999), offset: 1),
                    SourcedRequest(Make.charge("m2", "c-2", line: "L0000002", 300), offset: 3),
                ], refusals: [SourcedRefusal(refused, offset: 2)], from: cursor, expectedOffset: nil, nextOffset: 4)

            let line = try await store.results(line: "L0000001")
            #expect(Set(line.map(\.resultID)) == Set((0...2).map { "result-matomete.charges-5-\($0)" }))
            let byID = Dictionary(uniqueKeysWithValues: line.map { ($0.resultID, $0) })
            let first = try #require(byID["result-matomete.charges-5-0"])
            #expect(first.accepted && first.reason == nil && first.cycle == .november && first.merchantID == "m1")
            #expect(first.requestType == "charge" && first.requestID == "c-1" && first.recordedAt != nil)
            #expect(byID["result-matomete.charges-5-1"]?.reason == "duplicate_conflict")
            let refusal = try #require(byID["result-matomete.charges-5-2"])
            #expect(!refusal.accepted && refusal.reason == "authorization_invalid" && refusal.merchantID == "m2")

            let farm = try await store.results(merchant: "m2")
            #expect(farm.map(\.resultID).sorted() == ["result-matomete.charges-5-2", "result-matomete.charges-5-3"])
            #expect(try await store.results(merchant: "m1", limit: 1).count == 1)
            // Told is kept: every result published has its row, and each goes to its own merchant's topic only.
            let toShop = try await store.outboxMessages(topic: "matomete.merchant.m1.results").map(\.id)
            let toFarm = try await store.outboxMessages(topic: "matomete.merchant.m2.results").map(\.id)
            #expect(Set(toShop + toFarm) == Set(line.map(\.resultID) + farm.map(\.resultID)))
            #expect(toFarm.sorted() == farm.map(\.resultID).sorted())
        }
    }

    @Test("A refusal carrying ids no column can hold is still told and kept, with those ids left out")
    func unstorableIDsInRefusals() async throws {
        let database = try await TestDatabase.create(partitions: 4)
        try await database.withStore { store in
            try await store.upsertMerchant(Merchant(id: "m1", name: "Points shop"))
            let cursor = PartitionCursor(consumerGroup: "g", topic: "matomete.charges", partition: 0)
            // An index entry over ~2.7 kB is refused by PostgreSQL; NUL cannot be stored in text at all.
            let refused = [
                RefusedRequest(
                    merchantID: "m1", requestType: "charge", requestID: "c-1",
                    lineID: String(repeating: "L", count: 3_000), reason: .invalidRequest),
                RefusedRequest(
                    merchantID: "m1", requestType: "charge", requestID: "c\u{0}2", lineID: "L\u{0}1",
                    reason: .invalidRequest),
            ]
            try await RequestProcessor(store: store).apply(
                [], refusals: refused.enumerated().map { SourcedRefusal($1, offset: Int64($0)) }, from: cursor,
                expectedOffset: nil, nextOffset: 2)
            let kept = try await store.results(merchant: "m1")
            #expect(kept.count == 2)
            #expect(kept.allSatisfy { $0.lineID == "" && !$0.accepted && $0.reason == "invalid_request" })
            #expect(Set(kept.map(\.requestID)) == ["c-1", ""])
            #expect(try await store.outboxMessages(topic: "matomete.merchant.m1.results").count == 2)
        }
    }

    @Test("An authorization valid when its message was read but expired when its batch is applied is refused")
    func authorizationExpiredByApplyTime() async throws {
        let database = try await TestDatabase.create(partitions: 4)
        try await database.withStore { store in
            try await store.upsertMerchant(Merchant(id: "m1", name: "Points shop"))
            try await store.importLines(Make.lines(2), openCycle: .november)
            var applier = RequestApplier(
                processor: RequestProcessor(store: store), group: "g", accepts: [.charge, .subscription],
                signatures: nil)
            applier.now = { 1_000 }
            let partition = KafkaTopicPartition(topic: "matomete.charges", partition: 0)
            func message(_ offset: KafkaOffset) -> KafkaConsumerMessage {
                KafkaConsumerMessage(topicPartition: partition, offset: offset, value: [])
            }
            let batch = PreparedBatch<RequestApplier.Prepared>(
                partition: partition,
                messages: [
                    (
                        message(0),
                        .request(
                            Make.charge("m1", "c-1", line: "L0000000", 100),
                            UsedAuthorization(tokenID: "a", expiresAt: 999))
                    ),
                    (
                        message(1),
                        .request(
                            Make.charge("m1", "c-2", line: "L0000001", 100),
                            UsedAuthorization(tokenID: "b", expiresAt: 1_000))
                    ),
                ], expectedOffset: nil)
            #expect(try await applier.apply([batch]) == [2])
            let results = try await store.results(merchant: "m1").sorted { $0.resultID < $1.resultID }
            #expect(results.map(\.reason) == ["authorization_expired", nil])
            #expect(try await store.lineStatement("L0000000")?.total == 0)
            #expect(try await store.lineStatement("L0000001")?.total == 100)
        }
    }
}
