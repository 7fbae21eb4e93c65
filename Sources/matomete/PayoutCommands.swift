import ArgumentParser
import Billing
import Contract
import Foundation
import Store

/// `matomete payouts`: pay merchants what was collected.
struct PayoutCommands: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "payouts", abstract: "Pay each merchant what was collected for it, less the fee.",
        subcommands: [Run.self, Show.self])

    struct Run: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract:
                "Make every merchant's payout statement for a period and publish it (once; a re-run changes nothing).",
            discussion: """
                A period is the month money moved in: payments received, reversed and written off, by the day \
                the billing system reported. Each merchant is paid its share of what was collected in the \
                period, less the fee of each billed month in proportion (docs/finance.md, "Payouts"), plus any \
                negative carry from its last statement. Statements go to <prefix>.payouts and to each \
                merchant's <prefix>.merchant.<id>.payouts through the outbox (an outbox relay publishes them). \
                Periods run in order; collection workers wait while a run commits, and what they apply after \
                it is booked into the next period. Exits 0 (also when the period had run: its statements are \
                printed again), 1 when an earlier period must run first or a month is not settled yet, 64 for \
                a period that has not begun, or not ended (without --early), 69 when PostgreSQL cannot be \
                reached.
                """)

        @OptionGroup var database: DatabaseOptions
        @OptionGroup var output: OutputOptions
        @Argument(help: ArgumentHelp("The period: the month the money moved in.", valueName: "YYYY-MM"))
        var period: String
        @Option(
            help: ArgumentHelp(
                "Pay on the last day of the month this many months after the period. [env: MATOMETE_PAYOUT_DELAY_MONTHS]",
                valueName: "months"))
        var payMonthsAfter: Int?
        @Option(help: ArgumentHelp("The topic prefix. [env: MATOMETE_TOPIC_PREFIX]", valueName: "prefix"))
        var topicPrefix: String?
        @Flag(help: "Pay out a period that has not ended yet (demos and tests).") var early = false

        func run() async throws {
            guard let period = BillingCycle(period) else { throw ValidationError("The period must be YYYY-MM.") }
            let environment = ProcessInfo.processInfo.environment
            let delayText = payMonthsAfter.map(String.init) ?? environment["MATOMETE_PAYOUT_DELAY_MONTHS"] ?? "1"
            guard let delay = Int(delayText), (0...12).contains(delay) else {
                throw ValidationError("--pay-months-after must be 0 to 12, not \(delayText).")
            }
            let current = BillingCycle(containing: Int64(Date().timeIntervalSince1970))
            guard period <= current else {
                throw ValidationError("\(period) has not begun (it is \(current) in Japan): no money has moved in it.")
            }
            guard early || period < current else {
                throw ValidationError(
                    "\(period) has not ended (it is \(current) in Japan); pass --early to pay it out now.")
            }
            let payableOn = CalendarDay.last(of: (0..<delay).reduce(period) { month, _ in month.next })
            let topics = Topics(prefix: topicPrefix ?? environment["MATOMETE_TOPIC_PREFIX"] ?? "matomete")
            try await Exit.mapping {
                let run = try await database.withStore { store in
                    try await store.runPayouts(
                        period, payableOn: payableOn, publish: PayoutMessages(topics: topics).statement)
                }
                let messages = run.statements.map { PayoutMessage($0.statement, payableOn: $0.payableOn) }
                if output.json { return try output.print(messages) }
                say(
                    run.alreadyRun
                        ? "Payouts for \(period) had run already; nothing changed. Their statements:"
                        : "Payouts for \(period): \(messages.count) statements, published through the outbox.")
                printPayouts(messages)
            }
        }
    }

    struct Show: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "The payout statements of a period, as published.",
            discussion: "Exits 1 when the period has not been paid out.")

        @OptionGroup var database: DatabaseOptions
        @OptionGroup var output: OutputOptions
        @Argument(help: ArgumentHelp("The period.", valueName: "YYYY-MM")) var period: String
        @Option(help: "Only this merchant's statement.") var merchant: String?

        func run() async throws {
            guard let period = BillingCycle(period) else { throw ValidationError("The period must be YYYY-MM.") }
            try await Exit.mapping {
                let (statements, lastPaid) = try await database.withStore { store in
                    (try await store.payouts(period), try await store.lastPaidPeriod())
                }
                guard let lastPaid, period <= lastPaid else {
                    Exit.complain("\(period) has not been paid out (run: matomete payouts run \(period))")
                    throw ExitCode.failure
                }
                let messages = statements.map { PayoutMessage($0.statement, payableOn: $0.payableOn) }
                    .filter { merchant == nil || $0.merchantId == merchant }
                if output.json { return try output.print(messages) }
                printPayouts(messages)
            }
        }
    }
}

/// The payout table: one row per merchant and billed month, then each merchant's statement (its lines'
/// payable, the carry in, what is paid and on which day, and any carry out), and a total.
func printPayouts(_ messages: [PayoutMessage]) {
    var rows: [[String]] = []
    for message in messages.sorted(by: { $0.merchantId < $1.merchantId }) {
        for line in message.lines {
            rows.append([
                message.merchantId, line.cycle, line.collected.formatted(), line.reversed.formatted(),
                line.writtenOff.formatted(), line.fee.formatted(), line.payable.formatted(), "", "", "",
            ])
        }
        rows.append([
            message.merchantId, "statement", "", "", "", "", message.lines.reduce(0) { $0 + $1.payable }.formatted(),
            message.carriedIn.formatted(), message.amountPayable.formatted(),
            message.payableOn + (message.carriedOut < 0 ? " (carried: \(message.carriedOut.formatted()))" : ""),
        ])
    }
    let lines = messages.flatMap(\.lines)
    rows.append([
        "total", "", lines.reduce(0) { $0 + $1.collected }.formatted(),
        lines.reduce(0) { $0 + $1.reversed }.formatted(),
        lines.reduce(0) { $0 + $1.writtenOff }.formatted(), lines.reduce(0) { $0 + $1.fee }.formatted(),
        lines.reduce(0) { $0 + $1.payable }.formatted(), messages.reduce(0) { $0 + $1.carriedIn }.formatted(),
        messages.reduce(0) { $0 + $1.amountPayable }.formatted(), "",
    ])
    printTable(
        header: [
            "merchant", "billed month", "collected ¥", "reversed ¥", "written off ¥", "fee ¥", "payable ¥",
            "carried in ¥", "pay ¥", "on",
        ], rows: rows)
}

/// `matomete collections`: where the money of each billed month stands.
struct CollectionCommands: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "collections",
        abstract: "Where each merchant's billed months stand: collected, written off, open.",
        subcommands: [Status.self])

    struct Status: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Each merchant's billed month: billed, collected, written off, open, paid out, and the check.",
            discussion: """
                For every settled month (or MONTH alone), per merchant: the settlement's gross and net; what \
                was collected (payments less reversals), written off and is still open, in yen as billed; \
                what payouts have paid out and what awaits the next payout, after the fee; and the check that \
                paid out + to pay out + written off + open = net, to the yen (written off and open after \
                the fee that is waived or still due on them). "age" is how many months ago the bill was \
                issued (the ageing of what is open). Exits 0 when every month reconciles, 1 otherwise.
                """)

        @OptionGroup var database: DatabaseOptions
        @OptionGroup var output: OutputOptions
        @Argument(help: ArgumentHelp("Only this billed month.", valueName: "YYYY-MM")) var month: String?

        struct Row: Encodable {
            var merchantId, cycle: String
            var ageMonths: Int
            var gross, net, collected, writtenOff, open, paidOut, toPayOut, writtenOffNet, openNet: Int64
            var reconciles: Bool
        }

        func run() async throws {
            let cycle = try month.map { text in
                guard let cycle = BillingCycle(text) else { throw ValidationError("The month must be YYYY-MM.") }
                return cycle
            }
            try await Exit.mapping {
                let positions = try await database.withStore { try await $0.collectionPositions(cycle) }
                let current = BillingCycle(containing: Int64(Date().timeIntervalSince1970))
                func age(_ cycle: BillingCycle) -> Int {
                    (current.year - cycle.year) * 12 + current.month - cycle.month - 1
                }
                let rows = positions.map {
                    Row(
                        merchantId: $0.merchantID.rawValue, cycle: $0.cycle.description, ageMonths: age($0.cycle),
                        gross: $0.gross.amount, net: $0.net.amount, collected: $0.collected.amount,
                        writtenOff: $0.writtenOff.amount, open: $0.open.amount, paidOut: $0.paidOut.amount,
                        toPayOut: $0.toPayOut.amount, writtenOffNet: $0.writtenOffNet.amount,
                        openNet: $0.openNet.amount, reconciles: $0.reconciles)
                }
                if output.json {
                    try output.print(rows)
                } else {
                    printTable(
                        header: [
                            "month", "age", "merchant", "gross ¥", "collected ¥", "written off ¥", "open ¥", "net ¥",
                            "paid out ¥", "to pay ¥", "w/o net ¥", "open net ¥", "check",
                        ],
                        rows: rows.map {
                            [
                                $0.cycle, "\($0.ageMonths)", $0.merchantId, $0.gross.formatted(),
                                $0.collected.formatted(), $0.writtenOff.formatted(), $0.open.formatted(),
                                $0.net.formatted(), $0.paidOut.formatted(), $0.toPayOut.formatted(),
                                $0.writtenOffNet.formatted(), $0.openNet.formatted(), $0.reconciles ? "ok" : "MISMATCH",
                            ]
                        })
                }
                if rows.contains(where: { !$0.reconciles }) { throw ExitCode.failure }
            }
        }
    }
}

/// A payout run's statements as the contract publishes them: on `payouts`
/// (finance's) and on the merchant's own payouts topic, keyed by merchant.
struct PayoutMessages: Sendable {
    /// Where they are published.
    var topics: Topics

    /// The messages for `topics`.
    init(topics: Topics = Topics()) { self.topics = topics }

    /// The statement's message, paid on `payableOn`, for finance and for the merchant.
    @Sendable func statement(_ statement: PayoutStatement, payableOn: CalendarDay) throws -> [OutboxMessage] {
        let message = PayoutMessage(statement, payableOn: payableOn)
        let payload = try message.jsonBytes()
        return [topics.payouts, topics.merchantPayouts(message.merchantId)].map {
            OutboxMessage(topic: $0, key: message.merchantId, id: message.id, payload: payload)
        }
    }
}
