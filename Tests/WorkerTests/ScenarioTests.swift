import Authorization
import Billing
import Contract
import Crypto
import Foundation
import Kafka
import MatometeTestSupport
import Store
import Testing

/// The worker executables as separate processes, end to end. Serialized: each
/// test runs a whole system, and two at once would only share two cores.
@Suite("Workers end to end", .serialized)
struct ScenarioTests {
    /// Two months of a small carrier: three merchants (one on each fee rule and
    /// one with subscriptions), 300 fibre lines and one ADSL line without a
    /// Flets.net contract. Every number expected below is worked out by hand.
    @Test("A scenario month: every bill and settlement as worked out by hand, and the sums reconcile")
    func scenarioMonths() async throws {
        let system = try await TestSystem.start("scenario")
        defer { Task { await system.shutDown() } }
        let video = "m-video"
        let points = "m-points"
        let music = "m-music"
        var lines = (0..<300).map { Line(id: LineID(rawValue: Requests.line($0)), type: .hikariNext) }
        lines.append(Line(id: LineID(rawValue: Requests.line(300)), type: .adsl, fletsNetContract: false))
        try await system.setUp(
            merchants: [video, points, music].map { Merchant(id: MerchantID(rawValue: $0), name: $0) }, lines: lines,
            openCycle: .september)
        let chargeWorker = try system.launch(.charges)
        try system.launch(.cancellations)
        try system.launch(.billingCycles)
        try system.launch(.billingCycles)
        let relay = try system.launch(.relay)
        let line = Requests.line

        // September. Charges first; cancellations only once their charges are in
        // (the two topics are read independently).
        var charges = (0..<100).map { Requests.charge(video, "v-9-\($0)", line: line($0), 1000, "movie") }
        charges += (0..<200).map { Requests.charge(points, "p-9-\($0)", line: line($0), 100, "100 points") }
        charges += (200..<250).map { Requests.subscription(music, "s-\($0)", line: line($0), 300) }
        charges.append(Requests.charge(video, "v-9-adsl", line: line(300), 1000))  // line_not_eligible
        // Purchase authorizations that must be refused, and one used twice.
        func token(_ id: String, line: String, merchant: String = video, amount: Int64 = 1000) -> String {
            TestKeys.token(line: line, merchant: merchant, kind: "charge", amount: amount, reference: id)
        }
        let forger = AuthorizationSigner(keyID: TestKeys.current.keyID, privateKey: Curve25519.Signing.PrivateKey())
        charges += [
            Requests.charge(
                video, "v-9-forged", line: line(1), 1000,
                authorization: try forger.token(
                    for: PurchaseClaims(
                        tokenID: "forged", lineID: line(1), merchantID: video, kind: "charge", amount: 1000,
                        reference: "v-9-forged", expiresAt: Int64(Date().timeIntervalSince1970) + 600))),
            Requests.charge(
                video, "v-9-expired", line: line(1), 1000,
                authorization: TestKeys.token(
                    line: line(1), merchant: video, kind: "charge", amount: 1000, reference: "v-9-expired",
                    expiresIn: -60)),
            Requests.charge(
                video, "v-9-amount", line: line(1), 1000, authorization: token("v-9-amount", line: line(1), amount: 999)
            ),
            Requests.charge(video, "v-9-line", line: line(2), 1000, authorization: token("v-9-line", line: line(1))),
            Requests.charge(
                video, "v-9-merchant", line: line(1), 1000,
                authorization: token("v-9-merchant", line: line(1), merchant: points)),
            Requests.charge(
                video, "v-9-retired", line: line(1), 1000,
                authorization: TestKeys.token(
                    line: line(1), merchant: video, kind: "charge", amount: 1000, reference: "v-9-retired",
                    signer: TestKeys.retired)),
        ]
        let refusedFirst = token("v-9-reuse", line: line(300))
        charges.append(Requests.charge(video, "v-9-reuse", line: line(300), 1000, authorization: refusedFirst))
        charges.append(Requests.charge(video, "v-9-reuse", line: line(300), 1000, authorization: refusedFirst))
        let acceptedFirst = token("v-9-same", line: line(250), amount: 700)
        charges.append(Requests.charge(video, "v-9-same", line: line(250), 700, authorization: acceptedFirst))
        charges.append(Requests.charge(video, "v-9-same", line: line(250), 700, authorization: acceptedFirst))
        try await system.produce(system.topics.charges, charges)
        try await system.waitUntilIdle()
        var cancellations = (0..<10).map { Requests.cancelCharge(video, "v-9-\($0)", line: line($0)) }
        cancellations += (200..<205).map { Requests.cancelSubscription(music, "s-\($0)", line: line($0)) }
        cancellations.append(Requests.cancelCharge(video, "v-9-999", line: line(0)))  // unknown_charge
        try await system.produce(system.topics.cancellations, cancellations)
        try await system.waitUntilIdle()
        try await system.close(.september)
        try await system.waitUntilIdle()

        // October: new charges, a repeat and a conflict, a credit for a
        // September charge, a line terminated with a subscription running.
        var october = (0..<20).map { Requests.charge(video, "v-10-\($0)", line: line($0), 2000, "movie") }
        october.append(Requests.charge(video, "v-10-0", line: line(0), 2000, "movie"))  // a harmless repeat
        october.append(Requests.charge(video, "v-10-1", line: line(1), 2500, "movie"))  // duplicate_conflict
        try await system.produce(system.topics.charges, october)
        try await system.produce(
            system.topics.cancellations,
            [
                Requests.cancelCharge(video, "v-9-50", line: line(50)), Requests.terminate(line: line(210)),
                Requests.cancelCharge(video, "v-9-50", line: line(50)),
            ])
        try await system.waitUntilIdle()
        try await system.produce(system.topics.charges, [Requests.charge(video, "v-10-t", line: line(210), 500)])
        try await system.waitUntilIdle()
        try await system.close(.october)
        try await system.waitUntilIdle()
        // November is open: a subscription cancelled now is billed through November.
        try await system.produce(
            system.topics.cancellations, [Requests.cancelSubscription(music, "s-220", line: line(220))])
        try await system.waitUntilIdle()

        let outputs = try await system.outputs()

        // One result per request, with the expected answers.
        let requestCount = 351 + 10 + 16 + 22 + 3 + 1 + 1
        #expect(outputs.results.count == requestCount)
        let rejected: [String] = outputs.results.values.filter { $0.status == "rejected" }.map {
            "\($0.requestId):\($0.reason ?? "")"
        }
        // A refused request sent again with its authorization gets the same answer.
        let expectedRejections = [
            "v-9-adsl:line_not_eligible", "v-9-999:unknown_charge", "v-10-1:duplicate_conflict",
            "v-10-t:line_terminated", "v-9-forged:authorization_invalid", "v-9-expired:authorization_expired",
            "v-9-amount:authorization_mismatch", "v-9-line:authorization_mismatch",
            "v-9-merchant:authorization_mismatch", "v-9-retired:authorization_invalid",
            "v-9-reuse:line_not_eligible", "v-9-reuse:line_not_eligible",
        ]
        #expect(rejected.sorted() == expectedRejections.sorted())
        #expect(outputs.results.values.filter { $0.status == "accepted" }.count == outputs.results.count - 12)
        let late = outputs.results.values.first { $0.requestId == "s-220" && $0.requestType == "subscription-cancel" }
        #expect(late?.status == "accepted")
        #expect(late?.cycle == "2026-11")

        // September's bills: every line has one, the ADSL line and the idle ones at zero.
        let september = outputs.bills(of: .september)
        #expect(september.count == 301)
        for number in 0..<301 {
            let expected: Int64 =
                switch number {
                case 0..<10: 100
                case 10..<100: 1100
                case 100..<200: 100
                case 200..<250: 300
                case 250: 700  // the charge sent twice with one authorization, billed once
                default: 0
                }
            #expect(september[line(number)]?.total == expected, "September bill of \(line(number))")
        }
        let septemberSettlements = outputs.settlements(of: .september)
        #expect(septemberSettlements.count == 3)
        #expect(
            septemberSettlements[video].map(ExpectedSettlement.init)
                == ExpectedSettlement(lines: 91, gross: 90_700, items: 91))
        // 5% of ¥90,700
        #expect(septemberSettlements[video]?.fee == 4535 && septemberSettlements[video]?.feeRule == "percentage")
        #expect(
            septemberSettlements[points].map(ExpectedSettlement.init)
                == ExpectedSettlement(lines: 200, gross: 20_000, items: 200))
        #expect(septemberSettlements[points]?.fee == 6300 && septemberSettlements[points]?.feeRule == "per-line")
        #expect(
            septemberSettlements[music].map(ExpectedSettlement.init)
                == ExpectedSettlement(lines: 50, gross: 15_000, items: 50))
        #expect(septemberSettlements[music]?.fee == 1575 && septemberSettlements[music]?.netAmount == 13_425)

        // October's bills.
        let octoberBills = outputs.bills(of: .october)
        #expect(octoberBills.count == 301)
        for number in 0..<301 {
            let expected: Int64 =
                switch number {
                case 0..<20: 2000
                case 50: -1000
                case 205..<250: 300
                default: 0
                }
            #expect(octoberBills[line(number)]?.total == expected, "October bill of \(line(number))")
        }
        #expect(octoberBills[line(50)]?.items.map(\.kind) == ["credit"])
        let octoberSettlements = outputs.settlements(of: .october)
        #expect(octoberSettlements.count == 2)  // the points merchant billed nothing in October
        #expect(
            octoberSettlements[video].map(ExpectedSettlement.init)
                == ExpectedSettlement(lines: 21, gross: 39_000, items: 21, credits: -1000))
        #expect(octoberSettlements[video]?.fee == 1950 && octoberSettlements[video]?.feeRule == "percentage")
        #expect(
            octoberSettlements[music].map(ExpectedSettlement.init)
                == ExpectedSettlement(lines: 45, gross: 13_500, items: 45))
        #expect(octoberSettlements[music]?.fee == 1417)  // 45 × ¥31.5 = ¥1,417.5, rounded down once

        // Reconciliation: accepted charges − cancellations in the cycle + subscriptions
        // + credits = the line bills = the merchants' gross settlements.
        let septemberRequests: Int64 = 100 * 1000 + 700 + 200 * 100 - 10 * 1000 + 50 * 300
        let octoberRequests: Int64 = 20 * 2000 + 45 * 300 - 1000
        for (cycle, requested, bills, settlements) in [
            ("2026-09", septemberRequests, september, septemberSettlements),
            ("2026-10", octoberRequests, octoberBills, octoberSettlements),
        ] {
            let billed = bills.values.reduce(0) { $0 + $1.total }
            let settled = settlements.values.reduce(0) { $0 + $1.grossAmount }
            #expect(billed == requested, "\(cycle): bills \(billed) vs requests \(requested)")
            #expect(settled == billed, "\(cycle): settlements \(settled) vs bills \(billed)")
            #expect(settlements.values.allSatisfy { $0.netAmount == $0.grossAmount - $0.fee })
        }
        #expect(outputs.deadLetters.isEmpty)

        // The charge worker is ready and counts what it did.
        let port = try await chargeWorker.httpPort()
        let (health, healthStatus) = try await HTTP.get(port: port, path: "/healthz")
        #expect(healthStatus == 200)
        #expect(health.contains(#""ready":true"#))
        let (metrics, _) = try await HTTP.get(port: port, path: "/metrics")
        #expect(metrics.contains(#"matomete_messages_total{topic="matomete.charges",outcome="applied"} 373"#))
        #expect(metrics.contains(#"matomete_messages_total{topic="matomete.charges",outcome="rejected"} 11"#))
        #expect(metrics.contains("matomete_batch_duration_seconds_bucket"))
        #expect(metrics.contains("matomete_outbox_backlog"))
        let (relayMetrics, _) = try await HTTP.get(port: try await relay.httpPort(), path: "/metrics")
        #expect(relayMetrics.contains("matomete_outbox_claim_duration_seconds_bucket"))
        #expect(relayMetrics.contains(#"matomete_outbox_published_total{topic="matomete.merchant.m-video.results"}"#))

        // Graceful stop: every worker exits 0 on SIGTERM.
        for (worker, status) in try await system.stopAll() {
            #expect(status == 0, "\(worker.log.lastPathComponent) exited with \(status)")
        }
    }
}
