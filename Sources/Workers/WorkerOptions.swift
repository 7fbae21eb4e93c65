import ArgumentParser
import Foundation
import Kafka
import Logging
import ServerKit
import Store

/// The options every Matomete worker takes. Each one can also come from a
/// `MATOMETE_*` environment variable; a flag given on the command line wins.
public struct WorkerOptions: ParsableArguments {
    @Option(
        name: .customLong("bootstrap-servers"),
        help: ArgumentHelp(
            "Kafka brokers to start from, comma-separated host:port. [env: MATOMETE_BOOTSTRAP_SERVERS]",
            valueName: "servers"))
    var bootstrapServers: String?

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
        name: .customLong("topic-prefix"),
        help: ArgumentHelp(
            "Prefix of every topic name, as in <prefix>.charges. [env: MATOMETE_TOPIC_PREFIX] (default: matomete)",
            valueName: "prefix"))
    var topicPrefix: String?

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
        name: .customLong("kafka"),
        help: ArgumentHelp(
            "A librdkafka property passed through as it is, for example --kafka security.protocol=ssl. Repeatable; applied after Matomete's own settings. [env: MATOMETE_KAFKA_PROPERTIES, separated by ';']",
            valueName: "key=value"))
    var kafkaProperties: [String] = []

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

    @Option(
        name: .customLong("log-level"),
        help: ArgumentHelp(
            "trace, debug, info, notice, warning, error or critical. [env: MATOMETE_LOG_LEVEL] (default: info)",
            valueName: "level"))
    var logLevel: String?

    @Option(
        name: .customLong("log-format"),
        help: ArgumentHelp(
            "json (one object per line, for log collectors) or text. [env: MATOMETE_LOG_FORMAT] (default: json)",
            valueName: "format"))
    var logFormat: String?

    /// Every option unset; ``resolve(for:environment:)`` falls back to the environment, then to the defaults.
    public init() {}

    /// Raw librdkafka properties: `MATOMETE_KAFKA_PROPERTIES` (`;`-separated),
    /// then each `key=value` flag, which wins.
    public static func kafkaProperties(
        _ flags: [String], environment: [String: String] = ProcessInfo.processInfo.environment
    ) throws -> [String: String] {
        try Options.keyValues(flags, "MATOMETE_KAFKA_PROPERTIES", what: "A Kafka property", environment: environment)
    }

    /// The options with the environment filled in and every value checked.
    public func resolve(
        for role: WorkerRole, environment: [String: String] = ProcessInfo.processInfo.environment
    ) throws -> WorkerSettings {
        func value(_ flag: String?, _ variable: String) -> String? {
            if let flag, !flag.isEmpty { return flag }
            if let text = environment[variable], !text.isEmpty { return text }
            return nil
        }
        guard let servers = value(bootstrapServers, "MATOMETE_BOOTSTRAP_SERVERS") else {
            throw ValidationError("Give the Kafka brokers with --bootstrap-servers or MATOMETE_BOOTSTRAP_SERVERS.")
        }
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
        let levelText = value(logLevel, "MATOMETE_LOG_LEVEL") ?? "info"
        guard let level = Logger.Level(rawValue: levelText) else {
            throw ValidationError(
                "Unknown log level \(levelText): use trace, debug, info, notice, warning, error or critical.")
        }
        let formatText = value(logFormat, "MATOMETE_LOG_FORMAT") ?? "json"
        guard let format = LogFormat(rawValue: formatText) else {
            throw ValidationError("Unknown log format \(formatText): use json or text.")
        }
        let raw = try Self.kafkaProperties(kafkaProperties, environment: environment)
        return WorkerSettings(
            role: role,
            bootstrapServers: servers.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) },
            database: database,
            topicPrefix: value(topicPrefix, "MATOMETE_TOPIC_PREFIX") ?? "matomete",
            groupID: value(groupID, "MATOMETE_GROUP_ID") ?? "matomete-\(role.rawValue)",
            batchSize: batch, fetchWait: .milliseconds(fetchWait), httpAddress: address, kafkaProperties: raw,
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
