import ArgumentParser
import Authorization
import Billing
import Contract
import Crypto
import Foundation
import Kafka
import Logging
import SiteKit
import Store

/// The whole system on this machine: librdkafka's mock cluster (in this
/// process), a private PostgreSQL, and every worker and the gateway as child
/// processes, each logging to a file in the scratch directory.
final class LocalSystem: @unchecked Sendable {
    // @unchecked Sendable: `processes` is only touched from the command's task.
    /// The mock cluster, unless the system runs on a Kafka cluster given by the user.
    let cluster: EmbeddedKafkaCluster?
    let bootstrapServers: String
    let postgres: EmbeddedPostgres
    let topics = Topics()
    let directory: URL
    let signingKey = Curve25519.Signing.PrivateKey()
    let keyID = "local"
    /// The key-encryption key the message-signing secrets are sealed under, base64.
    let keyEncryptionKey = SymmetricKey(size: .bits256).withUnsafeBytes { Data($0) }.base64EncodedString()
    let gatewayPort: Int
    let sitePort: Int
    let deskPort: Int
    private(set) var processes: [(name: String, process: Process, port: Int)] = []
    static let logger: Logger = {
        var logger = Logger(label: "matomete.local")
        logger.logLevel = .critical
        return logger
    }()

    private init(
        cluster: EmbeddedKafkaCluster?, bootstrapServers: String, postgres: EmbeddedPostgres, directory: URL,
        gatewayPort: Int, sitePort: Int, deskPort: Int
    ) {
        self.cluster = cluster
        self.bootstrapServers = bootstrapServers
        self.postgres = postgres
        self.directory = directory
        self.gatewayPort = gatewayPort
        self.sitePort = sitePort
        self.deskPort = deskPort
    }

    var bootstrapServerList: [String] { bootstrapServers.split(separator: ",").map(String.init) }

    /// Starts the brokers (or uses `kafka`, a bootstrap list, creating the
    /// topics it lacks) and PostgreSQL, creates the topics and migrates.
    static func start(kafka: String? = nil, partitions: Int = 12) async throws -> LocalSystem {
        let directory = URL(fileURLWithPath: NSTemporaryDirectory()).appendingPathComponent(
            "matomete-local-\(UUID().uuidString.prefix(8).lowercased())")
        // Not listable by others: it holds the logs (each 0600) and the database (0700, its server's user's
        // own, which must be able to pass through: hence 0711, not 0700).
        try FileManager.default.createDirectory(
            at: directory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o711])
        let plan = Topics().layout(partitions: partitions)
        let cluster: EmbeddedKafkaCluster?
        let bootstrapServers: String
        if let kafka {
            cluster = nil
            bootstrapServers = kafka
            let admin = try KafkaAdmin(
                settings: KafkaClientSettings(bootstrapServers: kafka.split(separator: ",").map(String.init)),
                requestTimeout: .seconds(15), logger: logger)
            // -1: the brokers' default replication factor.
            try await admin.createTopics(
                plan.map {
                    KafkaTopicSpecification(
                        name: $0.name, partitions: $0.partitions, replicationFactor: -1, configuration: $0.configuration
                    )
                })
        } else {
            let embedded = try EmbeddedKafkaCluster(brokers: 3, logger: logger)
            for topic in plan { try embedded.createTopic(topic.name, partitions: topic.partitions) }
            cluster = embedded
            bootstrapServers = embedded.bootstrapServers
        }
        let postgres = try await EmbeddedPostgres.start(
            directory: directory.appendingPathComponent("postgres"), stopWhenProcessExits: true, logger: logger)
        try await withPostgresClient(postgres.configuration, logger: logger) {
            try await Migrator().migrate($0, partitions: 8, logger: logger)
        }
        return LocalSystem(
            cluster: cluster, bootstrapServers: bootstrapServers, postgres: postgres, directory: directory,
            gatewayPort: try EmbeddedPostgres.freePort(), sitePort: try EmbeddedPostgres.freePort(),
            deskPort: try EmbeddedPostgres.freePort())
    }

    var databaseURL: String { postgres.configuration.url }

    /// Starts the workers (two charge workers: they share the partitions) and the gateway.
    func launchAll() throws {
        for name in [
            "charge-worker", "charge-worker", "cancellation-worker", "billing-cycle-worker", "collection-worker",
            "outbox-relay",
        ] {
            try launch(name)
        }
        try launch("auth-gateway", port: gatewayPort)
        try launch("merchant-site", port: sitePort)
        try launch("support-desk", port: deskPort)
    }

    /// The merchant site's address.
    var siteAddress: String { "http://127.0.0.1:\(sitePort)" }

    /// The support desk's address.
    var deskAddress: String { "http://127.0.0.1:\(deskPort)" }

    /// Adds a demo agent and supervisor to the support desk, as `matomete support staff add` does, and returns
    /// their logins and passwords.
    func addDeskStaff(in store: BillingStore) async throws -> (agent: (String, String), supervisor: (String, String)) {
        var made: [(String, String)] = []
        for role in [StaffRole.agent, .supervisor] {
            let login = "\(role.rawValue)@support.example"
            let password = StaffCredentials.generatePassword()
            try await store.addStaff(
                try await StaffCredentials.account(
                    site: .support, login: login, merchant: nil, role: role, displayName: "Demo \(role.rawValue)",
                    password: password, secondFactor: false),
                addedBy: "matomete dev")
            made.append((login, password))
        }
        return (made[0], made[1])
    }

    /// Adds an admin of `merchant` on the merchant site with a new password, as `matomete merchants staff add`
    /// does, and returns the login and the password.
    func addSiteAdmin(for merchant: String, in store: BillingStore) async throws -> (login: String, password: String) {
        let login = "admin@\(merchant).example"
        let password = StaffCredentials.generatePassword()
        try await store.addStaff(
            try await StaffCredentials.account(
                site: .merchant, login: login, merchant: MerchantID(rawValue: merchant), role: .admin,
                displayName: "Demo admin", password: password, secondFactor: false),
            addedBy: "matomete dev")
        return (login, password)
    }

    private func launch(_ name: String, port: Int? = nil) throws {
        let port = try port ?? EmbeddedPostgres.freePort()
        let number = processes.filter { $0.name == name }.count + 1
        let log = directory.appendingPathComponent("\(name)-\(number).log")
        // Readable by this user only: logs name lines and purchase IDs.
        _ = FileManager.default.createFile(atPath: log.path, contents: nil, attributes: [.posixPermissions: 0o600])
        let process = Process()
        process.executableURL = Self.sibling(name)
        var environment = ProcessInfo.processInfo.environment
        environment["MATOMETE_BOOTSTRAP_SERVERS"] = bootstrapServers
        environment["MATOMETE_DATABASE_URL"] = databaseURL
        environment["MATOMETE_HTTP_ADDRESS"] = "127.0.0.1:\(port)"
        environment["MATOMETE_AUTHORIZATION_KEYS"] =
            "\(keyID)=\(signingKey.publicKey.rawRepresentation.base64EncodedString())"
        // The private key only where it signs: no other process's environment holds it.
        for name in ["MATOMETE_SIGNING_KEY", "MATOMETE_SIGNING_KEY_FILE", "MATOMETE_SIGNING_KEY_ID"] {
            environment[name] = nil
        }
        // Only the workers that check signatures, and the site that signs its admins' cancellations, open the
        // signing secrets.
        for name in ["MATOMETE_KEY_ENCRYPTION_KEY", "MATOMETE_KEY_ENCRYPTION_KEY_FILE"] { environment[name] = nil }
        if ["charge-worker", "cancellation-worker", "merchant-site", "support-desk"].contains(name) {
            environment["MATOMETE_KEY_ENCRYPTION_KEY"] = keyEncryptionKey
        }
        if name == "auth-gateway" {
            environment["MATOMETE_SIGNING_KEY"] = signingKey.rawRepresentation.base64EncodedString()
            environment["MATOMETE_SIGNING_KEY_ID"] = keyID
        }
        // The site is served over plain HTTP on this machine: its cookies cannot be Secure.
        environment["MATOMETE_PLAIN_HTTP"] = ["merchant-site", "support-desk"].contains(name) ? "1" : nil
        environment["MATOMETE_TRUSTED_PROXIES"] = "127.0.0.1/32"  // this tool stands in for the carrier's proxy
        environment["MATOMETE_ALLOW_EARLY_CLOSE"] = "true"
        environment["MATOMETE_KAFKA_PROPERTIES"] = "session.timeout.ms=6000;heartbeat.interval.ms=500"
        // The mock brokers hold a fetch that finds nothing for the whole wait.
        environment["MATOMETE_FETCH_WAIT_MS"] = "5"
        process.environment = environment
        process.standardError = try FileHandle(forWritingTo: log)
        process.standardOutput = FileHandle.nullDevice
        try process.run()
        processes.append((name, process, port))
    }

    /// Creates `topics` (a merchant's own, when it is added), leaving those that exist.
    func createTopics(_ topics: [TopicLayout]) async throws {
        if let cluster {
            for topic in topics { try cluster.createTopic(topic.name, partitions: topic.partitions) }
        } else {
            let admin = try KafkaAdmin(
                settings: KafkaClientSettings(bootstrapServers: bootstrapServerList), requestTimeout: .seconds(15),
                logger: Self.logger)
            try await admin.createTopics(
                topics.map {
                    KafkaTopicSpecification(
                        name: $0.name, partitions: $0.partitions, replicationFactor: -1, configuration: $0.configuration
                    )
                }
            )
        }
    }

    /// Creates a signing key for `owner` as `matomete merchants keys create`
    /// does, and returns it for signing.
    func addSigningKey(for owner: KeyOwner, in store: BillingStore) async throws -> RequestSigner {
        let signer = RequestSigner.generate(keyIDPrefix: owner.keyIDPrefix)
        let sealer = try SecretSealer(base64: keyEncryptionKey)
        try await store.addSigningKey(
            keyID: signer.keyID, owner: owner,
            sealedSecret: try sealer.seal(signer.secret, boundTo: owner.sealingContext(keyID: signer.keyID)))
        return signer
    }

    /// An executable built next to this one.
    static func sibling(_ name: String) -> URL {
        let me = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath()
        return me.deletingLastPathComponent().appendingPathComponent(name)
    }

    /// Waits until every process answers ready on /healthz.
    func waitUntilReady(within limit: Duration = .seconds(60)) async throws {
        let deadline = ContinuousClock.now + limit
        for entry in processes {
            while true {
                if let (_, status) = try? await HTTPClient.get(port: entry.port, path: "/healthz"), status == 200 {
                    break
                }
                guard entry.process.isRunning else {
                    throw LocalError("\(entry.name) stopped; see its log in \(directory.path)")
                }
                guard ContinuousClock.now < deadline else {
                    throw LocalError("\(entry.name) was not ready within \(limit); see \(directory.path)")
                }
                try await Task.sleep(for: .milliseconds(200))
            }
        }
    }

    /// SIGTERM to every process, then the database; removes the scratch directory unless `keep`.
    func stop(keep: Bool) async {
        for entry in processes where entry.process.isRunning { entry.process.terminate() }
        for entry in processes {
            let deadline = ContinuousClock.now + .seconds(20)
            while entry.process.isRunning, ContinuousClock.now < deadline {
                try? await Task.sleep(for: .milliseconds(50))
            }
            if entry.process.isRunning { kill(entry.process.processIdentifier, SIGKILL) }
        }
        try? await postgres.stop(keepData: keep)
        if !keep { try? FileManager.default.removeItem(at: directory) }
    }
}

/// Where `dev` and `demo` run Kafka: the embedded mock cluster, or a given one.
struct LocalKafkaOptions: ParsableArguments {
    @Option(
        name: .customLong("bootstrap-servers"),
        help: ArgumentHelp(
            "Run on this Kafka cluster instead of the embedded one (creates the topics it lacks).",
            valueName: "servers"))
    var bootstrapServers: String?

    /// Says what it starts, then starts the system.
    func startSystem() async throws -> LocalSystem {
        say(
            bootstrapServers.map { "Using the Kafka cluster at \($0); starting a private PostgreSQL…" }
                ?? "Starting 3 Kafka brokers (librdkafka's mock cluster) and a private PostgreSQL…")
        return try await LocalSystem.start(kafka: bootstrapServers)
    }
}

struct LocalError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}
