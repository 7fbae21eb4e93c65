import Foundation
import PostgresNIO

/// A purchase ID as stored: whose line it is, its password hash, its state.
public struct StoredCredential: Sendable, Hashable {
    /// The ID the carrier issued for the line; the line's user confirms purchases with it and the password.
    public var purchaseID: String
    /// The line the ID belongs to: it is accepted only from that line's addresses, and purchases are billed there.
    public var lineID: String
    /// The scrypt hash of the password.
    public var passwordHash: [UInt8]
    /// The salt the password was hashed with.
    public var salt: [UInt8]
    /// scrypt's cost, as the base-2 logarithm of N.
    public var logRounds: Int
    /// scrypt's block size, r.
    public var blockSize: Int
    /// scrypt's parallelism, p.
    public var parallelism: Int
    /// Revoked for good: the ID no longer authenticates.
    public var isRevoked: Bool
}

/// Wrong passwords given for one purchase ID from one line, and the lock they set.
public struct PurchaseIDLockout: Sendable, Hashable {
    /// The purchase ID tried (one that exists or not: both are counted alike).
    public var purchaseID: String
    /// The line whose address the attempts came from.
    public var lineID: String
    /// Wrong passwords counted since the last success, the last lock's end, or a day without one.
    public var failedAttempts: Int
    /// Until when the ID is locked for attempts from this line; `nil` or past when it is not.
    public var lockedUntil: Date?
}

/// How many wrong passwords lock a purchase ID, or a line, and for how long.
///
/// An ID's failures are counted per line of origin: wrong passwords for ID
/// `P` from line `L`'s addresses lock `P` for requests from `L` only. A
/// line's failures, whatever the IDs, lock every request from that line.
/// A count starts over when its lock ends, and after a day without a failure.
public struct LockoutPolicy: Sendable, Hashable {
    /// Wrong passwords for one purchase ID from one line that lock the ID for that line. Default 5.
    public var failuresPerID: Int
    /// Wrong passwords from a line's addresses, whatever the purchase ID, that lock the line. Default 20.
    public var failuresPerLine: Int
    /// How long a lock lasts. Default 15 minutes.
    public var duration: Duration
    /// How long failures are remembered without a new one. Default a day.
    public var window: Duration

    /// A policy; the defaults lock an ID (for one line) after 5 failures and a line after 20, for 15 minutes.
    public init(
        failuresPerID: Int = 5, failuresPerLine: Int = 20, duration: Duration = .seconds(900),
        window: Duration = .seconds(86_400)
    ) {
        self.failuresPerID = failuresPerID
        self.failuresPerLine = failuresPerLine
        self.duration = duration
        self.window = window
    }
}

/// What counting one more failed attempt showed.
public struct AttemptCount: Sendable, Hashable {
    /// This attempt brought the ID (for one line) or a line to its limit, and locked it.
    public var reachedLimit: Bool
    /// The ID or a line was past its limit already: another attempt locked it meanwhile.
    public var overLimit: Bool
}

/// What the gateway needs to know about a line and a merchant to authorize a purchase.
public struct PurchaseContext: Sendable, Hashable {
    /// The line's kind, for example `hikari-next` (`nil`: no such line).
    public var lineType: String?
    /// Whether the line has a Flets.net contract (needed for ADSL lines); false for an unknown line.
    public var fletsNet: Bool
    /// `active`, `suspended` or `terminated` (`nil`: no such line).
    public var lineStatus: String?
    /// `active` or `suspended` (`nil`: no such merchant).
    public var merchantStatus: String?
    /// Whether the line's user stopped carrier billing on the line.
    public var billingBlocked = false
}

extension BillingStore {
    /// Issues a purchase ID for a line with a hashed password. Fails if the ID exists; refused
    /// (``StoreError/Code/invalidInput``) when the line does not.
    public func issueCredential(
        purchaseID: String, lineID: String, hash: [UInt8], salt: [UInt8], logRounds: Int, blockSize: Int,
        parallelism: Int
    ) async throws {
        let inserted = try await client.fetch(
            """
            INSERT INTO purchase_credentials (purchase_id, line_id, password_hash, password_salt,
                scrypt_log_rounds, scrypt_block_size, scrypt_parallelism, status)
            SELECT \(purchaseID), line_id, \(ByteBuffer(bytes: hash)), \(ByteBuffer(bytes: salt)),
                \(logRounds), \(blockSize), \(parallelism), 'active'
            FROM lines WHERE line_id = \(lineID)
            RETURNING 1
            """, Int.self, logger: logger)
        guard inserted.count == 1 else { throw StoreError(.invalidInput, "no such line: \(lineID)") }
    }

    /// Replaces a purchase ID's password and forgets its failures and locks. Returns false if there is no such
    /// active ID.
    public func changePassword(
        purchaseID: String, hash: [UInt8], salt: [UInt8], logRounds: Int, blockSize: Int, parallelism: Int
    ) async throws -> Bool {
        try await transaction { [self] connection in
            let changed =
                try await connection.fetch(
                    """
                    UPDATE purchase_credentials SET password_hash = \(ByteBuffer(bytes: hash)),
                        password_salt = \(ByteBuffer(bytes: salt)), scrypt_log_rounds = \(logRounds),
                        scrypt_block_size = \(blockSize), scrypt_parallelism = \(parallelism), updated_at = now()
                    WHERE purchase_id = \(purchaseID) AND status = 'active'
                    RETURNING 1
                    """, Int.self, logger: logger
                ).count == 1
            if changed {
                try await connection.query(
                    "DELETE FROM purchase_id_lockouts WHERE purchase_id = \(purchaseID)", logger: logger)
            }
            return changed
        }
    }

    /// Revokes a purchase ID for good. Returns false if there is no such active ID.
    public func revokeCredential(purchaseID: String) async throws -> Bool {
        try await client.fetch(
            """
            UPDATE purchase_credentials SET status = 'revoked', revoked_at = now(), updated_at = now()
            WHERE purchase_id = \(purchaseID) AND status = 'active'
            RETURNING 1
            """, Int.self, logger: logger
        ).count == 1
    }

    /// The purchase ID as stored, revoked or not; `nil` when it was never issued.
    public func credential(purchaseID: String) async throws -> StoredCredential? {
        try await client.fetch(
            """
            SELECT purchase_id, line_id, password_hash, password_salt, scrypt_log_rounds, scrypt_block_size,
                   scrypt_parallelism, status
            FROM purchase_credentials WHERE purchase_id = \(purchaseID)
            """, (String, String, ByteBuffer, ByteBuffer, Int, Int, Int, String).self, logger: logger
        ).first.map { id, line, hash, salt, rounds, block, parallelism, status in
            StoredCredential(
                purchaseID: id, lineID: line, passwordHash: Array(hash.readableBytesView),
                salt: Array(salt.readableBytesView), logRounds: rounds, blockSize: block, parallelism: parallelism,
                isRevoked: status == "revoked")
        }
    }

    /// Until when requests naming `purchaseID` from `lines` are refused: the
    /// latest running lock of the ID for one of those lines, or of one of the
    /// lines themselves; `nil` when none runs.
    public func lockedUntil(purchaseID: String, lines: [String]) async throws -> Date? {
        try await client.fetch(
            """
            SELECT max(locked_until) FROM (
                SELECT locked_until FROM purchase_id_lockouts
                WHERE purchase_id = \(purchaseID) AND line_id = ANY(\(lines)) AND locked_until > now()
                UNION ALL
                SELECT locked_until FROM line_lockouts WHERE line_id = ANY(\(lines)) AND locked_until > now()
            ) AS running
            """, Date?.self, logger: logger
        ).first ?? nil
    }

    /// Until when a line is locked against purchases, if it is.
    public func lineLockedUntil(_ lineID: String) async throws -> Date? {
        try await client.fetch(
            "SELECT locked_until FROM line_lockouts WHERE line_id = \(lineID) AND locked_until > now()",
            Date?.self, logger: logger
        ).first ?? nil
    }

    /// The failures counted for a purchase ID, one entry per line they came from, by line.
    public func lockouts(purchaseID: String) async throws -> [PurchaseIDLockout] {
        try await client.fetch(
            """
            SELECT purchase_id, line_id, failed_attempts, locked_until FROM purchase_id_lockouts
            WHERE purchase_id = \(purchaseID) ORDER BY line_id
            """, (String, String, Int, Date?).self, logger: logger
        ).map { PurchaseIDLockout(purchaseID: $0, lineID: $1, failedAttempts: $2, lockedUntil: $3) }
    }

    /// Counts an attempt as failed against `purchaseID` (whether it exists or
    /// not) for each line the request came from, and against those lines;
    /// locks either once it reaches its limit (``LockoutPolicy``). The gateway
    /// counts every attempt so before it checks the password, so that
    /// concurrent guesses cannot slip past a limit, and takes a success's
    /// count back (``recordSuccessfulAttempt(purchaseID:lineID:lines:policy:)``).
    public func recordFailedAttempt(
        purchaseID: String, lines: [String], policy: LockoutPolicy
    ) async throws -> AttemptCount {
        try await transaction { [self] connection in
            var count = AttemptCount(reachedLimit: false, overLimit: false)
            for line in lines.sorted() {
                let idCount = try await countFailure(
                    on: connection, table: "purchase_id_lockouts", key: "purchase_id, line_id",
                    values: [purchaseID, line], limit: policy.failuresPerID, policy: policy)
                let lineCount = try await countFailure(
                    on: connection, table: "line_lockouts", key: "line_id", values: [line],
                    limit: policy.failuresPerLine, policy: policy)
                count.reachedLimit =
                    count.reachedLimit || idCount == policy.failuresPerID || lineCount == policy.failuresPerLine
                count.overLimit =
                    count.overLimit || idCount > policy.failuresPerID || lineCount > policy.failuresPerLine
            }
            return count
        }
    }

    /// Adds one failure to the count keyed by `values` (the columns `key`) in
    /// `table`, and locks the key when the count reaches `limit`. A count
    /// whose lock has ended, or that saw no failure for the policy's window,
    /// starts over. Returns the new count.
    private func countFailure(
        on connection: PostgresConnection, table: String, key: String, values: [String], limit: Int,
        policy: LockoutPolicy
    ) async throws -> Int {
        let seconds = Double(policy.duration.components.seconds)
        let window = Double(policy.window.components.seconds)
        let placeholders = values.indices.map { "$\($0 + 1)" }.joined(separator: ", ")
        var bindings = PostgresBindings()
        for value in values { bindings.append(value) }
        let stale = "k.locked_until <= now() OR k.updated_at < now() - make_interval(secs => \(window))"
        let count = "CASE WHEN \(stale) THEN 1 ELSE k.failed_attempts + 1 END"
        let lock = "now() + make_interval(secs => \(seconds))"
        let sql = """
            INSERT INTO \(table) AS k (\(key), failed_attempts, locked_until)
            VALUES (\(placeholders), 1, CASE WHEN 1 >= \(limit) THEN \(lock) END)
            ON CONFLICT (\(key)) DO UPDATE SET
                failed_attempts = \(count),
                locked_until = CASE WHEN \(count) >= \(limit) THEN \(lock) END,
                updated_at = now()
            RETURNING failed_attempts
            """
        return try await connection.fetch(
            PostgresQuery(unsafeSQL: sql, binds: bindings), Int.self, logger: logger
        ).first ?? 0
    }

    /// A successful authentication of `purchaseID` on its line `lineID`,
    /// counted first as a failure from `lines`: clears the ID's failures from
    /// its own line (and its lock there), and takes the one count back from
    /// each line, lifting a line's lock that count set. Other failures of the
    /// lines stay: a success on one's own ID never wipes the count of one's
    /// guesses at others'.
    public func recordSuccessfulAttempt(
        purchaseID: String, lineID: String, lines: [String], policy: LockoutPolicy
    ) async throws {
        try await transaction { [self] connection in
            try await takeBack(on: connection, purchaseID: purchaseID, lines: lines, policy: policy)
            try await connection.query(
                "DELETE FROM purchase_id_lockouts WHERE purchase_id = \(purchaseID) AND line_id = \(lineID)",
                logger: logger)
        }
    }

    /// Takes back the count of an attempt counted as failed from `lines`
    /// whose password was never checked (the gateway was too busy), lifting
    /// a lock that count set.
    public func takeBackAttempt(purchaseID: String, lines: [String], policy: LockoutPolicy) async throws {
        try await transaction { [self] connection in
            try await takeBack(on: connection, purchaseID: purchaseID, lines: lines, policy: policy)
        }
    }

    private func takeBack(
        on connection: PostgresConnection, purchaseID: String, lines: [String], policy: LockoutPolicy
    ) async throws {
        let lines = lines.sorted()
        try await connection.query(
            """
            UPDATE purchase_id_lockouts SET failed_attempts = greatest(failed_attempts - 1, 0),
                locked_until = CASE WHEN failed_attempts - 1 < \(policy.failuresPerID) THEN NULL ELSE locked_until END
            WHERE purchase_id = \(purchaseID) AND line_id = ANY(\(lines))
            """, logger: logger)
        try await connection.query(
            """
            UPDATE line_lockouts SET failed_attempts = greatest(failed_attempts - 1, 0),
                locked_until = CASE WHEN failed_attempts - 1 < \(policy.failuresPerLine) THEN NULL ELSE locked_until END
            WHERE line_id = ANY(\(lines))
            """, logger: logger)
    }

    /// The lines currently assigned an address prefix containing `address`.
    public func lines(at address: String) async throws -> [String] {
        try await client.fetch(
            "SELECT line_id FROM line_addresses WHERE prefix >>= \(address)::inet ORDER BY line_id", String.self,
            logger: logger)
    }

    /// Replaces the address prefixes assigned to each line listed (from the
    /// line system); an empty list releases the line's addresses.
    ///
    /// Refused whole (``StoreError/Code/invalidInput``, naming the line and
    /// prefix) when a line is not one the store knows, or when a prefix
    /// overlaps another line's (among the new ones, or one another line keeps):
    /// an address belongs to one line at most. Prefixes must already be
    /// well-formed (``AddressPrefix/init(lineAssignment:widestIPv4:widestIPv6:)``).
    public func assignAddresses(_ assignments: [String: [String]]) async throws {
        let lines = Array(assignments.keys)
        let pairs = assignments.flatMap { line, prefixes in prefixes.map { (line, $0) } }
        try await transaction { [self] connection in
            let unknown = try await connection.fetch(
                """
                SELECT k.line_id FROM unnest(\(lines)) AS k(line_id)
                WHERE NOT EXISTS (SELECT 1 FROM lines WHERE lines.line_id = k.line_id) ORDER BY 1 LIMIT 3
                """, String.self, logger: logger)
            if !unknown.isEmpty {
                throw StoreError(.invalidInput, "no such line: \(unknown.joined(separator: ", "))")
            }
            try await connection.query("DELETE FROM line_addresses WHERE line_id = ANY(\(lines))", logger: logger)
            try await connection.query(
                """
                INSERT INTO line_addresses (line_id, prefix)
                SELECT line_id, prefix::inet FROM unnest(\(pairs.map(\.0)), \(pairs.map(\.1))) AS a(line_id, prefix)
                """, logger: logger)
            let overlaps = try await connection.fetch(
                """
                SELECT a.line_id, a.prefix::text, b.line_id, b.prefix::text
                FROM line_addresses a JOIN line_addresses b ON a.prefix && b.prefix AND a.line_id <> b.line_id
                WHERE a.line_id = ANY(\(lines)) ORDER BY 1, 2, 3, 4 LIMIT 1
                """, (String, String, String, String).self, logger: logger)
            if let (line, prefix, other, otherPrefix) = overlaps.first {
                throw StoreError(
                    .invalidInput,
                    "line \(line): \(prefix) overlaps \(otherPrefix) of line \(other); an address belongs to one line")
            }
        }
    }

    /// Lifts the locks of a purchase ID (`purchaseID`: for every line) or of
    /// a line (`lineID`: the line's own, and every ID's for that line) and
    /// forgets their failures. Returns whether there was anything to clear.
    public func unlock(purchaseID: String? = nil, lineID: String? = nil) async throws -> Bool {
        try await transaction { [self] connection in
            var cleared = 0
            if let purchaseID {
                cleared += try await connection.fetch(
                    "DELETE FROM purchase_id_lockouts WHERE purchase_id = \(purchaseID) RETURNING 1", Int.self,
                    logger: logger
                ).count
            }
            if let lineID {
                cleared += try await connection.fetch(
                    "DELETE FROM line_lockouts WHERE line_id = \(lineID) RETURNING 1", Int.self, logger: logger
                ).count
                cleared += try await connection.fetch(
                    "DELETE FROM purchase_id_lockouts WHERE line_id = \(lineID) RETURNING 1", Int.self,
                    logger: logger
                ).count
            }
            return cleared > 0
        }
    }

    /// The line's kind and state and the merchant's state (nil when unknown).
    public func purchaseContext(lineID: String, merchantID: String) async throws -> PurchaseContext {
        let rows = try await client.fetch(
            """
            SELECT l.line_type, coalesce(l.flets_net, false), l.status, m.status, l.billing_blocked_since IS NOT NULL
            FROM (SELECT 1) AS one
            LEFT JOIN lines l ON l.line_id = \(lineID)
            LEFT JOIN merchants m ON m.merchant_id = \(merchantID)
            """, (String?, Bool, String?, String?, Bool).self, logger: logger)
        let (type, fletsNet, status, merchant, blocked) = rows.first ?? (nil, false, nil, nil, false)
        return PurchaseContext(
            lineType: type, fletsNet: fletsNet, lineStatus: status, merchantStatus: merchant, billingBlocked: blocked)
    }
}

extension AddressPrefix {
    /// A prefix the line system assigns to one line: ``init(_:)``'s form,
    /// refused (``StoreError/Code/invalidInput``) when garbled or wider than
    /// one line may hold: `/widestIPv4` for IPv4 (default /24: 256
    /// addresses), `/widestIPv6` for IPv6 (default /48, a site).
    public init(lineAssignment text: String, widestIPv4: Int = 24, widestIPv6: Int = 48) throws(StoreError) {
        guard let prefix = AddressPrefix(text) else {
            throw StoreError(.invalidInput, "\(text) is not an IPv4 or IPv6 address with an optional length")
        }
        let widest = prefix.isIPv4 ? widestIPv4 : widestIPv6
        guard prefix.prefixLength >= widest else {
            throw StoreError(
                .invalidInput,
                "\(text) is wider than a line may hold (/\(widest) at most for IPv\(prefix.isIPv4 ? 4 : 6))")
        }
        self = prefix
    }
}
