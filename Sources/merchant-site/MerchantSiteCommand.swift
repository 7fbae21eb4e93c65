import ArgumentParser
import Authorization
import Contract
import Foundation
import Kafka
import Logging
import MerchantSite
import PostgresNIO
import ServerKit
import ServiceLifecycle
import SiteKit
import Store

@main
struct MerchantSiteCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "merchant-site",
        abstract: "The merchants' data-management site: purchases, settlements, payouts and the audit log.",
        discussion: """
            Serves HTML pages to a merchant's staff, who log in with the accounts `matomete merchants staff add` \
            creates (e-mail-like login, password, optional TOTP code). Each sees only their own merchant's data. \
            Sessions end after --idle-minutes unused or --session-hours after login; 5 failed logins in a row \
            lock an account for 15 minutes. Serve it behind TLS (cookies are Secure) unless --plain-http. \
            An admin's cancellation is sent to <prefix>.cancellations, signed with the merchant's newest valid \
            signing key (opened with the key-encryption key), as the merchant's own system would send it. \
            Also serves /healthz, /livez and /metrics. Stops gracefully on SIGTERM (exit 0).
            """)

    @Option(
        help: ArgumentHelp(
            "Kafka brokers to start from, comma-separated host:port. [env: MATOMETE_BOOTSTRAP_SERVERS]",
            valueName: "servers"))
    var bootstrapServers: String?

    @Option(
        help: ArgumentHelp(
            "Prefix of every topic name, as in <prefix>.cancellations. [env: MATOMETE_TOPIC_PREFIX] (default: matomete)",
            valueName: "prefix"))
    var topicPrefix: String?

    @Option(
        name: .customLong("kafka"),
        help: ArgumentHelp(
            "A librdkafka property passed through as it is, for example --kafka security.protocol=ssl. Repeatable. [env: MATOMETE_KAFKA_PROPERTIES, separated by ';']",
            valueName: "key=value"))
    var kafkaProperties: [String] = []

    @Option(
        help: ArgumentHelp(
            "A file holding the key-encryption key the merchants' signing secrets are sealed under (base64 of 32 bytes). [env: MATOMETE_KEY_ENCRYPTION_KEY_FILE, or the key itself in MATOMETE_KEY_ENCRYPTION_KEY]",
            valueName: "path"))
    var keyEncryptionKeyFile: String?

    @Option(help: ArgumentHelp("PostgreSQL URL. [env: MATOMETE_DATABASE_URL]", valueName: "url"))
    var databaseURL: String?

    @Option(
        help: ArgumentHelp(
            "Where to listen. [env: MATOMETE_HTTP_ADDRESS] (default: 0.0.0.0:8080)", valueName: "host:port"))
    var httpAddress: String?

    @Flag(
        help: ArgumentHelp(
            "Cookies without Secure, for a site served over plain HTTP on this machine (dev, demo). [env: MATOMETE_PLAIN_HTTP=1]"
        ))
    var plainHTTP = false

    @Option(help: ArgumentHelp("Minutes a session may stay unused. [env: MATOMETE_IDLE_MINUTES] (default: 30)"))
    var idleMinutes: Int?

    @Option(help: ArgumentHelp("Hours a session lasts after login. [env: MATOMETE_SESSION_HOURS] (default: 12)"))
    var sessionHours: Int?

    @Option(help: ArgumentHelp("trace … critical. [env: MATOMETE_LOG_LEVEL] (default: info)"))
    var logLevel: String?

    @Option(
        help: ArgumentHelp(
            "json (one object per line, for log collectors) or text. [env: MATOMETE_LOG_FORMAT] (default: json)",
            valueName: "format"))
    var logFormat: String?

    func run() async throws {
        let environment = ProcessInfo.processInfo.environment
        func value(_ flag: String?, _ name: String) -> String? {
            flag ?? environment[name].flatMap { $0.isEmpty ? nil : $0 }
        }
        func number(_ flag: Int?, _ name: String, _ fallback: Int, _ range: ClosedRange<Int>) throws -> Int {
            let result = flag ?? environment[name].flatMap(Int.init) ?? fallback
            guard range.contains(result) else {
                throw ValidationError("\(name) must be \(range.lowerBound) to \(range.upperBound).")
            }
            return result
        }
        guard let url = value(databaseURL, "MATOMETE_DATABASE_URL"), let database = try? DatabaseConfiguration(url: url)
        else { throw ValidationError("Give the database with --database-url or MATOMETE_DATABASE_URL (postgres://…).") }
        let address = try HTTPAddress(value(httpAddress, "MATOMETE_HTTP_ADDRESS") ?? "0.0.0.0:8080")
        var settings = MerchantSiteApplication.settings(
            plainHTTP: plainHTTP || environment["MATOMETE_PLAIN_HTTP"] == "1")
        settings.idleTimeout = .seconds(60 * (try number(idleMinutes, "MATOMETE_IDLE_MINUTES", 30, 1...1440)))
        settings.absoluteTimeout = .seconds(3600 * (try number(sessionHours, "MATOMETE_SESSION_HOURS", 12, 1...168)))
        guard let servers = value(bootstrapServers, "MATOMETE_BOOTSTRAP_SERVERS") else {
            throw ValidationError("Give the Kafka brokers with --bootstrap-servers or MATOMETE_BOOTSTRAP_SERVERS.")
        }
        var kafka = KafkaClientSettings(
            bootstrapServers: servers.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) })
        kafka.clientID = "matomete-merchant-site"
        kafka.rawProperties = try Options.keyValues(
            kafkaProperties, "MATOMETE_KAFKA_PROPERTIES", what: "A Kafka property", environment: environment)
        let sealer: SecretSealer
        do {
            sealer = try SecretSealer.configured(file: keyEncryptionKeyFile, environment: environment)
        } catch {
            throw ValidationError("The key-encryption key: \(error.description).")
        }
        let topics = Topics(prefix: value(topicPrefix, "MATOMETE_TOPIC_PREFIX") ?? "matomete")
        let levelText = value(logLevel, "MATOMETE_LOG_LEVEL") ?? "info"
        guard let level = Logger.Level(rawValue: levelText) else {
            throw ValidationError("Unknown log level \(levelText).")
        }
        let formatText = value(logFormat, "MATOMETE_LOG_FORMAT") ?? "json"
        guard let format = LogFormat(rawValue: formatText) else {
            throw ValidationError("Unknown log format \(formatText): json or text.")
        }
        ProcessSetup.bootstrapLogging(level: level, format: format)
        ProcessMetrics.bootstrap()
        let logger = Logger(label: "matomete.merchant-site")
        logger.info("Starting", metadata: ["database": "\(database)", "http.address": "\(address)"])
        let client = PostgresClient(configuration: database.clientConfiguration, backgroundLogger: logger)
        let readiness = Readiness(["database"])
        let holder = StoreHolder()
        var producerConfiguration = KafkaProducerConfiguration(bootstrapServers: [])
        producerConfiguration.client = kafka
        producerConfiguration.linger = .milliseconds(1)
        producerConfiguration.messageTimeout = .seconds(30)
        let producer = try KafkaProducer(configuration: producerConfiguration, logger: logger)
        let app = try MerchantSiteApplication.application(
            holder: holder, settings: settings,
            cancellations: SiteCancellations(producer: producer, topics: topics, sealer: sealer, logger: logger),
            address: address, limits: HTTPLimits(), readiness: readiness, logger: logger)
        let opener = StoreKeeper(holder: holder, client: client, readiness: readiness, logger: logger)
        let group = ServiceGroup(
            configuration: ServiceGroupConfiguration(
                services: [
                    .init(service: client), .init(service: producer), .init(service: app),
                    .init(
                        service: opener, successTerminationBehavior: .ignore,
                        failureTerminationBehavior: .gracefullyShutdownGroup),
                ],
                gracefulShutdownSignals: [.sigterm, .sigint], logger: logger))
        try await group.run()
        logger.info("Stopped")
    }
}

/// Opens the store for the site, and keeps `/healthz` honest about the database.
struct StoreKeeper: Service {
    var holder: StoreHolder
    var client: PostgresClient
    var readiness: Readiness
    var logger: Logger

    func run() async throws {
        let client = client
        let logger = logger
        await holder.keepOpen(
            client: PostgresClientHandle(
                open: { try await BillingStore.open(client: client, logger: logger) },
                check: { _ = try await client.query("SELECT 1", logger: logger).collect() }),
            readiness: readiness, logger: logger)
    }
}
