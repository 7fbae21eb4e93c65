import Billing
import Foundation
import PostgresNIO

/// One line's whole story, for the support desk and `matomete lines show`: the line, its purchase IDs, every
/// request on it with its answer, its subscriptions and its bills. Every query names the line, so each reads one
/// partition of the per-line tables. Never a password or its hash.
public struct LineStory: Sendable, Encodable {
    /// The line as billing sees it.
    public var line: LineState
    /// The purchase IDs issued for the line, newest first.
    public var purchaseIDs: [PurchaseIDState]
    /// The line's own lock after failed purchase logins from it, while it runs.
    public var lineLockedUntil: Date?
    /// Every request on the line with its answer, newest first (at most ``LineStory/requestsAtMost``).
    public var requests: [LineRequest]
    /// Whether there are older requests than those listed.
    public var moreRequests: Bool
    /// The line's subscriptions, newest first.
    public var subscriptions: [LineSubscription]
    /// The line's bills, newest first, with their items and what was collected.
    public var bills: [LineBillState]

    /// The most requests a story lists.
    public static let requestsAtMost = 200
}

/// The line's state.
public struct LineState: Sendable, Encodable {
    /// The line's id.
    public var lineID: String
    /// Its kind, for example `hikari-next`.
    public var type: String
    /// Whether it has a Flets.net contract.
    public var fletsNet: Bool
    /// Whether its kind may be billed at all.
    public var eligible: Bool
    /// `active`, `suspended` or `terminated`.
    public var status: String
    /// Since when the line's user has stopped carrier billing on it, if they have.
    public var billingBlocked: Date?
    /// The line's own limit from the line system (`nil`: the default; 0: none).
    public var lineLimit: Int64?
    /// The lower limit the user asked for, if any.
    public var userLimit: Int64?
    /// The limit that applies (`nil`: none).
    public var limit: Int64?
    /// The month open for new charges.
    public var openCycle: String
    /// What is charged in the open month so far.
    public var spentThisMonth: Int64
}

/// A purchase ID of the line, without its password.
public struct PurchaseIDState: Sendable, Encodable {
    /// The ID.
    public var purchaseID: String
    /// `active` or `revoked`.
    public var status: String
    /// When it was issued.
    public var issuedAt: Date
    /// When it was revoked.
    public var revokedAt: Date?
    /// Until when it is locked after failed logins (from any line), while a lock runs.
    public var lockedUntil: Date?
    /// Failed logins counted against it now, from every line.
    public var failures: Int
}

/// A request on the line and its answer.
public struct LineRequest: Sendable, Encodable {
    /// When the answer was recorded.
    public var recordedAt: Date
    /// The merchant that sent it (`nil` for a line termination).
    public var merchantID: String?
    /// `charge`, `subscription`, `charge-cancel`, `subscription-cancel` or `line-termination`.
    public var requestType: String
    /// The charge or subscription id.
    public var requestID: String
    /// Whether it was accepted.
    public var accepted: Bool
    /// The reason code when refused.
    public var reason: String?
    /// The month whose bill it affects.
    public var cycle: String?
    /// An accepted charge's amount, or a subscription's monthly amount.
    public var amount: Int64?
    /// What the merchant called it.
    public var purchaseDescription: String?
    /// What became of an accepted charge or subscription: `active`, `cancelled`, `credited` or `ended`.
    public var state: String?
    /// Why the line's user disputes it, when marked.
    public var disputed: String?
}

/// A subscription on the line.
public struct LineSubscription: Sendable, Encodable {
    /// Whose it is.
    public var merchantID: String
    /// The merchant's id for it.
    public var subscriptionID: String
    /// What the merchant called it.
    public var purchaseDescription: String
    /// Billed each month.
    public var monthlyAmount: Int64
    /// The first month billed.
    public var startCycle: String
    /// The last month billed, once cancelled or ended.
    public var lastCycle: String?
    /// When it started.
    public var startedAt: Date
    /// When it was cancelled or ended.
    public var endedAt: Date?
    /// Months on the line's bills so far.
    public var monthsBilled: Int
}

/// A line bill and what was collected of it.
public struct LineBillState: Sendable, Encodable {
    /// `bill-<line>-<YYYY-MM>`.
    public var billID: String
    /// The billed month.
    public var cycle: String
    /// The bill's total.
    public var total: Int64
    /// Its items.
    public var items: [Item]
    /// Paid and not reversed.
    public var paid: Int64
    /// When the billing system wrote it off, if it did.
    public var writtenOffOn: String?
    /// `paid`, `open` (partly paid), `written_off`, `nothing_to_pay` (a total of zero or less), or `unpaid`
    /// (nothing paid that stands: none reported, or every payment reversed).
    public var payment: String

    /// One item of the bill.
    public struct Item: Sendable, Encodable {
        /// Whose it is.
        public var merchantID: String
        /// `charge`, `subscription` or `credit`.
        public var kind: String
        /// The charge or subscription id.
        public var reference: String
        /// What the merchant called it.
        public var itemDescription: String
        /// Its amount (negative for a credit).
        public var amount: Int64
    }
}

/// How a line is found on the support desk.
public enum LineQuery: Sendable, Hashable {
    /// By its id.
    case line(String)
    /// By a purchase ID issued for it.
    case purchaseID(String)
    /// By a merchant's charge id.
    case charge(merchant: String, id: String)
    /// By a merchant's subscription id.
    case subscription(merchant: String, id: String)
    /// By a bill id, `bill-<line>-<YYYY-MM>`.
    case bill(String)
}

extension BillingStore {
    /// The line `query` names, if any.
    public func findLine(_ query: LineQuery) async throws -> String? {
        switch query {
        case .line(let id):
            return try await client.fetch(
                "SELECT line_id FROM lines WHERE line_id = \(id)", String.self, logger: logger
            ).first
        case .purchaseID(let id):
            return try await client.fetch(
                "SELECT line_id FROM purchase_credentials WHERE purchase_id = \(id)", String.self, logger: logger
            ).first
        case .charge(let merchant, let id), .subscription(let merchant, let id):
            let kind = if case .charge = query { "charge" } else { "subscription" }
            return try await client.fetch(
                """
                SELECT line_id FROM purchase_ids
                WHERE merchant_id = \(merchant) AND kind = \(kind) AND purchase_id = \(id)
                """, String.self, logger: logger
            ).first
        case .bill(let id):
            // bill-<line>-<YYYY-MM>: the line is what lies between.
            guard id.hasPrefix("bill-"), id.count > 13, BillingCycle(String(id.suffix(7))) != nil,
                id.dropLast(7).hasSuffix("-")
            else { return nil }
            let line = String(id.dropFirst(5).dropLast(8))
            return try await client.fetch(
                """
                SELECT line_id FROM line_bills WHERE line_id = \(line) AND cycle = \(String(id.suffix(7)))
                """, String.self, logger: logger
            ).first
        }
    }

    /// The story of `lineID`, or `nil` when no line has that id.
    public func lineStory(_ lineID: String) async throws -> LineStory? {
        let defaultLimit = try await defaultSpendingLimit() ?? BillingLimits().defaultSpendingLimit
        return try await client.withGuardedConnection { [self] connection in
            var rows = try await connection.query(
                """
                SELECT \(unescaped: Line.storedColumns("l")), l.open_cycle, l.open_spend_yen, l.billing_blocked_since,
                    (SELECT locked_until FROM line_lockouts o WHERE o.line_id = l.line_id AND locked_until > now())
                FROM lines l WHERE l.line_id = \(lineID)
                """, logger: logger
            ).makeAsyncIterator()
            guard let row = try await rows.next() else { return nil }
            var columns = RowColumns(row)
            let line = try Line(stored: &columns)
            let openCycle: String = try columns.next()
            let spend: Int64 = try columns.next()
            let blockedSince: Date? = try columns.next()
            let lineLock: Date? = try columns.next()
            var limits = BillingLimits()
            limits.defaultSpendingLimit = defaultLimit
            let state = LineState(
                lineID: lineID, type: line.type.rawValue, fletsNet: line.fletsNetContract, eligible: line.isEligible,
                status: line.status.rawValue, billingBlocked: blockedSince, lineLimit: line.spendingLimit?.amount,
                userLimit: line.userSpendingLimit?.amount, limit: limits.spendingLimit(of: line)?.amount,
                openCycle: openCycle, spentThisMonth: spend)
            let requests = try await lineRequests(lineID, connection)
            return LineStory(
                line: state, purchaseIDs: try await purchaseIDs(lineID, connection), lineLockedUntil: lineLock,
                requests: Array(requests.prefix(LineStory.requestsAtMost)),
                moreRequests: requests.count > LineStory.requestsAtMost,
                subscriptions: try await lineSubscriptions(lineID, connection),
                bills: try await lineBills(lineID, connection))
        }
    }

    private func purchaseIDs(_ lineID: String, _ connection: PostgresConnection) async throws -> [PurchaseIDState] {
        try await connection.fetch(
            """
            SELECT c.purchase_id, c.status, c.created_at, c.revoked_at,
                (SELECT max(locked_until) FROM purchase_id_lockouts o
                 WHERE o.purchase_id = c.purchase_id AND locked_until > now()),
                (SELECT coalesce(sum(failed_attempts), 0)::int FROM purchase_id_lockouts o
                 WHERE o.purchase_id = c.purchase_id)
            FROM purchase_credentials c WHERE c.line_id = \(lineID)
            ORDER BY c.created_at DESC, c.purchase_id
            """, (String, String, Date, Date?, Date?, Int).self, logger: logger
        ).map { id, status, issued, revoked, locked, failures in
            PurchaseIDState(
                purchaseID: id, status: status, issuedAt: issued, revokedAt: revoked, lockedUntil: locked,
                failures: failures)
        }
    }

    private func lineRequests(_ lineID: String, _ connection: PostgresConnection) async throws -> [LineRequest] {
        var requests: [LineRequest] = []
        for try await row in try await connection.query(
            """
            SELECT r.recorded_at, r.merchant_id, r.request_type, r.request_id, r.accepted, r.reason, r.cycle,
                coalesce(c.amount_yen, s.monthly_amount_yen), coalesce(c.description, s.description),
                CASE WHEN NOT r.accepted OR r.request_type NOT IN ('charge', 'subscription') THEN NULL
                     WHEN c.status IS NOT NULL THEN c.status
                     WHEN s.last_cycle IS NOT NULL THEN 'ended'
                     WHEN s.subscription_id IS NOT NULL THEN 'active' END,
                d.reason
            FROM request_results r
            LEFT JOIN charges c ON r.request_type IN ('charge', 'charge-cancel') AND c.line_id = r.line_id
                AND c.merchant_id = r.merchant_id AND c.charge_id = r.request_id
            LEFT JOIN subscriptions s ON r.request_type IN ('subscription', 'subscription-cancel')
                AND s.line_id = r.line_id AND s.merchant_id = r.merchant_id AND s.subscription_id = r.request_id
            LEFT JOIN purchase_disputes d ON r.accepted AND r.request_type IN ('charge', 'subscription')
                AND d.merchant_id = r.merchant_id AND d.kind = r.request_type AND d.purchase_id = r.request_id
            WHERE r.line_id = \(lineID)
            ORDER BY r.recorded_at DESC, r.result_id DESC LIMIT \(LineStory.requestsAtMost + 1)
            """, logger: logger)
        {
            var columns = RowColumns(row)
            requests.append(
                LineRequest(
                    recordedAt: try columns.next(), merchantID: try columns.next(), requestType: try columns.next(),
                    requestID: try columns.next(), accepted: try columns.next(), reason: try columns.next(),
                    cycle: try columns.next(), amount: try columns.next(), purchaseDescription: try columns.next(),
                    state: try columns.next(), disputed: try columns.next()))
        }
        return requests
    }

    private func lineSubscriptions(
        _ lineID: String, _ connection: PostgresConnection
    ) async throws -> [LineSubscription] {
        try await connection.fetch(
            """
            SELECT s.merchant_id, s.subscription_id, s.description, s.monthly_amount_yen, s.start_cycle, s.last_cycle,
                s.started_at, s.ended_at,
                (SELECT count(*)::int FROM line_bills b, json_array_elements(b.items) AS i(item)
                 WHERE b.line_id = s.line_id AND i.item->>'kind' = 'subscription'
                    AND i.item->>'merchantId' = s.merchant_id AND i.item->>'reference' = s.subscription_id)
            FROM subscriptions s WHERE s.line_id = \(lineID)
            ORDER BY s.started_at DESC, s.subscription_id
            """, (String, String, String, Int64, String, String?, Date, Date?, Int).self, logger: logger
        ).map { merchant, id, description, amount, start, last, started, ended, months in
            LineSubscription(
                merchantID: merchant, subscriptionID: id, purchaseDescription: description, monthlyAmount: amount,
                startCycle: start, lastCycle: last, startedAt: started, endedAt: ended, monthsBilled: months)
        }
    }

    private func lineBills(_ lineID: String, _ connection: PostgresConnection) async throws -> [LineBillState] {
        try await connection.fetch(
            """
            SELECT b.cycle, b.total_yen, b.items::text, b.written_off_on::text,
                (SELECT coalesce(sum(p.amount_yen), 0)::bigint FROM payments p
                 WHERE p.line_id = b.line_id AND p.cycle = b.cycle AND p.reversed_on IS NULL)
            FROM line_bills b WHERE b.line_id = \(lineID)
            ORDER BY b.cycle DESC
            """, (String, Int64, String, String?, Int64).self, logger: logger
        ).map { cycle, total, itemsJSON, writtenOff, paid in
            let items = (try? JSONDecoder().decode([StoredBillItem].self, from: Data(itemsJSON.utf8))) ?? []
            let payment =
                if total <= 0 { "nothing_to_pay" } else if writtenOff != nil { "written_off" } else if paid >= total {
                    "paid"
                } else if paid > 0 { "open" } else { "unpaid" }
            return LineBillState(
                billID: "bill-\(lineID)-\(cycle)", cycle: cycle, total: total,
                items: items.map {
                    LineBillState.Item(
                        merchantID: $0.merchantId, kind: $0.kind, reference: $0.reference,
                        itemDescription: $0.description, amount: $0.amount)
                }, paid: paid, writtenOffOn: writtenOff, payment: payment)
        }
    }
}
