import Billing
import Foundation
import PostgresNIO

/// One line's bill for one cycle, for the support desk.
public struct LineStatement: Sendable, Hashable {
    /// The line as stored today: its kind, status and spending limit.
    public var line: Line
    /// The cycle currently open for the line.
    public var openCycle: BillingCycle
    /// The cycle shown.
    public var cycle: BillingCycle
    /// Closed cycles show the bill as sent; the open cycle shows what is on it so far.
    public var isClosed: Bool
    /// The charges, subscriptions' monthly amounts and credits billed for the cycle.
    public var items: [BillItem]
    /// The sum of the items, in yen; credits count negative.
    public var total: Yen { items.map(\.amount).sum() }
}

/// One of a merchant's charges or subscriptions, for the merchant site.
public struct MerchantActivity: Sendable, Hashable {
    /// What kind of activity: a one-time charge or a monthly subscription.
    public enum Kind: String, Sendable { case charge, subscription }
    /// Whether it is a charge or a subscription.
    public var kind: Kind
    /// The line it is billed to.
    public var lineID: LineID
    /// The merchant's charge or subscription id.
    public var reference: String
    /// What was bought, in the merchant's words.
    public var description: String
    /// The charge's amount, or the subscription's monthly amount, in yen.
    public var amount: Yen
    /// The charge's cycle, or the subscription's first cycle.
    public var cycle: BillingCycle
    /// `active`, `cancelled`, `credited` (charges) or `active`, `ended` (subscriptions).
    public var status: String
    /// The cycle a cancellation took effect in (charges), or the last cycle billed (subscriptions).
    public var endCycle: BillingCycle?
    /// When the charge was applied or the subscription started: the activity is sorted by it.
    public var at: Date
}

extension BillingStore {
    /// One line's items for `cycle` (default: its open cycle). Every query is
    /// on one line id, so it reads one partition.
    public func lineStatement(_ id: LineID, cycle requested: BillingCycle? = nil) async throws -> LineStatement? {
        try await client.withConnection { connection in
            var rows = try await connection.query(
                """
                SELECT \(unescaped: Line.storedColumns("l")), l.open_cycle FROM lines l WHERE l.line_id = \(id.rawValue)
                """, logger: logger
            ).makeAsyncIterator()
            guard let row = try await rows.next() else { return nil }
            var columns = RowColumns(row)
            let line = try Line(stored: &columns)
            let openCycle = try storedCycle(try columns.next())
            let cycle = requested ?? openCycle
            if cycle < openCycle {
                let stored = try await connection.fetch(
                    "SELECT items::text FROM line_bills WHERE line_id = \(id.rawValue) AND cycle = \(cycle.description)",
                    String.self, logger: logger
                ).first
                let items =
                    try stored.map { try JSONDecoder().decode([StoredBillItem].self, from: Data($0.utf8)) } ?? []
                return LineStatement(
                    line: line, openCycle: openCycle, cycle: cycle, isClosed: true,
                    items: items.map {
                        BillItem(
                            merchantID: MerchantID(rawValue: $0.merchantId),
                            kind: BillItem.Kind(rawValue: $0.kind) ?? .charge,
                            reference: $0.reference, description: $0.description, amount: Yen($0.amount))
                    })
            }
            let c = cycle.description
            var charges: [ChargeRecord] = []
            for try await (merchant, chargeID, amount, description, status) in try await connection.query(
                """
                SELECT merchant_id, charge_id, amount_yen, description, status FROM charges
                WHERE line_id = \(id.rawValue) AND cycle = \(c)
                """, logger: logger
            ).decode((String, String, Int64, String, String).self) {
                charges.append(
                    try ChargeRecord(
                        merchant: merchant, id: chargeID, amount: amount, description: description, cycle: cycle,
                        status: status))
            }
            var subscriptions: [SubscriptionRecord] = []
            for try await (merchant, subscriptionID, amount, description, start, last) in try await connection.query(
                """
                SELECT merchant_id, subscription_id, monthly_amount_yen, description, start_cycle, last_cycle
                FROM subscriptions WHERE line_id = \(id.rawValue)
                """, logger: logger
            ).decode((String, String, Int64, String, String, String?).self) {
                subscriptions.append(
                    try SubscriptionRecord(
                        merchant: merchant, id: subscriptionID, monthlyAmount: amount, description: description,
                        startCycle: start, lastCycle: last))
            }
            var credits: [CreditRecord] = []
            for try await (merchant, chargeID, description, amount) in try await connection.query(
                """
                SELECT merchant_id, charge_id, description, amount_yen FROM credits
                WHERE line_id = \(id.rawValue) AND cycle = \(c)
                """, logger: logger
            ).decode((String, String, String, Int64).self) {
                credits.append(
                    CreditRecord(
                        merchantID: MerchantID(rawValue: merchant), chargeID: ChargeID(rawValue: chargeID),
                        description: description, amount: Yen(amount), cycle: cycle))
            }
            let bill = LineBill(
                closing: cycle, lineID: id, charges: charges, subscriptions: subscriptions, credits: credits)
            return LineStatement(line: line, openCycle: openCycle, cycle: cycle, isClosed: false, items: bill.items)
        }
    }

    /// A merchant's most recent charges and subscriptions with their status,
    /// newest first.
    public func merchantActivity(_ merchant: MerchantID, limit: Int = 100) async throws -> [MerchantActivity] {
        var activity: [MerchantActivity] = []
        let charges = try await client.query(
            """
            SELECT line_id, charge_id, description, amount_yen, cycle, status, cancelled_in, applied_at FROM charges
            WHERE merchant_id = \(merchant.rawValue) ORDER BY applied_at DESC LIMIT \(limit)
            """, logger: logger)
        for try await (line, id, description, amount, cycle, status, cancelledIn, at) in charges.decode(
            (String, String, String, Int64, String, String, String?, Date).self)
        {
            let cycle = try storedCycle(cycle)
            activity.append(
                MerchantActivity(
                    kind: .charge, lineID: LineID(rawValue: line), reference: id, description: description,
                    amount: Yen(amount), cycle: cycle, status: status, endCycle: cancelledIn.flatMap(BillingCycle.init),
                    at: at))
        }
        let subscriptions = try await client.query(
            """
            SELECT line_id, subscription_id, description, monthly_amount_yen, start_cycle, last_cycle, started_at
            FROM subscriptions WHERE merchant_id = \(merchant.rawValue) ORDER BY started_at DESC LIMIT \(limit)
            """, logger: logger)
        for try await (line, id, description, amount, start, last, at) in subscriptions.decode(
            (String, String, String, Int64, String, String?, Date).self)
        {
            let start = try storedCycle(start)
            activity.append(
                MerchantActivity(
                    kind: .subscription, lineID: LineID(rawValue: line), reference: id, description: description,
                    amount: Yen(amount), cycle: start, status: last == nil ? "active" : "ended",
                    endCycle: last.flatMap(BillingCycle.init), at: at))
        }
        return Array(activity.sorted { $0.at > $1.at }.prefix(limit))
    }

    /// The settlements of a closed cycle, by merchant id, as stored: the fee
    /// and its rule are what was published, whatever the tariff says today.
    public func settlements(_ cycle: BillingCycle) async throws -> [Settlement] {
        try await settlements(cycle: cycle, merchant: nil)
    }

    /// The merchant's settlements, newest cycle first (at most `limit`).
    public func settlements(merchant: MerchantID, limit: Int = 120) async throws -> [Settlement] {
        Array(try await settlements(cycle: nil, merchant: merchant).prefix(limit))
    }

    private func settlements(cycle: BillingCycle?, merchant: MerchantID?) async throws -> [Settlement] {
        let rows = try await client.fetch(
            """
            SELECT merchant_id, cycle, lines, gross_yen, rate_basis_points, per_line_threshold_yen,
                   per_line_fee_tenths, item_count, credit_yen, fee_yen, fee_rule, tariff::text, band,
                   fee_before_tax_yen, tax_yen, tax_rate_basis_points
            FROM settlements
            WHERE (\(cycle?.description)::text IS NULL OR cycle = \(cycle?.description))
                AND (\(merchant?.rawValue)::text IS NULL OR merchant_id = \(merchant?.rawValue))
            ORDER BY cycle DESC, merchant_id
            """,
            (
                String, String, Int64, Int64, Int64, Int64, Int64, Int64, Int64, Int64, String, String?, Int?, Int64?,
                Int64, Int64
            )
            .self, logger: logger)
        return try rows.map { full in
            let cycle = try storedCycle(full.1)
            let row = (
                full.0, full.2, full.3, full.4, full.5, full.6, full.7, full.8, full.9, full.10, full.11, full.12,
                full.13, full.14, full.15
            )
            let (merchant, lines, gross, rate, threshold, perLine, items, credit, fee, rule) =
                (row.0, row.1, row.2, row.3, row.4, row.5, row.6, row.7, row.8, row.9)
            // Settled before tariffs had bands: the three numbers, tax included.
            let tariff =
                try row.10.map(BandedTariff.init(storedJSON:))
                ?? Tariff(rateBasisPoints: rate, perLineThreshold: Yen(threshold), perLineFeeTenths: perLine).banded
            var settlement = Settlement(
                merchantID: MerchantID(rawValue: merchant), cycle: cycle,
                totals: MerchantTotals(lines: lines, gross: Yen(gross), itemCount: items, creditAmount: Yen(credit)),
                tariff: tariff)
            settlement.fee = Yen(fee)
            settlement.feeRule = FeeRule(rawValue: rule) ?? settlement.feeRule
            // What was published, whatever the bands say of it now.
            settlement.tariffSummary = Tariff(
                rateBasisPoints: rate, perLineThreshold: Yen(threshold), perLineFeeTenths: perLine)
            if let band = row.11, band < tariff.bands.count {
                settlement.feeDetail = Fee(
                    band: band, rule: tariff.bands[band].rule, beforeTax: Yen(row.12 ?? fee), tax: Yen(row.13),
                    taxRate: row.14)
            }
            return settlement
        }
    }

    /// Messages waiting in the outbox for `topic`, oldest first.
    public func outboxMessages(topic: String) async throws -> [OutboxMessage] {
        var messages: [OutboxMessage] = []
        let rows = try await client.query(
            """
            SELECT message_key, message_id, payload, headers::text FROM outbox
            WHERE topic = \(topic) ORDER BY id
            """, logger: logger)
        for try await (key, id, payload, headers) in rows.decode((String?, String, ByteBuffer, String).self) {
            messages.append(
                OutboxMessage(
                    topic: topic, key: key, id: id, payload: Array(payload.readableBytesView),
                    headers: (try? JSONDecoder().decode([String: String].self, from: Data(headers.utf8))) ?? [:]))
        }
        return messages
    }
}

/// One item of a stored line bill, as ``ClosePublisher/lineBill(_:)`` wrote it.
struct StoredBillItem: Decodable {
    var merchantId: String
    var kind: String
    var reference: String
    var description: String
    var amount: Int64
}

extension Line {
    /// The columns ``init(stored:)`` reads, in order, of `lines` named `alias`.
    static func storedColumns(_ alias: String) -> String {
        """
        \(alias).line_id, \(alias).line_type, \(alias).flets_net, \(alias).status, \(alias).spending_limit_yen, \
        \(alias).user_limit_yen, \(alias).billing_blocked_since IS NOT NULL
        """
    }

    /// A line as stored, read from ``storedColumns(_:)``.
    init(stored columns: inout RowColumns) throws {
        self.init(
            id: LineID(rawValue: try columns.next()), type: LineType(rawValue: try columns.next()),
            fletsNetContract: try columns.next(), status: LineStatus(rawValue: try columns.next()) ?? .suspended,
            spendingLimit: (try columns.next() as Int64?).map { Yen($0) },
            userSpendingLimit: (try columns.next() as Int64?).map { Yen($0) }, billingBlocked: try columns.next())
    }
}
