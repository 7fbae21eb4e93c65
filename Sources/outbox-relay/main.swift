import ArgumentParser
import Workers

@main
struct OutboxRelayCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "outbox-relay",
        abstract: "Publishes the outbox to Kafka: merchant results, line bills, settlements and dead letters.",
        discussion: """
            Claims the oldest unpublished messages for a lease, publishes them with the idempotent \
            producer and deletes each once Kafka has acknowledged it. Any number of relays can run. \
            A message may be published more than once (after a crash), always with the same id \
            header, so consumers can drop repeats. --group-id is not used. Stops gracefully on \
            SIGTERM (exit 0).
            """)

    @OptionGroup var options: WorkerOptions

    func run() async throws {
        try await WorkerProcess.run(options.resolve(for: .outboxRelay), work: .relay)
    }
}
