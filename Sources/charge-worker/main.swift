import ArgumentParser
import Authorization
import Foundation
import Workers

@main
struct ChargeWorker: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "charge-worker",
        abstract: "Applies one-time charges and subscription starts from <prefix>.charges.",
        discussion: """
            Each request is applied exactly once, in one database transaction per batch that also \
            writes its result to the outbox and moves the partition's offset stored in PostgreSQL. \
            Run any number of charge workers: they share the topic's partitions as one consumer group. \
            Messages that are not requests at all are dead-lettered; invalid requests are rejected \
            with a reason code. Every request must be signed with a valid key of the merchant it names \
            (headers matomete-key-id, matomete-timestamp, matomete-signature; docs/merchants.md); one \
            that is not is dead-lettered, never answered. Every charge and subscription must carry a purchase authorization \
            from the auth gateway: signed with one of the accepted keys, for exactly this line, \
            merchant, kind, amount and reference, unexpired when first used, and used once (a repeat \
            gets the first answer). Stops gracefully on SIGTERM (exit 0).
            """)

    @OptionGroup var options: WorkerOptions
    @OptionGroup(title: "Signed requests") var signing: RequestSigningOptions

    @Option(
        help: ArgumentHelp(
            "The auth gateway's public keys accepted, as key-id=base64 (raw Ed25519, 32 bytes), comma-separated; list two while rotating. [env: MATOMETE_AUTHORIZATION_KEYS]",
            valueName: "keys"))
    var authorizationKeys: String?

    func run() async throws {
        let settings = try options.resolve(for: .chargeWorker)
        let list = authorizationKeys ?? ProcessInfo.processInfo.environment["MATOMETE_AUTHORIZATION_KEYS"] ?? ""
        guard let keys = try? SigningKeys.publicKeys(list: list), !keys.isEmpty else {
            throw ValidationError(
                "Give the auth gateway's public keys with --authorization-keys or MATOMETE_AUTHORIZATION_KEYS (key-id=base64,…)."
            )
        }
        try await WorkerProcess.run(
            settings, work: .charges(signing: signing.resolve(), verifier: AuthorizationVerifier(keys: keys)))
    }
}
