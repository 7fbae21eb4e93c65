import ArgumentParser
import Authorization
import Foundation
import Logging
import PostgresNIO
import ServerKit
import ServiceLifecycle
import Store

/// The options every staff site takes (the merchants' site, the support desk). Each one can also come from a
/// `MATOMETE_*` environment variable; a flag given on the command line wins.
public struct StaffSiteOptions: ParsableArguments {
    @Option(
        help: ArgumentHelp(
            "PostgreSQL URL, postgres://user:password@host:port/database. Prefer the environment variable: other users can read a process's flags. [env: MATOMETE_DATABASE_URL]",
            valueName: "url"))
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

    @Option(
        help: ArgumentHelp(
            "Proxies whose X-Forwarded-For names the person's address in the audit log, as comma-separated prefixes (10.0.0.0/8,2001:db8::/32). [env: MATOMETE_TRUSTED_PROXIES] (default: none: the connection's address)",
            valueName: "prefixes"))
    var trustedProxies: String?

    @Option(help: ArgumentHelp("Minutes a session may stay unused. [env: MATOMETE_IDLE_MINUTES] (default: 30)"))
    var idleMinutes: Int?

    @Option(help: ArgumentHelp("Hours a session lasts after login. [env: MATOMETE_SESSION_HOURS] (default: 12)"))
    var sessionHours: Int?

    @Option(
        help: ArgumentHelp(
            "A file holding the key-encryption key the merchants' signing secrets are sealed under (base64 of 32 bytes); cancellations sent from the site are signed with the merchant's key. [env: MATOMETE_KEY_ENCRYPTION_KEY_FILE, or the key itself in MATOMETE_KEY_ENCRYPTION_KEY]",
            valueName: "path"))
    var keyEncryptionKeyFile: String?

    @OptionGroup var logging: LoggingOptions

    /// Every option unset.
    public init() {}

    /// The options with the environment filled in and every value checked; `settings` gets the cookie and timeout
    /// settings.
    public func resolve(
        _ settings: SiteSettings, environment: [String: String] = ProcessInfo.processInfo.environment
    ) throws -> StaffSiteConfiguration {
        guard let url = Options.text(databaseURL, "MATOMETE_DATABASE_URL", environment: environment) else {
            throw ValidationError("Give the database with --database-url or MATOMETE_DATABASE_URL (postgres://…).")
        }
        guard let database = try? DatabaseConfiguration(url: url) else {
            // The URL may hold a password: say what is wrong, never echo it.
            throw ValidationError("The database URL is not postgres://user:password@host:port/database.")
        }
        var settings = settings
        settings.secureCookies = !(plainHTTP || environment["MATOMETE_PLAIN_HTTP"] == "1")
        settings.idleTimeout = .seconds(
            60
                * (try Options.integer(
                    idleMinutes, "MATOMETE_IDLE_MINUTES", default: 30, in: 1...1440, name: "The idle timeout",
                    unit: " minutes", environment: environment)))
        settings.absoluteTimeout = .seconds(
            3600
                * (try Options.integer(
                    sessionHours, "MATOMETE_SESSION_HOURS", default: 12, in: 1...168, name: "The session length",
                    unit: " hours", environment: environment)))
        do {
            settings.trustedProxies = try ClientAddressResolver.prefixes(
                Options.text(trustedProxies, "MATOMETE_TRUSTED_PROXIES", environment: environment) ?? "")
        } catch {
            throw ValidationError("The trusted proxies: \(error.message).")
        }
        let sealer: SecretSealer
        do {
            sealer = try SecretSealer.configured(file: keyEncryptionKeyFile, environment: environment)
        } catch {
            throw ValidationError("The key-encryption key: \(error.description).")
        }
        let (level, format) = try logging.resolve(environment: environment)
        return StaffSiteConfiguration(
            database: database,
            address: try HTTPAddress(
                Options.text(httpAddress, "MATOMETE_HTTP_ADDRESS", environment: environment) ?? "0.0.0.0:8080"),
            settings: settings, sealer: sealer, logLevel: level, logFormat: format)
    }
}

/// A staff site's resolved configuration.
public struct StaffSiteConfiguration: Sendable {
    /// The PostgreSQL server and database.
    public var database: DatabaseConfiguration
    /// Where to listen.
    public var address: HTTPAddress
    /// Cookies, timeouts and lockout.
    public var settings: SiteSettings
    /// Opens the merchants' stored signing secrets.
    public var sealer: SecretSealer
    /// The lowest level logged.
    public var logLevel: Logger.Level
    /// How log records are written.
    public var logFormat: LogFormat

    /// Sets up logging and metrics, then runs the site until SIGTERM or SIGINT: the database client, a keeper that
    /// opens the store (pages answer 503 until it is open), and the services `make` returns from the store holder,
    /// the readiness and the logger (the site, and what it needs, such as a Kafka producer).
    public func run(
        label: String, make: (StoreHolder, Readiness, Logger) throws -> [any Service]
    ) async throws {
        ProcessSetup.bootstrapLogging(level: logLevel, format: logFormat)
        ProcessMetrics.bootstrap()
        let logger = Logger(label: label)
        logger.info("Starting", metadata: ["database": "\(database)", "http.address": "\(address)"])
        let client = PostgresClient(configuration: database.clientConfiguration, backgroundLogger: logger)
        let readiness = Readiness(["database"])
        let holder = StoreHolder()
        let services = try make(holder, readiness, logger)
        let keeper = StoreKeeper(holder: holder, client: client, readiness: readiness, logger: logger)
        let group = ServiceGroup(
            configuration: ServiceGroupConfiguration(
                services: [.init(service: client)] + services.map { .init(service: $0) } + [
                    .init(
                        service: keeper, successTerminationBehavior: .ignore,
                        failureTerminationBehavior: .gracefullyShutdownGroup)
                ],
                gracefulShutdownSignals: [.sigterm, .sigint], logger: logger))
        try await group.run()
        logger.info("Stopped")
    }
}

/// Opens the store for a site, and keeps `/healthz` honest about the database.
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
