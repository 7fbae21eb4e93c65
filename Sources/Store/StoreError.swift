import PostgresNIO

/// An error from the store, with a code callers can match on.
public struct StoreError: Error, Sendable, CustomStringConvertible {
    /// What went wrong; the raw value names it in text, for example `stale_offset`.
    public enum Code: String, Sendable {
        /// The partition's stored offset is not the one expected: another worker
        /// moved it (this one lost the partition). The batch was not applied.
        case staleOffset = "stale_offset"
        /// Another transaction claimed a charge or subscription id this batch
        /// was adding, between this batch's read and its write. The batch was
        /// not applied; applied again, it sees the claim.
        case purchaseIDClaimed = "purchase_id_claimed"
        /// A cycle was asked to close before an earlier one.
        case cycleOutOfOrder = "cycle_out_of_order"
        /// A payout run for a period while an earlier one has not run, or one whose months are not all settled.
        case payoutOutOfOrder = "payout_out_of_order"
        /// Input that cannot be stored (bad CSV, bad value).
        case invalidInput = "invalid_input"
        /// The server could not be started or reached.
        case unavailable
        /// The schema is newer than this program, or not migrated.
        case schemaMismatch = "schema_mismatch"
    }

    /// What went wrong, as a code callers can match on.
    public var code: Code
    /// A sentence for people. Never contains credentials.
    public var message: String

    /// An error with `code` and a sentence for people, which must not contain credentials.
    public init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }

    /// `code: message`, for example `stale_offset: …`.
    public var description: String { "\(code.rawValue): \(message)" }
}

/// What a failed store operation means for the batch that ran it.
public enum StoreFailure: Sendable, Equatable {
    /// ``StoreError/Code/staleOffset``: another worker moved the stored offset.
    case staleOffset
    /// ``StoreError/Code/purchaseIDClaimed``: another transaction claimed an
    /// id the batch was adding; applied again at once, the batch sees it.
    case raced
    /// PostgreSQL refused a statement because of the data in it (SQLSTATE
    /// classes 22, data exception, 23, integrity violation, and 54, a limit
    /// exceeded, such as an index entry too large): the same batch fails again
    /// however often it is retried.
    case refusedContent
    /// A problem of the server, the connection or the schema, never of one
    /// message (Matomete's statements are fixed, their data bound): no
    /// SQLSTATE (the connection), or classes 08 (connection), 25 (a read-only
    /// transaction during a failover), 28 (authentication), 3D and 3F (no
    /// such database or schema), 40 (a serialization failure or deadlock),
    /// 42 (a missing table or permission during a deploy), 53 (insufficient
    /// resources), 55 (an object in use, a lock not available), 57 (an
    /// operator's intervention: shutdown, cancel), 58 (a system error), 72
    /// (snapshot too old) and F0 (configuration). Retried until it passes.
    case transient
    /// Any other SQLSTATE (a trigger's exception, `P0001`; an internal error,
    /// `XX000`; a feature not supported): neither clearly passing nor clearly
    /// the data's fault. The engine retries it a few times, then treats it
    /// as the data's fault (see ``ApplyFailure/unexpected(reason:code:)``).
    case unexpected

    /// Classifies `error`, as thrown by a store operation.
    public init(_ error: any Error) {
        if let error = error as? StoreError, error.code == .staleOffset {
            self = .staleOffset
            return
        }
        if let error = error as? StoreError, error.code == .purchaseIDClaimed {
            self = .raced
            return
        }
        guard let state = Self.sqlState(of: error), state.count == 5 else {
            self = .transient
            return
        }
        let errorClass = state.prefix(2)
        if ["22", "23", "54"].contains(errorClass) {
            self = .refusedContent
        } else if ["08", "25", "28", "3D", "3F", "40", "42", "53", "55", "57", "58", "72", "F0"].contains(errorClass) {
            self = .transient
        } else {
            self = .unexpected
        }
    }

    /// The SQLSTATE PostgreSQL answered `error` with, if it did.
    public static func sqlState(of error: any Error) -> String? {
        var underlying = error
        if let transaction = error as? PostgresTransactionError, let inner = transaction.closureError {
            underlying = inner
        }
        return (underlying as? PSQLError)?.serverInfo?[.sqlState]
    }
}
