import ArgumentParser
import BenchmarkSupport
import Billing
import Foundation
import Logging
import PostgresNIO
import Store

/// The merchants' site's reads at scale: a month of charges of 300 merchants loaded into a private PostgreSQL
/// (16 line partitions, as the store runs them), then the purchase search, the statement page and the
/// statement's items as the site reads them, each against a baseline measured in the same run.
@main
struct SiteBenchmark: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "site-bench",
        abstract: "Measure the merchants' site's queries on a month of --charges charges of 300 merchants.",
        discussion: """
            Loads --charges accepted charges (with their results, their ids and their bill items) and a tenth as
            many refusals, spread over 300 merchants: m-000 has a tenth of everything (the big merchant whose
            statement CSV is long), the others share the rest. Then measures, --queries times each, at random
            merchants weighted by their size:
              baseline   one charge read by its primary key (one partition, one index probe);
              search     the purchase search of the month, newest 51 (the site's first page);
              refused    the same for the refusals only;
              by reason  the same for one reason code (every other time one that matches nothing);
              statement  the statement page's reads: the settlement and the first 2,000 items (the CSV's first
                         chunk: what must come within a second);
            and the whole statement of m-000 read in chunks of 2,000, as the CSV streams it.
            Prints p50 and p95 of each, and each p95 as a multiple of the baseline's. Run it in release mode:
              swift run -c release site-bench
            """)

    @Option(help: "Accepted charges in the month.") var charges = 10_000_000
    @Option(help: "Lines the charges are spread over.") var lines = 1_000_000
    @Option(help: "Queries of each kind.") var queries = 300
    @Flag(help: "Print the figures as JSON.") var json = false

    static let merchants = 300

    func run() async throws {
        let logger = {
            var logger = Logger(label: "matomete.site-bench")
            logger.logLevel = .error
            return logger
        }()
        let server = try await EmbeddedPostgres.start(stopWhenProcessExits: true, logger: logger)
        defer { Task { try? await server.stop() } }
        let figures: Figures
        do {
            figures = try await measureAll(server: server, logger: logger)
        } catch {
            // PostgresNIO's description hides the server's message; a benchmark's operator needs it.
            print("site-bench failed: \(String(reflecting: error))")
            throw ExitCode.failure
        }
        if json {
            try printJSON(figures)
        } else {
            print(figures.table)
        }
    }

    private func measureAll(server: EmbeddedPostgres, logger: Logger) async throws -> Figures {
        try await withPostgresClient(server.configuration, logger: logger) { client in
            try await Migrator().migrate(client, partitions: 16, logger: logger)
            let store = try await BillingStore.open(client: client, logger: logger)
            let loadStart = ContinuousClock.now
            for number in 0..<Self.merchants {
                try await store.upsertMerchant(
                    Merchant(id: MerchantID(rawValue: String(format: "m-%03d", number)), name: "Merchant \(number)"))
            }
            try await load(client, logger: logger)
            let loaded = (ContinuousClock.now - loadStart).seconds
            progress("loaded \(charges.formatted()) charges in \(Int(loaded)) s; measuring")
            return try await measure(store, client: client, loadSeconds: loaded, logger: logger)
        }
    }

    /// The month, loaded with set-based SQL in chunks (progress shown): results, charges, purchase ids, bill
    /// items and settlements; then `ANALYZE`.
    private func load(_ client: PostgresClient, logger: Logger) async throws {
        let merchant = "CASE WHEN g % 10 = 0 THEN 'm-000' ELSE 'm-' || lpad((1 + g % 299)::text, 3, '0') END"
        let line = "'L' || lpad((g % \(lines))::text, 7, '0')"
        // Recorded through November 2026, Japan time, in order of g.
        let time = "timestamptz '2026-11-01 00:00+09' + (g::double precision / \(charges)) * interval '29 days'"
        let chunk = 500_000
        for start in stride(from: 0, to: charges, by: chunk) {
            let end = min(start + chunk, charges) - 1
            try await client.query(
                PostgresQuery(
                    unsafeSQL: """
                        WITH g AS (SELECT generate_series(\(start), \(end)) AS g),
                        results AS (
                            INSERT INTO request_results (line_id, merchant_id, request_type, request_id, result_id,
                                accepted, reason, cycle, recorded_at)
                            SELECT \(line), \(merchant), 'charge', 'c-' || g, 'r-' || g, true, NULL, '2026-11', \(time)
                            FROM g
                        ), refusals AS (
                            INSERT INTO request_results (line_id, merchant_id, request_type, request_id, result_id,
                                accepted, reason, cycle, recorded_at)
                            SELECT \(line), \(merchant), 'charge', 'x-' || g, 'rx-' || g, false,
                                CASE WHEN g % 20 = 5 THEN 'spending_limit_exceeded' ELSE 'line_suspended' END,
                                NULL, \(time)
                            FROM g WHERE g % 10 = 5
                        ), ids AS (
                            INSERT INTO purchase_ids (merchant_id, kind, purchase_id, line_id)
                            SELECT \(merchant), 'charge', 'c-' || g, \(line) FROM g
                        ), items AS (
                            INSERT INTO merchant_bill_items (merchant_id, cycle, line_id, n, kind, reference,
                                description, amount_yen)
                            SELECT \(merchant), '2026-11', \(line), g, 'charge', 'c-' || g, 'item ' || (g % 50),
                                100 + g % 900
                            FROM g
                        )
                        INSERT INTO charges (line_id, merchant_id, charge_id, amount_yen, description, cycle, status)
                        SELECT \(line), \(merchant), 'c-' || g, 100 + g % 900, 'item ' || (g % 50), '2026-11', 'active'
                        FROM g
                        """), logger: logger)
            progress("  \(min(end + 1, charges).formatted())/\(charges.formatted()) charges loaded")
        }
        try await client.query(
            """
            INSERT INTO settlements (merchant_id, cycle, lines, gross_yen, average_per_line_yen, fee_rule,
                rate_basis_points, per_line_threshold_yen, per_line_fee_tenths, fee_yen, net_yen, item_count, credit_yen)
            SELECT merchant_id, '2026-11', count(DISTINCT line_id), sum(amount_yen)::bigint, 0, 'percentage', 500,
                600, 315, (sum(amount_yen) / 20)::bigint, (sum(amount_yen) - sum(amount_yen) / 20)::bigint, count(*),
                0
            FROM merchant_bill_items GROUP BY merchant_id
            """, logger: logger)
        try await client.query("ANALYZE", logger: logger)
    }

    /// Each kind of read `queries` times, at merchants chosen as their share of the charges.
    private func measure(
        _ store: BillingStore, client: PostgresClient, loadSeconds: Double, logger: Logger
    ) async throws -> Figures {
        var generator = SystemRandomNumberGenerator()
        func merchant() -> MerchantID {
            Int.random(in: 0..<10, using: &generator) == 0
                ? "m-000" : MerchantID(rawValue: String(format: "m-%03d", Int.random(in: 1...299, using: &generator)))
        }
        func timed(_ body: () async throws -> Void) async throws -> Double {
            let start = ContinuousClock.now
            try await body()
            return (ContinuousClock.now - start).seconds * 1000
        }
        let from = Date(timeIntervalSince1970: 1_793_458_800)  // 2026-11-01 00:00 JST
        let to = from.addingTimeInterval(30 * 86_400)
        var samples: [String: [Double]] = [:]
        for round in 0..<queries {
            let g = Int.random(in: 0..<charges, using: &generator)
            let line = String(format: "L%07d", g % lines)
            let owner = g % 10 == 0 ? "m-000" : String(format: "m-%03d", 1 + g % 299)
            samples["baseline", default: []].append(
                try await timed {
                    _ = try await client.query(
                        """
                        SELECT amount_yen FROM charges
                        WHERE line_id = \(line) AND merchant_id = \(owner) AND charge_id = \("c-\(g)")
                        """, logger: logger
                    ).collect()
                })
            var search = PurchaseSearch(from: from, to: to)
            search.limit = 51
            let who = merchant()
            samples["search", default: []].append(
                try await timed { _ = try await store.purchases(merchant: who, search) })
            search.status = "refused"
            samples["refused", default: []].append(
                try await timed { _ = try await store.purchases(merchant: who, search) })
            search.reason = ["spending_limit_exceeded", "unknown_line"][round % 2]  // the second matches nothing
            samples["by reason", default: []].append(
                try await timed { _ = try await store.purchases(merchant: who, search) })
            samples["statement", default: []].append(
                try await timed {
                    _ = try await store.settlements(merchant: who, limit: 120)
                    _ = try await store.statementItems(merchant: who, cycle: BillingCycle("2026-11")!, after: nil)
                })
            if round % 50 == 49 { progress("  \(round + 1)/\(queries) rounds of queries") }
        }
        // The big merchant's whole statement, in the CSV's chunks: time to the first chunk, and the whole.
        var position: StatementItem.Position?
        var rows = 0
        var firstChunk = 0.0
        let start = ContinuousClock.now
        while true {
            let items = try await store.statementItems(
                merchant: "m-000", cycle: BillingCycle("2026-11")!, after: position, limit: 2000)
            if rows == 0 { firstChunk = (ContinuousClock.now - start).seconds * 1000 }
            guard let last = items.last else { break }
            rows += items.count
            position = last.position
        }
        let whole = (ContinuousClock.now - start).seconds
        return Figures(
            charges: charges, lines: lines, merchants: Self.merchants, loadSeconds: loadSeconds,
            reads: samples.sorted { $0.key < $1.key }.map { name, values in
                Figures.Read(name: name, samples: values)
            }, csvRows: rows, csvFirstChunkMilliseconds: firstChunk, csvSeconds: whole)
    }
}

/// What the run measured.
struct Figures: Encodable {
    struct Read: Encodable {
        var name: String
        var p50: Double
        var p95: Double

        init(name: String, samples: [Double]) {
            self.name = name
            let sorted = samples.sorted()
            p50 = sorted[sorted.count / 2]
            p95 = sorted[min(sorted.count - 1, sorted.count * 95 / 100)]
        }
    }

    var charges: Int
    var lines: Int
    var merchants: Int
    var loadSeconds: Double
    var reads: [Read]
    var csvRows: Int
    var csvFirstChunkMilliseconds: Double
    var csvSeconds: Double

    var table: String {
        let baseline = reads.first { $0.name == "baseline" }?.p95 ?? 1
        var text = "\(charges.formatted()) charges of \(merchants) merchants on \(lines.formatted()) lines"
        text += String(format: " (loaded in %.0f s)\n", loadSeconds)
        text += "read        p50 ms   p95 ms   p95 / baseline p95\n"
        for read in reads {
            text +=
                read.name.padding(toLength: 10, withPad: " ", startingAt: 0)
                + String(format: "  %7.1f  %7.1f  %8.1fx\n", read.p50, read.p95, read.p95 / baseline)
        }
        text += String(
            format: "statement CSV of m-000: %d rows, first chunk in %.0f ms, all in %.1f s (%.0f rows/s)\n", csvRows,
            csvFirstChunkMilliseconds, csvSeconds, Double(csvRows) / max(csvSeconds, 0.001))
        return text
    }
}

extension Duration {
    fileprivate var seconds: Double {
        let (whole, fraction) = components
        return Double(whole) + Double(fraction) / 1e18
    }
}
