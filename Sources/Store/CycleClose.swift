import Billing
import Foundation
import PostgresNIO

/// Where the close of one cycle stands. A close has two phases: every
/// line is billed (shard by shard), then every merchant is settled, once.
public struct CloseStatus: Sendable, Hashable {
    /// The cycle closing.
    public var cycle: BillingCycle
    /// One shard per line partition.
    public var shardCount: Int
    /// Shards whose every line is billed.
    public var shardsDone: Int
    /// Lines billed so far.
    public var linesClosed: Int64
    /// Every line is billed; the settlements are not computed yet.
    public var isSettling: Bool = false
    /// Settlements computed and published: the cycle is closed.
    public var isClosed: Bool
}

/// How a close's bills and settlements are published. The store writes what
/// this returns in the close's own transactions; the wire format is the caller's.
public protocol ClosePublisher: Sendable {
    /// A line bill's message, and its items as JSON: an array of objects with
    /// `merchantId`, `kind`, `reference`, `description` and `amount`, kept with
    /// the stored bill (``BillingStore/lineStatement(_:cycle:)`` reads them back).
    func lineBill(_ bill: LineBill) -> (message: OutboxMessage, items: [UInt8])
    /// A merchant's settlement's messages: the same one for each topic it goes to.
    func settlement(_ settlement: Settlement) throws -> [OutboxMessage]
}

/// What one chunk of a shard did.
public struct ChunkProgress: Sendable, Hashable {
    /// Lines it billed.
    public var linesClosed: Int
    /// Its shard has no line left to bill.
    public var shardDone: Bool
    /// It finished the last shard: the cycle waits for its settlement
    /// (``BillingStore/settle(_:publishing:)``).
    public var linesDone: Bool
}

extension BillingStore {
    /// Begins closing `cycle`: from now on, each line's next request lands on
    /// the next cycle as soon as that line is closed. Idempotent: a cycle whose
    /// close has begun (or ended) is left as it is.
    ///
    /// Cycles close in order: every line must have `cycle` open (or a later one,
    /// if added after the close began).
    public func startClose(_ cycle: BillingCycle) async throws -> CloseStatus {
        try await transaction { [self] connection in
            try await connection.query("SELECT pg_advisory_xact_lock(7267261721)", logger: logger)
            if let status = try await closeStatus(cycle, on: connection) { return status }
            let earliest =
                try await connection.fetch("SELECT min(open_cycle) FROM lines", String?.self, logger: logger).first
                ?? nil
            if let earliest = earliest.flatMap(BillingCycle.init), earliest < cycle {
                throw StoreError(
                    .cycleOutOfOrder, "cannot close \(cycle): lines still have \(earliest) open; close it first")
            }
            let unfinished = try await connection.fetch(
                "SELECT cycle FROM cycle_closes WHERE status <> 'closed'", String.self, logger: logger)
            if let other = unfinished.first {
                throw StoreError(.cycleOutOfOrder, "cannot close \(cycle) while the close of \(other) is running")
            }
            try await connection.query(
                "INSERT INTO cycle_closes (cycle, shard_count, status) VALUES (\(cycle.description), \(partitions), 'closing')",
                logger: logger)
            try await connection.query(
                """
                INSERT INTO cycle_close_shards (cycle, shard)
                SELECT \(cycle.description), generate_series(0, \(partitions - 1))
                """, logger: logger)
            logger.info("Cycle close started", metadata: ["cycle": "\(cycle)", "shards": "\(partitions)"])
            return CloseStatus(cycle: cycle, shardCount: partitions, shardsDone: 0, linesClosed: 0, isClosed: false)
        }
    }

    /// The close of `cycle`, if it has begun.
    public func closeStatus(_ cycle: BillingCycle) async throws -> CloseStatus? {
        try await client.withGuardedConnection { [self] in try await closeStatus(cycle, on: $0) }
    }

    /// Shards of `cycle` not yet done.
    public func unfinishedShards(_ cycle: BillingCycle) async throws -> [Int] {
        try await client.fetch(
            "SELECT shard FROM cycle_close_shards WHERE cycle = \(cycle.description) AND NOT done ORDER BY shard",
            Int.self, logger: logger)
    }

    /// Closes the next `maxLines` lines of one shard, in one transaction: their
    /// bills go to the outbox, the shard's per-merchant sums grow, the lines move
    /// to the next cycle and the shard's cursor advances. A crash loses at most
    /// the chunk in progress, which the next call does again.
    ///
    /// The chunk that finishes the last shard moves the cycle to its
    /// settlement (``settle(_:publishing:)``).
    public func closeChunk(
        _ cycle: BillingCycle, shard: Int, maxLines: Int = 1000, publishing publisher: any ClosePublisher
    ) async throws -> ChunkProgress {
        guard (0..<partitions).contains(shard) else {
            throw StoreError(.invalidInput, "shard \(shard) is not between 0 and \(partitions - 1)")
        }
        return try await transaction { [self] connection in
            let state = try await connection.fetch(
                """
                SELECT cursor_line_id, done FROM cycle_close_shards
                WHERE cycle = \(cycle.description) AND shard = \(shard) FOR UPDATE
                """, (String, Bool).self, logger: logger
            ).first
            guard let (cursor, done) = state else {
                throw StoreError(.invalidInput, "the close of \(cycle) has not begun")
            }
            if done { return ChunkProgress(linesClosed: 0, shardDone: true, linesDone: false) }
            return try await closeLines(
                cycle, shard: shard, after: cursor, maxLines: maxLines, publisher: publisher, on: connection)
        }
    }

    /// Closes the next chunk of whichever unfinished shard of `cycle` no other
    /// worker is closing right now: several workers calling this share the
    /// shards without coordinating. `nil` when every unfinished shard is taken
    /// (or none is left).
    public func closeNextChunk(
        _ cycle: BillingCycle, maxLines: Int = 1000, publishing publisher: any ClosePublisher
    ) async throws -> (
        shard: Int, progress: ChunkProgress
    )? {
        try await transaction { [self] connection in
            let state = try await connection.fetch(
                """
                SELECT shard, cursor_line_id FROM cycle_close_shards
                WHERE cycle = \(cycle.description) AND NOT done
                ORDER BY shard LIMIT 1 FOR UPDATE SKIP LOCKED
                """, (Int, String).self, logger: logger
            ).first
            guard let (shard, cursor) = state else { return nil }
            let progress = try await closeLines(
                cycle, shard: shard, after: cursor, maxLines: maxLines, publisher: publisher, on: connection)
            return (shard, progress)
        }
    }

    /// Cycles whose close has begun and not finished (lines to bill, or settlements to compute).
    public func closingCycles() async throws -> [BillingCycle] {
        try await client.fetch(
            "SELECT cycle FROM cycle_closes WHERE status <> 'closed' ORDER BY cycle", String.self, logger: logger
        ).compactMap(BillingCycle.init)
    }

    /// Computes every merchant's settlement of `cycle` from the shards' sums,
    /// once, after every line is billed, and publishes them: the cycle is
    /// then closed. Any number of workers may call it at once; one settles,
    /// and a call before the lines are done, or after the settlement, does
    /// nothing. Returns whether this call settled.
    @discardableResult
    public func settle(
        _ cycle: BillingCycle, publishing publisher: any ClosePublisher, tax: ConsumptionTax = .japan
    ) async throws -> Bool {
        try await transaction { [self] connection in
            let status = try await connection.fetch(
                "SELECT status FROM cycle_closes WHERE cycle = \(cycle.description) FOR UPDATE", String.self,
                logger: logger
            ).first
            guard status == "settling" else { return false }
            try await settle(cycle, publisher: publisher, tax: tax, on: connection)
            return true
        }
    }

    /// The work of one chunk, inside the transaction that holds the shard's row lock.
    private func closeLines(
        _ cycle: BillingCycle, shard: Int, after cursor: String, maxLines: Int, publisher: any ClosePublisher,
        on connection: PostgresConnection
    ) async throws -> ChunkProgress {
        // The shard is one child of each per-line table: the same hash remainder.
        let lines = "lines_p\(shard)"
        var lineIDs: [String] = []
        lineIDs.reserveCapacity(maxLines)
        for try await row in try await connection.query(
            """
            SELECT line_id FROM \(unescaped: lines)
            WHERE line_id > \(cursor) AND open_cycle = \(cycle.description)
            ORDER BY line_id LIMIT \(maxLines) FOR UPDATE
            """, logger: logger)
        {
            var columns = RowColumns(row)
            lineIDs.append(try columns.next())
        }
        let (bills, subscriptions) = try await loadBills(
            cycle, shard: shard, lineIDs: lineIDs, after: cursor, on: connection)
        try await writeBills(
            bills, subscriptions: subscriptions, cycle: cycle, shard: shard, publisher: publisher, on: connection)

        let finished = lineIDs.count < maxLines
        try await connection.query(
            """
            UPDATE cycle_close_shards SET cursor_line_id = \(lineIDs.last ?? cursor),
                lines_closed = lines_closed + \(lineIDs.count), done = \(finished), updated_at = now()
            WHERE cycle = \(cycle.description) AND shard = \(shard)
            """, logger: logger)
        var linesDone = false
        if finished {
            let counts = try await connection.fetch(
                """
                UPDATE cycle_closes SET shards_done = shards_done + 1 WHERE cycle = \(cycle.description)
                RETURNING shards_done, shard_count
                """, (Int, Int).self, logger: logger
            ).first
            if let (doneCount, total) = counts, doneCount == total {
                try await connection.query(
                    "UPDATE cycle_closes SET status = 'settling' WHERE cycle = \(cycle.description)", logger: logger)
                logger.info("Every line billed; the cycle waits for its settlement", metadata: ["cycle": "\(cycle)"])
                linesDone = true
            }
        }
        return ChunkProgress(linesClosed: lineIDs.count, shardDone: finished, linesDone: linesDone)
    }

    /// Closes every unfinished shard of `cycle` in this process, chunk by chunk
    /// (for tools and tests; workers share shards among themselves).
    public func closeAll(
        _ cycle: BillingCycle, maxLines: Int = 1000, publishing publisher: any ClosePublisher
    ) async throws {
        _ = try await startClose(cycle)
        for shard in try await unfinishedShards(cycle) {
            while try await !closeChunk(cycle, shard: shard, maxLines: maxLines, publishing: publisher).shardDone {}
        }
        try await settle(cycle, publishing: publisher)
    }

    /// The chunk's bills, and its lines' subscriptions. The chunk is the lines
    /// in `cursor <.. lineIDs.last` whose cycle is open: each table is read
    /// by one range scan of that key range (a probe per line costs more), and
    /// rows of lines in the range but not in the chunk (none but a line added
    /// with a later cycle) are read and never looked up.
    private func loadBills(
        _ cycle: BillingCycle, shard: Int, lineIDs: [String], after cursor: String, on connection: PostgresConnection
    )
        async throws -> ([LineBill], [LineID: [SubscriptionRecord]])
    {
        guard let last = lineIDs.last else { return ([], [:]) }
        let c = cycle.description
        var charges: [LineID: [ChargeRecord]] = [:]
        for try await row in try await connection.query(
            """
            SELECT line_id, merchant_id, charge_id, amount_yen, description, status
            FROM \(unescaped: "charges_p\(shard)")
            WHERE line_id > \(cursor) AND line_id <= \(last) AND cycle = \(c) AND status <> 'cancelled'
            """, logger: logger)
        {
            var columns = RowColumns(row)
            let line = LineID(rawValue: try columns.next())
            charges[line, default: []].append(
                try ChargeRecord(
                    merchant: try columns.next(), id: try columns.next(), amount: try columns.next(),
                    description: try columns.next(), cycle: cycle, status: try columns.next()))
        }
        var subscriptions: [LineID: [SubscriptionRecord]] = [:]
        for try await row in try await connection.query(
            """
            SELECT line_id, merchant_id, subscription_id, monthly_amount_yen, description, start_cycle, last_cycle
            FROM \(unescaped: "subscriptions_p\(shard)")
            WHERE line_id > \(cursor) AND line_id <= \(last)
              AND start_cycle <= \(c) AND (last_cycle IS NULL OR last_cycle >= \(c))
            """, logger: logger)
        {
            var columns = RowColumns(row)
            let line = LineID(rawValue: try columns.next())
            subscriptions[line, default: []].append(
                try SubscriptionRecord(
                    merchant: try columns.next(), id: try columns.next(), monthlyAmount: try columns.next(),
                    description: try columns.next(), startCycle: try columns.next(), lastCycle: try columns.next()))
        }
        var credits: [LineID: [CreditRecord]] = [:]
        for try await row in try await connection.query(
            """
            SELECT line_id, merchant_id, charge_id, description, amount_yen
            FROM \(unescaped: "credits_p\(shard)")
            WHERE line_id > \(cursor) AND line_id <= \(last) AND cycle = \(c)
            """, logger: logger)
        {
            var columns = RowColumns(row)
            let line = LineID(rawValue: try columns.next())
            credits[line, default: []].append(
                CreditRecord(
                    merchantID: MerchantID(rawValue: try columns.next()),
                    chargeID: ChargeID(rawValue: try columns.next()),
                    description: try columns.next(), amount: Yen(try columns.next() as Int64), cycle: cycle))
        }
        let bills = lineIDs.map { id in
            let line = LineID(rawValue: id)
            return LineBill(
                closing: cycle, lineID: line, charges: charges[line] ?? [], subscriptions: subscriptions[line] ?? [],
                credits: credits[line] ?? [])
        }
        return (bills, subscriptions)
    }

    private func writeBills(
        _ bills: [LineBill], subscriptions: [LineID: [SubscriptionRecord]], cycle: BillingCycle, shard: Int,
        publisher: any ClosePublisher, on connection: PostgresConnection
    ) async throws {
        guard !bills.isEmpty else { return }
        var messages: [OutboxMessage] = []
        var items: [String] = []
        messages.reserveCapacity(bills.count)
        items.reserveCapacity(bills.count)
        for bill in bills {
            let published = publisher.lineBill(bill)
            messages.append(published.message)
            items.append(String(decoding: published.items, as: UTF8.self))
        }
        let ids = bills.map(\.lineID.rawValue)
        try await connection.query(
            """
            INSERT INTO line_bills (line_id, cycle, total_yen, items)
            SELECT line_id, \(cycle.description), total, items::json
            FROM unnest(\(ids), \(bills.map(\.total.amount)), \(items)) AS b(line_id, total, items)
            """, logger: logger)
        // The same items by merchant, for its statement (one index range), from the same JSON.
        try await connection.query(
            """
            INSERT INTO merchant_bill_items (merchant_id, cycle, line_id, n, kind, reference, description, amount_yen)
            SELECT i.item->>'merchantId', \(cycle.description), b.line_id, i.n, i.item->>'kind', i.item->>'reference',
                   i.item->>'description', (i.item->>'amount')::bigint
            FROM unnest(\(ids), \(items)) AS b(line_id, items),
                 json_array_elements(b.items::json) WITH ORDINALITY AS i(item, n)
            """, logger: logger)
        let spends = bills.map {
            LineBill.openingSpend(after: cycle, subscriptions: subscriptions[$0.lineID] ?? []).amount
        }
        try await connection.query(
            """
            UPDATE \(unescaped: "lines_p\(shard)") l SET open_cycle = \(cycle.next.description), open_spend_yen = u.spend, updated_at = now()
            FROM unnest(\(ids), \(spends)) AS u(line_id, spend)
            WHERE l.line_id = u.line_id
            """, logger: logger)
        let totals = MerchantTotals.of(bills).sorted { $0.key < $1.key }
        if !totals.isEmpty {
            try await connection.query(
                """
                INSERT INTO merchant_partials (cycle, shard, merchant_id, lines, gross_yen, item_count, credit_yen)
                SELECT \(cycle.description), \(shard), * FROM unnest(
                    \(totals.map(\.key.rawValue)), \(totals.map(\.value.lines)), \(totals.map(\.value.gross.amount)),
                    \(totals.map(\.value.itemCount)), \(totals.map(\.value.creditAmount.amount)))
                ON CONFLICT (cycle, shard, merchant_id) DO UPDATE SET
                    lines = merchant_partials.lines + excluded.lines,
                    gross_yen = merchant_partials.gross_yen + excluded.gross_yen,
                    item_count = merchant_partials.item_count + excluded.item_count,
                    credit_yen = merchant_partials.credit_yen + excluded.credit_yen
                """, logger: logger)
        }
        try await connection.insertOutbox(messages, logger: logger)
    }

    /// Computes every merchant's settlement from the shards' sums, in the
    /// transaction that holds the cycle's row lock.
    private func settle(
        _ cycle: BillingCycle, publisher: any ClosePublisher, tax: ConsumptionTax, on connection: PostgresConnection
    ) async throws {
        var totals: [(MerchantID, MerchantTotals)] = []
        let rows = try await connection.query(
            """
            SELECT merchant_id, sum(lines)::bigint, sum(gross_yen)::bigint, sum(item_count)::bigint, sum(credit_yen)::bigint
            FROM merchant_partials WHERE cycle = \(cycle.description) GROUP BY merchant_id ORDER BY merchant_id
            """, logger: logger)
        for try await (merchant, lines, gross, items, credit) in rows.decode((String, Int64, Int64, Int64, Int64).self)
        {
            totals.append(
                (
                    MerchantID(rawValue: merchant),
                    MerchantTotals(lines: lines, gross: Yen(gross), itemCount: items, creditAmount: Yen(credit))
                ))
        }
        var schedules: [MerchantID: TariffSchedule] = [:]
        let tariffRows = try await connection.query(
            """
            SELECT merchant_id, effective_from, tariff::text
            FROM merchant_tariffs WHERE merchant_id = ANY(\(totals.map(\.0.rawValue)))
            """, logger: logger)
        for try await (merchant, from, tariff) in tariffRows.decode((String, String, String).self) {
            schedules[MerchantID(rawValue: merchant), default: TariffSchedule()].versions.append(
                TariffVersion(effectiveFrom: try storedCycle(from), tariff: try BandedTariff(storedJSON: tariff)))
        }
        let settlements = totals.map { merchant, total in
            Settlement(
                merchantID: merchant, cycle: cycle, totals: total,
                tariff: (schedules[merchant] ?? TariffSchedule()).tariff(for: cycle), tax: tax)
        }
        if !settlements.isEmpty {
            try await connection.query(
                """
                INSERT INTO settlements (merchant_id, cycle, lines, gross_yen, average_per_line_yen, fee_rule,
                    rate_basis_points, per_line_threshold_yen, per_line_fee_tenths, fee_yen, net_yen, item_count, credit_yen,
                    tariff, band, fee_before_tax_yen, tax_yen, tax_rate_basis_points)
                SELECT merchant_id, \(cycle.description), lines, gross, average, rule, rate, threshold, per_line, fee, net, items, credit,
                    tariff::jsonb, band, before_tax, tax, tax_rate
                FROM unnest(\(settlements.map(\.merchantID.rawValue)), \(settlements.map(\.totals.lines)),
                            \(settlements.map(\.totals.gross.amount)), \(settlements.map(\.averagePerLine.amount)),
                            \(settlements.map(\.feeRule.rawValue)), \(settlements.map(\.tariffSummary.rateBasisPoints)),
                            \(settlements.map(\.tariffSummary.perLineThreshold.amount)), \(settlements.map(\.tariffSummary.perLineFeeTenths)),
                            \(settlements.map(\.fee.amount)), \(settlements.map(\.net.amount)), \(settlements.map(\.totals.itemCount)),
                            \(settlements.map(\.totals.creditAmount.amount)), \(settlements.map(\.tariff.storedJSON)),
                            \(settlements.map(\.feeDetail.band)), \(settlements.map(\.feeDetail.beforeTax.amount)),
                            \(settlements.map(\.feeDetail.tax.amount)), \(settlements.map(\.feeDetail.taxRate)))
                    AS s(merchant_id, lines, gross, average, rule, rate, threshold, per_line, fee, net, items, credit,
                         tariff, band, before_tax, tax, tax_rate)
                """, logger: logger)
        }
        try await connection.insertOutbox(try settlements.flatMap(publisher.settlement), logger: logger)
        try await connection.query(
            "UPDATE cycle_closes SET status = 'closed', closed_at = now() WHERE cycle = \(cycle.description)",
            logger: logger)
        logger.info("Cycle closed and settled", metadata: ["cycle": "\(cycle)", "merchants": "\(settlements.count)"])
    }

    private func closeStatus(_ cycle: BillingCycle, on connection: PostgresConnection) async throws -> CloseStatus? {
        let row = try await connection.fetch(
            """
            SELECT c.shard_count, c.shards_done, c.status, coalesce(sum(s.lines_closed), 0)::bigint
            FROM cycle_closes c LEFT JOIN cycle_close_shards s ON s.cycle = c.cycle
            WHERE c.cycle = \(cycle.description) GROUP BY c.shard_count, c.shards_done, c.status
            """, (Int, Int, String, Int64).self, logger: logger
        ).first
        return row.map { count, done, status, lines in
            CloseStatus(
                cycle: cycle, shardCount: count, shardsDone: done, linesClosed: lines,
                isSettling: status == "settling", isClosed: status == "closed")
        }
    }
}
