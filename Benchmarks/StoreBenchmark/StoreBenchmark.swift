import ArgumentParser
import BenchmarkSupport
import Billing
import Contract
import Foundation
import Logging
import PostgresNIO
import Processing
import Store

/// Applying batches of charges through the store, next to a plain COPY of the
/// same rows into the same tables, on one private PostgreSQL, in one run.
@main
struct StoreBenchmark: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "store-bench",
        abstract: "Measure the store's batch apply against PostgreSQL COPY of the same rows.",
        discussion: """
            Starts a private PostgreSQL, creates two identical databases (16 line partitions,
            --lines lines, one merchant), then writes --charges one-time charges:
              baseline  COPY of the rows the charge path writes: the charges and their
                        merchant-result messages in the outbox;
              apply     the store's exactly-once batch apply (offset compare-and-set, line
                        locks, rules, charges, line spend, outbox), --batch requests a batch,
                        --writers partitions applied at once (as a worker with several
                        assigned partitions does).
            Prints rows/s for both and the ratio. Run it in release mode:
              swift run -c release store-bench
            """)

    @Option(help: "Lines in the database.") var lines = 100_000
    @Option(help: "Charges written by each side.") var charges = 200_000
    @Option(help: "Requests per applied batch (one Kafka poll's worth).") var batch = 500
    @Option(help: "Partitions applied concurrently, as a worker does with its assigned partitions.")
    var writers = 2
    @Option(help: "Lines for the bulk-import measurement (0 to skip).") var importLines = 1_000_000
    @Option(help: "Rounds; each side's median is reported (this machine varies run to run).") var rounds = 3
    @Flag(help: "Print the figures as JSON.") var json = false

    func run() async throws {
        let logger = {
            var logger = Logger(label: "matomete.store-bench")
            logger.logLevel = .error
            return logger
        }()
        let server = try await EmbeddedPostgres.start(stopWhenProcessExits: true, logger: logger)
        defer { Task { try? await server.stop() } }
        let requests = (0..<charges).map { index in
            ChargeRequest(
                merchantID: "m-bench", chargeID: ChargeID(rawValue: "c-\(index)"),
                lineID: LineID(rawValue: String(format: "L%07d", index % lines)), amount: Yen(Int64(100 + index % 900)),
                description: "bench item \(index % 50)")
        }

        var copyRates: [Double] = []
        var applyRates: [Double] = []
        for round in 1...rounds {
            // Alternate which side goes first.
            if round % 2 == 1 {
                copyRates.append(try await measureCopy(requests, server: server, round: round, logger: logger))
            }
            applyRates.append(try await measureApply(requests, server: server, round: round, logger: logger))
            if round % 2 == 0 {
                copyRates.append(try await measureCopy(requests, server: server, round: round, logger: logger))
            }
            progress(
                "round \(round)/\(rounds): COPY \(rate(copyRates.last!)) rows/s, apply \(rate(applyRates.last!)) requests/s"
            )
        }

        var importSeconds: Double?
        if importLines > 0 {
            let database = try await prepare(server.configuration, name: "bench_import", logger: logger, lineCount: 0)
            let count = importLines
            importSeconds = try await withPostgresClient(database, logger: logger) { client in
                let store = try await BillingStore.open(client: client, logger: logger)
                let lines = (0..<count).map {
                    Line(id: LineID(rawValue: String(format: "L%07d", $0)), type: .hikariNext)
                }
                let start = ContinuousClock.now
                try await store.importLines(lines, openCycle: BillingCycle("2026-11")!)
                return (ContinuousClock.now - start).seconds
            }
            progress("import: \(count) lines in \(String(format: "%.1f", importSeconds!)) s")
        }

        let copyRate = copyRates.sorted()[copyRates.count / 2]
        let applyRate = applyRates.sorted()[applyRates.count / 2]
        if json {
            let figures: [String: Double] = [
                "charges": Double(charges), "batch": Double(batch), "writers": Double(writers),
                "copyRowsPerSecond": copyRate,
                "applyRequestsPerSecond": applyRate, "ratio": applyRate / copyRate,
                "importLines": Double(importLines), "importSeconds": importSeconds ?? 0,
            ]
            try printJSON(figures)
        } else {
            print(
                """
                \(charges) charges on \(lines) lines, batches of \(batch), \(writers) partitions at once, private PostgreSQL
                medians of \(rounds) rounds               rows/s
                COPY (charges + outbox)  \(rate(copyRate).leftPadded(12))
                batch apply              \(rate(applyRate).leftPadded(12))
                ratio                    \(String(format: "%.2f×", applyRate / copyRate).leftPadded(12))
                target: ratio ≥ 0.30× — \(applyRate / copyRate >= 0.3 ? "met" : "NOT met")
                """)
            if let importSeconds {
                print("line import: \(rate(Double(importLines))) lines in \(String(format: "%.1f", importSeconds)) s")
            }
        }
    }

    private func measureCopy(
        _ requests: [ChargeRequest], server: EmbeddedPostgres, round: Int, logger: Logger
    )
        async throws -> Double
    {
        let database = try await prepare(server.configuration, name: "bench_copy_\(round)", logger: logger)
        let seconds = try await withPostgresClient(database, logger: logger) { client in
            try await copyChargeRows(requests, client: client, logger: logger)
        }
        return Double(requests.count) / seconds
    }

    private func measureApply(
        _ requests: [ChargeRequest], server: EmbeddedPostgres, round: Int, logger: Logger
    )
        async throws -> Double
    {
        let database = try await prepare(server.configuration, name: "bench_apply_\(round)", logger: logger)
        let writers = self.writers
        let seconds = try await withPostgresClient(database, logger: logger) { client in
            let store = try await BillingStore.open(client: client, logger: logger)
            // Requests split by line, as Kafka partitions them by key.
            var streams = Array(repeating: [ChargeRequest](), count: writers)
            for request in requests { streams[abs(request.lineID.rawValue.hashValue) % writers].append(request) }
            let batchSize = batch
            let clock = ContinuousClock()
            let start = clock.now
            try await withThrowingTaskGroup(of: Void.self) { group in
                for (partition, stream) in streams.enumerated() {
                    group.addTask {
                        let cursor = PartitionCursor(
                            consumerGroup: "bench", topic: "matomete.charges", partition: Int32(partition))
                        var offset: Int64 = 0
                        for chunk in stride(from: 0, to: stream.count, by: batchSize) {
                            let slice = stream[chunk..<min(chunk + batchSize, stream.count)]
                            let sourced = slice.enumerated().map {
                                SourcedRequest(.charge($1), offset: offset + Int64($0))
                            }
                            let outcomes = try await RequestProcessor(store: store).apply(
                                sourced, from: cursor, expectedOffset: offset == 0 ? nil : offset,
                                nextOffset: offset + Int64(slice.count))
                            guard outcomes.allSatisfy(\.isAccepted) else {
                                throw ValidationError("a benchmark charge was refused")
                            }
                            offset += Int64(slice.count)
                        }
                    }
                }
                try await group.waitForAll()
            }
            return (clock.now - start).seconds
        }
        return Double(requests.count) / seconds
    }

    /// A migrated database with the lines and the merchant.
    private func prepare(
        _ server: DatabaseConfiguration, name: String, logger: Logger, lineCount: Int? = nil
    ) async throws -> DatabaseConfiguration {
        try await withPostgresClient(server, logger: logger) { client in
            // The name is a constant of this program, not input.
            _ = try await client.query(PostgresQuery(unsafeSQL: "CREATE DATABASE \(name)"), logger: logger)
        }
        let database = server.with(database: name)
        let lineCount = lineCount ?? lines
        try await withPostgresClient(database, logger: logger) { client in
            try await Migrator().migrate(client, partitions: 16, logger: logger)
            let store = try await BillingStore.open(client: client, logger: logger)
            try await store.upsertMerchant(Merchant(id: "m-bench", name: "Benchmark"))
            let lines = (0..<lineCount).map {
                Line(id: LineID(rawValue: String(format: "L%07d", $0)), type: .hikariNext, spendingLimit: 0)
            }
            if !lines.isEmpty { try await store.importLines(lines, openCycle: BillingCycle("2026-11")!) }
        }
        return database
    }
}
