import Billing
import Foundation
import Logging
import PostgresNIO
import Synchronization

/// Matomete's state in PostgreSQL: lines, merchants, charges, subscriptions,
/// bills, settlements, the outbox and the workers' offsets.
///
/// Every write happens in one transaction with the outbox messages it causes.
/// The client must be running (`PostgresClient.run()`), for example in the
/// same `ServiceGroup`.
public final class BillingStore: Sendable {
    /// The connection pool every operation leases from.
    public let client: PostgresClient
    /// The number of hash partitions of the per-line tables, and so of close shards.
    public let partitions: Int
    let logger: Logger

    init(client: PostgresClient, partitions: Int, logger: Logger) {
        self.client = client
        self.partitions = partitions
        self.logger = logger
    }

    /// Opens a migrated database. Throws ``StoreError/Code/schemaMismatch`` if
    /// it is not migrated to this program's version.
    public static func open(
        client: PostgresClient, logger: Logger
    ) async throws -> BillingStore {
        let version =
            try await client.fetch(
                "SELECT coalesce(max(version), 0) FROM schema_migrations", Int.self, logger: logger
            ).first ?? 0
        guard version == Migrator.latestVersion else {
            throw StoreError(
                .schemaMismatch,
                "the database has schema version \(version); run `matomete migrate` (this program needs \(Migrator.latestVersion))"
            )
        }
        let setting = try await client.fetch(
            "SELECT value FROM matomete_settings WHERE key = 'line_partitions'", String.self, logger: logger
        ).first
        guard let partitions = setting.flatMap(Int.init) else {
            throw StoreError(.schemaMismatch, "the database does not record its line partition count")
        }
        return BillingStore(client: client, partitions: partitions, logger: logger)
    }
}

extension BillingStore {
    /// Runs `body` in a transaction (see ``PostgresClient/storeTransaction(logger:_:)``).
    func transaction<T: Sendable>(_ body: @escaping @Sendable (PostgresConnection) async throws -> T) async throws -> T
    {
        try await client.storeTransaction(logger: logger, body)
    }
}

extension PostgresClient {
    /// Runs `body` in a transaction on a guarded connection (see
    /// ``withGuardedConnection(_:)``); a ``StoreError`` thrown inside comes out
    /// as itself, not wrapped in PostgresNIO's transaction error.
    func storeTransaction<T: Sendable>(
        logger: Logger, _ body: @escaping @Sendable (PostgresConnection) async throws -> T
    )
        async throws -> T
    {
        do {
            return try await withGuardedConnection { connection in
                try await connection.withTransaction(logger: logger) { try await body($0) }
            }
        } catch let error as PostgresTransactionError {
            if let storeError = error.closureError as? StoreError { throw storeError }
            throw error
        }
    }

    /// Leases a connection and runs `body` on it, failing with
    /// ``StoreError/Code/unavailable`` as soon as the connection closes under
    /// it, or when no connection can be had within `leaseTimeout`.
    ///
    /// PostgresNIO 1.33 writes a query to its channel without a promise: a
    /// query sent just as the server closes the connection (a restart, a
    /// failover) then waits forever, and so would the worker. Its pool also
    /// waits for a connection for as long as the server is unreachable. Here
    /// both waits are abandoned instead; the operation fails, and the caller
    /// retries it (after re-reading its offset), reporting the database down
    /// in the meantime.
    func withGuardedConnection<T: Sendable>(
        leaseTimeout: Duration = .seconds(10), _ body: @escaping @Sendable (PostgresConnection) async throws -> T
    ) async throws -> T {
        let operation = GuardedOperation<T>()
        return try await withCheckedThrowingContinuation { continuation in
            operation.begin(continuation)
            let work = Task {
                do {
                    let value = try await withConnection { connection in
                        // Too late: the caller has been told the database is unavailable.
                        guard operation.leased() else { throw CancellationError() }
                        connection.closeFuture.whenComplete { _ in
                            operation.finish(
                                .failure(
                                    StoreError(.unavailable, "the database connection closed during the operation")))
                        }
                        return try await body(connection)
                    }
                    operation.finish(.success(value))
                } catch {
                    operation.finish(.failure(error))
                }
            }
            operation.watch(
                Task {
                    try await Task.sleep(for: leaseTimeout)
                    if operation.timeOutUnlessLeased(
                        StoreError(.unavailable, "no database connection within \(leaseTimeout)"))
                    {
                        work.cancel()
                    }
                })
        }
    }
}

/// One guarded database operation: finished once, by whichever comes first of
/// its result, its connection closing, or its lease timing out.
private final class GuardedOperation<T: Sendable>: Sendable {
    private struct State {
        var continuation: CheckedContinuation<T, any Error>?
        var leased = false
        var timer: Task<Void, any Error>?
    }

    private let state = Mutex(State())

    func begin(_ continuation: CheckedContinuation<T, any Error>) {
        state.withLock { $0.continuation = continuation }
    }

    func watch(_ timer: Task<Void, any Error>) {
        let finished = state.withLock { state in
            state.timer = timer
            return state.continuation == nil
        }
        if finished { timer.cancel() }
    }

    /// Marks the connection leased; false when the operation already finished.
    func leased() -> Bool {
        state.withLock { state in
            state.leased = true
            return state.continuation != nil
        }
    }

    /// Finishes with `error` if no connection has been leased yet.
    func timeOutUnlessLeased(_ error: any Error) -> Bool {
        let waiting = state.withLock { state -> CheckedContinuation<T, any Error>? in
            guard !state.leased else { return nil }
            defer { state.continuation = nil }
            return state.continuation
        }
        waiting?.resume(throwing: error)
        return waiting != nil
    }

    func finish(_ result: Result<T, any Error>) {
        let (waiting, timer) = state.withLock { state in
            defer {
                state.continuation = nil
                state.timer = nil
            }
            return (state.continuation, state.timer)
        }
        timer?.cancel()
        waiting?.resume(with: result)
    }
}

/// A message to publish, written to the outbox in the transaction that caused it.
public struct OutboxMessage: Sendable, Hashable {
    /// The Kafka topic it is published to, with its prefix.
    public var topic: String
    /// The Kafka message key, as UTF-8 text without NUL; `nil` for a message without one.
    public var key: String?
    /// Stable: derived from what the message describes, also sent as header `id`.
    public var id: String
    /// The message's value, as published.
    public var payload: [UInt8]
    /// Kafka headers sent after `id`, in name order.
    public var headers: [String: String]

    /// A message; the store publishes it as given and knows no wire format.
    public init(topic: String, key: String?, id: String, payload: [UInt8], headers: [String: String] = [:]) {
        self.topic = topic
        self.key = key
        self.id = id
        self.payload = payload
        self.headers = headers
    }

}

extension PostgresConnection {
    /// Inserts messages into the outbox with one statement.
    func insertOutbox(_ messages: [OutboxMessage], logger: Logger) async throws {
        guard !messages.isEmpty else { return }
        try await query(
            """
            INSERT INTO outbox (topic, message_key, message_id, payload, headers)
            SELECT topic, NULLIF(message_key, ''), message_id, payload, headers::jsonb
            FROM unnest(\(messages.map(\.topic)), \(messages.map { $0.key ?? "" }), \(messages.map(\.id)),
                        \(messages.map { ByteBuffer(bytes: $0.payload) }), \(messages.map(\.headersJSON)))
                AS m(topic, message_key, message_id, payload, headers)
            """, logger: logger)
    }
}

extension JSONEncoder {
    /// The encoder for every message Matomete publishes: stable key order.
    static var messages: JSONEncoder {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return encoder
    }
}

extension PostgresConnection {
    /// Runs a query and decodes every row.
    func fetch<each Column: PostgresDecodable & Sendable>(
        _ query: PostgresQuery, _ columns: (repeat each Column).Type, logger: Logger
    ) async throws -> [(repeat each Column)] {
        var result: [(repeat each Column)] = []
        for try await row in try await self.query(query, logger: logger).decode((repeat each Column).self) {
            result.append(row)
        }
        return result
    }
}

/// A row's columns, read one after another. For queries that return many rows
/// (a cycle close reads millions): decoding a row as a tuple of parameter-pack
/// types looks up the tuple's type metadata for every row.
struct RowColumns {
    private var cells: PostgresRow.Iterator

    init(_ row: PostgresRow) { cells = row.makeIterator() }

    /// The next column, as `T`.
    mutating func next<T: PostgresDecodable>(_: T.Type = T.self) throws -> T {
        guard let cell = cells.next() else {
            throw StoreError(.schemaMismatch, "a row has fewer columns than its query reads")
        }
        return try cell.decode(T.self)
    }
}

extension PostgresClient {
    /// Runs a query on a pooled connection and decodes every row.
    public func fetch<each Column: PostgresDecodable & Sendable>(
        _ query: PostgresQuery, _ columns: (repeat each Column).Type, logger: Logger
    ) async throws -> [(repeat each Column)] {
        try await withGuardedConnection { try await $0.fetch(query, columns, logger: logger) }
    }
}
