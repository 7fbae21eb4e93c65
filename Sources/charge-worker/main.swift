import ArgumentParser
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
            with a reason code. Until purchase authentication is verified, a charge or subscription \
            must carry an authorization. Stops gracefully on SIGTERM (exit 0).
            """)

    @OptionGroup var options: WorkerOptions

    func run() async throws {
        try await WorkerProcess.run(options.resolve(for: .chargeWorker), work: .charges)
    }
}
