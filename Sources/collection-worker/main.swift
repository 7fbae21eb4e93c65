import ArgumentParser
import Workers

@main
struct CollectionWorker: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "collection-worker",
        abstract:
            "Applies the billing system's payments, payment reversals and write-offs of line bills from <prefix>.collections.",
        discussion: """
            Each report is applied exactly once, in one database transaction per batch that also writes its \
            result to <prefix>.collection-results through the outbox and moves the partition's offset stored in \
            PostgreSQL. A payment is shared among the bill's merchants in proportion to what each still has open \
            (docs/finance.md); every merchant's share is booked into the payout period of the report's date, or \
            the first period not paid out yet. Run any number of collection workers: they share the topic's \
            partitions as one consumer group. Only the carrier's billing system may write the topic (a Kafka ACL: \
            docs/kafka.md). Stops gracefully on SIGTERM (exit 0).
            """)

    @OptionGroup var options: WorkerOptions

    func run() async throws {
        try await WorkerProcess.run(options.resolve(for: .collectionWorker), work: .collections)
    }
}
