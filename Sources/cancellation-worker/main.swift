import ArgumentParser
import Workers

@main
struct CancellationWorker: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "cancellation-worker",
        abstract:
            "Applies charge cancellations, subscription cancellations and line terminations from <prefix>.cancellations.",
        discussion: """
            Each request is applied exactly once, in one database transaction per batch that also \
            writes its result to the outbox and moves the partition's offset stored in PostgreSQL. \
            Run any number of cancellation workers: they share the topic's partitions as one consumer \
            group. Every request must be signed: a cancellation with a valid key of the merchant it \
            names, a line termination with a key of the carrier's line system (docs/merchants.md); one \
            that is not is dead-lettered, never answered. Stops gracefully on SIGTERM (exit 0).
            """)

    @OptionGroup var options: WorkerOptions
    @OptionGroup(title: "Signed requests") var signing: RequestSigningOptions

    func run() async throws {
        try await WorkerProcess.run(
            options.resolve(for: .cancellationWorker), work: .cancellations(signing: signing.resolve()))
    }
}
