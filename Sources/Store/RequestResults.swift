import Billing
import Foundation
import PostgresNIO

/// A result a merchant was told, as kept: why a purchase was refused, or
/// that it was accepted and on which cycle's bill.
public struct RequestResult: Sendable, Hashable {
    /// The result message's id (`result-<topic>-<partition>-<offset>`).
    public var resultID: String
    /// The line the request was for.
    public var lineID: LineID
    /// The merchant that sent it (`nil` for a line termination, or a request
    /// refused before its merchant could be read).
    public var merchantID: MerchantID?
    /// The request's `type`: `charge`, `subscription`, `charge-cancel`,
    /// `subscription-cancel` or `line-termination` (as written, for a request refused before the rules).
    public var requestType: String
    /// The merchant's charge or subscription id (the line id for a termination).
    public var requestID: String
    /// Whether it was accepted.
    public var accepted: Bool
    /// The reason code when refused.
    public var reason: String?
    /// The cycle whose bill the request affects, when known.
    public var cycle: BillingCycle?
    /// When it was recorded (set by the database; ignored when writing).
    public var recordedAt: Date?

    /// A result to record.
    public init(
        resultID: String, lineID: LineID, merchantID: MerchantID?, requestType: String, requestID: String,
        accepted: Bool, reason: String?, cycle: BillingCycle?, recordedAt: Date? = nil
    ) {
        self.resultID = resultID
        self.lineID = lineID
        self.merchantID = merchantID
        self.requestType = requestType
        self.requestID = requestID
        self.accepted = accepted
        self.reason = reason
        self.cycle = cycle
        self.recordedAt = recordedAt
    }
}

extension BillingStore {
    /// The line's results, newest first: at most `limit`, recorded before
    /// `before` when given (to page back). Reads one partition.
    public func results(line: LineID, before: Date? = nil, limit: Int = 100) async throws -> [RequestResult] {
        try await client.withGuardedConnection { [self] connection in
            try await connection.results(
                """
                SELECT \(unescaped: RequestResult.columns) FROM request_results
                WHERE line_id = \(line.rawValue) AND recorded_at < \(before ?? .distantFuture)
                ORDER BY recorded_at DESC, result_id DESC LIMIT \(limit)
                """, logger: logger)
        }
    }

    /// The merchant's results, newest first: at most `limit`, recorded before
    /// `before` when given (to page back).
    public func results(merchant: MerchantID, before: Date? = nil, limit: Int = 100) async throws -> [RequestResult] {
        try await client.withGuardedConnection { [self] connection in
            try await connection.results(
                """
                SELECT \(unescaped: RequestResult.columns) FROM request_results
                WHERE merchant_id = \(merchant.rawValue) AND recorded_at < \(before ?? .distantFuture)
                ORDER BY recorded_at DESC, result_id DESC LIMIT \(limit)
                """, logger: logger)
        }
    }
}

extension RequestResult {
    /// The columns ``init(_:)`` reads, in order.
    static let columns =
        "result_id, line_id, merchant_id, request_type, request_id, accepted, reason, cycle, recorded_at"

    init(_ row: PostgresRow) throws {
        var columns = RowColumns(row)
        resultID = try columns.next()
        lineID = LineID(rawValue: try columns.next())
        merchantID = (try columns.next() as String?).map(MerchantID.init(rawValue:))
        requestType = try columns.next()
        requestID = try columns.next()
        accepted = try columns.next()
        reason = try columns.next()
        cycle = try (columns.next() as String?).map(storedCycle)
        recordedAt = try columns.next()
    }
}

extension PostgresConnection {
    fileprivate func results(_ query: PostgresQuery, logger: Logger) async throws -> [RequestResult] {
        var results: [RequestResult] = []
        for try await row in try await self.query(query, logger: logger) { results.append(try RequestResult(row)) }
        return results
    }
}

/// What one round of housekeeping forgot.
public struct HousekeepingReport: Sendable, Hashable {
    /// Used purchase authorizations forgotten (kept, with the answer their
    /// request got, as long as results: a repeat is answered as the original).
    public var usedAuthorizations: Int
    /// Results forgotten (older than the retention).
    public var results: Int
    /// Failure counts of purchase IDs and lines forgotten (unlocked, and no failure for a week).
    public var lockouts: Int
    /// Dead letters kept for merchants' sites forgotten (older than the retention).
    public var merchantDeadLetters = 0
    /// Staff sessions forgotten that no setting could still accept (unused for a day, or begun a week ago).
    public var staffSessions = 0

    /// A round's counts.
    public init(usedAuthorizations: Int, results: Int, lockouts: Int = 0) {
        self.usedAuthorizations = usedAuthorizations
        self.results = results
        self.lockouts = lockouts
    }
}

extension BillingStore {
    /// Forgets what is kept only for a while, in one transaction: failure
    /// counts of purchase IDs and lines with no lock and no failure for a
    /// week, staff sessions past the longest timeouts a site may set (a day
    /// unused, a week since login), and results, used purchase authorizations
    /// and the dead letters kept for merchants' sites recorded more than
    /// `resultRetentionMonths` months ago (after that, a repeat of a request
    /// is decided afresh, and its long-expired authorization refuses it). `nil` when another process is doing it right now.
    public func housekeep(resultRetentionMonths: Int) async throws -> HousekeepingReport? {
        try await transaction { [self] connection in
            let locked = try await connection.fetch(
                "SELECT pg_try_advisory_xact_lock(7267261722)", Bool.self, logger: logger
            ).first
            guard locked == true else { return nil }
            let counts = try await connection.fetch(
                """
                WITH authorizations AS (
                    DELETE FROM used_authorizations
                    WHERE used_at < now() - make_interval(months => \(resultRetentionMonths)::int) RETURNING 1
                ), results AS (
                    DELETE FROM request_results
                    WHERE recorded_at < now() - make_interval(months => \(resultRetentionMonths)::int) RETURNING 1
                ), ids_forgotten AS (
                    DELETE FROM purchase_id_lockouts
                    WHERE updated_at < now() - interval '7 days' AND (locked_until IS NULL OR locked_until < now())
                    RETURNING 1
                ), lines_forgotten AS (
                    DELETE FROM line_lockouts
                    WHERE updated_at < now() - interval '7 days' AND (locked_until IS NULL OR locked_until < now())
                    RETURNING 1
                ), letters AS (
                    DELETE FROM merchant_dead_letters
                    WHERE recorded_at < now() - make_interval(months => \(resultRetentionMonths)::int) RETURNING 1
                ), sessions AS (
                    DELETE FROM site_sessions
                    WHERE last_seen_at < now() - interval '1 day' OR created_at < now() - interval '7 days'
                    RETURNING 1
                )
                SELECT (SELECT count(*) FROM authorizations)::int, (SELECT count(*) FROM results)::int,
                    ((SELECT count(*) FROM ids_forgotten) + (SELECT count(*) FROM lines_forgotten))::int,
                    (SELECT count(*) FROM letters)::int, (SELECT count(*) FROM sessions)::int
                """, (Int, Int, Int, Int, Int).self, logger: logger
            ).first
            var report = HousekeepingReport(
                usedAuthorizations: counts?.0 ?? 0, results: counts?.1 ?? 0, lockouts: counts?.2 ?? 0)
            report.merchantDeadLetters = counts?.3 ?? 0
            report.staffSessions = counts?.4 ?? 0
            return report
        }
    }
}
