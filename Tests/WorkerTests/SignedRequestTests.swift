import Authorization
import Billing
import Contract
import Foundation
import Kafka
import MatometeTestSupport
import Store
import Testing

extension ScenarioTests {
    /// Merchants cannot act as each other: merchant A's signed cancellation
    /// of merchant B's charge, unsigned and stale requests, a key rotation
    /// and a revoked key, through the running workers; B's charge stays
    /// billed and B hears of none of it.
    @Test("Signed requests: a cross-merchant cancel is refused, B's charge stays billed; rotation and revocation")
    func signedRequests() async throws {
        let system = try await TestSystem.start("signed")
        defer { Task { await system.shutDown() } }
        let (shopA, shopB) = ("m-a", "m-b")
        let lines = (0..<4).map { Line(id: LineID(rawValue: Requests.line($0)), type: .hikariNext) }
        try await system.setUp(
            merchants: [shopA, shopB].map { Merchant(id: MerchantID(rawValue: $0), name: $0) }, lines: lines,
            openCycle: .september)
        // Keys read again only every ten minutes: a new key must count at once all the same.
        let chargeWorker = try system.launch(.charges, arguments: ["--signing-key-refresh-seconds", "600"])
        try system.launch(.cancellations)
        try system.launch(.billingCycles)
        try system.launch(.relay)
        let keyA = try #require(system.signer(of: .merchant(shopA)))
        let keyB = try #require(system.signer(of: .merchant(shopB)))
        let line = Requests.line
        let now = Int64(Date().timeIntervalSince1970 * 1000)

        /// `request` to `topic` with the headers `signer` makes at `signedAt` (none without a signer).
        func signed(
            _ topic: String, _ request: (key: String?, value: String), by signer: RequestSigner?,
            at signedAt: Int64 = now
        ) -> KafkaProducerMessage {
            let headers =
                signer?.headers(
                    topic: topic, key: request.key.map { Array($0.utf8) }, value: Array(request.value.utf8),
                    timestamp: signedAt) ?? []
            return KafkaProducerMessage(
                topic: topic, key: request.key, value: request.value,
                headers: headers.map { KafkaHeader(name: $0.name, text: $0.value) })
        }

        try await system.produce(
            system.topics.charges,
            [Requests.charge(shopB, "b-1", line: line(0), 500), Requests.charge(shopA, "a-1", line: line(1), 300)])
        try await system.waitUntilIdle()
        let cancels = system.topics.cancellations
        try await system.send([
            // A signs, with its own valid key, a cancellation naming B: the forgery.
            signed(cancels, Requests.cancelCharge(shopB, "b-1", line: line(0)), by: keyA),
            // A names itself: its own cancellation of a charge it does not have.
            signed(cancels, Requests.cancelCharge(shopA, "b-1", line: line(0)), by: keyA),
            // Unsigned, and B's own cancellation replayed ten minutes after it was signed.
            signed(cancels, Requests.cancelCharge(shopB, "b-1", line: line(0)), by: nil),
            signed(cancels, Requests.cancelCharge(shopB, "b-1", line: line(0)), by: keyB, at: now - 600_000),
            // A merchant's key on a line termination.
            signed(cancels, Requests.terminate(line: line(0)), by: keyB),
        ])
        try await system.waitUntilIdle()

        // B rotates: a second key is valid at once, beside the first; then the first is revoked.
        let keyB2 = RequestSigner.generate(keyIDPrefix: "mk-")
        try await system.database.withStore { store in
            try await store.addSigningKey(
                keyID: keyB2.keyID, owner: .merchant(shopB),
                sealedSecret: try TestKeys.sealer.seal(
                    keyB2.secret, boundTo: KeyOwner.merchant(shopB).sealingContext(keyID: keyB2.keyID)))
        }
        try await system.send([
            signed(system.topics.charges, Requests.charge(shopB, "b-2", line: line(2), 700), by: keyB2),
            signed(system.topics.charges, Requests.charge(shopB, "b-3", line: line(2), 900), by: keyB),
        ])
        try await system.waitUntilIdle()
        let revoked = try await system.database.withStore {
            try await $0.revokeSigningKey(keyID: keyB.keyID, of: .merchant(shopB))
        }
        #expect(revoked)
        // A revocation counts from the next read of the keys: here a charge worker started afresh.
        chargeWorker.process.terminate()
        #expect(try await Processes.waitForExit(chargeWorker.process, within: .seconds(30)))
        try system.launch(.charges)
        try await system.send([
            signed(system.topics.charges, Requests.charge(shopB, "b-4", line: line(3), 1100), by: keyB),
            signed(system.topics.charges, Requests.charge(shopB, "b-5", line: line(3), 1300), by: keyB2),
        ])
        try await system.waitUntilIdle()
        try await system.close(.september)
        try await system.waitUntilIdle()

        let outputs = try await system.outputs()
        let answers = outputs.results.values.map {
            "\($0.merchantId ?? "-") \($0.requestType) \($0.requestId) \($0.status) \($0.reason ?? "")"
        }
        #expect(
            answers.sorted() == [
                "m-a charge a-1 accepted ", "m-a charge-cancel b-1 rejected unknown_charge",
                "m-b charge b-1 accepted ", "m-b charge b-2 accepted ", "m-b charge b-3 accepted ",
                "m-b charge b-5 accepted ",
            ], "B hears only of its own requests; A's forgery reaches no one")
        let refusals = outputs.deadLetters.values.map {
            String(decoding: $0.header(DeadLetterHeaders.error) ?? [], as: UTF8.self).prefix { $0 != ":" }
        }
        #expect(
            refusals.sorted() == [
                "signature_invalid", "signature_missing", "signature_stale", "signature_wrong_signer",
                "signature_wrong_signer",
            ])
        // A reader of A's topic (all A's principal may read) sees A's two answers, nothing of B's.
        let readByA =
            try await system.readAll([system.topics.merchantResults(shopA)])[
                system.topics.merchantResults(shopA)] ?? []
        let decoded = try readByA.map { try JSONDecoder().decode(MerchantResultMessage.self, from: Data($0.value)) }
        #expect(Set(decoded.map(\.requestId)) == ["a-1", "b-1"] && decoded.allSatisfy { $0.merchantId == shopA })
        let bill = try #require(outputs.bills(of: .september)[line(0)])
        #expect(bill.total == 500, "B's charge is still billed")
        let settlement = try #require(outputs.settlements(of: .september)[shopB])
        #expect(settlement.grossAmount == 500 + 700 + 900 + 1300)
    }
}
