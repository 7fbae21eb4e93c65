import Billing
import Foundation
import PostgresNIO

/// Which staff site an account, a session or an audit entry belongs to.
public enum StaffSite: String, Sendable, Hashable, CaseIterable {
    /// The merchants' data-management site.
    case merchant
    /// The carrier's support desk.
    case support
}

/// What a person logged in to a site may do.
public enum StaffRole: String, Sendable, Hashable, CaseIterable {
    /// A merchant's administrator: reads everything of the merchant, cancels, manages the merchant's staff and
    /// signing keys, reads the audit log.
    case admin
    /// A merchant's staff who reads only.
    case viewer
    /// A support-centre agent.
    case agent
    /// A support-centre supervisor, who also reads the audit log.
    case supervisor

    /// The site the role belongs to.
    public var site: StaffSite {
        switch self {
        case .admin, .viewer: .merchant
        case .agent, .supervisor: .support
        }
    }
}

/// One person's account on a site, as stored (its password only as a scrypt hash).
public struct StaffAccount: Sendable, Hashable {
    /// The account's number.
    public var id: Int64
    /// The site it logs in to.
    public var site: StaffSite
    /// The e-mail-like login, in lower case.
    public var login: String
    /// The merchant whose data it sees (merchant site only).
    public var merchantID: MerchantID?
    /// What it may do.
    public var role: StaffRole
    /// The name shown on pages.
    public var displayName: String
    /// The scrypt hash of the password, its salt and cost (N = 2^logRounds, r, p).
    public var passwordHash: [UInt8]
    /// The salt of ``passwordHash``.
    public var passwordSalt: [UInt8]
    /// scrypt's log2 N, r and p for ``passwordHash``.
    public var scrypt: (logRounds: Int, blockSize: Int, parallelism: Int) {
        get { (scryptLogRounds, scryptBlockSize, scryptParallelism) }
        set { (scryptLogRounds, scryptBlockSize, scryptParallelism) = newValue }
    }
    var scryptLogRounds: Int
    var scryptBlockSize: Int
    var scryptParallelism: Int
    /// The TOTP secret of the second factor, when the account has one.
    public var totpSecret: [UInt8]?
    /// Failed logins since the last success.
    public var failedAttempts: Int
    /// Until when the account is locked after too many failures.
    public var lockedUntil: Date?
    /// Whether the account may log in at all.
    public var isActive: Bool

    /// An account to add: `merchantID` for a merchant's staff only.
    public init(
        site: StaffSite, login: String, merchantID: MerchantID?, role: StaffRole, displayName: String,
        passwordHash: [UInt8], passwordSalt: [UInt8], scrypt: (logRounds: Int, blockSize: Int, parallelism: Int),
        totpSecret: [UInt8]? = nil
    ) {
        id = 0
        self.site = site
        self.login = login
        self.merchantID = merchantID
        self.role = role
        self.displayName = displayName
        self.passwordHash = passwordHash
        self.passwordSalt = passwordSalt
        (scryptLogRounds, scryptBlockSize, scryptParallelism) = scrypt
        self.totpSecret = totpSecret
        failedAttempts = 0
        lockedUntil = nil
        isActive = true
    }

    /// Whether `login` is an e-mail-like login as accounts keep them: lower case, `name@domain`, at most 254
    /// characters.
    public static func isValidLogin(_ login: String) -> Bool {
        guard login.utf8.count <= 254, let at = login.firstIndex(of: "@"), at != login.startIndex else { return false }
        let name = login[..<at]
        let domain = login[login.index(after: at)...]
        let nameCharacters = Set("abcdefghijklmnopqrstuvwxyz0123456789._%+-")
        let domainCharacters = Set("abcdefghijklmnopqrstuvwxyz0123456789.-")
        return !domain.isEmpty && name.allSatisfy(nameCharacters.contains)
            && domain.allSatisfy(domainCharacters.contains)
    }
}

/// What ``BillingStore/changeStaff(site:merchant:login:_:recordedAs:)`` does to an account.
public enum StaffChange: Sendable {
    /// No more logins; its sessions end.
    case disable
    /// May log in again, its failures forgotten.
    case enable
    /// Its failures and lock forgotten.
    case unlock
    /// A new password (as its scrypt hash); its sessions end, its failures and lock are forgotten.
    case password(hash: [UInt8], salt: [UInt8], scrypt: (logRounds: Int, blockSize: Int, parallelism: Int))
    /// Another role of the same site.
    case role(StaffRole)
}

/// A logged-in session, as found by its token.
public struct StaffSession: Sendable, Hashable {
    /// Who is logged in.
    public var account: StaffAccount
    /// The token every form of the session carries.
    public var csrfToken: String
    /// When the session began.
    public var createdAt: Date
}

/// One line of a site's audit log.
public struct AuditEntry: Sendable, Hashable {
    /// The site it happened on.
    public var site: StaffSite
    /// The merchant whose data it concerned (merchant site), if any.
    public var merchantID: MerchantID?
    /// Who did it: a login (for a failed login, the login tried).
    public var staffLogin: String
    /// What was done: `login`, `login_failed`, `logout`, `export`, `cancel`, `staff_added`, ….
    public var action: String
    /// What it was done to (a charge, a month, a login), if anything.
    public var subject: String?
    /// More about it: a reason given, a count.
    public var detail: String
    /// The address it came from.
    public var address: String?
    /// When (set by the database).
    public var at: Date?

    /// An entry to record.
    public init(
        site: StaffSite, merchantID: MerchantID?, staffLogin: String, action: String, subject: String? = nil,
        detail: String = "", address: String? = nil, at: Date? = nil
    ) {
        self.site = site
        self.merchantID = merchantID
        self.staffLogin = staffLogin
        self.action = action
        self.subject = subject
        self.detail = detail
        self.address = address
        self.at = at
    }
}

extension BillingStore {
    /// Adds an account. Refused (``StoreError/Code/invalidInput``) when the login is taken on that site, the
    /// login is not e-mail-like, or the merchant does not exist.
    /// The account is recorded in the site's audit log as `staff_added` by `addedBy` (who ran the tool), in the
    /// same statement, from `address` when it came from a site: an account never exists without its entry.
    public func addStaff(_ account: StaffAccount, addedBy: String = "matomete", address: String? = nil) async throws {
        guard StaffAccount.isValidLogin(account.login) else {
            throw StoreError(.invalidInput, "a login is name@domain in lower case: \(account.login)")
        }
        guard account.role.site == account.site, (account.site == .merchant) == (account.merchantID != nil) else {
            throw StoreError(.invalidInput, "a \(account.role.rawValue) belongs to the \(account.role.site) site")
        }
        let merchant = account.merchantID?.rawValue
        if let merchant {
            let known = try await client.fetch(
                "SELECT 1 FROM merchants WHERE merchant_id = \(merchant)", Int.self, logger: logger)
            guard !known.isEmpty else { throw StoreError(.invalidInput, "no such merchant: \(merchant)") }
        }
        let totp = account.totpSecret.map { ByteBuffer(bytes: $0) }
        let detail = "role \(account.role.rawValue)\(account.totpSecret == nil ? "" : ", with TOTP")"
        let inserted = try await client.fetch(
            """
            WITH added AS (
                INSERT INTO site_staff (site, login, merchant_id, role, display_name, password_hash, password_salt,
                    scrypt_log_rounds, scrypt_block_size, scrypt_parallelism, totp_secret)
                VALUES (\(account.site.rawValue), \(account.login), \(merchant), \(account.role.rawValue),
                    \(account.displayName), \(ByteBuffer(bytes: account.passwordHash)),
                    \(ByteBuffer(bytes: account.passwordSalt)), \(account.scryptLogRounds), \(account.scryptBlockSize),
                    \(account.scryptParallelism), \(totp))
                ON CONFLICT (site, login) DO NOTHING RETURNING site, merchant_id, login
            ), recorded AS (
                INSERT INTO site_audit (site, merchant_id, staff_login, action, subject, detail, address)
                SELECT site, merchant_id, \(addedBy), 'staff_added', login, \(detail), \(address) FROM added
            )
            SELECT 1 FROM added
            """, Int.self, logger: logger)
        guard inserted.count == 1 else {
            throw StoreError(.invalidInput, "\(account.login) already has an account on the \(account.site) site")
        }
    }

    /// Applies `change` to the account `login` of `site` (of `merchant`, on the merchant site: another merchant's
    /// account is not found), and records it in the site's audit log as `entry` says (who, from where, why), in one
    /// transaction. Disabling an account or setting its password also ends its sessions. Returns false when there is
    /// no such account.
    public func changeStaff(
        site: StaffSite, merchant: MerchantID?, login: String, _ change: StaffChange, recordedAs entry: AuditEntry
    ) async throws -> Bool {
        if case .role(let role) = change, role.site != site {
            throw StoreError(.invalidInput, "a \(role.rawValue) belongs to the \(role.site) site")
        }
        return try await transaction { [self] connection in
            let merchantID = merchant?.rawValue
            let found = try await connection.fetch(
                """
                SELECT staff_id FROM site_staff
                WHERE site = \(site.rawValue) AND login = \(login) AND merchant_id IS NOT DISTINCT FROM \(merchantID)
                FOR UPDATE
                """, Int64.self, logger: logger)
            guard let id = found.first else { return false }
            switch change {
            case .disable:
                try await connection.query(
                    "UPDATE site_staff SET status = 'disabled' WHERE staff_id = \(id)", logger: logger)
                try await connection.query("DELETE FROM site_sessions WHERE staff_id = \(id)", logger: logger)
            case .enable:
                try await connection.query(
                    "UPDATE site_staff SET status = 'active', failed_attempts = 0, locked_until = NULL WHERE staff_id = \(id)",
                    logger: logger)
            case .unlock:
                try await connection.query(
                    "UPDATE site_staff SET failed_attempts = 0, locked_until = NULL WHERE staff_id = \(id)",
                    logger: logger)
            case .password(let hash, let salt, let scrypt):
                try await connection.query(
                    """
                    UPDATE site_staff SET password_hash = \(ByteBuffer(bytes: hash)),
                        password_salt = \(ByteBuffer(bytes: salt)), scrypt_log_rounds = \(scrypt.logRounds),
                        scrypt_block_size = \(scrypt.blockSize), scrypt_parallelism = \(scrypt.parallelism),
                        failed_attempts = 0, locked_until = NULL
                    WHERE staff_id = \(id)
                    """, logger: logger)
                try await connection.query("DELETE FROM site_sessions WHERE staff_id = \(id)", logger: logger)
            case .role(let role):
                try await connection.query(
                    "UPDATE site_staff SET role = \(role.rawValue) WHERE staff_id = \(id)", logger: logger)
            }
            try await record(entry, on: connection)
            return true
        }
    }

    func record(_ entry: AuditEntry, on connection: PostgresConnection) async throws {
        try await connection.query(
            """
            INSERT INTO site_audit (site, merchant_id, staff_login, action, subject, detail, address)
            VALUES (\(entry.site.rawValue), \(entry.merchantID?.rawValue), \(entry.staffLogin), \(entry.action),
                \(entry.subject), \(entry.detail), \(entry.address))
            """, logger: logger)
    }

    /// The account with `login` on `site`, if any.
    public func staffAccount(site: StaffSite, login: String) async throws -> StaffAccount? {
        try await client.withGuardedConnection { [self] connection in
            var rows = try await connection.query(
                """
                SELECT \(unescaped: StaffAccount.columns) FROM site_staff s
                WHERE site = \(site.rawValue) AND login = \(login)
                """, logger: logger
            ).makeAsyncIterator()
            return try await rows.next().map(StaffAccount.init)
        }
    }

    /// A site's accounts (a merchant's only, when `merchant` is given), by login.
    public func staffAccounts(site: StaffSite, merchant: MerchantID?) async throws -> [StaffAccount] {
        try await client.withGuardedConnection { [self] connection in
            var accounts: [StaffAccount] = []
            for try await row in try await connection.query(
                """
                SELECT \(unescaped: StaffAccount.columns) FROM site_staff s
                WHERE site = \(site.rawValue) AND merchant_id IS NOT DISTINCT FROM \(merchant?.rawValue)
                ORDER BY login
                """, logger: logger)
            {
                accounts.append(try StaffAccount(row))
            }
            return accounts
        }
    }

    /// Counts a failed login of the account; at `maxFailures` in a row it is locked for `lockFor`. Returns
    /// until when it is locked, if it is.
    public func recordStaffLoginFailure(id: Int64, maxFailures: Int, lockFor: Duration) async throws -> Date? {
        let seconds = Double(lockFor.components.seconds)
        let rows = try await client.fetch(
            """
            UPDATE site_staff SET
                failed_attempts = CASE WHEN failed_attempts + 1 >= \(maxFailures) THEN 0 ELSE failed_attempts + 1 END,
                locked_until = CASE WHEN failed_attempts + 1 >= \(maxFailures)
                    THEN now() + make_interval(secs => \(seconds)) ELSE locked_until END
            WHERE staff_id = \(id) RETURNING locked_until
            """, Date?.self, logger: logger)
        return rows.first.flatMap { $0 }.flatMap { $0 > Date() ? $0 : nil }
    }

    /// Opens a session for the account after a successful login: its failures are forgotten, and the session
    /// is kept as the SHA-256 of its token with its CSRF token.
    public func openStaffSession(id: Int64, tokenHash: [UInt8], csrfToken: String) async throws {
        try await transaction { [self] connection in
            try await connection.query(
                "UPDATE site_staff SET failed_attempts = 0, locked_until = NULL WHERE staff_id = \(id)",
                logger: logger)
            try await connection.query(
                """
                INSERT INTO site_sessions (token_hash, staff_id, csrf_token)
                VALUES (\(ByteBuffer(bytes: tokenHash)), \(id), \(csrfToken))
                """, logger: logger)
        }
    }

    /// The session whose token hashes to `tokenHash` on `site`, if it is still valid: the account active, used
    /// within `idle` and begun within `absolute`. Marks it used now.
    public func staffSession(
        site: StaffSite, tokenHash: [UInt8], idle: Duration, absolute: Duration
    ) async throws -> StaffSession? {
        let idleSeconds = Double(idle.components.seconds)
        let absoluteSeconds = Double(absolute.components.seconds)
        return try await client.withGuardedConnection { [self] connection in
            var rows = try await connection.query(
                """
                UPDATE site_sessions z SET last_seen_at = now()
                FROM site_staff s
                WHERE z.token_hash = \(ByteBuffer(bytes: tokenHash)) AND s.staff_id = z.staff_id
                    AND s.site = \(site.rawValue) AND s.status = 'active'
                    AND z.last_seen_at > now() - make_interval(secs => \(idleSeconds))
                    AND z.created_at > now() - make_interval(secs => \(absoluteSeconds))
                RETURNING \(unescaped: StaffAccount.columns), z.csrf_token, z.created_at
                """, logger: logger
            ).makeAsyncIterator()
            guard let row = try await rows.next() else { return nil }
            var columns = RowColumns(row)
            let account = try StaffAccount(&columns)
            return StaffSession(account: account, csrfToken: try columns.next(), createdAt: try columns.next())
        }
    }

    /// Ends one session.
    public func closeStaffSession(tokenHash: [UInt8]) async throws {
        try await client.query(
            "DELETE FROM site_sessions WHERE token_hash = \(ByteBuffer(bytes: tokenHash))", logger: logger)
    }

    /// Ends every session of the account. Returns how many there were.
    @discardableResult
    public func closeStaffSessions(id: Int64) async throws -> Int {
        try await client.fetch(
            "DELETE FROM site_sessions WHERE staff_id = \(id) RETURNING 1", Int.self, logger: logger
        ).count
    }

    /// Appends to the audit log.
    public func audit(_ entry: AuditEntry) async throws {
        try await client.withGuardedConnection { [self] connection in try await record(entry, on: connection) }
    }

    /// A site's audit log, newest first (a merchant's entries only, when `merchant` is given; those about
    /// `subject` only, when given): at most `limit` entries, recorded before `before` when given.
    public func auditLog(
        site: StaffSite, merchant: MerchantID?, subject: String? = nil, before: Date? = nil, limit: Int = 100
    ) async throws -> [AuditEntry] {
        try await auditRows(
            """
            SELECT id, merchant_id, staff_login, action, subject, detail, address, at FROM site_audit
            WHERE site = \(site.rawValue) AND merchant_id IS NOT DISTINCT FROM \(merchant?.rawValue)
                AND (\(subject == nil) OR subject = \(subject ?? "")) AND at < \(before ?? .distantFuture)
            ORDER BY at DESC, id DESC LIMIT \(limit)
            """, site: site
        ).map(\.entry)
    }

    /// A site's audit log in the order it was written, after the entry numbered `after`: at most `limit` entries
    /// with their numbers, to page through all of it (an export).
    public func auditEntries(
        site: StaffSite, after: Int64, limit: Int = 2000
    ) async throws -> [(number: Int64, entry: AuditEntry)] {
        try await auditRows(
            """
            SELECT id, merchant_id, staff_login, action, subject, detail, address, at FROM site_audit
            WHERE site = \(site.rawValue) AND id > \(after) ORDER BY id LIMIT \(limit)
            """, site: site)
    }

    private func auditRows(_ query: PostgresQuery, site: StaffSite) async throws -> [(number: Int64, entry: AuditEntry)]
    {
        try await client.fetch(
            query, (Int64, String?, String, String, String?, String, String?, Date).self, logger: logger
        )
        .map { number, merchant, login, action, subject, detail, address, at in
            (
                number,
                AuditEntry(
                    site: site, merchantID: merchant.map(MerchantID.init(rawValue:)), staffLogin: login,
                    action: action, subject: subject, detail: detail, address: address, at: at)
            )
        }
    }
}

extension StaffAccount {
    /// The columns ``init(_:)`` reads, in order (15 of them), of `site_staff` named `s`.
    static let columns = """
        s.staff_id, s.site, s.login, s.merchant_id, s.role, s.display_name, s.password_hash, s.password_salt,
        s.scrypt_log_rounds, s.scrypt_block_size, s.scrypt_parallelism, s.totp_secret,
        s.failed_attempts, s.locked_until, s.status = 'active'
        """

    init(_ row: PostgresRow) throws {
        var columns = RowColumns(row)
        try self.init(&columns)
    }

    init(_ columns: inout RowColumns) throws {
        id = try columns.next()
        site = StaffSite(rawValue: try columns.next()) ?? .merchant
        login = try columns.next()
        merchantID = (try columns.next() as String?).map(MerchantID.init(rawValue:))
        role = StaffRole(rawValue: try columns.next()) ?? .viewer
        displayName = try columns.next()
        passwordHash = Array(buffer: try columns.next() as ByteBuffer)
        passwordSalt = Array(buffer: try columns.next() as ByteBuffer)
        scryptLogRounds = try columns.next()
        scryptBlockSize = try columns.next()
        scryptParallelism = try columns.next()
        totpSecret = (try columns.next() as ByteBuffer?).map { Array(buffer: $0) }
        failedAttempts = try columns.next()
        lockedUntil = try columns.next()
        isActive = try columns.next()
    }
}
