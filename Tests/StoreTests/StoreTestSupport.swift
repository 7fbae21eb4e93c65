import Billing
import Foundation
import Logging
import PostgresNIO
import Store
import Testing

/// A real PostgreSQL for the tests: `MATOMETE_TEST_DATABASE_URL` when set,
/// otherwise a private server started once for the whole test run (and stopped
/// when the run ends). Each test gets a database of its own.
actor TestServer {
    static let shared = TestServer()
    /// Started once: concurrent tests wait for the same start.
    private var server: Task<DatabaseConfiguration, any Error>?

    static let logger: Logger = {
        var logger = Logger(label: "matomete.tests.store")
        logger.logLevel = .error
        return logger
    }()

    func configuration() async throws -> DatabaseConfiguration {
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
struct TestDatabase {
    let configuration: DatabaseConfiguration
    let name: String

    static func create(partitions: Int = 8) async throws -> TestDatabase {
        let server = try await TestServer.shared.configuration()

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
    func withClient<T: Sendable>(_ body: @Sendable (PostgresClient) async throws -> T) async throws -> T {
        try await Self.withClient(configuration, body)
    }

    /// Runs `body` with a store on this database.
    @discardableResult
    func withStore<T: Sendable>(
        rules: BillingRules = BillingRules(), _ body: @Sendable (BillingStore) async throws -> T
    ) async throws -> T {
        try await withClient { client in
            try await body(try await BillingStore.open(client: client, rules: rules, logger: TestServer.logger))
        }
    }

    @discardableResult
    static func withClient<T: Sendable>(
        _ configuration: DatabaseConfiguration, _ body: @Sendable (PostgresClient) async throws -> T
    ) async throws -> T {
        try await withPostgresClient(configuration, logger: TestServer.logger, body)
    }
}

extension BillingCycle {
    static let november = BillingCycle("2026-11")!
    static let december = BillingCycle("2026-12")!
    static let january = BillingCycle("2027-01")!
}

/// Builds requests tersely.
enum Make {
    static func charge(
        _ merchant: String, _ id: String, line: String, _ amount: Int64, _ description: String = "item"
    )
        -> BillingRequest
    {
        .charge(
            ChargeRequest(
                merchantID: MerchantID(rawValue: merchant), chargeID: ChargeID(rawValue: id),
                lineID: LineID(rawValue: line),
                amount: Yen(amount), description: description))
    }

    static func subscription(_ merchant: String, _ id: String, line: String, _ amount: Int64) -> BillingRequest {
        .subscription(
            SubscriptionRequest(
                merchantID: MerchantID(rawValue: merchant), subscriptionID: SubscriptionID(rawValue: id),
                lineID: LineID(rawValue: line), monthlyAmount: Yen(amount), description: "monthly"))
    }

    static func cancelCharge(_ merchant: String, _ id: String, line: String) -> BillingRequest {
        .chargeCancellation(
            ChargeCancellation(
                merchantID: MerchantID(rawValue: merchant), chargeID: ChargeID(rawValue: id),
                lineID: LineID(rawValue: line)))
    }

    static func cancelSubscription(_ merchant: String, _ id: String, line: String) -> BillingRequest {
        .subscriptionCancellation(
            SubscriptionCancellation(
                merchantID: MerchantID(rawValue: merchant), subscriptionID: SubscriptionID(rawValue: id),
                lineID: LineID(rawValue: line)))
    }

    static func lines(_ count: Int, prefix: String = "L", type: LineType = .hikariNext) -> [Line] {
        (0..<count).map { Line(id: LineID(rawValue: "\(prefix)\(String(format: "%07d", $0))"), type: type) }
    }
}

/// Feeds requests through a store as one worker would: one batch at a time,
/// offsets advancing.
final class Feeder: @unchecked Sendable {
    // @unchecked Sendable: used from one task at a time in each test.
    let store: BillingStore
    let cursor: PartitionCursor
    private(set) var offset: Int64 = 0
    private var stored = false

    init(
        _ store: BillingStore, topic: String = "matomete.charges", partition: Int32 = 0, group: String = "charge-worker"
    ) {
        self.store = store
        cursor = PartitionCursor(consumerGroup: group, topic: topic, partition: partition)
    }

    @discardableResult
    func apply(_ requests: [BillingRequest]) async throws -> [Outcome] {
        let sourced = requests.enumerated().map { SourcedRequest($1, offset: offset + Int64($0)) }
        let outcomes = try await store.apply(
            sourced, from: cursor, expectedOffset: stored ? offset : nil, nextOffset: offset + Int64(requests.count))
        offset += Int64(requests.count)
        stored = true
        return outcomes
    }
}
