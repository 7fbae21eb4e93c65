import ArgumentParser
import Foundation
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

    @Option(
        help: ArgumentHelp(
            "Seconds a claimed batch stays this relay's before another relay may publish it again. [env: MATOMETE_OUTBOX_LEASE] (default: 30)",
            valueName: "seconds"))
    var lease: Int?

    func run() async throws {
        let environment = ProcessInfo.processInfo.environment
        let seconds = lease ?? environment["MATOMETE_OUTBOX_LEASE"].flatMap(Int.init) ?? 30
        guard (1...3600).contains(seconds) else { throw ValidationError("--lease must be 1 to 3600 seconds.") }
        try await WorkerProcess.run(options.resolve(for: .outboxRelay), work: .relay(lease: .seconds(seconds)))
    }
}
