import Billing
import Contract
import Foundation
import Kafka
import MatometeTestSupport
import PostgresNIO
import Synchronization
import Testing

/// The carrier's billing system's reports on a closed month's bills, as it
/// would send them, with what each must be answered.
struct CollectionTraffic {
    /// One report and its expected answer: `accepted`, `repeat`, a reason code, or `dead` (dead-lettered).
    struct Report {
        var key: String?
        var bytes: [UInt8]
        var expected: String

        init(key: String?, value: String, expected: String) {
            self.init(key: key, bytes: Array(value.utf8), expected: expected)
        }

        init(key: String?, bytes: [UInt8], expected: String) {
            self.key = key
            self.bytes = bytes
            self.expected = expected
        }

        var value: String { String(decoding: bytes, as: UTF8.self) }
    }

    /// What each bill must come to: each merchant's collected and written-off amounts, and what stays open.
    struct BillExpectation {
        /// Collected in all, whoever it went to.
        var collected: Int64
        /// Written off in all.
        var writtenOff: Int64
        /// Still open.
        var open: Int64
        /// A part payment: shares are within a yen of the exact proportion, not stated exactly.
        var partial = false
    }

    var reports: [Report] = []
    var bills: [String: BillExpectation] = [:]

    static func payment(
        _ line: String, _ id: String, _ amount: Int64, _ date: String, cycle: String = "2026-09"
    )
        -> String
    {
        #"{"type":"payment","lineId":"\#(line)","billId":"bill-\#(line)-\#(cycle)","paymentId":"\#(id)","amount":\#(amount),"date":"\#(date)"}"#
    }

    static func reversal(_ line: String, _ id: String, _ date: String) -> String {
        #"{"type":"payment-reversal","lineId":"\#(line)","paymentId":"\#(id)","date":"\#(date)"}"#
    }

    static func writeOff(_ line: String, _ date: String) -> String {
        #"{"type":"write-off","lineId":"\#(line)","billId":"bill-\#(line)-2026-09","date":"\#(date)"}"#
    }

    /// Reports for the 200 bills of `totals` (line → total), each line's in order:
    /// - 0–119 paid in full at once, 120–149 in two payments; the reports of 0–39 all sent twice;
    /// - 150–164 paid ¥100 and left open;
    /// - 165–174 paid in full, then the payment bounces (165's reversal also sent before its payment);
    /// - 175–184 paid ¥200, then written off (175 then paid again, refused; 176's payment bounces after);
    /// - 185–194 unpaid: an overpayment, an unknown bill, a write-off dated too early, a payment id reused;
    /// - 195–199: an invalid report, and two that are not reports at all;
    /// - and 1,000 malformed or invalid reports mixed in (``bad(_:total:)``).
    init(totals: [String: Int64]) {
        for number in 0..<200 {
            let line = Requests.line(number)
            let total = totals[line] ?? 0
            var sent: [(String, String)] = []
            var expectation = BillExpectation(collected: 0, writtenOff: 0, open: total)
            switch number {
            case 0..<120:
                sent = [(Self.payment(line, "p-\(number)", total, "2026-10-27"), "accepted")]
                expectation = BillExpectation(collected: total, writtenOff: 0, open: 0)
            case 120..<150:
                sent = [
                    (Self.payment(line, "p-\(number)-1", total / 3, "2026-10-27"), "accepted"),
                    (Self.payment(line, "p-\(number)-2", total - total / 3, "2026-11-10"), "accepted"),
                ]
                expectation = BillExpectation(collected: total, writtenOff: 0, open: 0)
            case 150..<165:
                sent = [(Self.payment(line, "p-\(number)", 100, "2026-10-27"), "accepted")]
                expectation = BillExpectation(collected: 100, writtenOff: 0, open: total - 100, partial: true)
            case 165..<175:
                if number == 165 { sent.append((Self.reversal(line, "p-\(number)", "2026-11-05"), "unknown_payment")) }
                sent += [
                    (Self.payment(line, "p-\(number)", total, "2026-10-27"), "accepted"),
                    (Self.reversal(line, "p-\(number)", "2026-11-05"), "accepted"),
                ]
            case 175..<185:
                sent = [
                    (Self.payment(line, "p-\(number)", 200, "2026-10-27"), "accepted"),
                    (Self.writeOff(line, "2026-11-30"), "accepted"),
                ]
                expectation = BillExpectation(collected: 200, writtenOff: total - 200, open: 0, partial: true)
                if number == 175 {
                    sent.append((Self.payment(line, "p-\(number)-late", 50, "2026-12-01"), "bill_written_off"))
                }
                if number == 176 {
                    sent.append((Self.reversal(line, "p-\(number)", "2026-12-01"), "accepted"))
                    expectation = BillExpectation(collected: 0, writtenOff: total, open: 0)
                }
            case 185:
                sent = [(Self.payment(line, "p-\(number)", total + 1, "2026-10-27"), "overpayment")]
            case 186:
                sent = [(Self.payment(line, "p-\(number)", 1, "2026-10-27", cycle: "2026-08"), "unknown_bill")]
            case 187:
                sent = [(Self.writeOff(line, "2026-09-30"), "date_out_of_range")]
            case 188:
                sent = [
                    (Self.payment(line, "p-\(number)", 100, "2026-10-27"), "accepted"),
                    (Self.payment(line, "p-\(number)", 101, "2026-10-28"), "payment_id_reused"),
                ]
                expectation = BillExpectation(collected: 100, writtenOff: 0, open: total - 100, partial: true)
            case 195:
                sent = [(Self.payment(line, "p-\(number)", 0, "2026-10-27"), "invalid_request")]
            case 196:
                sent = [("{not json", "dead")]
            case 197:
                // Keyed by another line than it names.
                reports.append(
                    Report(key: Requests.line(0), value: Self.writeOff(line, "2026-11-30"), expected: "dead"))
            default:
                break
            }
            for (value, expected) in sent {
                reports.append(Report(key: line, value: value, expected: expected))
                if number < 40 {
                    reports.append(
                        Report(key: line, value: value, expected: expected == "accepted" ? "repeat" : expected))
                }
            }
            bills[line] = expectation
        }
        // 1,000 malformed or invalid reports, one after every few valid ones, on lines 189–194 (left unpaid:
        // none of them changes a bill).
        let valid = reports
        reports = []
        for (index, report) in valid.enumerated() {
            reports.append(report)
            for number in stride(from: index * 1000 / valid.count, to: (index + 1) * 1000 / valid.count, by: 1) {
                reports.append(Self.bad(number, total: { totals[$0] ?? 0 }))
            }
        }
    }

    /// A day 40 days from now, in Japan: always more than a day after any report is sent.
    static let futureDay = CalendarDay(containing: Int64(Date().timeIntervalSince1970) + 40 * 86_400).description

    /// The `number`th bad report and its fate.
    static func bad(_ number: Int, total: (String) -> Int64) -> Report {
        let line = Requests.line(189 + number % 6)
        let bill = "bill-\(line)-2026-09"
        let cases: [(String?, String, String)] = [
            (line, "", "dead"),
            (line, "[]", "dead"),
            (line, #"{"type":"payment","lineId":"\#(line)","nested":{"a":1}}"#, "dead"),
            (line, #"{"type":"refund","lineId":"\#(line)"}"#, "dead"),
            (nil, payment(line, "x-\(number)", 5, "2026-10-27"), "dead"),
            (Requests.line(0), payment(line, "x-\(number)", 5, "2026-10-27"), "dead"),
            (line, #"{"type":"payment","type":"payment","lineId":"\#(line)"}"#, "dead"),
            (
                line,
                #"{"type":"payment","lineId":"\#(line)","billId":"\#(bill)","paymentId":"x","amount":1.5,"date":"2026-10-27"}"#,
                "dead"
            ),
            (line, payment(line, "x-\(number)", -5, "2026-10-27"), "invalid_request"),
            (line, payment(line, "x-\(number)", 1_000_000_000_001, "2026-10-27"), "invalid_request"),
            (line, payment(line, "x-\(number)", 5, "2026-10-32"), "invalid_request"),
            (line, payment(line, String(repeating: "x", count: 65), 5, "2026-10-27"), "invalid_request"),
            (
                line,
                #"{"type":"payment","lineId":"\#(line)","billId":"bill-L9-2026-09","paymentId":"x","amount":5,"date":"2026-10-27"}"#,
                "invalid_request"
            ),
            (line, #"{"type":"write-off","lineId":"\#(line)","billId":"\#(bill)","date":20261027}"#, "invalid_request"),
            (line, payment(line, "x-\(number)", total(line) + 1 + Int64(number), "2026-10-27"), "overpayment"),
            (line, payment(line, "x-\(number)", 5, "2026-10-27", cycle: "2026-0\(1 + number % 8)"), "unknown_bill"),
            (line, payment(line, "x-\(number)", 5, futureDay), "date_out_of_range"),
            (line, payment(line, "x-\(number)", 5, "2026-09-30"), "date_out_of_range"),
            (line, reversal(line, "never-\(number)", "2026-11-01"), "unknown_payment"),
            (line, writeOff(line, "2026-09-15"), "date_out_of_range"),
        ]
        let (key, value, expected) = cases[number % cases.count]
        return Report(key: key, value: value, expected: expected)
    }
}

extension ScenarioTests {
    /// A month closed, then the billing system's reports on its bills with
    /// repeats, out-of-order and invalid ones, while collection workers are
    /// killed with SIGKILL at random: every report is answered as it must be,
    /// once, and every bill's collection adds up to the yen; the payouts are
    /// those of the same month collected without a kill.
    @Test("Collection: payments, reversals and write-offs applied exactly once through SIGKILLs; every yen accounted")
    func collection() async throws {
        let killed = try await Self.collectionMonth("collection", kills: 3)
        let calm = try await Self.collectionMonth("collection-calm", kills: 0)
        #expect(killed == calm, "the payouts with collection workers killed are those of a run without kills")
    }

    /// One month collected and paid out, with `kills` collection workers killed (at least) on the way; its
    /// payout statements by id.
    static func collectionMonth(_ name: String, kills wanted: Int) async throws -> [String: PayoutMessage] {
        let system = try await TestSystem.start(name)
        defer { Task { await system.shutDown() } }
        let merchants = ["m-a", "m-b", "m-c"]
        try await system.setUp(
            merchants: merchants.map { Merchant(id: MerchantID(rawValue: $0), name: $0) },
            lines: (0..<200).map { Line(id: LineID(rawValue: Requests.line($0)), type: .hikariNext) },
            openCycle: .september)
        try system.launchAll(1)
        var charges: [(key: String?, value: String)] = []
        for number in 0..<200 {
            let line = Requests.line(number)
            charges.append(Requests.charge("m-a", "a-\(number)", line: line, 1000))
            if number % 2 == 0 { charges.append(Requests.charge("m-b", "b-\(number)", line: line, 500)) }
            if number % 5 == 0 { charges.append(Requests.charge("m-c", "c-\(number)", line: line, 333)) }
        }
        try await system.produce(system.topics.charges, charges)
        try await system.waitUntilIdle()
        try await system.close(.september)
        try await system.waitUntilIdle()
        let bills = try await system.outputs().bills(of: .september)
        #expect(bills.count == 200)

        let traffic = CollectionTraffic(totals: bills.mapValues(\.total))
        try system.launch(.collections)
        try system.launch(.collections)
        let kills = Atomic<Int>(0)
        let chaos = Task {
            while wanted > 0, !Task.isCancelled {
                try await Task.sleep(for: .milliseconds(Int.random(in: 400...1200)))
                guard let victim = system.running.filter({ $0.role == .collections }).randomElement() else { continue }
                try await system.kill(victim)
                try system.launch(.collections)
                kills.add(1, ordering: .relaxed)
            }
        }
        defer { chaos.cancel() }
        var delivered: [KafkaDeliveryReport] = []
        for chunk in stride(from: 0, to: traffic.reports.count, by: 200) {
            let reports = traffic.reports[chunk..<min(chunk + 200, traffic.reports.count)]
            delivered += try await system.produceBytes(
                system.topics.collections, reports.map { ($0.key.map { Array($0.utf8) }, $0.bytes) })
            try await Task.sleep(for: .milliseconds(150))
        }
        while kills.load(ordering: .relaxed) < wanted { try await Task.sleep(for: .milliseconds(100)) }
        chaos.cancel()
        _ = await chaos.result
        try await system.waitUntilIdle(within: .seconds(240))

        // Every report answered as it must be, once; the rest dead-lettered with their bytes.
        let outputs = try await system.outputs()
        var wrong: [String] = []
        for (report, place) in zip(traffic.reports, delivered) {
            let (partition, offset) = (place.topicPartition.partition.rawValue, place.offset.rawValue)
            if report.expected == "dead" {
                let id = DeadLetterHeaders.id(topic: system.topics.collections, partition: partition, offset: offset)
                let letter = outputs.deadLetters[id]
                if letter.map({ Array($0.value) }) != report.bytes { wrong.append("\(id): not dead-lettered") }
                continue
            }
            let id = CollectionResultMessage.id(topic: system.topics.collections, partition: partition, offset: offset)
            guard let result = outputs.collectionResults[id] else {
                wrong.append("\(id): no result for \(report.value)")
                continue
            }
            let answer =
                result.status == "accepted" ? (result.repeat ? "repeat" : "accepted") : (result.reason ?? "?")
            if answer != report.expected { wrong.append("\(report.value): \(answer), not \(report.expected)") }
        }
        let wrongAnswers = wrong.count
        #expect(wrongAnswers == 0, "for example \(wrong.prefix(5))")
        #expect(outputs.collectionResults.count == traffic.reports.filter { $0.expected != "dead" }.count)

        // The last answer on each bill says what is open; the ledger says where every yen went.
        let ledger = try await system.database.withClient { client in
            var rows: [(line: String, merchant: String, kind: String, amount: Int64)] = []
            for try await row in try await client.query(
                "SELECT line_id, merchant_id, kind, amount_yen FROM collection_entries WHERE cycle = '2026-09'",
                logger: TestSystem.logger
            ).decode((String, String, String, Int64).self) { rows.append(row) }
            return rows
        }
        var mismatches: [String] = []
        var merchantTotals: [String: (billed: Int64, collected: Int64, writtenOff: Int64)] = [:]
        for (line, bill) in bills {
            let expected = traffic.bills[line]!
            let entries = ledger.filter { $0.line == line }
            let collected = entries.filter { $0.kind != "write-off" }.reduce(0) { $0 + $1.amount }
            let writtenOff = entries.filter { $0.kind == "write-off" }.reduce(0) { $0 + $1.amount }
            if (collected, writtenOff) != (expected.collected, expected.writtenOff) {
                mismatches.append("\(line): collected \(collected), written off \(writtenOff); expected \(expected)")
            }
            var items: [String: Int64] = [:]
            for item in bill.items { items[item.merchantId, default: 0] += item.amount }
            for (merchant, billed) in items {
                let mine = entries.filter { $0.merchant == merchant }
                let merchantCollected = mine.filter { $0.kind != "write-off" }.reduce(0) { $0 + $1.amount }
                let merchantWrittenOff = mine.filter { $0.kind == "write-off" }.reduce(0) { $0 + $1.amount }
                if expected.partial {
                    // Within a yen of the exact proportion of what was collected.
                    let exact = Double(expected.collected) * Double(billed) / Double(bill.total)
                    if abs(Double(merchantCollected) - exact) >= 1 {
                        mismatches.append("\(line) \(merchant): \(merchantCollected), exact \(exact)")
                    }
                } else if expected.collected == bill.total, merchantCollected != billed {
                    mismatches.append("\(line) \(merchant): collected \(merchantCollected) of \(billed)")
                }
                var totals = merchantTotals[merchant] ?? (0, 0, 0)
                totals.billed += billed
                totals.collected += merchantCollected
                totals.writtenOff += merchantWrittenOff
                merchantTotals[merchant] = totals
            }
            let answers = outputs.collectionResults.values.filter {
                $0.lineId == line && $0.billId == "bill-\(line)-2026-09" && $0.open != nil
            }
            if let last = answers.max(by: { $0.id.offsetNumber < $1.id.offsetNumber }), last.open != expected.open {
                mismatches.append("\(line): the last answer says \(last.open ?? -1) open, expected \(expected.open)")
            }
        }
        let wrongBills = mismatches.count
        #expect(wrongBills == 0, "for example \(mismatches.prefix(5))")
        // Each merchant's settlement gross is what its bills billed: collected + written off + open, to the yen.
        let settlements = outputs.settlements(of: .september)
        for (merchant, totals) in merchantTotals {
            #expect(settlements[merchant]?.grossAmount == totals.billed, "\(merchant)")
        }
        let open = traffic.bills.values.reduce(0) { $0 + $1.open }
        let everything = merchantTotals.values.reduce(0) { $0 + $1.collected + $1.writtenOff }
        #expect(
            everything + open == bills.values.reduce(0) { $0 + $1.total }, "collected + written off + open = billed")
        // Stored once each: every accepted payment, none twice.
        let payments = try await system.database.withClient { client in
            var count = 0
            for try await value in try await client.query(
                "SELECT count(*)::int FROM payments", logger: TestSystem.logger
            )
            .decode(Int.self) { count = value }
            return count
        }
        #expect(
            payments
                == Set(
                    traffic.reports.filter { $0.expected == "accepted" && $0.value.contains(#""type":"payment""#) }.map(
                        \.value)
                ).count)
        let payouts = try await payOut(system, ledger: ledger, settlements: settlements)
        print(
            "collection test: \(kills.load(ordering: .relaxed)) collection workers killed, \(traffic.reports.count) reports"
        )
        return payouts
    }
}

extension String {
    /// The offset at the end of a result id (`…-<partition>-<offset>`), for ordering one line's answers.
    fileprivate var offsetNumber: Int64 { Int64(split(separator: "-").last ?? "") ?? -1 }
}

extension ScenarioTests {
    /// Pays out October, November and (early) December through the operator tool, October twice; checks that
    /// every collected yen is paid out once, less exactly the fee due, with the negative carry kept.
    @discardableResult
    static func payOut(
        _ system: TestSystem, ledger: [(line: String, merchant: String, kind: String, amount: Int64)],
        settlements: [String: SettlementMessage]
    ) async throws -> [String: PayoutMessage] {
        let tool = Tool(system: system)
        let early = try await tool.run(["payouts", "run", "2026-11"])
        #expect(early.status == 1 && early.errors.contains("2026-10"), "November before October: \(early)")
        for period in ["2026-10", "2026-11"] {
            let result = try await tool.run(["payouts", "run", period])
            #expect(result.status == 0 && result.output.contains("statements"), "\(result)")
        }
        let again = try await tool.run(["payouts", "run", "2026-10", "--json"])
        #expect(again.status == 0, "\(again)")
        // The current month has not ended, whatever the day the test runs.
        let current = BillingCycle(containing: Int64(Date().timeIntervalSince1970))
        let notEnded = try await tool.run(["payouts", "run", current.description])
        #expect(notEnded.status == 64, "a period not ended: \(notEnded)")
        let notBegun = try await tool.run(["payouts", "run", current.next.description, "--early"])
        #expect(notBegun.status == 64, "a period not begun: \(notBegun)")
        #expect(try await tool.run(["payouts", "run", "2026-12", "--early"]).status == 0)
        try await system.waitUntilIdle()
        let payouts = try await system.outputs().payouts
        #expect(Set(payouts.values.map(\.period)) == ["2026-10", "2026-11", "2026-12"])
        // The run repeated printed the statements made the first time, and published nothing more.
        let repeated = try JSONDecoder().decode([PayoutMessage].self, from: Data(again.output.utf8))
        #expect(Set(repeated) == Set(payouts.values.filter { $0.period == "2026-10" }))

        for (merchant, settlement) in settlements {
            let statements = payouts.values.filter { $0.merchantId == merchant }.sorted { $0.period < $1.period }
            let lines = statements.flatMap(\.lines)
            // Every collected yen paid out once: the statements' money is the ledger's.
            let moved = lines.reduce(0) { $0 + $1.collected + $1.reversed }
            let mine = ledger.filter { $0.merchant == merchant }
            let collected = mine.filter { $0.kind != "write-off" }.reduce(0) { $0 + $1.amount }
            #expect(moved == collected, "\(merchant): paid out \(moved) of \(collected) collected")
            #expect(
                lines.reduce(0) { $0 + $1.writtenOff }
                    == mine.filter { $0.kind == "write-off" }.reduce(0) { $0 + $1.amount })
            // The fee taken is the settlement's in proportion to what was collected, rounded down once.
            let fee = lines.reduce(0) { $0 + $1.fee }
            let share = Int128(max(0, min(collected, settlement.grossAmount)))
            let due = Int64(Int128(settlement.fee) * share / Int128(settlement.grossAmount))
            #expect(fee == due, "\(merchant): fee \(fee), due \(due)")
            // The carry: what each statement pays plus what it carries is its lines plus what it was carried.
            var carry: Int64 = 0
            for statement in statements {
                #expect(statement.carriedIn == carry, "\(merchant) \(statement.period)")
                #expect(
                    statement.amountPayable + statement.carriedOut
                        == statement.lines.reduce(0) { $0 + $1.payable } + carry)
                carry = statement.carriedOut
            }
            let paid = statements.reduce(0) { $0 + $1.amountPayable }
            #expect(paid + carry == collected - fee, "\(merchant): every collected yen, less the fee, paid or carried")
        }
        #expect(payouts.values.contains { $0.carriedOut < 0 }, "a reversal after its payout leaves a negative carry")
        // The operator's report: paid out + to pay + written off + open = net, for every merchant.
        let status = try await tool.run(["collections", "status", "2026-09", "--json"])
        #expect(status.status == 0, "\(status)")
        let rows = try JSONSerialization.jsonObject(with: Data(status.output.utf8)) as? [[String: Any]] ?? []
        #expect(rows.count == settlements.count)
        for row in rows {
            let merchant = row["merchantId"] as? String ?? ""
            let parts = ["paidOut", "toPayOut", "writtenOffNet", "openNet"].map {
                (row[$0] as? NSNumber)?.int64Value ?? 0
            }
            #expect(parts.reduce(0, +) == settlements[merchant]?.netAmount, "\(merchant): \(row)")
            #expect((row["toPayOut"] as? NSNumber)?.int64Value == 0, "everything collected is paid out: \(row)")
        }
        return payouts
    }
}
