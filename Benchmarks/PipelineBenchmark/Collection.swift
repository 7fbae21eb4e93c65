import BenchmarkSupport
import Billing
import Contract
import Foundation
import Kafka
import Logging
import PostgresNIO
import Store

/// A closed month's bills paid by the billing system's batch file, one
/// payment per bill, applied by one collection worker; then the period paid
/// out to 300 merchants.
enum CollectionWorkload {
    static let merchants = (0..<300).map { String(format: "m-%03d", $0) }

    /// `lines` lines of 3 charges each, from 3 of the 300 merchants.
    static func load(_ database: DatabaseConfiguration, lines: Int, cycle: BillingCycle, logger: Logger) async throws {
        try await withPostgresClient(database, logger: logger) { client in
            try await CloseWorkload.addMerchantsAndLines(
                client, merchants: merchants, lines: lines, cycle: cycle, logger: logger)
            _ = try await client.query(
                """
                INSERT INTO charges (line_id, merchant_id, charge_id, amount_yen, description, cycle, status)
                SELECT l.line_id, 'm-' || lpad(((substr(l.line_id, 2)::int * 7 + n.n * 101) % 300)::text, 3, '0'),
                       'c-' || l.line_id || '-' || n.n, 100 + (substr(l.line_id, 2)::int * 7 + n.n * 131) % 900,
                       'bench item', \(cycle.description), 'active'
                FROM lines l CROSS JOIN generate_series(1, 3) AS n(n)
                """, logger: logger)
            _ = try await client.query("VACUUM ANALYZE", logger: logger)
        }
    }
}

extension PipelineBenchmark {
    func collectionPhase(
        _ cluster: EmbeddedKafkaCluster, _ server: EmbeddedPostgres, bills count: Int, keys: String, logs: URL,
        logger: Logger
    ) async throws -> (Report.Collection, [(String, Double)]) {
        let prefix = "collection\(count)"
        let topics = try createTopics(cluster, prefix: prefix, partitions: 1)
        try cluster.createTopic(topics.collections, partitions: partitions)
        try cluster.createTopic(topics.collectionResults, partitions: partitions)
        let database = try await freshDatabase(server, name: "collection", partitions: 16, logger: logger)
        let cycle = BillingCycle("2026-10")!
        try await CollectionWorkload.load(database, lines: count, cycle: cycle, logger: logger)
        let workers = Workers(
            bootstrapServers: cluster.bootstrapServers, database: database, prefix: prefix, keys: keys, logs: logs)
        for _ in 0..<2 { try workers.launch("billing-cycle-worker") }
        try await workers.waitUntilReady()
        let producer = try KafkaProducer(
            configuration: KafkaProducerConfiguration(bootstrapServers: cluster.bootstrapServerList), logger: logger)
        _ = try await producer.send(
            KafkaProducerMessage(topic: topics.billingCycles, key: nil, value: CycleCommand.closeMessage(cycle)))
        progress("  closing \(count.formatted()) lines of 300 merchants")
        let bills = try await withPostgresClient(database, logger: logger) { client in
            let store = try await BillingStore.open(client: client, logger: logger)
            let deadline = ContinuousClock.now + .seconds(1800)
            while try await store.closeStatus(cycle)?.isClosed != true {
                guard ContinuousClock.now < deadline else { throw BenchError("the close did not finish") }
                try await Task.sleep(for: .milliseconds(200))
            }
            return try await client.fetch(
                "SELECT line_id, total_yen FROM line_bills WHERE cycle = \(cycle.description)", (String, Int64).self,
                logger: logger)
        }
        await workers.stop()

        // The bank's batch file: every bill paid in full on one day.
        progress("  producing \(bills.count.formatted()) payments")
        let day = CalendarDay.first(of: cycle.next).next
        let messages = bills.map { line, total in
            KafkaProducerMessage(
                topic: topics.collections, key: line,
                value:
                    #"{"type":"payment","lineId":"\#(line)","billId":"bill-\#(line)-\#(cycle)","paymentId":"pay-\#(line)","amount":\#(total),"date":"\#(day)"}"#
            )
        }
        for start in stride(from: 0, to: messages.count, by: 50_000) {
            try await producer.send(Array(messages[start..<min(start + 50_000, messages.count)])).throwIfAnyFailed()
        }
        await producer.shutdown()

        progress("  applying them with 1 collection worker")
        try workers.launch("collection-worker")
        let (seconds, applied) = try await withPostgresClient(database, logger: logger) {
            client -> (Double, Int) in
            var start: (instant: ContinuousClock.Instant, applied: Int64)?
            let deadline = ContinuousClock.now + .seconds(1800)
            while ContinuousClock.now < deadline {
                let done: Int64 =
                    try await client.fetch(
                        """
                        SELECT coalesce(sum(next_offset), 0)::bigint FROM consumer_offsets
                        WHERE topic = \(topics.collections)
                        """, Int64.self, logger: logger
                    ).first ?? 0
                if done > 0, start == nil { start = (.now, done) }
                if done >= Int64(messages.count), let start {
                    let elapsed: Double = (ContinuousClock.now - start.instant) / .seconds(1)
                    return (elapsed, Int(done - start.applied))
                }
                try await Task.sleep(for: .milliseconds(50))
            }
            throw BenchError("the payments were not applied in time")
        }
        let peaks = workers.peakMemory()
        await workers.stop()

        progress("  paying out 300 merchants")
        let (payoutSeconds, entries, statements) = try await withPostgresClient(database, logger: logger) { client in
            let store = try await BillingStore.open(client: client, logger: logger)
            let entries =
                try await client.fetch("SELECT count(*)::int FROM collection_entries", Int.self, logger: logger)
                .first ?? 0
            let started = ContinuousClock.now
            let run = try await store.runPayouts(day.cycle, payableOn: .last(of: day.cycle.next)) { _, _ in [] }
            return ((ContinuousClock.now - started) / .seconds(1), entries, run.statements.count)
        }
        guard statements == 300 else { throw BenchError("\(statements) payout statements, not 300") }
        return (
            Report.Collection(
                bills: bills.count, paymentsPerSecond: Double(applied) / seconds, entries: entries,
                payoutSeconds: payoutSeconds,
                payoutSecondsFor15MillionBills: payoutSeconds * 15_000_000 / Double(bills.count)),
            peaks
        )
    }
}
