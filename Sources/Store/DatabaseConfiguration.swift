import Foundation
import Logging
import PostgresNIO

/// Where the PostgreSQL database is and how to log in.
public struct DatabaseConfiguration: Sendable, CustomStringConvertible {
    /// The server's host name or address.
    public var host: String
    /// The server's port. Default 5432.
    public var port: Int
    /// The PostgreSQL user to log in as.
    public var username: String
    /// Never logged or printed.
    public var password: String?
    /// The database's name.
    public var database: String
    /// Connections kept by one process. Default 10.
    public var maximumConnections: Int = 10
    /// Require TLS to the server. Default off (loopback and private networks).
    public var requireTLS = false

    /// A server and database to log in to, without TLS, with at most 10 connections.
    public init(host: String, port: Int = 5432, username: String, password: String? = nil, database: String) {
        self.host = host
        self.port = port
        self.username = username
        self.password = password
        self.database = database
    }

    /// Reads `postgres://user:password@host:port/database[?sslmode=require]`.
    public init(url: String) throws(StoreError) {
        guard let components = URLComponents(string: url),
            components.scheme == "postgres" || components.scheme == "postgresql",
            let host = components.host, !host.isEmpty, let user = components.user, !user.isEmpty
        else {
            throw StoreError(.invalidInput, "expected postgres://user[:password]@host[:port]/database")
        }
        let database = String(components.path.drop { $0 == "/" })
        self.init(
            host: host, port: components.port ?? 5432, username: user.removingPercentEncoding ?? user,
            password: components.password.map { $0.removingPercentEncoding ?? $0 },
            database: database.isEmpty ? user : database)
        requireTLS = components.queryItems?.contains { $0.name == "sslmode" && $0.value == "require" } ?? false
    }

    /// The same server, another database.
    public func with(database: String) -> DatabaseConfiguration {
        var copy = self
        copy.database = database
        return copy
    }

    /// The `postgres://` URL of this configuration, password included: for
    /// handing to a child process in its environment. Never log it.
    public var url: String {
        var components = URLComponents()
        components.scheme = "postgres"
        components.user = username
        components.password = password
        components.host = host
        components.port = port
        components.path = "/" + database
        if requireTLS { components.queryItems = [URLQueryItem(name: "sslmode", value: "require")] }
        return components.string ?? "postgres://\(host):\(port)/\(database)"
    }

    /// `user@host:port/database`: no password.
    public var description: String { "\(username)@\(host):\(port)/\(database)" }

    /// The PostgresNIO client configuration.
    public var clientConfiguration: PostgresClient.Configuration {
        var configuration = PostgresClient.Configuration(
            host: host, port: port, username: username, password: password, database: database,
            tls: requireTLS ? .require(.makeClientConfiguration()) : .disable)
        configuration.options.maximumConnections = maximumConnections
        // Every statement Matomete runs looks rows up by key, a batch of keys at
        // a time: nested loops of index probes into the one partition each key
        // lives in (pruned at run time) beat hashing whole partitions, however
        // large the tables grow and whatever the statistics say. Nor does one gain
        // from parallel workers: starting them (about 10 ms) costs more than such
        // a statement takes (site-bench measured it on the merchants' searches).
        configuration.options.additionalStartupParameters = [
            ("enable_hashjoin", "off"), ("enable_mergejoin", "off"), ("max_parallel_workers_per_gather", "0"),
        ]
        return configuration
    }
}

/// Runs `body` with a client for `configuration` that is running for as long
/// as `body` runs (for tools and tests; services run the client in their
/// `ServiceGroup` instead).
@discardableResult
public func withPostgresClient<T: Sendable>(
    _ configuration: DatabaseConfiguration, logger: Logger, _ body: @Sendable (PostgresClient) async throws -> T
) async throws -> T {
    let client = PostgresClient(configuration: configuration.clientConfiguration, backgroundLogger: logger)
    return try await withThrowingTaskGroup(of: T?.self) { group in
        group.addTask {
            await client.run()
            return nil
        }
        defer { group.cancelAll() }
        return try await body(client)
    }
}
