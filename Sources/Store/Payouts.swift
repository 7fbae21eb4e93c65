import Billing
import Foundation
import PostgresNIO

/// A payout run's result: the statements of its period.
public struct PayoutRun: Sendable {
    /// The period paid out.
    public var period: BillingCycle
    /// Whether it had run before: nothing changed, the statements are the ones made then.
    public var alreadyRun: Bool
    /// Each merchant's statement with its payment day, by merchant id.
    public var statements: [(statement: PayoutStatement, payableOn: CalendarDay)]
}

extension BillingStore {
    /// Pays out `period` once: in one transaction, waits for the collection
    /// batches in flight and holds new ones back (they book into the next
    /// period afterwards); counts the bills of zero or less of every month
    /// closed before the period as settled on the bill (their items collected
    /// in this period); sums each merchant's collection entries booked into
    /// the period per billed month; makes each merchant's statement with the
    /// fee of the month's settlement (``Payouts``) and the carry from its last
    /// one; stores them, publishes `publish`'s messages for each, and records
    /// the period as paid. Run again, it changes nothing and returns the
    /// statements made the first time.
    ///
    /// Throws ``StoreError/Code/payoutOutOfOrder`` when an earlier period with
    /// money moved has not been paid out, or when a month the period's money is
    /// for has not finished its close.
    public func runPayouts(
        _ period: BillingCycle, payableOn: CalendarDay,
        publish: @escaping @Sendable (PayoutStatement, CalendarDay) throws -> [OutboxMessage]
    ) async throws -> PayoutRun {
        try await transaction { [self] connection in
            let lastPaid = try await connection.fetch(
                "SELECT last_paid_period FROM payout_progress FOR UPDATE", String?.self, logger: logger
            ).first.flatMap { $0 }.map(storedCycle)
            if let lastPaid, period <= lastPaid {
                return PayoutRun(
                    period: period, alreadyRun: true, statements: try await statements(of: period, on: connection))
            }
            if let lastPaid, period != lastPaid.next {
                throw StoreError(
                    .payoutOutOfOrder, "payouts run period by period: \(lastPaid.next) comes before \(period)")
            }
            if lastPaid == nil,
                let earliest = try await connection.fetch(
                    "SELECT min(period) FROM collection_entries", String?.self, logger: logger
                ).first ?? nil, earliest < period.description
            {
                throw StoreError(.payoutOutOfOrder, "money moved in \(earliest): pay out \(earliest) first")
            }
            try await settleBillsOfNothing(before: period, on: connection)
            var movements: [MerchantID: [BillingCycle: (collected: Yen, reversed: Yen, writtenOff: Yen)]] = [:]
            for (merchant, cycle, kind, amount) in try await connection.fetch(
                """
                SELECT merchant_id, cycle, kind, sum(amount_yen)::bigint FROM collection_entries
                WHERE period = \(period.description) GROUP BY 1, 2, 3
                """, (String, String, String, Int64).self, logger: logger)
            {
                var moved = movements[MerchantID(rawValue: merchant), default: [:]][try storedCycle(cycle)] ?? (0, 0, 0)
                switch CollectionEntry.Kind(rawValue: kind) {
                case .payment: moved.collected = moved.collected + Yen(amount)
                case .reversal: moved.reversed = moved.reversed + Yen(amount)
                case .writeOff: moved.writtenOff = moved.writtenOff + Yen(amount)
                case nil: throw StoreError(.schemaMismatch, "a collection entry's kind is \"\(kind)\"")
                }
                movements[MerchantID(rawValue: merchant), default: [:]][try storedCycle(cycle)] = moved
            }
            let keys = movements.flatMap { merchant, months in months.keys.map { (merchant.rawValue, $0.description) } }
            var settled: [String: (gross: Yen, fee: Yen, collected: Yen)] = [:]
            for (merchant, cycle, gross, fee, collected) in try await connection.fetch(
                """
                SELECT k.merchant_id, k.cycle, s.gross_yen, s.fee_yen, coalesce(p.collected_yen, 0)
                FROM unnest(\(keys.map(\.0)), \(keys.map(\.1))) AS k(merchant_id, cycle)
                JOIN settlements s ON s.merchant_id = k.merchant_id AND s.cycle = k.cycle
                LEFT JOIN payout_positions p ON p.merchant_id = k.merchant_id AND p.cycle = k.cycle
                """, (String, String, Int64, Int64, Int64).self, logger: logger)
            {
                settled["\(merchant) \(cycle)"] = (Yen(gross), Yen(fee), Yen(collected))
            }
            if let missing = keys.first(where: { settled["\($0.0) \($0.1)"] == nil }) {
                throw StoreError(
                    .payoutOutOfOrder, "\(missing.1) is not settled yet for \(missing.0): let its close finish first")
            }
            var carries: [MerchantID: Yen] = [:]
            if let lastPaid {
                for (merchant, carry) in try await connection.fetch(
                    """
                    SELECT merchant_id, carried_out_yen FROM payouts
                    WHERE period = \(lastPaid.description) AND carried_out_yen < 0
                    """, (String, Int64).self, logger: logger)
                {
                    carries[MerchantID(rawValue: merchant)] = Yen(carry)
                }
            }
            let payees = Set(movements.keys).union(carries.keys).sorted()
            var made: [(statement: PayoutStatement, payableOn: CalendarDay)] = []
            for merchant in payees {
                let months = (movements[merchant] ?? [:]).map { cycle, moved in
                    let settlement = settled["\(merchant.rawValue) \(cycle)"]!
                    return MonthMovement(
                        cycle: cycle, gross: settlement.gross, fee: settlement.fee,
                        collectedBefore: settlement.collected, collected: moved.collected, reversed: moved.reversed,
                        writtenOff: moved.writtenOff)
                }
                made.append(
                    (
                        Payouts.statement(
                            merchant: merchant, period: period, months: months,
                            carriedIn: carries[merchant] ?? .zero),
                        payableOn
                    ))
            }
            try await store(made, on: connection)
            try await connection.insertOutbox(
                try made.flatMap { try publish($0.statement, $0.payableOn) }, logger: logger)
            try await connection.query(
                "UPDATE payout_progress SET last_paid_period = \(period.description)", logger: logger)
            return PayoutRun(period: period, alreadyRun: false, statements: made)
        }
    }

    /// The statements of `period`, by merchant id; empty when it has not been paid out.
    public func payouts(_ period: BillingCycle) async throws -> [(statement: PayoutStatement, payableOn: CalendarDay)] {
        try await client.withGuardedConnection { [self] in try await statements(of: period, on: $0) }
    }

    /// The last period paid out, if any.
    public func lastPaidPeriod() async throws -> BillingCycle? {
        try await client.fetch("SELECT last_paid_period FROM payout_progress", String?.self, logger: logger)
            .first.flatMap { $0 }.map(storedCycle)
    }

    /// Counts the bills of zero or less of every month closed before `period`
    /// and not counted yet as settled on the bill: each merchant's items on
    /// them are collected in `period` (nothing is collected from the line).
    private func settleBillsOfNothing(before period: BillingCycle, on connection: PostgresConnection) async throws {
        let cycles = try await connection.fetch(
            """
            SELECT cycle FROM cycle_closes
            WHERE status = 'closed' AND cycle < \(period.description)
              AND cycle NOT IN (SELECT cycle FROM payout_settled_bills)
            ORDER BY cycle
            """, String.self, logger: logger)
        let day = CalendarDay.first(of: period).description
        for cycle in cycles {
            try await connection.query(
                """
                INSERT INTO collection_entries (line_id, cycle, merchant_id, kind, reference, amount_yen, entry_date, period)
                SELECT b.line_id, b.cycle, i."merchantId", 'payment', 'settled on the bill', sum(i.amount), \(day)::date,
                       \(period.description)
                FROM line_bills b CROSS JOIN LATERAL json_to_recordset(b.items) AS i("merchantId" text, amount bigint)
                WHERE b.cycle = \(cycle) AND b.total_yen <= 0
                GROUP BY b.line_id, b.cycle, i."merchantId"
                HAVING sum(i.amount) <> 0
                """, logger: logger)
            try await connection.query(
                "INSERT INTO payout_settled_bills (cycle, period) VALUES (\(cycle), \(period.description))",
                logger: logger)
        }
    }

    private func store(
        _ made: [(statement: PayoutStatement, payableOn: CalendarDay)], on connection: PostgresConnection
    ) async throws {
        var positions: (merchants: [String], cycles: [String], collected: [Int64], writtenOff: [Int64], fee: [Int64]) =
            ([], [], [], [], [])
        for (statement, _) in made {
            for line in statement.lines {
                positions.merchants.append(statement.merchantID.rawValue)
                positions.cycles.append(line.cycle.description)
                positions.collected.append((line.collected + line.reversed).amount)
                positions.writtenOff.append(line.writtenOff.amount)
                positions.fee.append(line.fee.amount)
            }
        }
        let encoder = JSONEncoder()
        encoder.outputFormatting = .sortedKeys
        let lines = try made.map {
            String(decoding: try encoder.encode($0.statement.lines.map(StoredPayoutLine.init)), as: UTF8.self)
        }
        try await connection.query(
            """
            WITH moved AS (
                INSERT INTO payout_positions AS p (merchant_id, cycle, collected_yen, written_off_yen, fee_taken_yen)
                SELECT * FROM unnest(\(positions.merchants), \(positions.cycles), \(positions.collected),
                                     \(positions.writtenOff), \(positions.fee))
                ON CONFLICT (merchant_id, cycle) DO UPDATE SET
                    collected_yen = p.collected_yen + excluded.collected_yen,
                    written_off_yen = p.written_off_yen + excluded.written_off_yen,
                    fee_taken_yen = p.fee_taken_yen + excluded.fee_taken_yen
            )
            INSERT INTO payouts (merchant_id, period, payable_on, lines, carried_in_yen, amount_payable_yen, carried_out_yen)
            SELECT merchant_id, period, payable_on::date, lines::jsonb, carried_in, payable, carried_out
            FROM unnest(\(made.map(\.statement.merchantID.rawValue)), \(made.map(\.statement.period.description)),
                        \(made.map(\.payableOn.description)), \(lines), \(made.map(\.statement.carriedIn.amount)),
                        \(made.map(\.statement.amountPayable.amount)), \(made.map(\.statement.carriedOut.amount)))
                AS s(merchant_id, period, payable_on, lines, carried_in, payable, carried_out)
            """, logger: logger)
    }

    /// The merchant's payout statements, newest period first.
    public func payouts(merchant: MerchantID) async throws -> [(statement: PayoutStatement, payableOn: CalendarDay)] {
        try await client.withGuardedConnection { [self] in try await statements(of: nil, merchant: merchant, on: $0) }
    }

    private func statements(
        of period: BillingCycle?, merchant: MerchantID? = nil, on connection: PostgresConnection
    ) async throws -> [(statement: PayoutStatement, payableOn: CalendarDay)] {
        let decoder = JSONDecoder()
        return try await connection.fetch(
            """
            SELECT merchant_id, period, payable_on::text, lines::text, carried_in_yen, amount_payable_yen,
                carried_out_yen
            FROM payouts
            WHERE (\(period?.description)::text IS NULL OR period = \(period?.description))
                AND (\(merchant?.rawValue)::text IS NULL OR merchant_id = \(merchant?.rawValue))
            ORDER BY period DESC, merchant_id
            """, (String, String, String, String, Int64, Int64, Int64).self, logger: logger
        ).map { merchant, period, payableOn, lines, carriedIn, payable, carriedOut in
            (
                PayoutStatement(
                    merchantID: MerchantID(rawValue: merchant), period: try storedCycle(period),
                    lines: try decoder.decode([StoredPayoutLine].self, from: Data(lines.utf8)).map { try $0.line() },
                    carriedIn: Yen(carriedIn), amountPayable: Yen(payable), carriedOut: Yen(carriedOut)),
                try storedDay(payableOn)
            )
        }
    }
}

/// A statement's line as kept in `payouts.lines`.
private struct StoredPayoutLine: Codable {
    var cycle: String
    var collected: Int64
    var reversed: Int64
    var writtenOff: Int64
    var fee: Int64
    var payable: Int64

    init(_ line: PayoutLine) {
        cycle = line.cycle.description
        collected = line.collected.amount
        reversed = line.reversed.amount
        writtenOff = line.writtenOff.amount
        fee = line.fee.amount
        payable = line.payable.amount
    }

    func line() throws -> PayoutLine {
        PayoutLine(
            cycle: try storedCycle(cycle), collected: Yen(collected), reversed: Yen(reversed),
            writtenOff: Yen(writtenOff), fee: Yen(fee), payable: Yen(payable))
    }
}

extension BillingStore {
    /// Every merchant's position for each settled month (or `cycle` alone):
    /// its settlement, its collection ledger and what was paid out. Reads the
    /// whole ledger (an operator's report, not a worker's path).
    public func collectionPositions(_ cycle: BillingCycle? = nil) async throws -> [MonthPosition] {
        let only = cycle?.description ?? ""
        return try await client.fetch(
            """
            SELECT s.merchant_id, s.cycle, s.gross_yen, s.fee_yen, s.net_yen,
                   coalesce(e.collected, 0)::bigint, coalesce(e.written_off, 0)::bigint,
                   coalesce(p.collected_yen, 0), coalesce(p.fee_taken_yen, 0), coalesce(p.written_off_yen, 0),
                   coalesce(e.collected_paid, 0)::bigint, coalesce(e.written_off_paid, 0)::bigint
            FROM settlements s
            LEFT JOIN (
                SELECT merchant_id, cycle, sum(amount_yen) FILTER (WHERE kind <> 'write-off') AS collected,
                       sum(amount_yen) FILTER (WHERE kind = 'write-off') AS written_off,
                       sum(amount_yen) FILTER (WHERE kind <> 'write-off' AND period <= paid.last) AS collected_paid,
                       sum(amount_yen) FILTER (WHERE kind = 'write-off' AND period <= paid.last) AS written_off_paid
                FROM collection_entries
                CROSS JOIN (SELECT coalesce(last_paid_period, '') AS last FROM payout_progress) AS paid
                WHERE \(only) = '' OR cycle = \(only) GROUP BY 1, 2
            ) e ON e.merchant_id = s.merchant_id AND e.cycle = s.cycle
            LEFT JOIN payout_positions p ON p.merchant_id = s.merchant_id AND p.cycle = s.cycle
            WHERE \(only) = '' OR s.cycle = \(only)
            ORDER BY s.cycle, s.merchant_id
            """, (String, String, Int64, Int64, Int64, Int64, Int64, Int64, Int64, Int64, Int64, Int64).self,
            logger: logger
        ).map {
            merchant, cycle, gross, fee, net, collected, writtenOff, paidCollected, paidFee, paidWrittenOff,
            ledgerCollected, ledgerWrittenOff in
            MonthPosition(
                merchantID: MerchantID(rawValue: merchant), cycle: try storedCycle(cycle), gross: Yen(gross),
                fee: Yen(fee), net: Yen(net), collected: Yen(collected), writtenOff: Yen(writtenOff),
                paidOutCollected: Yen(paidCollected), paidOutFee: Yen(paidFee),
                paidOutWrittenOff: Yen(paidWrittenOff), ledgerCollectedPaidOut: Yen(ledgerCollected),
                ledgerWrittenOffPaidOut: Yen(ledgerWrittenOff))
        }
    }
}
