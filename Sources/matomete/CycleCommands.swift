import ArgumentParser
import Billing
import Contract
import Foundation
import Kafka
import Store

struct CycleCommands: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "cycle", abstract: "Billing cycles: closing a month.", subcommands: [Close.self])

    struct Close: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Ask the billing-cycle workers to close a month: bill every line and settle with every merchant.",
            discussion: """
                Sends {"type":"close","cycle":"YYYY-MM"} to the billing-cycles topic, where the \
                billing-cycle workers take it in order. Sending it again is harmless: a close that has \
                begun or ended is not begun again, and a close interrupted by a crash carries on from \
                its last chunk. With --wait, follows the close in the database and prints the \
                settlements; exits 75 if it has not finished when --timeout ends (it goes on).
                """)
        @OptionGroup var cluster: ClusterOptions
        @OptionGroup var database: DatabaseOptions
        @Argument(help: ArgumentHelp("The month to close.", valueName: "YYYY-MM")) var cycle: String
        @Flag(help: "Follow the close until it ends and print the settlements (needs the database).") var wait = false
        @Option(help: "With --wait: give up waiting after this many seconds.") var timeout = 3_600
        @Flag(
            help:
                "Send it although the month has not ended in Japan (workers refuse unless started with --allow-early-close). A month that has not begun is never closed."
        )
        var early = false

        func run() async throws {
            guard let cycle = BillingCycle(cycle) else { throw ValidationError("The cycle must be YYYY-MM.") }
            let current = BillingCycle(containing: Int64(Date().timeIntervalSince1970))
            if cycle > current {
                throw ValidationError(
                    "\(cycle) has not begun in Japan (it is \(current)); a month is closed once it ends.")
            }
            if cycle == current, !early {
                throw ValidationError(
                    "\(cycle) has not ended in Japan (it is \(current)); pass --early to send the close anyway.")
            }
            try await Exit.mapping {
                let producer = try cluster.producer()
                let report = try await producer.send(
                    KafkaProducerMessage(
                        topic: cluster.topics.billingCycles, key: cycle.description,
                        value: CycleCommand.closeMessage(cycle)))
                await producer.shutdown()
                say("Sent the close of \(cycle) (\(report.topicPartition) offset \(report.offset)).")
                guard wait else { return }
                try await follow(cycle)
            }
        }

        private func follow(_ cycle: BillingCycle) async throws {
            let timeout = self.timeout
            let settlements = try await database.withStore { store -> [SettlementMessage]? in
                let deadline = ContinuousClock.now + .seconds(timeout)
                var bar: ProgressBar?
                while ContinuousClock.now < deadline {
                    if let status = try await store.closeStatus(cycle) {
                        if status.isClosed {
                            bar?.complete()
                            bar?.finish()
                            return try await store.settlements(cycle).map(SettlementMessage.init)
                        }
                        let remaining = try await store.linesWithOpenCycle(cycle)
                        let total = Int(status.linesClosed + remaining)
                        if bar == nil || bar?.total != max(total, 1) {
                            bar = ProgressBar(title: "Closing \(cycle)", total: total)
                        }
                        bar?.set(Int(status.linesClosed))
                    }
                    try await Task.sleep(for: .seconds(1))
                }
                bar?.finish()
                return nil
            }
            guard let settlements else {
                Exit.complain(
                    "the close of \(cycle) has not ended within \(timeout) s; it goes on (see `matomete status`)")
                throw Exit.tryLater
            }
            say("")
            printSettlements(settlements, names: [:])
        }
    }
}

struct Settlements: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Each merchant's settlement for a closed month, as published.",
        discussion: "Exits 1 if the month is not closed (yet).")
    @OptionGroup var database: DatabaseOptions
    @OptionGroup var output: OutputOptions
    @Argument(help: ArgumentHelp("The month.", valueName: "YYYY-MM")) var cycle: String

    func run() async throws {
        guard let cycle = BillingCycle(cycle) else { throw ValidationError("The cycle must be YYYY-MM.") }
        try await Exit.mapping {
            let (status, settlements, merchants) = try await database.withStore { store in
                (
                    try await store.closeStatus(cycle), try await store.settlements(cycle).map(SettlementMessage.init),
                    try await store.merchants()
                )
            }
            guard status?.isClosed == true else {
                Exit.complain("\(cycle) is not closed\(status == nil ? "" : " yet (its close is running)")")
                throw ExitCode.failure
            }
            if output.json { return try output.print(settlements) }
            printSettlements(settlements, names: merchants.mapValues(\.name))
        }
    }
}

/// The settlement table: merchant, lines, gross, average, the fee's rule and
/// band, the fee before tax, the tax added, net, and a total row.
func printSettlements(_ settlements: [SettlementMessage], names: [MerchantID: String]) {
    var rows = settlements.sorted { $0.merchantId < $1.merchantId }.map { settlement in
        [
            names[MerchantID(rawValue: settlement.merchantId)] ?? settlement.merchantId, settlement.lines.formatted(),
            settlement.grossAmount.formatted(), settlement.averagePerLine.formatted(), settlement.feeRule,
            "\(settlement.band)/\(settlement.tariff.bands.count)", settlement.feeBeforeTax.formatted(),
            settlement.tax.formatted(), settlement.netAmount.formatted(),
        ]
    }
    rows.append([
        "total", settlements.reduce(0) { $0 + $1.lines }.formatted(),
        settlements.reduce(0) { $0 + $1.grossAmount }.formatted(), "", "", "",
        settlements.reduce(0) { $0 + $1.feeBeforeTax }.formatted(), settlements.reduce(0) { $0 + $1.tax }.formatted(),
        settlements.reduce(0) { $0 + $1.netAmount }.formatted(),
    ])
    printTable(
        header: ["merchant", "lines", "gross ¥", "avg/line ¥", "fee rule", "band", "fee ¥", "tax ¥", "net ¥"],
        rows: rows)
}
