import Billing
import Foundation
import Logging
import PostgresNIO
import Store

/// A real PostgreSQL for the tests: `MATOMETE_TEST_DATABASE_URL` when set,
/// otherwise a private server started once for the whole test run (and stopped
/// when the run ends). Each test gets a database of its own.
public actor TestServer {
    public static let shared = TestServer()
    /// Started once: concurrent tests wait for the same start.
    private var server: Task<DatabaseConfiguration, any Error>?

    public static let logger: Logger = {
        var logger = Logger(label: "matomete.tests.store")
        logger.logLevel = .error
        return logger
    }()

    public func configuration() async throws -> DatabaseConfiguration {
        if let server { return try await server.value }
        let starting = Task {
            if let url = ProcessInfo.processInfo.environment["MATOMETE_TEST_DATABASE_URL"] {
                return try DatabaseConfiguration(url: url)
            }
            return try await EmbeddedPostgres.start(stopWhenProcessExits: true, logger: Self.logger).configuration
        }
        server = starting
        return try await starting.value
    }
}

/// A fresh, migrated database and a store on it, for one test.
public struct TestDatabase: Sendable {
    public let configuration: DatabaseConfiguration
    public let name: String

    /// - Parameter server: the server to create it on; the shared test server by default.
    public static func create(
        partitions: Int = 8, on server: DatabaseConfiguration? = nil
    ) async throws -> TestDatabase {
        let server = if let server { server } else { try await TestServer.shared.configuration() }

        let name = "test_\(UUID().uuidString.prefix(12).lowercased().replacingOccurrences(of: "-", with: ""))"
        try await withClient(server) { client in
            // A database name cannot be a bound parameter; this one is generated above.
            try await client.query(PostgresQuery(unsafeSQL: "CREATE DATABASE \(name)"), logger: TestServer.logger)
        }
        let database = TestDatabase(configuration: server.with(database: name), name: name)
        try await database.withClient { client in
            try await Migrator().migrate(client, partitions: partitions, logger: TestServer.logger)
        }
        return database
    }

    /// Runs `body` with a running client on this database.
    @discardableResult
    public func withClient<T: Sendable>(_ body: @Sendable (PostgresClient) async throws -> T) async throws -> T {
        try await Self.withClient(configuration, body)
    }

    /// Runs `body` with a store on this database.
    @discardableResult
    public func withStore<T: Sendable>(_ body: @Sendable (BillingStore) async throws -> T) async throws -> T {
        try await withClient { client in
            try await body(try await BillingStore.open(client: client, logger: TestServer.logger))
        }
    }

    @discardableResult
    public static func withClient<T: Sendable>(
        _ configuration: DatabaseConfiguration, _ body: @Sendable (PostgresClient) async throws -> T
    ) async throws -> T {
        try await withPostgresClient(configuration, logger: TestServer.logger, body)
    }
}
