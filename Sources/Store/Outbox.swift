import Foundation
import PostgresNIO

/// A message taken from the outbox to publish.
public struct ClaimedMessage: Sendable, Hashable {
    /// The outbox row; pass it back to ``BillingStore/acknowledge(_:)`` once published.
    public var sequence: Int64
    /// The message as written to the outbox, to publish as it is.
    public var message: OutboxMessage
}

extension BillingStore {
    /// Takes up to `limit` unpublished messages, oldest first, for `lease`: other
    /// relays skip them until the lease runs out. No transaction stays open while
    /// the caller publishes; if it dies before acknowledging, the messages are
    /// published again after the lease (with the same ids, so consumers drop
    /// the repeats).
    public func claimOutbox(limit: Int, lease: Duration = .seconds(30)) async throws -> [ClaimedMessage] {
        let leaseSeconds = Double(lease.components.seconds) + Double(lease.components.attoseconds) / 1e18
        // One statement: atomic on its own, one round trip. The batch is an
        // ARRAY(...) initplan, selected and locked once. As `id IN (SELECT
        // ...)` it is a join, and with statistics taken while the outbox was
        // empty PostgreSQL nests it inside a scan of the outbox, selecting and
        // locking the batch again for every row (minutes at 36,000 rows).
        let rows = try await client.withGuardedConnection { [logger] connection in
            try await connection.fetch(
                """
                UPDATE outbox SET claimed_until = now() + make_interval(secs => \(leaseSeconds))
                WHERE id = ANY(ARRAY(
                    SELECT id FROM outbox WHERE claimed_until IS NULL OR claimed_until < now()
                    ORDER BY id LIMIT \(limit) FOR UPDATE SKIP LOCKED))
                RETURNING id, topic, message_key, message_id, payload, headers::text
                """, (Int64, String, String?, String, ByteBuffer, String).self, logger: logger)
        }
        return rows.sorted { $0.0 < $1.0 }.map { id, topic, key, messageID, payload, headers in
            ClaimedMessage(
                sequence: id,
                message: OutboxMessage(
                    topic: topic, key: key, id: messageID, payload: Array(payload.readableBytesView),
                    headers: Self.headers(headers)))
        }
    }

    /// The stored headers object; most messages have none, and skip the decoder.
    private static func headers(_ text: String) -> [String: String] {
        guard text != "{}" else { return [:] }
        return (try? JSONDecoder().decode([String: String].self, from: Data(text.utf8))) ?? [:]
    }

    /// Calls `wake` once listening has started (what was committed before is
    /// not announced), then each time a transaction that added to the outbox
    /// commits; on a connection of its own, until cancelled (returns) or the
    /// connection fails (throws).
    public func listenForOutbox(_ wake: @escaping @Sendable () -> Void) async throws {
        try await client.withConnection { connection in
            try await connection.listen(on: outboxChannel) { notifications in
                wake()
                for try await _ in notifications { wake() }
            }
        }
    }

    /// Removes published messages from the outbox.
    public func acknowledge(_ sequences: [Int64]) async throws {
        guard !sequences.isEmpty else { return }
        _ = try await client.withGuardedConnection { [logger] in
            try await $0.query("DELETE FROM outbox WHERE id = ANY(\(sequences))", logger: logger)
        }
    }

    /// Sets aside messages Kafka refused for good (`error` says why): moved,
    /// whole, to `outbox_parked`, so they hold up nothing behind them.
    public func park(_ sequences: [Int64], error: String) async throws {
        guard !sequences.isEmpty else { return }
        _ = try await client.withGuardedConnection { [logger] in
            try await $0.query(
                """
                WITH moved AS (DELETE FROM outbox WHERE id = ANY(\(sequences)) RETURNING *)
                INSERT INTO outbox_parked (id, topic, message_key, message_id, payload, headers, created_at, error)
                SELECT id, topic, message_key, message_id, payload, headers, created_at, \(error) FROM moved
                ON CONFLICT (id) DO NOTHING
                """, logger: logger)
        }
    }

    /// Messages set aside because Kafka refused them for good (``park(_:error:)``).
    public func parkedMessages() async throws -> Int64 {
        try await client.fetch("SELECT count(*)::bigint FROM outbox_parked", Int64.self, logger: logger).first ?? 0
    }

    /// Messages not yet published (the backlog a relay has to work through).
    public func outboxBacklog() async throws -> Int64 {
        try await client.fetch("SELECT count(*)::bigint FROM outbox", Int64.self, logger: logger).first ?? 0
    }
}
