import Billing
import Foundation
import PostgresNIO

extension BillingStore {
    /// Adds a merchant or updates its name and status.
    public func upsertMerchant(_ merchant: Merchant) async throws {
        try await transaction { [self] connection in
            try await connection.query(
                """
                INSERT INTO merchants (merchant_id, name, status) VALUES (\(merchant.id.rawValue), \(merchant.name), \(merchant.status.rawValue))
                ON CONFLICT (merchant_id) DO UPDATE SET name = excluded.name, status = excluded.status, updated_at = now()
                """, logger: logger)
            for version in merchant.tariffs.versions {
                let summary = version.tariff.summary
                try await connection.query(
                    """
                    INSERT INTO merchant_tariffs (merchant_id, effective_from, rate_basis_points, per_line_threshold_yen,
                                                  per_line_fee_tenths, tariff)
                    VALUES (\(merchant.id.rawValue), \(version.effectiveFrom.description), \(summary.rateBasisPoints),
                            \(summary.perLineThreshold.amount), \(summary.perLineFeeTenths), \(version.tariff.storedJSON)::jsonb)
                    ON CONFLICT (merchant_id, effective_from) DO UPDATE SET
                        rate_basis_points = excluded.rate_basis_points,
                        per_line_threshold_yen = excluded.per_line_threshold_yen,
                        per_line_fee_tenths = excluded.per_line_fee_tenths,
                        tariff = excluded.tariff
                    WHERE merchant_tariffs.tariff IS DISTINCT FROM excluded.tariff
                    """, logger: logger)
            }
        }
    }

    /// Every merchant with its tariff versions, by id.
    public func merchants() async throws -> [MerchantID: Merchant] {
        var merchants: [MerchantID: Merchant] = [:]
        let rows = try await client.query("SELECT merchant_id, name, status FROM merchants", logger: logger)
        for try await (id, name, status) in rows.decode((String, String, String).self) {
            merchants[MerchantID(rawValue: id)] = Merchant(
                id: MerchantID(rawValue: id), name: name, status: MerchantStatus(rawValue: status) ?? .suspended)
        }
        let tariffs = try await client.query(
            "SELECT merchant_id, effective_from, tariff::text FROM merchant_tariffs", logger: logger)
        for try await (id, from, tariff) in tariffs.decode((String, String, String).self) {
            merchants[MerchantID(rawValue: id)]?.tariffs.versions.append(
                TariffVersion(effectiveFrom: try storedCycle(from), tariff: try BandedTariff(storedJSON: tariff)))
        }
        return merchants
    }

    /// The cycle new lines start in: the one after the latest cycle whose close
    /// has begun, or `fallback` when no cycle has been closed yet.
    public func cycleForNewLines(fallback: BillingCycle) async throws -> BillingCycle {
        try await latestClose()?.next ?? fallback
    }

    /// The latest cycle whose close has begun, if any.
    public func latestClose() async throws -> BillingCycle? {
        let latest =
            try await client.fetch("SELECT max(cycle) FROM cycle_closes", String?.self, logger: logger).first ?? nil
        return latest.flatMap(BillingCycle.init)
    }

    /// The spending limit of every line without its own, when one was set
    /// (``setDefaultSpendingLimit(_:)``); `0` means none. `nil`: never set,
    /// the rules' default (¥50,000) applies.
    public func defaultSpendingLimit() async throws -> Yen? {
        try await client.fetch(
            "SELECT value FROM matomete_settings WHERE key = \(defaultSpendingLimitKey)", String.self, logger: logger
        ).first.flatMap { Int64($0) }.map { Yen($0) }
    }

    /// Sets the spending limit of every line without its own (`0`: none). The
    /// workers apply it from their next batch: to the rest of the open month too.
    public func setDefaultSpendingLimit(_ limit: Yen) async throws {
        guard limit.amount >= 0 else {
            throw StoreError(.invalidInput, "the default spending limit must be 0 (none) or more yen")
        }
        try await client.query(
            """
            INSERT INTO matomete_settings (key, value) VALUES (\(defaultSpendingLimitKey), \(String(limit.amount)))
            ON CONFLICT (key) DO UPDATE SET value = excluded.value
            """, logger: logger)
    }

    /// Adds lines, or updates the type, contract, status and limit of lines
    /// that exist (their open cycle and spend are kept). Streams the lines with
    /// `COPY` into a staging table, then merges: 1,000,000 lines take seconds.
    ///
    /// - Returns: how many lines were added or updated.
    @discardableResult
    public func importLines(_ lines: [Line], openCycle: BillingCycle) async throws -> Int {
        guard !lines.isEmpty else { return 0 }
        return try await transaction { [self] connection in
            try await connection.query(
                """
                CREATE TEMPORARY TABLE lines_import (
                    line_id text, line_type text, flets_net boolean, status text, spending_limit_yen bigint
                ) ON COMMIT DROP
                """, logger: logger)
            try await connection.copyFrom(
                table: "lines_import", columns: ["line_id", "line_type", "flets_net", "status", "spending_limit_yen"],
                logger: logger
            ) { writer in
                var buffer = ByteBuffer()
                for line in lines {
                    buffer.writeString(copyText(line.id.rawValue))
                    buffer.writeString("\t")
                    buffer.writeString(copyText(line.type.rawValue))
                    buffer.writeString(line.fletsNetContract ? "\tt\t" : "\tf\t")
                    buffer.writeString(line.status.rawValue)
                    buffer.writeString("\t")
                    buffer.writeString(line.spendingLimit.map { String($0.amount) } ?? "\\N")
                    buffer.writeString("\n")
                    if buffer.readableBytes > 1 << 20 {
                        try await writer.write(buffer)
                        buffer.clear()
                    }
                }
                if buffer.readableBytes > 0 { try await writer.write(buffer) }
            }
            let rows = try await connection.query(
                """
                INSERT INTO lines (line_id, line_type, flets_net, status, spending_limit_yen, open_cycle)
                SELECT line_id, line_type, flets_net, status, spending_limit_yen, \(openCycle.description) FROM lines_import
                ON CONFLICT (line_id) DO UPDATE SET
                    line_type = excluded.line_type, flets_net = excluded.flets_net, status = excluded.status,
                    spending_limit_yen = excluded.spending_limit_yen, updated_at = now()
                RETURNING 1
                """, logger: logger)
            var count = 0
            for try await _ in rows { count += 1 }
            return count
        }
    }
}

/// A value for `COPY ... FROM STDIN` text format: backslash, tab and newlines escaped.
func copyText(_ value: String) -> String {
    guard value.contains(where: { $0 == "\\" || $0 == "\t" || $0 == "\n" || $0 == "\r" }) else { return value }
    return value.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\t", with: "\\t")
        .replacingOccurrences(of: "\n", with: "\\n").replacingOccurrences(of: "\r", with: "\\r")
}

/// The `matomete_settings` key of the default spending limit.
let defaultSpendingLimitKey = "default_spending_limit_yen"

/// Reads lines from CSV (RFC 4180, see ``CSV``): a header naming
/// `line_id` and `line_type`, and optionally `flets_net` (`true` or `false`,
/// exactly; empty for `false`), `status` (default `active`) and
/// `spending_limit` (yen; empty for the default; `0` for none). Any other
/// column, a column named twice, a record with another number of fields than
/// the header, or a line type the carrier does not sell refuses the text,
/// naming the line.
public enum LineCSV {
    /// The columns a header may name.
    public static let columns = ["line_id", "line_type", "flets_net", "status", "spending_limit"]

    /// `firstLine` is the file's line number of the first record after the
    /// header, for the errors (when `text` is a later chunk of a long file).
    public static func parse(_ text: String, firstLine: Int = 2) throws(StoreError) -> [Line] {
        var records = try CSV.records(text, firstLine: firstLine - 1)
        guard !records.isEmpty else { return [] }
        let header = records.removeFirst().fields.map { $0.lowercased() }
        for (index, name) in header.enumerated() {
            guard columns.contains(name) else {
                throw StoreError(
                    .invalidInput,
                    "the CSV header names \"\(name.prefix(40))\"; its columns are \(columns.joined(separator: ", "))")
            }
            guard !header[..<index].contains(name) else {
                throw StoreError(.invalidInput, "the CSV header names \(name) twice")
            }
        }
        guard let idColumn = header.firstIndex(of: "line_id"), let typeColumn = header.firstIndex(of: "line_type")
        else {
            throw StoreError(.invalidInput, "the CSV header must name line_id and line_type")
        }
        let fletsColumn = header.firstIndex(of: "flets_net")
        let statusColumn = header.firstIndex(of: "status")
        let limitColumn = header.firstIndex(of: "spending_limit")
        var lines: [Line] = []
        lines.reserveCapacity(records.count)
        for record in records {
            let fields = record.fields
            let place = "CSV line \(record.line)"
            guard fields.count == header.count else {
                throw StoreError(
                    .invalidInput, "\(place): \(fields.count) fields, but the header names \(header.count) columns")
            }
            func field(_ column: Int?) -> String? {
                guard let column, !fields[column].isEmpty else { return nil }
                return fields[column]
            }
            guard let id = field(idColumn), LineID(rawValue: id).isWellFormed else {
                throw StoreError(.invalidInput, "\(place): line_id is missing or malformed")
            }
            guard let type = field(typeColumn) else {
                throw StoreError(.invalidInput, "\(place): line_type is missing")
            }
            guard LineType.sold.map(\.rawValue).contains(type) else {
                throw StoreError(
                    .invalidInput,
                    "\(place): line_type must be \(LineType.sold.map(\.rawValue).joined(separator: ", ")), not \(type.prefix(40))"
                )
            }
            let status =
                try field(statusColumn).map { text throws(StoreError) in
                    guard let status = LineStatus(rawValue: text) else {
                        throw StoreError(.invalidInput, "\(place): status must be active, suspended or terminated")
                    }
                    return status
                } ?? .active
            let limit = try field(limitColumn).map { text throws(StoreError) in
                guard let yen = Int64(text), yen >= 0 else {
                    throw StoreError(.invalidInput, "\(place): spending_limit must be a whole number of yen")
                }
                return Yen(yen)
            }
            let fletsNet =
                try field(fletsColumn).map { text throws(StoreError) in
                    switch text {
                    case "true": return true
                    case "false": return false
                    default: throw StoreError(.invalidInput, "\(place): flets_net must be true or false, not \(text)")
                    }
                } ?? false
            lines.append(
                Line(
                    id: LineID(rawValue: id), type: LineType(rawValue: type), fletsNetContract: fletsNet,
                    status: status,
                    spendingLimit: limit))
        }
        return lines
    }
}
