import ArgumentParser
import Billing
import Foundation
import ServerKit
import Workers

@main
struct BillingCycleWorker: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "billing-cycle-worker",
        abstract: "Closes billing cycles: bills every line for the month and settles with every merchant.",
        discussion: """
            A message {"type":"close","cycle":"2026-11"} on <prefix>.billing-cycles begins the close. \
            Every running billing-cycle worker then closes lines, a chunk at a time, each chunk in a \
            shard no other worker holds; the chunk that finishes the last shard computes the \
            settlements. Line bills and settlements go to the outbox, published once each by the \
            relays. A crash loses at most one chunk's transaction, which another worker does again. \
            Stops gracefully on SIGTERM (exit 0).
            """)

    @OptionGroup var options: WorkerOptions

    @Flag(
        help: ArgumentHelp(
            "Accept a close of the current month before it ends (demos and tests); a month that has not begun is refused all the same. [env: MATOMETE_ALLOW_EARLY_CLOSE=true]"
        ))
    var allowEarlyClose = false

    @Option(help: ArgumentHelp("Lines closed per transaction. [env: MATOMETE_CHUNK_LINES] (default: 1000)"))
    var chunkLines: Int?

    @Option(
        help: ArgumentHelp(
            "Chunks this process closes at once, each in a different shard, on its own connection. [env: MATOMETE_CLOSE_CONCURRENCY] (default: 4)"
        ))
    var closeConcurrency: Int?

    @Option(
        help: ArgumentHelp(
            "Japan's consumption tax rates by the first month each applies to, as MONTH=PERCENT, comma-separated; used for tariffs that add tax. [env: MATOMETE_CONSUMPTION_TAX] (default: 2000-01=5,2014-04=8,2019-10=10)",
            valueName: "rates"))
    var consumptionTax: String?

    func run() async throws {
        let environment = ProcessInfo.processInfo.environment
        let early = allowEarlyClose || environment["MATOMETE_ALLOW_EARLY_CLOSE"] == "true"
        let chunk = try Options.integer(
            chunkLines, "MATOMETE_CHUNK_LINES", default: 1000, in: 1...100_000, name: "--chunk-lines")
        let concurrency = try Options.integer(
            closeConcurrency, "MATOMETE_CLOSE_CONCURRENCY", default: 4, in: 1...32, name: "--close-concurrency")
        let rates = consumptionTax ?? environment["MATOMETE_CONSUMPTION_TAX"] ?? "2000-01=5,2014-04=8,2019-10=10"
        let tax: ConsumptionTax
        do {
            tax = try ConsumptionTax(parsing: rates)
        } catch {
            throw ValidationError("--consumption-tax: \(error.description).")
        }
        try await WorkerProcess.run(
            options.resolve(for: .billingCycleWorker),
            work: .billingCycles(allowEarlyClose: early, chunkLines: chunk, concurrency: concurrency, tax: tax))
    }
}
