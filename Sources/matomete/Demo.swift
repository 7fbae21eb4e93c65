import ArgumentParser
import Authorization
import Billing
import Contract
import Foundation
import Kafka
import Logging
import Store
import Synchronization

struct Demo: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run a month of Matomete on this machine and print the settlements and payouts.",
        discussion: """
            Starts the embedded default (librdkafka's mock cluster with 3 brokers in this process, a \
            private PostgreSQL, two charge workers, a cancellation worker, a billing-cycle worker, a collection worker, a \
            relay and the auth gateway as separate processes), loads lines and four merchants, buys \
            through the gateway (purchase ID and password, checked against the line's address) and \
            Kafka, cancels some purchases, closes the month (last month, so that its bills can be paid today) \
            and prints each merchant's settlement and the reconciliation; then the billing system pays most \
            bills, some in part, one bounces, a few are written off, and the demo pays the money out and \
            prints the payout table and its reconciliation. Exits 0 when every yen reconciles, 1 otherwise. Removes \
            everything it created unless --keep.
            """)

    @Option(help: "Access lines to load.") var lines = 10_000
    @Option(help: "Lines whose users buy (each gets a purchase ID).") var buyers = 400
    @Option(help: "Purchases to make through the gateway.") var purchases = 1_200
    @Flag(help: "Keep the scratch directory (logs, database) and print where it is.") var keep = false
    @Flag(help: "Keep the system running at the end, to look around the merchant site, until Ctrl-C.") var serve = false
    @OptionGroup var kafka: LocalKafkaOptions

    func run() async throws {
        guard (100...1_000_000).contains(lines), (10...lines).contains(buyers), (10...100_000).contains(purchases)
        else { throw ValidationError("Use 100–1,000,000 lines, 10 to that many buyers, and 10–100,000 purchases.") }
        let system = try await kafka.startSystem()
        let reconciled: Bool
        do {
            reconciled = try await DemoRun(
                system: system, serve: serve, lines: lines, buyers: buyers, purchases: purchases
            ).run()
        } catch {
            say("Stopping after an error; logs are in \(system.directory.path)")
            await system.stop(keep: true)
            throw error
        }
        if serve {
            say("Serving until Ctrl-C…")
            await Dev.waitForStopSignal()
        }
        await system.stop(keep: keep)
        if keep { say("Logs and data kept in \(system.directory.path)") }
        if !reconciled { throw ExitCode.failure }
    }
}

/// One demo month.
struct DemoRun {
    let system: LocalSystem
    let serve: Bool
    let lines: Int
    let buyers: Int
    let purchases: Int
    let logger = LocalSystem.logger

    /// The launch merchants, generic names: what they sell and how.
    static let merchants: [(id: String, name: String, one: [Int64], monthly: Int64?)] = [
        ("points-shop", "Points Shop", [100, 300, 500], nil),
        ("farm-game", "Farming Game", [100, 200, 300], nil),
        ("video", "Video Service", [1_000, 1_500, 2_000], 990),
        ("fan-club", "Entertainment Fan Club", [3_000], 550),
    ]

    func run() async throws -> Bool {
        // Last month, so that its bills can be paid today (a payment is dated after its month).
        let today = CalendarDay(containing: Int64(Date().timeIntervalSince1970))
        let cycle = today.cycle.previous
        let (plan, site, desk) = try await withPostgresClient(system.postgres.configuration, logger: logger) {
            client in
            let store = try await BillingStore.open(client: client, logger: logger)
            return (
                try await prepare(store, cycle: cycle), try await system.addSiteAdmin(for: "video", in: store),
                try await system.addDeskStaff(in: store)
            )
        }
        try system.launchAll()
        say(
            "Starting 2 charge workers, a cancellation worker, a billing-cycle worker, a collection worker, a relay, the auth gateway, the merchant site and the support desk…"
        )
        try await system.waitUntilReady()
        let collector = OutputCollector(system: system)
        let reading = Task { try await collector.run() }
        defer { reading.cancel() }

        let producer = try KafkaProducer(
            configuration: KafkaProducerConfiguration(bootstrapServers: system.bootstrapServerList),
            logger: logger)
        /// Each merchant signs what it sends with its own key.
        func signed(_ topic: String, _ purchase: Purchase, _ value: String) -> KafkaProducerMessage {
            let headers = plan.signers[purchase.merchant]!.headers(
                topic: topic, key: Array(purchase.line.utf8), value: Array(value.utf8))
            return KafkaProducerMessage(
                topic: topic, key: purchase.line, value: value,
                headers: headers.map { KafkaHeader(name: $0.name, text: $0.value) })
        }

        // Purchases through the gateway, then to Kafka with their authorizations.
        var bar = ProgressBar(title: "Authorizing purchases", total: plan.purchases.count)
        var authorized: [(Purchase, String)] = []
        var refusedAtGateway: [String: Int] = [:]
        for chunk in stride(from: 0, to: plan.purchases.count, by: 16) {
            let batch = Array(plan.purchases[chunk..<min(chunk + 16, plan.purchases.count)])
            let answers = try await withThrowingTaskGroup(of: (Purchase, String?, String?).self) { group in
                for purchase in batch { group.addTask { try await authorize(purchase) } }
                return try await group.reduce(into: []) { $0.append($1) }
            }
            for (purchase, token, refusal) in answers {
                if let token {
                    authorized.append((purchase, token))
                } else {
                    refusedAtGateway[refusal ?? "?", default: 0] += 1
                }
            }
            bar.advance(by: batch.count)
        }
        bar.finish()
        let charges = authorized.map { purchase, token in
            signed(system.topics.charges, purchase, purchase.json(token))
        }
        try await producer.send(charges).throwIfAnyFailed()
        try await collector.waitForResults(charges.count, title: "Applying purchases")

        // Some purchases are cancelled in the month.
        let accepted = collector.acceptedReferences()
        let cancels = authorized.map(\.0).filter { $0.kind == "charge" && accepted.contains($0.reference) }
            .enumerated().filter { $0.offset % 25 == 0 }.map(\.element)
        try await producer.send(
            cancels.map { signed(system.topics.cancellations, $0, $0.cancelJSON) }
        ).throwIfAnyFailed()
        try await collector.waitForResults(charges.count + cancels.count, title: "Applying cancellations")

        // Close the month.
        try await producer.send(
            [
                KafkaProducerMessage(
                    topic: system.topics.billingCycles, key: nil, value: CycleCommand.closeMessage(cycle))
            ]
        ).throwIfAnyFailed()
        try await collector.waitForClose(lines: lines, title: "Closing \(cycle)")

        // The billing system reports on the bills; the month's money is paid out.
        let reports = Self.collectionReports(collector.bills().filter { $0.cycle == cycle.description }, on: today)
        try await producer.send(
            reports.map { KafkaProducerMessage(topic: system.topics.collections, key: $0.line, value: $0.json) }
        ).throwIfAnyFailed()
        await producer.shutdown()
        try await collector.waitForCollectionResults(reports.count, title: "Collecting")
        let run = try await withPostgresClient(system.postgres.configuration, logger: logger) { client in
            let store = try await BillingStore.open(client: client, logger: logger)
            return (
                try await store.runPayouts(
                    today.cycle, payableOn: .last(of: today.cycle.next),
                    publish: PayoutMessages(topics: system.topics).statement),
                try await store.collectionPositions(cycle)
            )
        }

        let billed = report(
            cycle: cycle, plan: plan, authorized: authorized.map(\.0), cancelled: cancels, collector: collector,
            refusedAtGateway: refusedAtGateway)
        let collected = reportCollection(
            cycle: cycle, reports: reports, run: run.0, positions: run.1, collector: collector)
        say("")
        say(
            "Merchant site: \(system.siteAddress)/  log in as \(site.login), password \(site.password) "
                + "(Video Service)\(serve ? "" : "; run with --serve to keep it up")")
        say(
            "Support desk: \(system.deskAddress)/  log in as \(desk.agent.0), password \(desk.agent.1) (agent); "
                + "\(desk.supervisor.0), password \(desk.supervisor.1) (supervisor)")
        return billed && collected
    }

    /// One report of the billing system on a bill.
    struct CollectionReport {
        var line: String
        var json: String
        /// Yen it moves: received (positive), bounced (negative), or written off.
        var received: Int64
        var writtenOff: Bool
    }

    /// Most bills paid in full today; every tenth from the fourth paid half and left open; every tenth from
    /// the eighth paid a third and the rest written off; the first paid in full and then bounced.
    static func collectionReports(_ bills: [LineBillMessage], on today: CalendarDay) -> [CollectionReport] {
        var reports: [CollectionReport] = []
        func payment(_ bill: LineBillMessage, _ id: String, _ amount: Int64) {
            reports.append(
                CollectionReport(
                    line: bill.lineId,
                    json:
                        #"{"type":"payment","lineId":"\#(bill.lineId)","billId":"\#(bill.id)","paymentId":"\#(id)","amount":\#(amount),"date":"\#(today)"}"#,
                    received: amount, writtenOff: false))
        }
        for (index, bill) in bills.filter({ $0.total > 0 }).sorted(by: { $0.lineId < $1.lineId }).enumerated() {
            switch index % 10 {
            case 3:
                payment(bill, "pay-\(bill.lineId)", max(1, bill.total / 2))
            case 7:
                if bill.total >= 3 { payment(bill, "pay-\(bill.lineId)", bill.total / 3) }
                reports.append(
                    CollectionReport(
                        line: bill.lineId,
                        json:
                            #"{"type":"write-off","lineId":"\#(bill.lineId)","billId":"\#(bill.id)","date":"\#(today)"}"#,
                        received: 0, writtenOff: true))
            default:
                payment(bill, "pay-\(bill.lineId)", bill.total)
                if index == 0 {
                    reports.append(
                        CollectionReport(
                            line: bill.lineId,
                            json:
                                #"{"type":"payment-reversal","lineId":"\#(bill.lineId)","paymentId":"pay-\#(bill.lineId)","date":"\#(today)"}"#,
                            received: -bill.total, writtenOff: false))
                }
            }
        }
        return reports
    }

    struct Plan {
        var purchases: [Purchase]
        /// Each merchant's signing key, by merchant id.
        var signers: [String: RequestSigner]
    }

    struct Purchase: Sendable {
        var purchaseID: String
        var password: String
        var line: String
        var address: String
        var merchant: String
        var kind: String
        var amount: Int64
        var reference: String

        func json(_ token: String) -> String {
            let amountField = kind == "charge" ? "amount" : "monthlyAmount"
            let idField = kind == "charge" ? "chargeId" : "subscriptionId"
            let label = kind == "charge" ? "item" : "monthly plan"
            return
                #"{"type":"\#(kind)","merchantId":"\#(merchant)","\#(idField)":"\#(reference)","lineId":"\#(line)","\#(amountField)":\#(amount),"description":"\#(label)","authorization":"\#(token)"}"#
        }

        var cancelJSON: String {
            #"{"type":"charge-cancel","merchantId":"\#(merchant)","chargeId":"\#(reference)","lineId":"\#(line)"}"#
        }
    }

    /// The 2012 revision's shape: a fixed amount per line for an average of ¥901–1,500 a line, 3 % from
    /// ¥1,501, tax added (press coverage of 2012-05-29); the per-line amounts and the bands below ¥901 are
    /// examples (docs/finance.md).
    static let banded2012 = try! BandedTariff(  // Constant, valid bands.
        bands: [
            TariffBand(from: 0, .perLine(sen: 2_500)), TariffBand(from: 601, .perLine(sen: 3_500)),
            TariffBand(from: 901, .perLine(sen: 4_550)), TariffBand(from: 1_501, .percentage(basisPoints: 300)),
        ], tax: .added)

    static func line(_ number: Int) -> String { "L\(String(format: "%07d", number))" }
    static func address(_ number: Int) -> String { "10.\(number / 65536).\(number / 256 % 256).\(number % 256)" }

    /// Loads lines, merchants, addresses and credentials; plans the purchases.
    private func prepare(_ store: BillingStore, cycle: BillingCycle) async throws -> Plan {
        say("Loading \(lines.formatted()) lines and \(Self.merchants.count) merchants…")
        let lineRecords = (0..<lines).map { number -> Line in
            // One line in a hundred is ADSL without Flets.net: it cannot be charged.
            let type: LineType = number % 100 == 99 ? .adsl : number % 3 == 0 ? .bFlets : .hikariNext
            return Line(id: LineID(rawValue: Self.line(number)), type: type)
        }
        _ = try await store.importLines(lineRecords, openCycle: cycle)
        var signers: [String: RequestSigner] = [:]
        for merchant in Self.merchants {
            // The video service is on a 2012-style banded tariff, tax added; the others on the launch tariff.
            let tariffs =
                merchant.id == "video"
                ? TariffSchedule(versions: [TariffVersion(effectiveFrom: cycle, tariff: Self.banded2012)])
                : TariffSchedule()
            try await store.upsertMerchant(
                Merchant(id: MerchantID(rawValue: merchant.id), name: merchant.name, tariffs: tariffs))
            try await system.createTopics(system.topics.merchantLayout(merchant.id, partitions: 3))
            signers[merchant.id] = try await system.addSigningKey(for: .merchant(merchant.id), in: store)
        }
        var addresses: [String: [String]] = [:]
        for number in 0..<lines { addresses[Self.line(number)] = [Self.address(number) + "/32"] }
        try await store.assignAddresses(addresses)

        // Buyers: every (lines / buyers)-th line, so a few ADSL lines are among them.
        // Buyers: evenly spread lines; every fortieth an ADSL line without Flets.net (the gateway refuses those).
        let step = max(1, lines / buyers)
        let buyerNumbers = (0..<buyers).map { index in
            index % 40 == 39 ? min(lines - 1, index * step / 100 * 100 + 99) : index * step
        }
        var bar = ProgressBar(title: "Issuing purchase IDs", total: buyerNumbers.count)
        for chunk in stride(from: 0, to: buyerNumbers.count, by: 8) {
            let batch = Array(buyerNumbers[chunk..<min(chunk + 8, buyerNumbers.count)])
            try await withThrowingTaskGroup(of: Void.self) { group in
                for number in batch {
                    group.addTask {
                        // A lighter scrypt cost than production, so the demo issues hundreds quickly.
                        let hash = try PasswordHash.make(password: "pw-\(number)", logRounds: 10)
                        try await store.issueCredential(
                            purchaseID: "P\(number)", lineID: Self.line(number), hash: hash.hash, salt: hash.salt,
                            logRounds: hash.logRounds, blockSize: hash.blockSize, parallelism: hash.parallelism)
                    }
                }
                try await group.waitForAll()
            }
            bar.advance(by: batch.count)
        }
        bar.finish()

        var planned: [Purchase] = []
        var subscribed = Set<String>()
        for index in 0..<purchases {
            let number = buyerNumbers[(index * 7) % buyerNumbers.count]
            let merchant = Self.merchants[index % Self.merchants.count]
            let line = Self.line(number)
            let monthly = merchant.monthly.flatMap { subscribed.insert("\(merchant.id) \(line)").inserted ? $0 : nil }
            // Every fiftieth purchase is typed with a wrong password.
            let password = index % 50 == 49 ? "wrong" : "pw-\(number)"
            planned.append(
                Purchase(
                    purchaseID: "P\(number)", password: password, line: line, address: Self.address(number),
                    merchant: merchant.id, kind: monthly == nil ? "charge" : "subscription",
                    amount: monthly ?? merchant.one[index % merchant.one.count],
                    reference: "\(monthly == nil ? "c" : "s")-\(index)"))
        }
        return Plan(purchases: planned, signers: signers)
    }

    /// Asks the gateway, as the carrier's proxy does, with the line's address.
    private func authorize(_ purchase: Purchase) async throws -> (Purchase, String?, String?) {
        let request: [String: Any] = [
            "purchaseId": purchase.purchaseID, "password": purchase.password, "merchantId": purchase.merchant,
            "kind": purchase.kind, "amount": purchase.amount, "reference": purchase.reference,
        ]
        let (data, status) = try await HTTPClient.post(
            port: system.gatewayPort, path: "/v1/authorizations",
            body: try JSONSerialization.data(withJSONObject: request),
            headers: ["X-Forwarded-For": purchase.address])
        let answer = (try? JSONSerialization.jsonObject(with: data) as? [String: String]) ?? [:]
        return status == 201
            ? (purchase, answer["authorization"], nil) : (purchase, nil, answer["error"] ?? "http \(status)")
    }

    private func report(
        cycle: BillingCycle, plan: Plan, authorized: [Purchase], cancelled: [Purchase], collector: OutputCollector,
        refusedAtGateway: [String: Int]
    ) -> Bool {
        let results = collector.results()
        let purchasesAnswered = results.filter { $0.requestType == "charge" || $0.requestType == "subscription" }
        let accepted = Set(purchasesAnswered.filter { $0.status == "accepted" }.map(\.requestId))
        let rejected = purchasesAnswered.filter { $0.status == "rejected" }
        let settlements = collector.settlements().filter { $0.cycle == cycle.description }.sorted {
            $0.merchantId < $1.merchantId
        }
        let bills = collector.bills().filter { $0.cycle == cycle.description }

        say("")
        let refusals = refusedAtGateway.sorted { $0.key < $1.key }.map { "\($0.value) \($0.key)" }
        say(
            "Purchases: \(plan.purchases.count.formatted()) asked; the gateway authorized \(authorized.count.formatted()) "
                + "and refused \(refusals.isEmpty ? "none" : refusals.joined(separator: ", ")); "
                + "the workers applied \(accepted.count.formatted()) and rejected \(rejected.count.formatted()); "
                + "\(cancelled.count.formatted()) were cancelled in the month.")
        say("")
        say("Settlements for \(cycle) (from \(system.topics.settlements))")
        printSettlements(
            settlements,
            names: Dictionary(uniqueKeysWithValues: Self.merchants.map { (MerchantID(rawValue: $0.id), $0.name) }))
        say("Video Service is on a 2012-style banded tariff, tax added: \(describe(Self.banded2012)).")
        let gross = settlements.reduce(0) { $0 + $1.grossAmount }

        // Reconciliation from what was sent and answered, against the bills and settlements published.
        let byReference = Dictionary(authorized.map { ($0.reference, $0) }) { first, _ in first }
        let charged = accepted.compactMap { byReference[$0] }.filter { $0.kind == "charge" }.reduce(0) {
            $0 + $1.amount
        }
        let subscriptions = accepted.compactMap { byReference[$0] }.filter { $0.kind == "subscription" }
            .reduce(0) { $0 + $1.amount }
        let cancelledAmount = cancelled.reduce(0) { $0 + $1.amount }
        let expected = charged - cancelledAmount + subscriptions
        let billed = bills.reduce(0) { $0 + $1.total }
        say("")
        say("Reconciliation for \(cycle)")
        printTable(
            header: ["", "¥"],
            rows: [
                ["accepted one-time charges", charged.formatted()],
                ["− cancelled in the month", (-cancelledAmount).formatted()],
                ["+ subscriptions", subscriptions.formatted()],
                ["= expected", expected.formatted()],
                ["line bills (\(bills.count.formatted()) lines)", billed.formatted()],
                ["merchants' gross settlements", gross.formatted()],
            ])
        let reconciled = expected == billed && billed == gross && bills.count == lines
        say(reconciled ? "Every yen reconciles." : "MISMATCH: the figures above do not reconcile.")
        return reconciled
    }
}

extension DemoRun {
    /// Prints the payout table and the collection's reconciliation; true when every yen reconciles.
    func reportCollection(
        cycle: BillingCycle, reports: [CollectionReport], run: PayoutRun, positions: [MonthPosition],
        collector: OutputCollector
    ) -> Bool {
        let results = collector.collectionResults()
        let refused = results.filter { $0.status != "accepted" }
        let payments = reports.filter { $0.received > 0 }.count
        say("")
        say(
            "Collection of \(cycle)'s bills: the billing system reported \(payments.formatted()) payments, "
                + "\(reports.filter { $0.received < 0 }.count) bounced and \(reports.filter(\.writtenOff).count) write-offs; "
                + "\(refused.isEmpty ? "all accepted" : "\(refused.count) refused").")
        let messages = run.statements.map { PayoutMessage($0.statement, payableOn: $0.payableOn) }
        say("")
        say("Payouts for \(run.period) (from \(system.topics.payouts))")
        printPayouts(messages)

        let names = Dictionary(uniqueKeysWithValues: Self.merchants.map { ($0.id, $0.name) })
        var rows = positions.map { position in
            [
                names[position.merchantID.rawValue] ?? position.merchantID.rawValue, position.net.amount.formatted(),
                position.paidOut.amount.formatted(), position.toPayOut.amount.formatted(),
                position.writtenOffNet.amount.formatted(),
                position.openNet.amount.formatted(), position.reconciles ? "ok" : "MISMATCH",
            ]
        }
        let received = reports.reduce(0) { $0 + $1.received }
        let collected = positions.reduce(Yen.zero) { $0 + $1.collected }
        let moved = messages.flatMap(\.lines).reduce(0) { $0 + $1.collected + $1.reversed }
        let fees = messages.flatMap(\.lines).reduce(0) { $0 + $1.fee }
        let paid = messages.reduce(0) { $0 + $1.amountPayable + $1.carriedOut }
        rows.append([
            "total", positions.reduce(Yen.zero) { $0 + $1.net }.amount.formatted(),
            positions.reduce(Yen.zero) { $0 + $1.paidOut }.amount.formatted(), "", "", "", "",
        ])
        say("")
        say("Reconciliation of \(cycle)'s net settlements: paid out + to pay + written off + open = net")
        printTable(
            header: ["merchant", "net ¥", "paid out ¥", "to pay ¥", "written off ¥", "open ¥", "check"], rows: rows)
        printTable(
            header: ["", "¥"],
            rows: [
                ["received from lines, less bounced (as reported)", received.formatted()],
                ["collected in the merchants' ledgers", collected.amount.formatted()],
                ["on the payout statements", moved.formatted()],
                ["− the carrier's fee on it", (-fees).formatted()],
                ["= paid out (and carried)", paid.formatted()],
            ])
        let reconciled =
            refused.isEmpty && positions.allSatisfy(\.reconciles) && received == collected.amount
            && moved == received && paid == moved - fees
        say(reconciled ? "Every collected yen is paid out once." : "MISMATCH: the collection does not reconcile.")
        return reconciled
    }
}

/// Reads results, bills and settlements as they are published, keeping each id once.
final class OutputCollector: Sendable {
    private struct State {
        var collectionResults: [String: CollectionResultMessage] = [:]
        var results: [String: MerchantResultMessage] = [:]
        var bills: [String: LineBillMessage] = [:]
        var settlements: [String: SettlementMessage] = [:]
    }

    private let state = Mutex(State())
    private let system: LocalSystem

    init(system: LocalSystem) { self.system = system }

    func run() async throws {
        let topics = system.topics
        let consumer = try KafkaConsumer(
            configuration: KafkaConsumerConfiguration(
                bootstrapServers: system.bootstrapServerList, groupID: "demo-reader"),
            logger: LocalSystem.logger)
        let results = Set(DemoRun.merchants.map { topics.merchantResults($0.id) })
        try consumer.subscribe(results.sorted() + [topics.lineBills, topics.settlements, topics.collectionResults])
        let decoder = JSONDecoder()
        while !Task.isCancelled {
            for event in try await consumer.poll(timeout: .milliseconds(100)) {
                switch event {
                case .partitionsAssigned(let assigned):
                    try await consumer.startPartitions(
                        Dictionary(uniqueKeysWithValues: assigned.map { ($0, KafkaStartOffset.beginning) }))
                case .messages(let messages):
                    state.withLock { state in
                        for message in messages {
                            let data = Data(message.value)
                            switch message.topicPartition.topic {
                            case let topic where results.contains(topic):
                                if let result = try? decoder.decode(MerchantResultMessage.self, from: data) {
                                    state.results[result.id] = result
                                }
                            case topics.collectionResults:
                                if let result = try? decoder.decode(CollectionResultMessage.self, from: data) {
                                    state.collectionResults[result.id] = result
                                }
                            case topics.lineBills:
                                if let bill = try? decoder.decode(LineBillMessage.self, from: data) {
                                    state.bills[bill.id] = bill
                                }
                            default:
                                if let settlement = try? decoder.decode(SettlementMessage.self, from: data) {
                                    state.settlements[settlement.id] = settlement
                                }
                            }
                        }
                    }
                default: break
                }
            }
        }
        await consumer.close()
    }

    func results() -> [MerchantResultMessage] { state.withLock { Array($0.results.values) } }
    func collectionResults() -> [CollectionResultMessage] { state.withLock { Array($0.collectionResults.values) } }

    func waitForCollectionResults(_ count: Int, title: String) async throws {
        try await waitFor(count, of: "collection results", title: title) { $0.collectionResults.count }
    }
    func bills() -> [LineBillMessage] { state.withLock { Array($0.bills.values) } }
    func settlements() -> [SettlementMessage] { state.withLock { Array($0.settlements.values) } }

    func acceptedReferences() -> Set<String> {
        state.withLock { Set($0.results.values.filter { $0.status == "accepted" }.map(\.requestId)) }
    }

    func waitForResults(_ count: Int, title: String) async throws {
        try await waitFor(count, of: "results", title: title) { $0.results.count }
    }

    /// Waits, with a progress bar, until `seen` counts `count` of what is read.
    private func waitFor(
        _ count: Int, of what: String, title: String, _ seen: @Sendable (State) -> Int
    ) async throws {
        var bar = ProgressBar(title: title, total: count)
        let deadline = ContinuousClock.now + .seconds(300)
        while true {
            let seen = state.withLock { seen($0) }
            bar.set(min(seen, count))
            if seen >= count { break }
            guard ContinuousClock.now < deadline else { throw LocalError("only \(seen) of \(count) \(what) arrived") }
            try await Task.sleep(for: .milliseconds(200))
        }
        bar.finish()
    }

    /// Waits for every line's bill and for the settlements the database computed.
    func waitForClose(lines: Int, title: String) async throws {
        let deadline = ContinuousClock.now + .seconds(300)
        try await withPostgresClient(system.postgres.configuration, logger: LocalSystem.logger) { client in
            var bar = ProgressBar(title: title, total: lines)
            defer { bar.finish() }
            while true {
                let (bills, settlements) = state.withLock { ($0.bills.count, $0.settlements.count) }
                bar.set(min(bills, lines))
                // Every settlement the close wrote (none until it has settled) must have arrived.
                let written = try await client.fetch(
                    "SELECT count(*)::int FROM settlements", Int.self, logger: LocalSystem.logger
                ).first
                if bills >= lines, settlements > 0, settlements == written { break }
                guard ContinuousClock.now < deadline else { throw LocalError("the close did not finish in time") }
                try await Task.sleep(for: .milliseconds(300))
            }
        }
    }
}
