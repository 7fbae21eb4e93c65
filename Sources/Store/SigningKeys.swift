import Foundation
import PostgresNIO

/// Who signs requests with a key: a merchant, or the carrier's line system.
public enum KeyOwner: Sendable, Hashable, CustomStringConvertible {
    /// A merchant, by id: it signs its charges and cancellations.
    case merchant(String)
    /// The carrier's line system: it signs line terminations.
    case lineSystem

    /// How many keys an owner may hold unrevoked at once: two, so that a new
    /// one can be rolled out before the old one is revoked.
    public static let activeKeysAtMost = 2

    /// How its key ids start: `mk-` for a merchant's keys, `lk-` for the line system's.
    public var keyIDPrefix: String {
        switch self {
        case .merchant: "mk-"
        case .lineSystem: "lk-"
        }
    }

    /// What a key's sealed secret is bound to: its id and its owner, so that
    /// a sealed secret copied to another key's row, or a row given to another
    /// owner, does not open.
    public func sealingContext(keyID: String) -> String { "\(keyID)\n\(kind)\n\(id)" }

    var kind: String {
        switch self {
        case .merchant: "merchant"
        case .lineSystem: "line-system"
        }
    }

    var id: String {
        switch self {
        case .merchant(let id): id
        case .lineSystem: ""
        }
    }

    init?(kind: String, id: String) {
        switch kind {
        case "merchant": self = .merchant(id)
        case "line-system": self = .lineSystem
        default: return nil
        }
    }

    /// `merchant m-shop` or `the line system`.
    public var description: String {
        switch self {
        case .merchant(let id): "merchant \(id)"
        case .lineSystem: "the line system"
        }
    }
}

/// A message-signing key as stored: its secret sealed, never in the clear.
public struct StoredSigningKey: Sendable, Hashable {
    /// The id signed messages name in their `matomete-key-id` header.
    public var keyID: String
    /// Whose key it is.
    public var owner: KeyOwner
    /// The secret, sealed under the key-encryption key (see `SecretSealer`).
    public var sealedSecret: [UInt8]
    /// When it was created.
    public var createdAt: Date
    /// When it was revoked; `nil` while it is valid.
    public var revokedAt: Date?
}

extension BillingStore {
    /// Adds a key for `owner`. Refused (``StoreError/Code/invalidInput``)
    /// when the merchant does not exist, or when the owner already holds
    /// ``KeyOwner/activeKeysAtMost`` unrevoked keys. With `entry`, the key is recorded in the audit log in the same
    /// transaction.
    public func addSigningKey(
        keyID: String, owner: KeyOwner, sealedSecret: [UInt8], recordedAs entry: AuditEntry? = nil
    ) async throws {
        try await transaction { [self] connection in
            if case .merchant(let merchant) = owner {
                let exists = try await connection.fetch(
                    "SELECT 1 FROM merchants WHERE merchant_id = \(merchant) FOR SHARE", Int.self, logger: logger)
                guard !exists.isEmpty else { throw StoreError(.invalidInput, "no such merchant: \(merchant)") }
            }
            // Serializes key changes of one owner, so that two at once cannot both pass the count.
            try await connection.query(
                "SELECT pg_advisory_xact_lock(hashtext(\(owner.kind + "/" + owner.id)))", logger: logger)
            let active =
                try await connection.fetch(
                    """
                    SELECT count(*)::int FROM message_signing_keys
                    WHERE owner_kind = \(owner.kind) AND owner_id = \(owner.id) AND revoked_at IS NULL
                    """, Int.self, logger: logger
                ).first ?? 0
            guard active < KeyOwner.activeKeysAtMost else {
                throw StoreError(
                    .invalidInput,
                    "\(owner) already holds \(active) valid keys; revoke one before creating another")
            }
            try await connection.query(
                """
                INSERT INTO message_signing_keys (key_id, owner_kind, owner_id, sealed_secret)
                VALUES (\(keyID), \(owner.kind), \(owner.id), \(ByteBuffer(bytes: sealedSecret)))
                """, logger: logger)
            if let entry { try await record(entry, on: connection) }
        }
    }

    /// The keys of `owner` (every owner's when `nil`), revoked ones too, oldest first.
    public func signingKeys(of owner: KeyOwner? = nil) async throws -> [StoredSigningKey] {
        let rows = try await client.fetch(
            """
            SELECT key_id, owner_kind, owner_id, sealed_secret, created_at, revoked_at FROM message_signing_keys
            WHERE \(owner == nil) OR (owner_kind = \(owner?.kind ?? "") AND owner_id = \(owner?.id ?? ""))
            ORDER BY created_at, key_id
            """, (String, String, String, ByteBuffer, Date, Date?).self, logger: logger)
        return rows.compactMap { keyID, kind, id, sealed, created, revoked in
            KeyOwner(kind: kind, id: id).map {
                StoredSigningKey(
                    keyID: keyID, owner: $0, sealedSecret: Array(sealed.readableBytesView), createdAt: created,
                    revokedAt: revoked)
            }
        }
    }

    /// Revokes a key of `owner` for good: messages signed with it are refused
    /// from the workers' next refresh. Returns false if it has no such valid key. With `entry`, the revocation is
    /// recorded in the audit log in the same transaction.
    public func revokeSigningKey(
        keyID: String, of owner: KeyOwner, recordedAs entry: AuditEntry? = nil
    ) async throws
        -> Bool
    {
        try await transaction { [self] connection in
            let revoked = try await connection.fetch(
                """
                UPDATE message_signing_keys SET revoked_at = now()
                WHERE key_id = \(keyID) AND owner_kind = \(owner.kind) AND owner_id = \(owner.id) AND revoked_at IS NULL
                RETURNING 1
                """, Int.self, logger: logger)
            guard revoked.count == 1 else { return false }
            if let entry { try await record(entry, on: connection) }
            return true
        }
    }
}
