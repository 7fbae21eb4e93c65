import ArgumentParser
import Authorization
import Billing
import Foundation
import Store

/// Where the key-encryption key comes from: the sealed message-signing secrets open only with it.
struct KeyEncryptionOptions: ParsableArguments {
    @Option(
        help: ArgumentHelp(
            "A file holding the key-encryption key (base64 of 32 bytes; `matomete keys generate` makes one). [env: MATOMETE_KEY_ENCRYPTION_KEY_FILE, or the key itself in MATOMETE_KEY_ENCRYPTION_KEY]",
            valueName: "path"))
    var keyEncryptionKeyFile: String?

    func sealer() throws -> SecretSealer {
        do {
            return try SecretSealer.configured(file: keyEncryptionKeyFile)
        } catch {
            throw ValidationError("The key-encryption key: \(error.description).")
        }
    }
}

/// The merchant a keys command is for: `matomete merchants keys create m-shop`
/// or `… --merchant m-shop`.
struct MerchantNaming: ParsableArguments {
    @Argument(help: ArgumentHelp("The merchant id (or give it with --merchant).", valueName: "merchant"))
    var positional: String?
    @Option(help: "The merchant id.") var merchant: String?

    func id() throws -> String {
        switch (positional, merchant) {
        case (let id?, nil), (nil, let id?): return id
        case (let first?, let second?) where first == second: return first
        case (.some, .some): throw ValidationError("Two different merchants given; name one.")
        case (nil, nil): throw ValidationError("Name the merchant: matomete merchants keys <command> MERCHANT.")
        }
    }
}

/// `create`, `list` and `revoke` of message-signing keys, for one owner.
enum SigningKeyActions {
    /// Makes a key for `owner`, stores its secret sealed, and prints the id and the secret once.
    static func create(for owner: KeyOwner, database: DatabaseOptions, sealer: SecretSealer) async throws {
        let key = RequestSigner.generate(keyIDPrefix: owner.keyIDPrefix)
        let (keyID, secret) = (key.keyID, key.secret)
        let sealed = try sealer.seal(secret, boundTo: owner.sealingContext(keyID: keyID))
        try await Exit.mapping {
            try await database.withStore {
                try await $0.addSigningKey(
                    keyID: keyID, owner: owner, sealedSecret: sealed,
                    recordedAs: auditEntry("key_created", keyID, owner))
            }
        }
        say("key id  \(keyID)\nowner   \(owner)")
        writeOut(
            "secret  \(MessageSignature.hex(secret))   (shown once: hand it over by a secure channel; only a sealed copy is kept)\n"
        )
        say(
            "The workers accept it at once (they read the keys again on meeting a new key id); a revocation counts from their next read (every 10 s by default)."
        )
    }

    /// Prints the keys of `owner`, revoked ones too.
    static func list(of owner: KeyOwner, database: DatabaseOptions, output: OutputOptions) async throws {
        let keys = try await Exit.mapping { try await database.withStore { try await $0.signingKeys(of: owner) } }
        struct Row: Encodable {
            var keyId: String
            var createdAt: Date
            var revokedAt: Date?
            var valid: Bool
        }
        if output.json {
            return try output.print(
                keys.map {
                    Row(keyId: $0.keyID, createdAt: $0.createdAt, revokedAt: $0.revokedAt, valid: $0.revokedAt == nil)
                })
        }
        guard !keys.isEmpty else { return say("\(owner) has no keys.") }
        printTable(
            header: ["key id", "created", "state"],
            rows: keys.map {
                [
                    $0.keyID, $0.createdAt.formatted(.iso8601),
                    $0.revokedAt.map { "revoked \($0.formatted(.iso8601))" } ?? "valid",
                ]
            })
    }

    /// A merchant's key change, for the merchant's audit log on its site (the line system's keys have none).
    private static func auditEntry(_ action: String, _ keyID: String, _ owner: KeyOwner) -> AuditEntry? {
        guard case .merchant(let merchant) = owner else { return nil }
        return AuditEntry(
            site: .merchant, merchantID: MerchantID(rawValue: merchant), staffLogin: StaffActions.operatorName,
            action: action, subject: keyID)
    }

    /// Revokes `keyID` of `owner`; exit 1 when it has no such valid key.
    static func revoke(_ keyID: String, of owner: KeyOwner, database: DatabaseOptions) async throws {
        let revoked = try await Exit.mapping {
            try await database.withStore {
                try await $0.revokeSigningKey(
                    keyID: keyID, of: owner, recordedAs: auditEntry("key_revoked", keyID, owner))
            }
        }
        guard revoked else {
            Exit.complain("\(owner) has no valid key \(keyID)")
            throw ExitCode.failure
        }
        say("Revoked \(keyID) of \(owner): messages signed with it are refused from the workers' next key refresh.")
    }
}

/// `matomete merchants keys …`: the keys a merchant signs its requests with.
struct MerchantKeys: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "keys",
        abstract: "The keys a merchant signs its charges and cancellations with (at most two valid at once).",
        discussion: """
            Each request a merchant sends carries an HMAC-SHA256 of its topic, key, value and a timestamp \
            under one of its keys (docs/merchants.md, "Signing requests"). Rotate by creating a second key, \
            moving the merchant's producers to it, then revoking the first.
            """,
        subcommands: [Create.self, List.self, Revoke.self])

    struct Create: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Make a key for a merchant; prints its id and secret once. Exits 65 if it holds two valid keys.")
        @OptionGroup var database: DatabaseOptions
        @OptionGroup var encryption: KeyEncryptionOptions
        @OptionGroup var merchant: MerchantNaming

        func run() async throws {
            try await SigningKeyActions.create(
                for: .merchant(try merchant.id()), database: database, sealer: try encryption.sealer())
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "A merchant's keys, revoked ones too.")
        @OptionGroup var database: DatabaseOptions
        @OptionGroup var output: OutputOptions
        @OptionGroup var merchant: MerchantNaming

        func run() async throws {
            try await SigningKeyActions.list(of: .merchant(try merchant.id()), database: database, output: output)
        }
    }

    struct Revoke: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Revoke a merchant's key for good. Exits 1 if the merchant has no such valid key.")
        @OptionGroup var database: DatabaseOptions
        @OptionGroup var merchant: MerchantNaming
        @Option(help: "The key id.") var keyID: String

        func run() async throws {
            try await SigningKeyActions.revoke(keyID, of: .merchant(try merchant.id()), database: database)
        }
    }
}

/// `matomete line-system keys …`: the keys the carrier's line system signs line terminations with.
struct LineSystemCommands: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "line-system", abstract: "The carrier's line system, as Matomete knows it.",
        subcommands: [Keys.self])

    struct Keys: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "The keys the line system signs line terminations with (at most two valid at once).",
            subcommands: [Create.self, List.self, Revoke.self])

        struct Create: AsyncParsableCommand {
            static let configuration = CommandConfiguration(
                abstract: "Make a key for the line system; prints its id and secret once.")
            @OptionGroup var database: DatabaseOptions
            @OptionGroup var encryption: KeyEncryptionOptions

            func run() async throws {
                try await SigningKeyActions.create(
                    for: .lineSystem, database: database, sealer: try encryption.sealer())
            }
        }

        struct List: AsyncParsableCommand {
            static let configuration = CommandConfiguration(abstract: "The line system's keys, revoked ones too.")
            @OptionGroup var database: DatabaseOptions
            @OptionGroup var output: OutputOptions

            func run() async throws {
                try await SigningKeyActions.list(of: .lineSystem, database: database, output: output)
            }
        }

        struct Revoke: AsyncParsableCommand {
            static let configuration = CommandConfiguration(
                abstract: "Revoke a line-system key for good. Exits 1 if there is no such valid key.")
            @OptionGroup var database: DatabaseOptions
            @Option(help: "The key id.") var keyID: String

            func run() async throws {
                try await SigningKeyActions.revoke(keyID, of: .lineSystem, database: database)
            }
        }
    }
}
