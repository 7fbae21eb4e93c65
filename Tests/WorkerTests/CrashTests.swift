import Billing
import Contract
import Foundation
import Kafka
import MatometeTestSupport
import PostgresNIO
import Store
import Synchronization
import Testing

/// Traffic whose every bill and settlement is known in advance: 2,000 lines,
/// 16 merchants, September charges, then in October credits for a third of
/// them and new charges. The expectations are sums over the generated
/// requests, computed here.
struct KnownTraffic {
    static let lineCount = 2000
    static let merchantCount = 16
    /// Per-merchant amounts: ¥100 and ¥550 merchants pay per line, the others 5%.
    static let amounts: [Int64] = [100, 1500, 550, 2000]

    var septemberCharges: [(line: Int, merchant: Int, id: String, amount: Int64)] = []
    var octoberCharges: [(line: Int, merchant: Int, id: String, amount: Int64)] = []
    /// September charges cancelled in October: credits.
    var cancelled: [(line: Int, merchant: Int, id: String, amount: Int64)] = []

    init(september: Int, october: Int, cancellations: Int) {
        for j in 0..<september {
            let merchant = j % Self.merchantCount
            septemberCharges.append((j % Self.lineCount, merchant, "a-\(j)", Self.amounts[merchant % 4]))
        }
        for j in 0..<october {
            let merchant = j % Self.merchantCount
            octoberCharges.append(((j * 7) % Self.lineCount, merchant, "c-\(j)", Self.amounts[(merchant + 1) % 4]))
        }
        cancelled = Array(
            septemberCharges.enumerated().filter { $0.offset % 3 == 0 }.prefix(cancellations).map(\.element))
    }

    static func merchant(_ number: Int) -> String { "m-\(number)" }

    var merchants: [Merchant] {
        (0..<Self.merchantCount).map { Merchant(id: MerchantID(rawValue: Self.merchant($0)), name: "Merchant \($0)") }
    }

    var lines: [Line] { (0..<Self.lineCount).map { Line(id: LineID(rawValue: Requests.line($0)), type: .hikariNext) } }

    func chargeMessages(
        _ charges: [(line: Int, merchant: Int, id: String, amount: Int64)]
    ) -> [(
        key: String?, value: String
    )] {
        charges.map { Requests.charge(Self.merchant($0.merchant), $0.id, line: Requests.line($0.line), $0.amount) }
    }

    var cancellationMessages: [(key: String?, value: String)] {
        cancelled.map { Requests.cancelCharge(Self.merchant($0.merchant), $0.id, line: Requests.line($0.line)) }
    }

    /// Each line's bill total for the cycle.
    func billTotals(_ cycle: BillingCycle) -> [String: Int64] {
        var totals = Dictionary(uniqueKeysWithValues: (0..<Self.lineCount).map { (Requests.line($0), Int64(0)) })
        for item in items(cycle) { totals[Requests.line(item.line), default: 0] += item.amount }
        return totals
    }

    /// Each merchant's settlement for the cycle.
    func settlements(_ cycle: BillingCycle) -> [String: ExpectedSettlement] {
        var byMerchant: [Int: [(line: Int, amount: Int64, credit: Bool)]] = [:]
        for item in items(cycle) {
            byMerchant[item.merchant, default: []].append((item.line, item.amount, item.credit))
        }
        return Dictionary(
            uniqueKeysWithValues: byMerchant.map { merchant, items in
                (
                    Self.merchant(merchant),
                    ExpectedSettlement(
                        lines: Int64(Set(items.map(\.line)).count), gross: items.reduce(0) { $0 + $1.amount },
                        items: Int64(items.count), credits: items.filter(\.credit).reduce(0) { $0 + $1.amount })
                )
            })
    }

    private func items(_ cycle: BillingCycle) -> [(line: Int, merchant: Int, amount: Int64, credit: Bool)] {
        if cycle == .september { return septemberCharges.map { ($0.line, $0.merchant, $0.amount, false) } }
        return octoberCharges.map { ($0.line, $0.merchant, $0.amount, false) }
            + cancelled.map { ($0.line, $0.merchant, -$0.amount, true) }
    }

    var requestCount: Int { septemberCharges.count + octoberCharges.count + cancelled.count }

    /// Checks everything published against the expectations.
    func verify(_ outputs: Outputs) {
        #expect(
            outputs.results.count == requestCount,
            "one result per request; charges without one: \(missingCharges(outputs).prefix(10))")
        let rejected = outputs.results.values.filter { $0.status != "accepted" }
        #expect(rejected.isEmpty, "unexpected rejections: \(rejected.prefix(5))")
        verifyBills(outputs, cycles: [.september, .october])
        #expect(outputs.deadLetters.isEmpty)
    }

    /// The charges no result answers.
    func missingCharges(_ outputs: Outputs) -> [String] {
        let answered = Set(outputs.results.values.map(\.requestId))
        return (septemberCharges + octoberCharges).map(\.id).filter { !answered.contains($0) }
    }

    /// Checks the bills and settlements of `cycles`, and that their sums
    /// reconcile; `idleLines` more lines exist, with nothing to bill.
    func verifyBills(_ outputs: Outputs, cycles: [BillingCycle], idleLines: Int = 0) {
        for cycle in cycles {
            let bills = outputs.bills(of: cycle)
            let expected = billTotals(cycle)
            #expect(bills.count == Self.lineCount + idleLines, "\(cycle): one bill per line")
            #expect(bills.filter { expected[$0.key] == nil }.allSatisfy { $0.value.total == 0 })
            let wrong = expected.filter { line, total in bills[line]?.total != total }
            #expect(
                wrong.isEmpty, "\(cycle): \(wrong.count) bills differ, for example \(wrong.first.map { "\($0)" } ?? "")"
            )
            let settlements = outputs.settlements(of: cycle).mapValues(ExpectedSettlement.init)
            #expect(settlements == self.settlements(cycle), "\(cycle): settlements")
            let billed = bills.values.reduce(0) { $0 + $1.total }
            let settled = settlements.values.reduce(0) { $0 + $1.gross }
            #expect(billed == expected.values.reduce(0, +) && settled == billed, "\(cycle): the sums reconcile")
        }
    }
}

/// A small deterministic generator, so a failing run can be repeated with its seed.
struct SplitMix64: RandomNumberGenerator {
    var state: UInt64
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

extension ScenarioTests {
    /// SIGKILL a random worker every 1.5 to 3.5 s and start a new one in its
    /// place, through 32,000 requests and two cycle closes.
    @Test("Crash test: workers killed with SIGKILL at random lose nothing and double nothing")
    func crashes() async throws {
        let system = try await TestSystem.start("crash")
        defer { Task { await system.shutDown() } }
        let traffic = KnownTraffic(september: 20_000, october: 6_000, cancellations: 6_000)
        try await system.setUp(merchants: traffic.merchants, lines: traffic.lines, openCycle: .september)
        try system.launchAll(2)

        let seed = UInt64.random(in: 0...UInt64.max)
        let kills = Atomic<Int>(0)
        let chaos = Task {
            var random = SplitMix64(state: seed)
            while !Task.isCancelled {
                try await Task.sleep(for: .milliseconds(Int.random(in: 1500...3500, using: &random)))
                let running = system.running
                guard let victim = running.randomElement(using: &random) else { continue }
                try await system.kill(victim)
                try system.launch(victim.role)
                kills.add(1, ordering: .relaxed)
            }
        }
        defer { chaos.cancel() }

        try await system.produce(system.topics.charges, traffic.chargeMessages(traffic.septemberCharges))
        try await system.waitUntilIdle(within: .seconds(300))
        // The close, with a billing-cycle worker killed in the middle of it.
        try await system.close(.september)
        try await Task.sleep(for: .milliseconds(300))
        if let closer = system.running.first(where: { $0.role == .billingCycles }) {
            try await system.kill(closer)
            try system.launch(.billingCycles)
        }
        try await system.waitUntilIdle(within: .seconds(300))
        try await system.produce(system.topics.cancellations, traffic.cancellationMessages)
        try await system.produce(system.topics.charges, traffic.chargeMessages(traffic.octoberCharges))
        try await system.waitUntilIdle(within: .seconds(300))
        try await system.close(.october)
        try await system.waitUntilIdle(within: .seconds(300))
        chaos.cancel()
        _ = await chaos.result

        let outputs = try await system.outputs()
        traffic.verify(outputs)
        #expect(kills.load(ordering: .relaxed) >= 5, "seed \(seed): too few kills to mean anything")
        try await system.checkMerchantBillItems()
        // Stored state agrees: each charge once, each credit once.
        let (charges, credits) = try await system.database.withClient { client in
            var counts: [Int] = []
            for table in ["charges", "credits"] {
                for try await count in try await client.query(
                    PostgresQuery(unsafeSQL: "SELECT count(*)::int FROM \(table)"), logger: TestSystem.logger
                ).decode(Int.self) { counts.append(count) }
            }
            return (counts[0], counts[1])
        }
        #expect(charges == 26_000)
        #expect(credits == 6_000)
        print(
            "crash test: seed \(seed), \(kills.load(ordering: .relaxed)) workers killed, \(outputs.copies) messages read, \(outputs.repeats) exact repeats"
        )
    }
}
