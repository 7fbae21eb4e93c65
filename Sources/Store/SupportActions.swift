import Billing
import Foundation
import PostgresNIO

/// What the support desk changes on a line at its user's request. Each change runs in one transaction with its
/// audit entry, and takes the line's row lock as the charge worker's batches do, so a batch sees the line either
/// before the change or after it, never half of it.
public enum SupportAction: Sendable, Hashable {
    /// The purchase ID's failure counts from every line and its locks cleared, and the line's own lock.
    case unlockPurchaseID(String)
    /// The purchase ID revoked for good.
    case revokePurchaseID(String)
    /// A lower monthly limit of the user's own (at least ¥1); `nil` goes back to the line's (or the default).
    case setUserLimit(Yen?)
    /// Carrier billing stopped on the line (`true`) or allowed again.
    case blockBilling(Bool)
    /// A purchase marked as disputed by the line's user, with why (it stays billed).
    case markDisputed(merchant: String, kind: String, purchaseID: String, reason: String)
    /// The dispute mark taken off.
    case clearDispute(merchant: String, kind: String, purchaseID: String)
}

/// Why a support action was not applied.
public enum SupportActionRefusal: Error, Sendable, Hashable {
    /// No such line, or what the action names is not on it.
    case notFound
    /// It is already so (revoked, blocked, marked, …), or there is nothing to do (an ID not locked).
    case nothingToDo
    /// A limit below ¥1 (use the stop instead), or a purchase that was never accepted.
    case invalid
}

extension BillingStore {
    /// Applies `action` to `lineID` and records `entry` in the support desk's audit log, in one transaction.
    /// Throws a ``SupportActionRefusal`` when it does not apply (nothing changed, nothing recorded), or the
    /// database's error.
    public func apply(_ action: SupportAction, line lineID: String, recordedAs entry: AuditEntry) async throws {
        let refusal: SupportActionRefusal? = try await transaction { [self] connection in
            let line = try await connection.fetch(
                "SELECT line_id FROM lines WHERE line_id = \(lineID) FOR UPDATE", String.self, logger: logger)
            guard !line.isEmpty else { return SupportActionRefusal.notFound }
            if let refused = try await change(action, lineID, connection) { return refused }
            try await record(entry, on: connection)
            return nil
        }
        if let refusal { throw refusal }
    }

    private func change(
        _ action: SupportAction, _ lineID: String, _ connection: PostgresConnection
    ) async throws -> SupportActionRefusal? {
        func changed(_ query: PostgresQuery) async throws -> Int {
            try await connection.fetch(query, Int.self, logger: logger).count
        }
        switch action {
        case .unlockPurchaseID(let id):
            guard try await owns(id, lineID, connection) else { return .notFound }
            // Something to undo: a running lock, or failures counted; rows of neither are forgotten too.
            let cleared =
                try await connection.fetch(
                    """
                    WITH ids AS (
                        DELETE FROM purchase_id_lockouts WHERE purchase_id = \(id)
                        RETURNING failed_attempts > 0 OR locked_until > now() AS counted
                    ), line AS (
                        DELETE FROM line_lockouts WHERE line_id = \(lineID)
                        RETURNING failed_attempts > 0 OR locked_until > now() AS counted
                    )
                    SELECT ((SELECT count(*) FROM ids WHERE counted) + (SELECT count(*) FROM line WHERE counted))::int
                    """, Int.self, logger: logger
                ).first ?? 0
            return cleared == 0 ? .nothingToDo : nil
        case .revokePurchaseID(let id):
            guard try await owns(id, lineID, connection) else { return .notFound }
            let revoked = try await changed(
                """
                UPDATE purchase_credentials SET status = 'revoked', revoked_at = now(), updated_at = now()
                WHERE purchase_id = \(id) AND line_id = \(lineID) AND status = 'active' RETURNING 1
                """)
            return revoked == 0 ? .nothingToDo : nil
        case .setUserLimit(let limit):
            if let limit, limit.amount < 1 { return .invalid }
            let set = try await changed(
                """
                UPDATE lines SET user_limit_yen = \(limit?.amount), updated_at = now()
                WHERE line_id = \(lineID) AND user_limit_yen IS DISTINCT FROM \(limit?.amount) RETURNING 1
                """)
            return set == 0 ? .nothingToDo : nil
        case .blockBilling(let block):
            let set = try await changed(
                """
                UPDATE lines SET billing_blocked_since = CASE WHEN \(block) THEN now() END, updated_at = now()
                WHERE line_id = \(lineID) AND (billing_blocked_since IS NOT NULL) <> \(block) RETURNING 1
                """)
            return set == 0 ? .nothingToDo : nil
        case .markDisputed(let merchant, let kind, let id, let reason):
            let table = kind == "charge" ? "charges" : kind == "subscription" ? "subscriptions" : ""
            guard !table.isEmpty else { return .invalid }
            let column = kind == "charge" ? "charge_id" : "subscription_id"
            let exists = try await changed(
                """
                SELECT 1 FROM \(unescaped: table)
                WHERE line_id = \(lineID) AND merchant_id = \(merchant) AND \(unescaped: column) = \(id)
                """)
            guard exists == 1 else { return .notFound }
            let marked = try await changed(
                """
                INSERT INTO purchase_disputes (merchant_id, kind, purchase_id, line_id, reason, marked_by)
                VALUES (\(merchant), \(kind), \(id), \(lineID), \(reason), 'support')
                ON CONFLICT DO NOTHING RETURNING 1
                """)
            return marked == 0 ? .nothingToDo : nil
        case .clearDispute(let merchant, let kind, let id):
            let cleared = try await changed(
                """
                DELETE FROM purchase_disputes
                WHERE merchant_id = \(merchant) AND kind = \(kind) AND purchase_id = \(id) AND line_id = \(lineID)
                RETURNING 1
                """)
            return cleared == 0 ? .notFound : nil
        }
    }

    private func owns(_ purchaseID: String, _ lineID: String, _ connection: PostgresConnection) async throws -> Bool {
        !(try await connection.fetch(
            "SELECT 1 FROM purchase_credentials WHERE purchase_id = \(purchaseID) AND line_id = \(lineID)", Int.self,
            logger: logger
        ).isEmpty)
    }

    /// Why the line's user disputes each of `merchant`'s purchases that is marked, by kind and id.
    public func disputes(merchant: MerchantID, purchases: [(kind: String, id: String)]) async throws -> [String: String]
    {
        guard !purchases.isEmpty else { return [:] }
        let rows = try await client.fetch(
            """
            SELECT kind, purchase_id, reason FROM purchase_disputes
            WHERE merchant_id = \(merchant.rawValue)
                AND (kind, purchase_id) IN (SELECT * FROM unnest(\(purchases.map(\.kind)), \(purchases.map(\.id))))
            """, (String, String, String).self, logger: logger)
        return Dictionary(rows.map { ("\($0.0)/\($0.1)", $0.2) }, uniquingKeysWith: { first, _ in first })
    }
}
