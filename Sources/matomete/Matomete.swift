import ArgumentParser
import Authorization
import Billing
import Crypto
import Foundation
import Logging
import PostgresNIO
import Store

@main
struct Matomete: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "matomete",
        abstract: "Run Matomete on this machine, and operate it.",
        discussion: """
            Operator commands take the same MATOMETE_* variables as the workers \
            (MATOMETE_BOOTSTRAP_SERVERS, MATOMETE_DATABASE_URL, MATOMETE_TOPIC_PREFIX, \
            MATOMETE_KAFKA_PROPERTIES). Exit codes: 0 done; 1 not done (the message says why); \
            64 bad usage; 65 bad input data; 69 Kafka or PostgreSQL cannot be reached; 75 still \
            running when the wait ended.
            """,
        subcommands: [
            Demo.self, Dev.self, Migrate.self, TopicCommands.self, LineCommands.self, MerchantCommands.self,
            CycleCommands.self, Settlements.self, Status.self, DeadLetterCommands.self, Credentials.self,
            Addresses.self, Keys.self, LineSystemCommands.self, CollectionCommands.self, PayoutCommands.self,
            SupportCommands.self,
        ])
}

/// Options shared by the commands that use the database.
struct DatabaseOptions: ParsableArguments {
    @Option(
        name: .customLong("database-url"),
        help: ArgumentHelp("PostgreSQL URL. [env: MATOMETE_DATABASE_URL]", valueName: "url"))
    var url: String?

    func withStore<T: Sendable>(_ body: @Sendable (BillingStore) async throws -> T) async throws -> T {
        let logger = Self.logger
        return try await withPostgresClient(try configuration(), logger: logger) { client in
            try await body(try await BillingStore.open(client: client, logger: logger))
        }
    }

    func configuration() throws -> DatabaseConfiguration {
        guard let text = url ?? ProcessInfo.processInfo.environment["MATOMETE_DATABASE_URL"],
            let configuration = try? DatabaseConfiguration(url: text)
        else { throw ValidationError("Give the database with --database-url or MATOMETE_DATABASE_URL (postgres://…).") }
        return configuration
    }

    static let logger: Logger = {
        var logger = Logger(label: "matomete.cli")
        logger.logLevel = .error
        return logger
    }()
}

struct Migrate: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Bring the database schema up to date (safe to repeat; processes starting together do not race).")

    @OptionGroup var database: DatabaseOptions

    @Option(help: "Hash partitions of the per-line tables, fixed when the database is first initialised.")
    var partitions = 16

    func run() async throws {
        let partitions = self.partitions
        let applied = try await withPostgresClient(try database.configuration(), logger: DatabaseOptions.logger) {
            try await Migrator().migrate($0, partitions: partitions, logger: DatabaseOptions.logger)
        }
        say(
            applied.isEmpty
                ? "The schema is up to date."
                : "Applied migrations \(applied.map(String.init).joined(separator: ", ")).")
    }
}

/// `matomete support …`: the carrier's support desk.
struct SupportCommands: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "support", abstract: "The support desk: its agents' and supervisors' accounts.",
        subcommands: [SupportStaff.self])
}

struct Credentials: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Purchase IDs and passwords: what a line's user confirms purchases with.",
        subcommands: [Issue.self, Revoke.self, ChangePassword.self, Unlock.self])

    struct Issue: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Issue a purchase ID with an initial password for a line (a line may hold several).",
            discussion: "Prints the purchase ID and the initial password once; only a scrypt hash is kept.")

        @OptionGroup var database: DatabaseOptions
        @Option(help: "The access line.") var line: String
        @Option(help: "The purchase ID (default: generated).") var purchaseID: String?
        @Flag(help: "Read the initial password from standard input instead of generating one.") var passwordStdin =
            false

        func run() async throws {
            let id =
                purchaseID ?? "P" + UUID().uuidString.replacingOccurrences(of: "-", with: "").prefix(11).uppercased()
            // The gateway's rule for a purchase ID, so that every ID issued can be typed and sent.
            guard LineID(rawValue: id).isWellFormed else {
                throw ValidationError("A purchase ID is 1 to 64 printable ASCII characters, without spaces.")
            }
            guard LineID(rawValue: line).isWellFormed else { throw ValidationError("\(line) is not a line id.") }
            let password = passwordStdin ? try readPassword() : generatePassword()
            let hash = try PasswordHash.make(password: password)
            let line = self.line
            try await Exit.mapping {
                try await database.withStore { store in
                    try await store.issueCredential(
                        purchaseID: id, lineID: line, hash: hash.hash, salt: hash.salt, logRounds: hash.logRounds,
                        blockSize: hash.blockSize, parallelism: hash.parallelism)
                }
            }
            say("purchase ID  \(id)\nline         \(line)")
            if !passwordStdin { print("password     \(password)   (shown once: hand it to the line's user)") }
        }
    }

    struct Revoke: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Revoke a purchase ID for good.")
        @OptionGroup var database: DatabaseOptions
        @Option(help: "The purchase ID.") var purchaseID: String

        func run() async throws {
            let id = purchaseID
            guard try await database.withStore({ try await $0.revokeCredential(purchaseID: id) }) else {
                FileHandle.standardError.write(Data("No active purchase ID \(id).\n".utf8))
                throw ExitCode.failure
            }
            say("Revoked \(id).")
        }
    }

    struct Unlock: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Lift the lock of a purchase ID or of a line, and clear its count of wrong attempts.",
            discussion: "Exits 1 when there was nothing to clear.")
        @OptionGroup var database: DatabaseOptions
        @Option(help: "The purchase ID.") var purchaseID: String?
        @Option(help: "The line.") var line: String?

        func validate() throws {
            guard (purchaseID == nil) != (line == nil) else { throw ValidationError("Give --purchase-id or --line.") }
        }

        func run() async throws {
            let (id, line) = (purchaseID, self.line)
            try await Exit.mapping {
                guard try await database.withStore({ try await $0.unlock(purchaseID: id, lineID: line) }) else {
                    Exit.complain(
                        "\(id.map { "purchase ID \($0)" } ?? "line \(line ?? "")") is not locked and has no failed attempts"
                    )
                    throw ExitCode.failure
                }
                say("Unlocked \(id.map { "purchase ID \($0)" } ?? "line \(line ?? "")").")
            }
        }
    }

    struct ChangePassword: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Set a new password for a purchase ID (read from standard input); clears its lock.")
        @OptionGroup var database: DatabaseOptions
        @Option(help: "The purchase ID.") var purchaseID: String

        func run() async throws {
            let hash = try PasswordHash.make(password: try readPassword())
            let id = purchaseID
            let changed = try await database.withStore { store in
                try await store.changePassword(
                    purchaseID: id, hash: hash.hash, salt: hash.salt, logRounds: hash.logRounds,
                    blockSize: hash.blockSize, parallelism: hash.parallelism)
            }
            guard changed else {
                FileHandle.standardError.write(Data("No active purchase ID \(id).\n".utf8))
                throw ExitCode.failure
            }
            say("Password changed for \(id).")
        }
    }
}

struct Addresses: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "addresses",
        abstract: "Line addresses from the line system: which IPv4/IPv6 prefixes each line holds now.",
        subcommands: [Import.self])

    struct Import: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract:
                "Replace the prefixes of the lines listed in a CSV file: line_id,prefix[,prefix…] (empty: released).",
            discussion: """
                A prefix is an IPv4 or IPv6 address with an optional length (192.0.2.7, 2001:db8:1::/56). \
                The import is refused whole, exit 65 naming the row or line, when a prefix is malformed or \
                wider than a line may hold (--widest-ipv4, --widest-ipv6), a line is listed twice or is not \
                known, or a prefix overlaps another line's: an address belongs to one line.
                """)
        @OptionGroup var database: DatabaseOptions
        @Option(help: ArgumentHelp("The widest IPv4 prefix a line may hold.", valueName: "length"))
        var widestIpv4 = 24
        @Option(help: ArgumentHelp("The widest IPv6 prefix a line may hold.", valueName: "length"))
        var widestIpv6 = 48
        @Argument(help: "The CSV file, or - for standard input.") var file: String

        func validate() throws {
            guard (8...32).contains(widestIpv4), (16...128).contains(widestIpv6) else {
                throw ValidationError("--widest-ipv4 is 8 to 32, --widest-ipv6 16 to 128.")
            }
        }

        func run() async throws {
            try await Exit.mapping {
                let text =
                    file == "-"
                    ? String(decoding: FileHandle.standardInput.readDataToEndOfFile(), as: UTF8.self)
                    : try String(contentsOfFile: file, encoding: .utf8)
                var assignments: [String: [String]] = [:]
                for record in try CSV.records(text) {
                    let fields = record.fields
                    guard let line = fields.first, !line.isEmpty, line != "line_id" else { continue }
                    let place = "row \(record.line)"
                    guard LineID(rawValue: line).isWellFormed else {
                        throw StoreError(.invalidInput, "\(place): \(line) is not a line id")
                    }
                    guard assignments[line] == nil else {
                        throw StoreError(.invalidInput, "\(place): line \(line) is listed twice")
                    }
                    var prefixes: [String] = []
                    for field in fields.dropFirst() where !field.isEmpty {
                        do {
                            prefixes.append(
                                try AddressPrefix(lineAssignment: field, widestIPv4: widestIpv4, widestIPv6: widestIpv6)
                                    .description)
                        } catch let error as StoreError {
                            throw StoreError(.invalidInput, "\(place): \(error.message)")
                        }
                    }
                    assignments[line] = prefixes
                }
                let all = assignments
                try await database.withStore { try await $0.assignAddresses(all) }
                say("Assigned addresses of \(assignments.count) lines.")
            }
        }
    }
}

struct Keys: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Signing keys for the auth gateway and the charge workers.", subcommands: [Generate.self])

    struct Generate: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract:
                "Make a new Ed25519 key pair (the private key for the gateway, the public one for the workers) and a key-encryption key (for the workers and this tool: it seals the message-signing secrets in the database)."
        )
        @Option(help: "The key id.") var id = "k\(Int(Date().timeIntervalSince1970))"
        @Option(
            help: ArgumentHelp(
                "Write the four lines to this new file, readable by its owner only (0600), instead of standard output; an existing file is left alone (exit 1).",
                valueName: "file"))
        var output: String?

        func run() throws {
            let key = Curve25519.Signing.PrivateKey()
            let text = """
                MATOMETE_SIGNING_KEY_ID=\(id)
                MATOMETE_SIGNING_KEY=\(key.rawRepresentation.base64EncodedString())
                MATOMETE_AUTHORIZATION_KEYS=\(id)=\(key.publicKey.rawRepresentation.base64EncodedString())
                MATOMETE_KEY_ENCRYPTION_KEY=\(SymmetricKey(size: .bits256).withUnsafeBytes { Data($0) }.base64EncodedString())

                """
            guard let output else { return writeOut(text) }
            // Created with its mode in one step: never readable by others, not even for a moment.
            let descriptor = open(output, O_WRONLY | O_CREAT | O_EXCL, 0o600)
            guard descriptor >= 0 else {
                Exit.complain("cannot create \(output): \(String(cString: strerror(errno))); nothing was written")
                throw ExitCode.failure
            }
            defer { close(descriptor) }
            let bytes = Array(text.utf8)
            guard write(descriptor, bytes, bytes.count) == bytes.count else {
                Exit.complain("cannot write \(output)")
                throw ExitCode.failure
            }
            say("Wrote the key pair to \(output) (0600). The private key is for the gateway only.")
        }
    }
}

/// A password from standard input: 8 to 256 bytes of UTF-8 (what the gateway takes), no control characters.
func readPassword() throws -> String {
    guard let line = readLine(strippingNewline: true), !line.isEmpty else {
        throw ValidationError("Give the password on standard input.")
    }
    guard line.count >= 8, line.utf8.count <= 256,
        !line.unicodeScalars.contains(where: { $0.properties.generalCategory == .control })
    else {
        throw ValidationError("A password is 8 to 256 bytes, at least 8 characters, with no control characters.")
    }
    return line
}

/// 12 characters from an alphabet without look-alikes.
func generatePassword() -> String {
    let alphabet = Array("abcdefghjkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789")
    var generator = SystemRandomNumberGenerator()
    return String((0..<12).map { _ in alphabet.randomElement(using: &generator)! })
}
