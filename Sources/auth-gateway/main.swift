import ArgumentParser
import Authorization
import Foundation
import Gateway
import Logging
import ServerKit
import Store

@main
struct AuthGateway: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "auth-gateway",
        abstract: "Authorizes purchases: purchase ID and password, checked against the line the request comes from.",
        discussion: """
            POST /v1/authorizations with {"purchaseId","password","merchantId","kind","amount","reference"}. \
            It succeeds (201, a signed authorization valid for --token-lifetime seconds) only if the \
            password is right, the purchase ID belongs to the line the request comes from (by its \
            address: the connection's peer, or X-Forwarded-For when the peer is a trusted proxy), the \
            line is eligible and active and the merchant is active. A request from an address no line \
            holds is refused at once, counting nothing. Wrong attempts are counted per purchase ID and \
            line of origin (known and unknown IDs alike) and per line; at the limit the ID, for that \
            line only, or the line is locked (429) for a while. \
            Authentication failures all answer 403 authentication_failed, whichever factor failed. \
            Password checks run --max-password-checks at once; beyond, a request waits its turn up to \
            --password-check-wait-ms, else gets 503 busy with Retry-After. Slow or idle connections are \
            closed (--idle-timeout-seconds, --request-read-timeout-seconds). \
            Also serves /healthz, /livez and /metrics. Stops gracefully on SIGTERM (exit 0).
            """)

    @Option(help: ArgumentHelp("PostgreSQL URL. [env: MATOMETE_DATABASE_URL]", valueName: "url"))
    var databaseURL: String?

    @Option(
        help: ArgumentHelp(
            "Where to listen. [env: MATOMETE_HTTP_ADDRESS] (default: 0.0.0.0:8443)", valueName: "host:port"))
    var httpAddress: String?

    @Option(
        help: ArgumentHelp(
            "A file holding the Ed25519 signing key (base64 of the raw 32 bytes). [env: MATOMETE_SIGNING_KEY_FILE, or the key itself in MATOMETE_SIGNING_KEY]",
            valueName: "path"))
    var signingKeyFile: String?

    @Option(
        help: ArgumentHelp(
            "The signing key's id, as the workers list it. [env: MATOMETE_SIGNING_KEY_ID]", valueName: "id"))
    var keyID: String?

    @Option(help: ArgumentHelp("Seconds an authorization stays valid. [env: MATOMETE_TOKEN_LIFETIME] (default: 300)"))
    var tokenLifetime: Int?

    @Option(
        help: ArgumentHelp(
            "Proxies whose X-Forwarded-For is believed, as comma-separated prefixes (10.0.0.0/8,2001:db8::/32). [env: MATOMETE_TRUSTED_PROXIES] (default: none)",
            valueName: "prefixes"))
    var trustedProxies: String?

    @Option(
        help: ArgumentHelp(
            "Wrong passwords for a purchase ID from one line that lock the ID for that line. [env: MATOMETE_MAX_FAILURES_PER_ID] (default: 5)"
        ))
    var maxFailuresPerID: Int?

    @Option(
        help: ArgumentHelp(
            "Failed attempts from one line that lock the line. [env: MATOMETE_MAX_FAILURES_PER_LINE] (default: 20)"))
    var maxFailuresPerLine: Int?

    @Option(help: ArgumentHelp("Seconds a lock lasts. [env: MATOMETE_LOCKOUT_SECONDS] (default: 900)"))
    var lockoutSeconds: Int?

    @Option(
        help: ArgumentHelp(
            "Password checks (scrypt, 32 MiB each) running at once. [env: MATOMETE_MAX_PASSWORD_CHECKS] (default: the number of cores)"
        ))
    var maxPasswordChecks: Int?

    @Option(
        help: ArgumentHelp(
            "Password checks waiting for their turn at once; beyond, 503 busy at once. [env: MATOMETE_PASSWORD_CHECK_QUEUE] (default: 64)"
        ))
    var passwordCheckQueue: Int?

    @Option(
        help: ArgumentHelp(
            "Milliseconds a password check waits for its turn before 503 busy with Retry-After. [env: MATOMETE_PASSWORD_CHECK_WAIT_MS] (default: 2000)"
        ))
    var passwordCheckWaitMs: Int?

    @Option(
        help: ArgumentHelp(
            "Seconds a connection may stay idle, or take to send its request head, before it is closed. [env: MATOMETE_IDLE_TIMEOUT_SECONDS] (default: 10)"
        ))
    var idleTimeoutSeconds: Int?

    @Option(
        help: ArgumentHelp(
            "Seconds after a request's head by which its body must be read in full, or the connection is closed. [env: MATOMETE_REQUEST_READ_TIMEOUT_SECONDS] (default: 10)"
        ))
    var requestReadTimeoutSeconds: Int?

    @Option(
        help: ArgumentHelp(
            "Connections held at once; beyond, new ones wait in the listen backlog. [env: MATOMETE_MAX_CONNECTIONS] (default: 1024)"
        ))
    var maxConnections: Int?

    @OptionGroup var logging: LoggingOptions

    func run() async throws {
        let environment = ProcessInfo.processInfo.environment
        func value(_ flag: String?, _ name: String) -> String? { Options.text(flag, name, environment: environment) }
        func number(_ flag: Int?, _ name: String, _ fallback: Int, _ range: ClosedRange<Int>) throws -> Int {
            let result = flag ?? environment[name].flatMap(Int.init) ?? fallback
            guard range.contains(result) else {
                throw ValidationError("\(name) must be \(range.lowerBound) to \(range.upperBound).")
            }
            return result
        }
        guard let url = value(databaseURL, "MATOMETE_DATABASE_URL"), let database = try? DatabaseConfiguration(url: url)
        else { throw ValidationError("Give the database with --database-url or MATOMETE_DATABASE_URL (postgres://…).") }
        let keyText: String
        if let path = value(signingKeyFile, "MATOMETE_SIGNING_KEY_FILE") {
            keyText = try String(contentsOfFile: path, encoding: .utf8)
        } else if let key = environment["MATOMETE_SIGNING_KEY"] {
            keyText = key
        } else {
            throw ValidationError(
                "Give the signing key with --signing-key-file, MATOMETE_SIGNING_KEY_FILE or MATOMETE_SIGNING_KEY.")
        }
        guard let privateKey = try? SigningKeys.privateKey(base64: keyText) else {
            throw ValidationError("The signing key is not base64 of a raw 32-byte Ed25519 key.")
        }
        guard let id = value(keyID, "MATOMETE_SIGNING_KEY_ID") else {
            throw ValidationError("Give the signing key's id with --key-id or MATOMETE_SIGNING_KEY_ID.")
        }
        let proxies: [AddressPrefix]
        do {
            proxies = try ClientAddressResolver.prefixes(value(trustedProxies, "MATOMETE_TRUSTED_PROXIES") ?? "")
        } catch {
            throw ValidationError("The trusted proxies: \(error.message).")
        }
        let policy = LockoutPolicy(
            failuresPerID: try number(maxFailuresPerID, "MATOMETE_MAX_FAILURES_PER_ID", 5, 1...1000),
            failuresPerLine: try number(maxFailuresPerLine, "MATOMETE_MAX_FAILURES_PER_LINE", 20, 1...100_000),
            duration: .seconds(try number(lockoutSeconds, "MATOMETE_LOCKOUT_SECONDS", 900, 1...86_400)))
        let lifetime = Duration.seconds(try number(tokenLifetime, "MATOMETE_TOKEN_LIFETIME", 300, 10...3600))
        let gate = PasswordCheckGate(
            maxConcurrent: try number(
                maxPasswordChecks, "MATOMETE_MAX_PASSWORD_CHECKS", ProcessInfo.processInfo.activeProcessorCount,
                1...1024),
            maxWaiting: try number(passwordCheckQueue, "MATOMETE_PASSWORD_CHECK_QUEUE", 64, 0...100_000),
            maxWait: .milliseconds(try number(passwordCheckWaitMs, "MATOMETE_PASSWORD_CHECK_WAIT_MS", 2000, 0...60_000))
        )
        let limits = HTTPLimits(
            idleTimeout: .seconds(try number(idleTimeoutSeconds, "MATOMETE_IDLE_TIMEOUT_SECONDS", 10, 1...3600)),
            requestReadTimeout: .seconds(
                try number(requestReadTimeoutSeconds, "MATOMETE_REQUEST_READ_TIMEOUT_SECONDS", 10, 1...3600)),
            maxConnections: try number(maxConnections, "MATOMETE_MAX_CONNECTIONS", 1024, 1...1_000_000))
        let address = try HTTPAddress(value(httpAddress, "MATOMETE_HTTP_ADDRESS") ?? "0.0.0.0:8443")
        let (level, format) = try logging.resolve(environment: environment)
        ProcessSetup.bootstrapLogging(level: level, format: format)
        ProcessMetrics.bootstrap()
        let logger = Logger(label: "matomete.auth-gateway")
        logger.info(
            "Starting", metadata: ["database": "\(database)", "key.id": "\(id)", "trusted.proxies": "\(proxies)"])
        try await GatewayProcess.run(
            database: database, signer: AuthorizationSigner(keyID: id, privateKey: privateKey), lifetime: lifetime,
            policy: policy, gate: gate, resolver: ClientAddressResolver(trustedProxies: proxies), address: address,
            limits: limits, logger: logger)
    }
}
