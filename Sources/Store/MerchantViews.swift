import Billing
import Foundation
import PostgresNIO

/// One month of a merchant's requests so far, for the site's overview.
public struct MerchantMonthSummary: Sendable, Hashable {
    /// Charges and subscription starts accepted.
    public var accepted: Int64 = 0
    /// Charges and subscription starts refused, by reason code (refused cancellations are on the cancellations
    /// page).
    public var refusedByReason: [String: Int64] = [:]
    /// Cancellations accepted (charges and subscriptions).
    public var cancelled: Int64 = 0
    /// What the month's bills hold of the merchant so far: active charges of the cycle and subscriptions billed in
    /// it, less credits.
    public var gross: Yen = 0

    /// An empty month.
    public init() {}
}

/// What a purchase search asks for; every part optional but the range.
public struct PurchaseSearch: Sendable, Hashable {
    /// Results recorded from this instant.
    public var from: Date
    /// Results recorded before this instant.
    public var to: Date
    /// Only this line's.
    public var lineID: String?
    /// Only this charge or subscription id.
    public var purchaseID: String?
    /// `accepted`, `refused`, `cancelled` or `refunded`.
    public var status: String?
    /// Only refusals with this reason code.
    public var reason: String?
    /// The cancellation requests (of charges and subscriptions) instead of the charges and subscriptions; each row
    /// then tells the cancelled purchase's state now.
    public var cancellations = false
    /// Rows to skip (paging).
    public var offset: Int = 0
    /// Rows to return.
    public var limit: Int = 50

    /// A search over `from..<to`.
    public init(from: Date, to: Date) {
        self.from = from
        self.to = to
    }

    /// The statuses a search may filter on.
    public static let statuses = ["accepted", "refused", "cancelled", "refunded"]
}

/// A charge or subscription request and what became of it, as the site lists it.
public struct PurchaseRow: Sendable, Hashable {
    /// When its result was recorded.
    public var recordedAt: Date
    /// `charge` or `subscription`.
    public var kind: String
    /// The merchant's charge or subscription id.
    public var purchaseID: String
    /// The line.
    public var lineID: String
    /// Whether it was accepted.
    public var accepted: Bool
    /// The reason code of a refusal.
    public var reason: String?
    /// The cycle whose bill it is on.
    public var cycle: String?
    /// The amount (monthly for a subscription), when accepted.
    public var amount: Yen?
    /// What the merchant called it, when accepted.
    public var description: String?
    /// Its state now: `active`, `cancelled`, `credited` (refunded on a later bill) or `ended`.
    public var state: String?
}

/// A purchase's whole story: every result about it, and where it stands.
public struct PurchaseHistory: Sendable, Hashable {
    /// `charge` or `subscription`.
    public var kind: String
    /// The merchant's id for it.
    public var purchaseID: String
    /// Its line.
    public var lineID: String
    /// Every result about it (the request, repeats, cancellations), oldest first.
    public var results: [RequestResult]
    /// The purchase as accepted, if it was.
    public var accepted: PurchaseRow?
    /// The month a cancellation after the close was refunded in, as a credit.
    public var creditedIn: String?
    /// The bills it is on, for months already closed.
    public var bills: [BillReference]

    /// A line bill a purchase is on.
    public struct BillReference: Sendable, Hashable {
        /// The billed month.
        public var cycle: String
        /// The bill's id, as on `line-bills` (`bill-<line>-<month>`).
        public var billID: String
    }
}

/// A merchant's subscription as the site lists it.
public struct SubscriptionRow: Sendable, Hashable {
    /// The merchant's subscription id.
    public var subscriptionID: String
    /// The line.
    public var lineID: String
    /// The monthly amount.
    public var monthlyAmount: Yen
    /// What the merchant called it.
    public var description: String
    /// The first month billed.
    public var startCycle: String
    /// The last month billed, once cancelled.
    public var lastCycle: String?
    /// When it started.
    public var startedAt: Date
    /// When it was cancelled.
    public var endedAt: Date?
    /// The closed months whose line bill holds it.
    public var monthsBilled: Int64
}

/// A message signed with a merchant's key that was not a request it may send (not JSON, an unknown type, a request
/// naming another merchant): dead-lettered, and kept for the merchant's developers.
public struct MerchantDeadLetter: Sendable, Hashable {
    /// How much of a value is kept.
    public static let keptValueBytes = 4096

    /// The merchant whose key signed it.
    public var merchantID: MerchantID
    /// Where it was read.
    public var sourceTopic: String
    /// The partition it was read from.
    public var sourcePartition: Int32
    /// Its offset there.
    public var sourceOffset: Int64
    /// Why it is not a request (as in the dead letter's `error` header).
    public var reason: String
    /// Its key, when it is text.
    public var key: String?
    /// Its value, at most ``keptValueBytes``.
    public var value: [UInt8]
    /// The size of the whole value.
    public var valueSize: Int32
    /// When it was read (set by the database).
    public var recordedAt: Date?

    /// A dead letter to keep; the value is cut to ``keptValueBytes``.
    public init(
        merchantID: MerchantID, sourceTopic: String, sourcePartition: Int32, sourceOffset: Int64, reason: String,
        key: String?, value: some Collection<UInt8>, recordedAt: Date? = nil
    ) {
        self.merchantID = merchantID
        self.sourceTopic = sourceTopic
        self.sourcePartition = sourcePartition
        self.sourceOffset = sourceOffset
        self.reason = reason
        self.key = key
        self.value = Array(value.prefix(Self.keptValueBytes))
        self.valueSize = Int32(clamping: value.count)
        self.recordedAt = recordedAt
    }
}

/// One billed item of a merchant's statement.
public struct StatementItem: Sendable, Hashable {
    /// The line billed.
    public var lineID: String
    /// `charge`, `subscription` or `credit`.
    public var kind: String
    /// The merchant's charge or subscription id.
    public var reference: String
    /// What the merchant called it.
    public var description: String
    /// The amount billed (negative for a credit).
    public var amount: Yen
    /// Where it is in the statement: its line, and its place on the line's bill.
    public var position: Position

    /// A place in a statement, to read on from.
    public struct Position: Sendable, Hashable {
        /// The line.
        public var lineID: String
        /// The item's place on the line's bill, from 1.
        public var index: Int64
    }
}

extension BillingStore {
    /// The merchant's requests of `cycle` so far (results recorded in the month, Japan time), and what its
    /// bills hold of the merchant.
    public func monthSummary(merchant: MerchantID, cycle: BillingCycle) async throws -> MerchantMonthSummary {
        let month = cycle.description
        var summary = MerchantMonthSummary()
        let counts = try await client.fetch(
            """
            SELECT request_type, accepted, coalesce(reason, ''), count(*) FROM request_results
            WHERE merchant_id = \(merchant.rawValue)
                AND recorded_at >= (\(month) || '-01')::timestamp AT TIME ZONE 'Asia/Tokyo'
                AND recorded_at < ((\(month) || '-01')::timestamp + interval '1 month') AT TIME ZONE 'Asia/Tokyo'
            GROUP BY 1, 2, 3
            """, (String, Bool, String, Int64).self, logger: logger)
        for (type, accepted, reason, count) in counts {
            switch (type, accepted) {
            case ("charge", true), ("subscription", true): summary.accepted += count
            case ("charge-cancel", true), ("subscription-cancel", true): summary.cancelled += count
            case ("charge", false), ("subscription", false):
                summary.refusedByReason[reason.isEmpty ? "unknown" : reason, default: 0] += count
            default: break
            }
        }
        let gross = try await client.fetch(
            """
            SELECT (coalesce((SELECT sum(amount_yen) FROM charges
                    WHERE merchant_id = \(merchant.rawValue) AND cycle = \(month) AND status = 'active'), 0)
                + coalesce((SELECT sum(monthly_amount_yen) FROM subscriptions
                    WHERE merchant_id = \(merchant.rawValue) AND start_cycle <= \(month)
                        AND (last_cycle IS NULL OR last_cycle >= \(month))), 0)
                + coalesce((SELECT sum(amount_yen) FROM credits
                    WHERE merchant_id = \(merchant.rawValue) AND cycle = \(month)), 0))::bigint
            """, Int64.self, logger: logger)
        summary.gross = Yen(gross.first ?? 0)
        return summary
    }

    /// The merchant's charge and subscription requests matching `search`, newest first.
    public func purchases(merchant: MerchantID, _ search: PurchaseSearch) async throws -> [PurchaseRow] {
        // A reason code is a refusal's: asked for, only refusals are read (their own index).
        if search.reason != nil, search.status != nil, search.status != "refused" { return [] }
        let accepted: Bool? =
            switch search.status {
            case _ where search.reason != nil: false
            case "accepted": true
            case "refused": false
            default: nil
            }
        let state: String? =
            switch search.status {
            case "cancelled": "cancelled"
            case "refunded": "credited"
            default: nil
            }
        return try await client.withGuardedConnection { [self] connection in
            var rows: [PurchaseRow] = []
            for try await row in try await connection.query(
                """
                SELECT \(unescaped: PurchaseRow.columns)
                FROM request_results r
                \(unescaped: PurchaseRow.joins)
                WHERE r.merchant_id = \(merchant.rawValue)
                    AND r.request_type = ANY(\(search.cancellations ? ["charge-cancel", "subscription-cancel"] : ["charge", "subscription"]))
                    AND r.recorded_at >= \(search.from) AND r.recorded_at < \(search.to)
                    AND (\(search.lineID)::text IS NULL OR r.line_id = \(search.lineID))
                    AND (\(search.purchaseID)::text IS NULL OR r.request_id = \(search.purchaseID))
                    AND (\(accepted)::boolean IS NULL OR r.accepted = \(accepted))
                    AND (\(search.reason)::text IS NULL OR r.reason = \(search.reason))
                    AND (\(state)::text IS NULL OR c.status = \(state)
                        OR (\(state) = 'cancelled' AND s.last_cycle IS NOT NULL))
                ORDER BY r.recorded_at DESC, r.result_id DESC
                LIMIT \(search.limit) OFFSET \(search.offset)
                """, logger: logger)
            {
                rows.append(try PurchaseRow(row))
            }
            return rows
        }
    }

    /// Everything about the merchant's charge or subscription `purchaseID`: on `lineID` when given (a refused
    /// request has no other trace), else on the line that holds the id. `nil` when the merchant has no such
    /// purchase: another merchant's ids answer exactly like ids that do not exist.
    public func purchaseHistory(
        merchant: MerchantID, kind: String, purchaseID: String, lineID: String?
    ) async throws -> PurchaseHistory? {
        guard kind == "charge" || kind == "subscription" else { return nil }
        return try await client.withGuardedConnection { [self] connection -> PurchaseHistory? in
            var line = lineID
            if line == nil {
                line = try await connection.fetch(
                    """
                    SELECT line_id FROM purchase_ids
                    WHERE merchant_id = \(merchant.rawValue) AND kind = \(kind) AND purchase_id = \(purchaseID)
                    """, String.self, logger: logger
                ).first
            }
            guard let line else { return nil }
            var results: [RequestResult] = []
            for try await row in try await connection.query(
                """
                SELECT \(unescaped: RequestResult.columns) FROM request_results
                WHERE line_id = \(line) AND merchant_id = \(merchant.rawValue) AND request_id = \(purchaseID)
                    AND request_type IN (\(kind), \(kind + "-cancel"))
                ORDER BY recorded_at, result_id
                """, logger: logger)
            {
                results.append(try RequestResult(row))
            }
            var accepted: PurchaseRow?
            for try await row in try await connection.query(
                """
                SELECT \(unescaped: PurchaseRow.columns)
                FROM request_results r
                \(unescaped: PurchaseRow.joins)
                WHERE r.line_id = \(line) AND r.merchant_id = \(merchant.rawValue) AND r.request_id = \(purchaseID)
                    AND r.request_type = \(kind) AND r.accepted
                ORDER BY r.recorded_at LIMIT 1
                """, logger: logger)
            {
                accepted = try PurchaseRow(row)
            }
            guard !results.isEmpty || accepted != nil else { return nil }
            let credited = try await connection.fetch(
                """
                SELECT cycle FROM credits
                WHERE line_id = \(line) AND merchant_id = \(merchant.rawValue) AND charge_id = \(purchaseID)
                """, String.self, logger: logger
            ).first
            // The months the purchase was billed in, closed already: a charge's cycle and the month a credit
            // refunded it; every month of a subscription's run.
            var months = Set([accepted?.cycle, credited].compactMap { $0 })
            if kind == "subscription" {
                let run = try await connection.fetch(
                    """
                    SELECT b.cycle FROM line_bills b JOIN subscriptions s ON s.line_id = b.line_id
                    WHERE s.line_id = \(line) AND s.merchant_id = \(merchant.rawValue)
                        AND s.subscription_id = \(purchaseID) AND b.cycle >= s.start_cycle
                        AND (s.last_cycle IS NULL OR b.cycle <= s.last_cycle)
                    """, String.self, logger: logger)
                months.formUnion(run)
            }
            let closed = try await connection.fetch(
                "SELECT cycle FROM line_bills WHERE line_id = \(line) AND cycle = ANY(\(Array(months)))",
                String.self, logger: logger)
            return PurchaseHistory(
                kind: kind, purchaseID: purchaseID, lineID: line, results: results, accepted: accepted,
                creditedIn: credited,
                bills: closed.sorted().map { PurchaseHistory.BillReference(cycle: $0, billID: "bill-\(line)-\($0)") })
        }
    }

    /// The merchant's subscriptions, newest first: all, only the `active` ones or only the `ended` ones; at most
    /// `limit` from `offset`. The months billed are counted on the line's bills (one partition each).
    public func subscriptions(
        merchant: MerchantID, status: String?, offset: Int = 0, limit: Int = 50
    ) async throws -> [SubscriptionRow] {
        try await client.fetch(
            """
            SELECT s.subscription_id, s.line_id, s.monthly_amount_yen, s.description, s.start_cycle, s.last_cycle,
                s.started_at, s.ended_at,
                (SELECT count(*) FROM line_bills b
                 WHERE b.line_id = s.line_id AND b.cycle >= s.start_cycle
                    AND b.items::jsonb @> jsonb_build_array(jsonb_build_object(
                        'merchantId', s.merchant_id, 'kind', 'subscription', 'reference', s.subscription_id)))
            FROM subscriptions s
            WHERE s.merchant_id = \(merchant.rawValue)
                AND (\(status)::text IS NULL OR (\(status) = 'active') = (s.last_cycle IS NULL))
            ORDER BY s.started_at DESC, s.subscription_id LIMIT \(limit) OFFSET \(offset)
            """, (String, String, Int64, String, String, String?, Date, Date?, Int64).self, logger: logger
        ).map { id, line, amount, description, start, last, started, ended, billed in
            SubscriptionRow(
                subscriptionID: id, lineID: line, monthlyAmount: Yen(amount), description: description,
                startCycle: start, lastCycle: last, startedAt: started, endedAt: ended, monthsBilled: billed)
        }
    }

    /// The dead letters `merchant` signed, newest first: at most `limit`, from `offset` (paging).
    public func merchantDeadLetters(
        merchant: MerchantID, offset: Int = 0, limit: Int = 50
    ) async throws
        -> [MerchantDeadLetter]
    {
        try await client.fetch(
            """
            SELECT source_topic, source_partition, source_offset, reason, message_key, value, value_size, recorded_at
            FROM merchant_dead_letters
            WHERE merchant_id = \(merchant.rawValue)
            ORDER BY recorded_at DESC, source_topic, source_partition, source_offset DESC
            LIMIT \(limit) OFFSET \(offset)
            """, (String, Int32, Int64, String, String?, ByteBuffer, Int32, Date).self, logger: logger
        ).map { topic, partition, offset, reason, key, value, size, at in
            var letter = MerchantDeadLetter(
                merchantID: merchant, sourceTopic: topic, sourcePartition: partition, sourceOffset: offset,
                reason: reason, key: key, value: Array(buffer: value), recordedAt: at)
            letter.valueSize = size
            return letter
        }
    }

    /// The merchant's items on the bills of `cycle`, by line and then as the bill lists them: at most `limit`,
    /// from after `position` (the last one of the previous chunk), so a statement of any size is read in chunks
    /// of constant memory. Read from the merchant-keyed copy the close writes with the bills (one index range).
    public func statementItems(
        merchant: MerchantID, cycle: BillingCycle, after position: StatementItem.Position?, limit: Int = 2000
    ) async throws -> [StatementItem] {
        let line = position?.lineID ?? ""
        let index = position?.index ?? 0
        return try await client.fetch(
            """
            SELECT line_id, n, kind, reference, description, amount_yen
            FROM merchant_bill_items
            WHERE merchant_id = \(merchant.rawValue) AND cycle = \(cycle.description)
                AND (line_id, n) > (\(line), \(index))
            ORDER BY line_id, n LIMIT \(limit)
            """, (String, Int64, String, String, String, Int64).self, logger: logger
        ).map { line, index, kind, reference, description, amount in
            StatementItem(
                lineID: line, kind: kind, reference: reference, description: description, amount: Yen(amount),
                position: StatementItem.Position(lineID: line, index: index))
        }
    }
}

extension PurchaseRow {
    /// The columns ``init(_:)`` reads, of `request_results r` with ``joins``.
    static let columns = """
        r.recorded_at, r.request_type, r.request_id, r.line_id, r.accepted, r.reason, r.cycle,
        coalesce(c.amount_yen, s.monthly_amount_yen), coalesce(c.description, s.description),
        CASE WHEN c.charge_id IS NOT NULL THEN c.status
             WHEN s.subscription_id IS NOT NULL THEN CASE WHEN s.last_cycle IS NULL THEN 'active' ELSE 'ended' END
        END
        """
    /// The charge or subscription an accepted request made, or a cancellation named, on the same line (one
    /// partition), by its primary key: `merchant_id || ''` keeps the planner off the merchant indexes, which
    /// would read every charge of the merchant in the partition for each row (site-bench measured 280 ms a page
    /// at 10 million charges that way).
    static let joins = """
        LEFT JOIN charges c ON (r.request_type = 'charge-cancel' OR r.request_type = 'charge' AND r.accepted)
            AND c.line_id = r.line_id AND c.merchant_id || '' = r.merchant_id AND c.charge_id = r.request_id
        LEFT JOIN subscriptions s
            ON (r.request_type = 'subscription-cancel' OR r.request_type = 'subscription' AND r.accepted)
            AND s.line_id = r.line_id AND s.merchant_id || '' = r.merchant_id AND s.subscription_id = r.request_id
        """

    init(_ row: PostgresRow) throws {
        var columns = RowColumns(row)
        recordedAt = try columns.next()
        kind = try columns.next()
        purchaseID = try columns.next()
        lineID = try columns.next()
        accepted = try columns.next()
        reason = try columns.next()
        cycle = try columns.next()
        amount = (try columns.next() as Int64?).map { Yen($0) }
        description = try columns.next()
        state = try columns.next()
    }
}
