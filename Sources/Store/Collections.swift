import Billing
import PostgresNIO

/// What one collection batch's transaction loaded, for the collection rules
/// to decide on; what they change is written back in the same transaction.
public struct CollectionBatchState: Sendable {
    /// Every line the reports touch, with the bills and payments they refer to.
    public var lines: [LineID: LineCollections]
    /// The first payout period not paid out yet (`nil`: none was ever paid out).
    public let firstOpenPeriod: BillingCycle?
    /// The messages the batch publishes, committed with it.
    public var outbox: [OutboxMessage] = []
}

extension BillingStore {
    /// Applies a batch of collection reports read from one or more partitions
    /// in one transaction: moves every partition's stored offset by
    /// compare-and-set (first, so a worker that lost the partition waits and
    /// then fails with ``StoreError/Code/staleOffset``); reads the last payout
    /// period paid out, sharing its lock with other batches so that a payout
    /// run waits for them and they for it; loads the payments the reports name
    /// and the bills they and those payments refer to, with their entries; lets
    /// `decide` apply the rules; and writes back the new payments, reversals,
    /// write-offs and entries with the outbox messages `decide` chose.
    @discardableResult
    public func applyCollections<T: Sendable>(
        moving moves: [OffsetMove], reports: [CollectionReport],
        _ decide: @escaping @Sendable (inout CollectionBatchState) throws -> T
    ) async throws -> T {
        try await transaction { [self] connection in
            _ = try await moveOffsets(moves, loading: [], on: connection)
            // Each line's reports are applied one batch at a time: a line's partition is one worker's, and
            // should the topic's partitions ever change (a line's old reports still waiting in one partition,
            // new ones in another), the lines' locks, taken in one order, keep it so.
            let lines = Array(Set(reports.map(\.lineID.rawValue)))
            let lastPaid =
                try await connection.fetch(
                    """
                    SELECT (SELECT last_paid_period FROM payout_progress FOR SHARE),
                           (SELECT count(*) FROM (
                                SELECT pg_advisory_xact_lock(7267, h)
                                FROM (SELECT DISTINCT hashtext(id) AS h FROM unnest(\(lines)::text[]) AS u(id) ORDER BY 1)
                                    AS hashes
                            ) AS locked)::int
                    """, (String?, Int).self, logger: logger
                ).first?.0 ?? nil
            var state = CollectionBatchState(
                lines: try await loadCollections(for: reports, on: connection),
                firstOpenPeriod: try lastPaid.map(storedCycle)?.next)
            let result = try decide(&state)
            try await persist(state, on: connection)
            return result
        }
    }

    private func loadCollections(
        for reports: [CollectionReport], on connection: PostgresConnection
    ) async throws -> [LineID: LineCollections] {
        var payments: [LineID: [PaymentRecord]] = [:]
        var wanted: (lines: [String], ids: [String]) = ([], [])
        var bills = Set<[String]>()
        for report in reports {
            switch report.event {
            case .payment(let id, _, _), .reversal(let id, _):
                wanted.lines.append(report.lineID.rawValue)
                wanted.ids.append(id.rawValue)
            case .writeOff: break
            }
            if let cycle = report.cycle { bills.insert([report.lineID.rawValue, cycle.description]) }
        }
        var found: [(LineID, PaymentID, BillingCycle, Yen, CalendarDay, CalendarDay?)] = []
        if !wanted.lines.isEmpty {
            let rows = try await connection.fetch(
                """
                SELECT p.line_id, p.payment_id, p.cycle, p.amount_yen, p.received_on::text, p.reversed_on::text
                FROM payments p
                WHERE (p.line_id, p.payment_id) IN (SELECT * FROM unnest(\(wanted.lines), \(wanted.ids)))
                """, (String, String, String, Int64, String, String?).self, logger: logger)
            for (line, id, cycle, amount, received, reversed) in rows {
                let billed = try storedCycle(cycle)
                found.append(
                    (
                        LineID(rawValue: line), PaymentID(rawValue: id), billed, Yen(amount), try storedDay(received),
                        try reversed.map(storedDay)
                    ))
                bills.insert([line, cycle])
            }
        }
        let billKeys = bills.sorted { ($0[0], $0[1]) < ($1[0], $1[1]) }
        var billed: [LineID: [BillingCycle: BillCollection]] = [:]
        let billRows = try await connection.fetch(
            """
            SELECT b.line_id, b.cycle, b.written_off_on::text, i."merchantId", i.amount
            FROM unnest(\(billKeys.map { $0[0] }), \(billKeys.map { $0[1] })) AS k(line_id, cycle)
            JOIN line_bills b ON b.line_id = k.line_id AND b.cycle = k.cycle
            LEFT JOIN LATERAL json_to_recordset(b.items) AS i("merchantId" text, amount bigint) ON true
            """, (String, String, String?, String?, Int64?).self, logger: logger)
        for (line, cycleText, writtenOff, merchant, amount) in billRows {
            let cycle = try storedCycle(cycleText)
            let lineID = LineID(rawValue: line)
            var bill =
                try billed[lineID]?[cycle]
                ?? BillCollection(cycle: cycle, billed: [:], writtenOffOn: writtenOff.map(storedDay))
            if let merchant, let amount {
                bill.billed[MerchantID(rawValue: merchant), default: .zero] =
                    bill.billed[MerchantID(rawValue: merchant), default: .zero] + Yen(amount)
            }
            billed[lineID, default: [:]][cycle] = bill
        }
        var shares: [LineID: [BillingCycle: [PaymentID: [MerchantID: Yen]]]] = [:]
        let entryRows = try await connection.fetch(
            """
            SELECT e.line_id, e.cycle, e.merchant_id, e.kind, e.reference, e.amount_yen
            FROM collection_entries e
            WHERE (e.line_id, e.cycle) IN (SELECT * FROM unnest(\(billKeys.map { $0[0] }), \(billKeys.map { $0[1] })))
            """, (String, String, String, String, String, Int64).self, logger: logger)
        for (line, cycleText, merchantText, kind, reference, amount) in entryRows {
            let (lineID, cycle, merchant) = (
                LineID(rawValue: line), try storedCycle(cycleText), MerchantID(rawValue: merchantText)
            )
            guard var bill = billed[lineID]?[cycle] else { continue }
            switch CollectionEntry.Kind(rawValue: kind) {
            case .payment:
                bill.collected[merchant, default: .zero] = bill.collected[merchant, default: .zero] + Yen(amount)
                shares[lineID, default: [:]][cycle, default: [:]][PaymentID(rawValue: reference), default: [:]][
                    merchant] =
                    Yen(amount)
            case .reversal:
                bill.collected[merchant, default: .zero] = bill.collected[merchant, default: .zero] + Yen(amount)
            case .writeOff:
                bill.writtenOff[merchant, default: .zero] = bill.writtenOff[merchant, default: .zero] + Yen(amount)
            case nil:
                throw StoreError(.schemaMismatch, "a collection entry's kind is \"\(kind)\"")
            }
            billed[lineID]?[cycle] = bill
        }
        for (line, id, cycle, amount, received, reversed) in found {
            payments[line, default: []].append(
                PaymentRecord(
                    id: id, cycle: cycle, amount: amount, receivedOn: received,
                    shares: shares[line]?[cycle]?[id] ?? [:], reversedOn: reversed))
        }
        var lines: [LineID: LineCollections] = [:]
        for lineID in Set(reports.map(\.lineID)) {
            lines[lineID] = LineCollections(
                lineID: lineID, bills: billed[lineID].map { Array($0.values) } ?? [],
                payments: payments[lineID] ?? [])
        }
        return lines
    }

    private func persist(_ state: CollectionBatchState, on connection: PostgresConnection) async throws {
        var newPayments: [(LineID, PaymentRecord)] = []
        var reversed: [(LineID, PaymentRecord)] = []
        var writtenOff: [(LineID, BillingCycle, CalendarDay)] = []
        var entries: [CollectionEntry] = []
        for (lineID, line) in state.lines.sorted(by: { $0.key < $1.key }) {
            newPayments += line.newPayments.compactMap { id in line.payments[id].map { (lineID, $0) } }
            reversed += line.reversedPayments.compactMap { id in line.payments[id].map { (lineID, $0) } }
                .filter { reversal in !line.newPayments.contains(reversal.1.id) }
            writtenOff += line.writtenOffBills.compactMap { cycle in
                line.bills[cycle]?.writtenOffOn.map { (lineID, cycle, $0) }
            }
            entries += line.entries
        }
        let messages = state.outbox
        try await connection.query(
            """
            WITH new_payments AS (
                INSERT INTO payments (line_id, payment_id, cycle, amount_yen, received_on, reversed_on)
                SELECT line_id, payment_id, cycle, amount, received_on::date, NULLIF(reversed_on, '')::date
                FROM unnest(\(newPayments.map(\.0.rawValue)), \(newPayments.map(\.1.id.rawValue)),
                            \(newPayments.map(\.1.cycle.description)), \(newPayments.map(\.1.amount.amount)),
                            \(newPayments.map(\.1.receivedOn.description)),
                            \(newPayments.map { $0.1.reversedOn?.description ?? "" }))
                    AS p(line_id, payment_id, cycle, amount, received_on, reversed_on)
            ), reversed_payments AS (
                UPDATE payments p SET reversed_on = u.reversed_on::date
                FROM unnest(\(reversed.map(\.0.rawValue)), \(reversed.map(\.1.id.rawValue)),
                            \(reversed.map { $0.1.reversedOn?.description ?? "" }))
                    AS u(line_id, payment_id, reversed_on)
                WHERE p.line_id = u.line_id AND p.payment_id = u.payment_id
            ), written_off AS (
                UPDATE line_bills b SET written_off_on = u.written_off_on::date
                FROM unnest(\(writtenOff.map(\.0.rawValue)), \(writtenOff.map(\.1.description)),
                            \(writtenOff.map(\.2.description)))
                    AS u(line_id, cycle, written_off_on)
                WHERE b.line_id = u.line_id AND b.cycle = u.cycle
            ), new_entries AS (
                INSERT INTO collection_entries (line_id, cycle, merchant_id, kind, reference, amount_yen, entry_date, period)
                SELECT line_id, cycle, merchant_id, kind, reference, amount, entry_date::date, period
                FROM unnest(\(entries.map(\.lineID.rawValue)), \(entries.map(\.cycle.description)),
                            \(entries.map(\.merchantID.rawValue)), \(entries.map(\.kind.rawValue)),
                            \(entries.map(\.reference)), \(entries.map(\.amount.amount)),
                            \(entries.map(\.date.description)), \(entries.map(\.period.description)))
                    AS e(line_id, cycle, merchant_id, kind, reference, amount, entry_date, period)
            )
            INSERT INTO outbox (topic, message_key, message_id, payload, headers)
            SELECT topic, NULLIF(message_key, ''), message_id, payload, headers::jsonb
            FROM unnest(\(messages.map(\.topic)), \(messages.map { $0.key ?? "" }), \(messages.map(\.id)),
                        \(messages.map { ByteBuffer(bytes: $0.payload) }), \(messages.map(\.headersJSON)))
                AS m(topic, message_key, message_id, payload, headers)
            """, logger: logger)
    }
}

/// A day as stored (`date::text`, `YYYY-MM-DD`).
func storedDay(_ text: String) throws -> CalendarDay {
    guard let day = CalendarDay(text) else {
        throw StoreError(.schemaMismatch, "a stored day is \"\(text)\", not YYYY-MM-DD")
    }
    return day
}
