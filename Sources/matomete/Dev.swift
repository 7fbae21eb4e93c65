import ArgumentParser
import Authorization
import Billing
import Foundation
import Store

struct Dev: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run the whole system on this machine until Ctrl-C.",
        discussion: """
            Starts librdkafka's mock cluster (3 brokers, in this process), a private PostgreSQL (from the \
            installed server binaries, in a scratch directory; as an unprivileged user when run as root), \
            creates the topics, migrates, and starts two charge workers, a cancellation worker, a \
            billing-cycle worker, a collection worker, a relay, the auth gateway and the merchant site as separate processes. Adds a merchant demo-shop with a site admin. Prints where \
            everything listens and the settings a client needs, then waits. Ctrl-C (or SIGTERM) stops \
            every process cleanly and removes what was created, unless --keep.
            """)

    @Flag(help: "Keep the scratch directory (logs, database) when stopping.") var keep = false
    @OptionGroup var kafka: LocalKafkaOptions

    func run() async throws {
        let system = try await kafka.startSystem()
        let site: (login: String, password: String)
        let shopKey: RequestSigner
        let desk: (agent: (String, String), supervisor: (String, String))
        do {
            try system.launchAll()
            say(
                "Starting 2 charge workers, a cancellation worker, a billing-cycle worker, a collection worker, a relay, the auth gateway, the merchant site and the support desk…"
            )
            try await system.waitUntilReady()
            (site, shopKey, desk) = try await withPostgresClient(
                system.postgres.configuration, logger: LocalSystem.logger
            ) {
                client in
                let store = try await BillingStore.open(client: client, logger: LocalSystem.logger)
                try await store.upsertMerchant(Merchant(id: MerchantID(rawValue: "demo-shop"), name: "Demo Shop"))
                try await system.createTopics(system.topics.merchantLayout("demo-shop", partitions: 3))
                // Its key: for a developer's signed requests, and for the site's cancellations.
                let key = try await system.addSigningKey(for: .merchant("demo-shop"), in: store)
                return (
                    try await system.addSiteAdmin(for: "demo-shop", in: store), key,
                    try await system.addDeskStaff(in: store)
                )
            }
        } catch {
            await system.stop(keep: true)
            throw error
        }
        say("")
        printTable(
            header: ["process", "pid", "endpoints"],
            rows: system.processes.map { entry in
                [
                    entry.name, "\(entry.process.processIdentifier)",
                    entry.name == "auth-gateway"
                        ? "http://127.0.0.1:\(entry.port)/v1/authorizations  /healthz /metrics"
                        : ["merchant-site", "support-desk"].contains(entry.name)
                            ? "http://127.0.0.1:\(entry.port)/  /healthz /metrics"
                            : "http://127.0.0.1:\(entry.port)/healthz  /metrics",
                ]
            })
        say("")
        say("MATOMETE_BOOTSTRAP_SERVERS=\(system.bootstrapServers)")
        say("MATOMETE_DATABASE_URL=\(system.databaseURL)")
        say(
            "MATOMETE_AUTHORIZATION_KEYS=\(system.keyID)=\(system.signingKey.publicKey.rawRepresentation.base64EncodedString())"
        )
        say("MATOMETE_KEY_ENCRYPTION_KEY=\(system.keyEncryptionKey)")
        say(
            "Every request must be signed: add a merchant (matomete merchants add), give it a key (matomete merchants keys create) and sign as docs/merchants.md shows (examples/signed-producer.sh)."
        )
        say("Merchant demo-shop signs with key \(shopKey.keyID), secret \(MessageSignature.hex(shopKey.secret))")
        say(
            "Merchant site: \(system.siteAddress)/  log in as \(site.login), password \(site.password) (merchant demo-shop)"
        )
        say(
            "Support desk: \(system.deskAddress)/  log in as \(desk.agent.0), password \(desk.agent.1) (agent); "
                + "\(desk.supervisor.0), password \(desk.supervisor.1) (supervisor)")
        say("Logs: \(system.directory.path)")
        if system.cluster != nil {
            say("Note: the mock brokers keep at most 5 MiB per partition and drop the oldest beyond that.")
        }
        say("Ready. Press Ctrl-C to stop.")
        await Self.waitForStopSignal()
        say("Stopping…")
        await system.stop(keep: keep)
        say(keep ? "Stopped; kept \(system.directory.path)" : "Stopped and cleaned up.")
    }

    /// Returns on the first SIGINT or SIGTERM.
    static func waitForStopSignal() async {
        signal(SIGINT, SIG_IGN)
        signal(SIGTERM, SIG_IGN)
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let once = StopOnce(continuation)
            for number in [SIGINT, SIGTERM] {
                let source = DispatchSource.makeSignalSource(signal: number, queue: .global())
                source.setEventHandler { once.fire() }
                source.resume()
                once.keep(source)
            }
        }
    }
}

/// Resumes a continuation once, and keeps the signal sources alive until then.
private final class StopOnce: @unchecked Sendable {
    // @unchecked Sendable: every property is used under `lock`.
    private let lock = NSLock()
    private var continuation: CheckedContinuation<Void, Never>?
    private var sources: [any DispatchSourceSignal] = []

    init(_ continuation: CheckedContinuation<Void, Never>) { self.continuation = continuation }

    func keep(_ source: any DispatchSourceSignal) { lock.withLock { sources.append(source) } }

    func fire() {
        let waiting = lock.withLock { () -> CheckedContinuation<Void, Never>? in
            defer { continuation = nil }
            return continuation
        }
        waiting?.resume()
    }
}
