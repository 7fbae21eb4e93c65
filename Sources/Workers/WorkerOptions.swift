import ArgumentParser
import Foundation
import Kafka
import Logging
import ServerKit
import Store

/// The options every Matomete worker takes. Each one can also come from a
/// `MATOMETE_*` environment variable; a flag given on the command line wins.
public struct WorkerOptions: ParsableArguments {
    @OptionGroup var kafka: KafkaClientOptions

    @Option(
        name: .customLong("database-url"),
        help: ArgumentHelp(
            "PostgreSQL URL, postgres://user:password@host:port/database. Prefer the environment variable: other users can read a process's flags. [env: MATOMETE_DATABASE_URL]",
            valueName: "url"))
    var databaseURL: String?

    @Option(
        name: .customLong("database-connections"),
        help: ArgumentHelp(
            "Most connections this process opens to PostgreSQL; batches of different partitions run on different connections at once. [env: MATOMETE_DATABASE_CONNECTIONS] (default: 10)",
            valueName: "n"))
    var databaseConnections: Int?

    @Option(
        name: .customLong("group-id"),
        help: ArgumentHelp(
            "Kafka consumer group. Every process of one kind shares it; the stored offsets belong to it. [env: MATOMETE_GROUP_ID] (default: matomete-<worker>)",
            valueName: "group"))
    var groupID: String?

    @Option(
        name: .customLong("batch-size"),
        help: ArgumentHelp(
            "Most messages applied in one database transaction (relay: published per round). [env: MATOMETE_BATCH_SIZE] (default: 500)",
            valueName: "n"))
    var batchSize: Int?

    @Option(
        name: .customLong("fetch-wait-ms"),
        help: ArgumentHelp(
            "Longest a broker may hold a fetch that finds no new message (fetch.wait.max.ms). A real broker answers as soon as messages arrive; the embedded mock cluster holds every such fetch this long, so `matomete dev` sets 5. [env: MATOMETE_FETCH_WAIT_MS] (default: 100)",
            valueName: "ms"))
    var fetchWaitMilliseconds: Int?

    @Option(
        name: .customLong("http-address"),
        help: ArgumentHelp(
            "Where /healthz, /livez and /metrics are served. Several processes on one machine each need a port of their own: port 0 picks a free one (for example 127.0.0.1:0), logged at start. [env: MATOMETE_HTTP_ADDRESS] (default: 0.0.0.0:8080)",
            valueName: "host:port"))
    var httpAddress: String?

    @Option(
        name: .customLong("result-retention-months"),
        help: ArgumentHelp(
            "Charge and cancellation workers: how long every result told to a merchant is kept for looking up (support desk, merchants' site), and each used purchase authorization with its answer (a repeat within it gets the first answer), in months. [env: MATOMETE_RESULT_RETENTION_MONTHS] (default: 13)",
            valueName: "months"))
    var resultRetentionMonths: Int?

    @Option(
        name: .customLong("housekeeping-interval-s"),
        help: ArgumentHelp(
            "Charge and cancellation workers: seconds between rounds that forget results and used purchase authorizations past their retention. [env: MATOMETE_HOUSEKEEPING_INTERVAL_S] (default: 3600)",
            valueName: "seconds"))
    var housekeepingIntervalSeconds: Int?

    @OptionGroup var logging: LoggingOptions

    /// Every option unset; ``resolve(for:environment:)`` falls back to the environment, then to the defaults.
    public init() {}

    /// The options with the environment filled in and every value checked.
    public func resolve(
        for role: WorkerRole, environment: [String: String] = ProcessInfo.processInfo.environment
    ) throws -> WorkerSettings {
        func value(_ flag: String?, _ variable: String) -> String? {
            Options.text(flag, variable, environment: environment)
        }
        let connection = try kafka.resolve(environment: environment)
        guard let url = value(databaseURL, "MATOMETE_DATABASE_URL") else {
            throw ValidationError("Give the database with --database-url or MATOMETE_DATABASE_URL.")
        }
        var database: DatabaseConfiguration
        do {
            database = try DatabaseConfiguration(url: url)
        } catch {
            // The URL may hold a password: say what is wrong, never echo it.
            throw ValidationError("The database URL is not postgres://user:password@host:port/database.")
        }
        database.maximumConnections = try Options.integer(
            databaseConnections, "MATOMETE_DATABASE_CONNECTIONS", default: 10, in: 1...200,
            name: "The database connections", environment: environment)
        let batch = try Options.integer(
            batchSize, "MATOMETE_BATCH_SIZE", default: 500, in: 1...10_000, name: "The batch size",
            environment: environment)
        let fetchWait = try Options.integer(
            fetchWaitMilliseconds, "MATOMETE_FETCH_WAIT_MS", default: 100, in: 1...10_000, name: "The fetch wait",
            unit: " ms", environment: environment)
        let retention = try Options.integer(
            resultRetentionMonths, "MATOMETE_RESULT_RETENTION_MONTHS", default: 13, in: 1...120,
            name: "The result retention", unit: " months", environment: environment)
        let housekeeping = try Options.integer(
            housekeepingIntervalSeconds, "MATOMETE_HOUSEKEEPING_INTERVAL_S", default: 3600, in: 1...86_400,
            name: "The housekeeping interval", unit: " s", environment: environment)
        let address = try HTTPAddress(value(httpAddress, "MATOMETE_HTTP_ADDRESS") ?? "0.0.0.0:8080")
        let (level, format) = try logging.resolve(environment: environment)
        return WorkerSettings(
            role: role,
            bootstrapServers: connection.bootstrapServers,
            database: database,
            topicPrefix: connection.topicPrefix,
            groupID: value(groupID, "MATOMETE_GROUP_ID") ?? "matomete-\(role.rawValue)",
            batchSize: batch, fetchWait: .milliseconds(fetchWait), httpAddress: address,
            kafkaProperties: connection.properties,
            resultRetentionMonths: retention, housekeepingInterval: .seconds(housekeeping), logLevel: level,
            logFormat: format)
    }
}

/// A worker's resolved configuration.
public struct WorkerSettings: Sendable {
    /// Which worker this process is.
    public var role: WorkerRole
    /// The Kafka brokers to start from, as `host:port` each.
    public var bootstrapServers: [String]
    /// The PostgreSQL server and database, with the most connections this process opens.
    public var database: DatabaseConfiguration
    /// The start of every topic name, as in `<prefix>.charges`. Default `matomete`.
    public var topicPrefix: String
    /// The Kafka consumer group; the offsets stored in PostgreSQL belong to it. Default `matomete-<role>`.
    public var groupID: String
    /// Most messages applied in one database transaction (relay: published per round). Default 500.
    public var batchSize: Int
    /// Longest a broker holds a consumer's fetch that finds nothing new.
    public var fetchWait: Duration
    /// Where `/healthz`, `/livez` and `/metrics` are served.
    public var httpAddress: HTTPAddress
    /// librdkafka properties by name, applied after Matomete's own settings.
    public var kafkaProperties: [String: String]
    /// How long results are kept for looking up, in months.
    public var resultRetentionMonths: Int
    /// Between rounds of ``Housekeeping``.
    public var housekeepingInterval: Duration
    /// The lowest level logged. Default `info`.
    public var logLevel: Logger.Level
    /// How log records are written to standard error. Default ``LogFormat/json``.
    public var logFormat: LogFormat

    /// The Kafka client settings shared by this process's clients.
    func kafkaClient() -> KafkaClientSettings {
        var client = KafkaClientSettings(bootstrapServers: bootstrapServers)
        client.clientID = "\(groupID)-\(ProcessInfo.processInfo.hostName)-\(getpid())"
        client.rawProperties = kafkaProperties
        return client
    }
}
