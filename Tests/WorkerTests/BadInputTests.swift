import Authorization
import Billing
import Contract
import Foundation
import Kafka
import MatometeTestSupport
import Store
import Testing

/// A message that is not a valid request, and what must become of it.
struct BadMessage {
    enum Fate: Equatable {
        case deadLetter
        case rejected(String)
    }

    var topic: String
    var key: [UInt8]?
    var value: [UInt8]
    var fate: Fate

    init(_ topic: String, key: String?, _ value: String, _ fate: Fate) {
        self.topic = topic
        self.key = key.map { Array($0.utf8) }
        self.value = Array(value.utf8)
        self.fate = fate
    }

    init(_ topic: String, keyBytes: [UInt8]?, valueBytes: [UInt8], _ fate: Fate) {
        self.topic = topic
        key = keyBytes
        value = valueBytes
        self.fate = fate
    }
}

extension ScenarioTests {
    @Test(
        "Bad input: 1,000 malformed or invalid messages, and 8 the database refuses or fails on, are each dead-lettered or rejected with their reason"
    )
    func badInput() async throws {
        let system = try await TestSystem.start("bad-input")
        defer { Task { await system.shutDown() } }
        let traffic = KnownTraffic(september: 5000, october: 0, cancellations: 0)
        let adsl = (0..<50).map { Line(id: LineID(rawValue: "A\(String(format: "%07d", $0))"), type: .adsl) }
        try await system.setUp(merchants: traffic.merchants, lines: traffic.lines + adsl, openCycle: .september)
        // A message the database itself refuses (as a constraint or a data
        // error would): the worker must find it and dead-letter it alone.
        try await system.database.withClient { client in
            try await client.query(
                """
                CREATE FUNCTION refuse_poison() RETURNS trigger LANGUAGE plpgsql AS $$
                BEGIN
                    IF NEW.charge_id LIKE 'poison-%' THEN
                        RAISE EXCEPTION 'refused by a test trigger' USING ERRCODE = '22023';
                    ELSIF NEW.charge_id LIKE 'limit-%' THEN
                        RAISE EXCEPTION 'a limit exceeded' USING ERRCODE = '54000';
                    ELSIF NEW.charge_id LIKE 'failing-%' THEN
                        -- Neither a data error nor a passing one: retried a few times, then dead-lettered.
                        RAISE EXCEPTION 'a trigger failing' USING ERRCODE = 'P0001';
                    END IF;
                    RETURN NEW;
                END $$
                """, logger: TestSystem.logger)
            try await client.query(
                "CREATE TRIGGER refuse_poison BEFORE INSERT ON charges FOR EACH ROW EXECUTE FUNCTION refuse_poison()",
                logger: TestSystem.logger)
        }
        try system.launchAll(1)
        let topics = system.topics

        // Valid charges with a bad message after every fifth; the conflicting
        // duplicates reuse the id of the valid charge just before them (same
        // line, so same partition, so after it).
        var charges: [(message: BadMessage, valid: Bool)] = []
        var cancellations: [BadMessage] = []
        var bad = 0
        for (index, charge) in traffic.septemberCharges.enumerated() {
            let (key, value) = Requests.charge(
                KnownTraffic.merchant(charge.merchant), charge.id, line: Requests.line(charge.line), charge.amount)
            charges.append((BadMessage(topics.charges, key: key, value, .rejected("")), true))
            guard index % 5 == 4 else { continue }
            let made = Self.badMessage(number: bad, after: charge, topics: topics)
            if made.topic == topics.charges { charges.append((made, false)) } else { cancellations.append(made) }
            bad += 1
            if bad % 250 == 0 {
                let (key, value) = Requests.charge(
                    KnownTraffic.merchant(charge.merchant), "poison-\(bad)", line: Requests.line(charge.line), 100)
                charges.append((BadMessage(topics.charges, key: key, value, .deadLetter), false))
            }
            if bad % 500 == 0 {
                for prefix in ["limit", "failing"] {
                    let (key, value) = Requests.charge(
                        KnownTraffic.merchant(charge.merchant), "\(prefix)-\(bad)", line: Requests.line(charge.line),
                        100)
                    charges.append((BadMessage(topics.charges, key: key, value, .deadLetter), false))
                }
            }
        }
        #expect(bad == 1000)
        let chargeReports = try await system.produceBytes(
            topics.charges, charges.map { ($0.message.key, $0.message.value) })
        let cancellationReports = try await system.produceBytes(
            topics.cancellations, cancellations.map { ($0.key, $0.value) })
        // Valid charges sent unsigned, and forged: signed under a real key id with another secret.
        let merchant = KnownTraffic.merchant(0)
        let realKey = try #require(system.signer(of: .merchant(merchant)))
        let forger = RequestSigner(keyID: realKey.keyID, secret: RequestSigner.generate(keyIDPrefix: "mk-").secret)
        let forgeries = (0..<40).map { index in
            let (key, value) = Requests.charge(merchant, "forged-\(index)", line: Requests.line(index), 100)
            let headers =
                index % 2 == 0
                ? [] : forger.headers(topic: topics.charges, key: key.map { Array($0.utf8) }, value: Array(value.utf8))
            return KafkaProducerMessage(
                topic: topics.charges, key: key, value: value,
                headers: headers.map { KafkaHeader(name: $0.name, text: $0.value) })
        }
        let forgeryReports = try await system.send(forgeries)
        // Two bad commands for the billing-cycle workers, then the real close.
        let cycleReports = try await system.produce(
            topics.billingCycles,
            [
                (nil, CycleCommand.closeMessage(BillingCycle(containing: Int64(Date().timeIntervalSince1970)))),
                (nil, #"{"type":"close","cycle":"2026-13"}"#),
            ])
        try await system.waitUntilIdle()
        try await system.close(.september)
        try await system.waitUntilIdle()
        let outputs = try await system.outputs()

        func check(_ message: BadMessage, _ report: KafkaDeliveryReport) {
            let position = "\(report.topicPartition.topic)-\(report.topicPartition.partition)-\(report.offset)"
            switch message.fate {
            case .deadLetter:
                guard let letter = outputs.deadLetters["dead-letter-\(position)"] else {
                    Issue.record("no dead letter for \(position): \(String(decoding: message.value, as: UTF8.self))")
                    return
                }
                #expect(Array(letter.value) == message.value, "the dead letter keeps the original bytes")
                #expect(letter.header("matomete-source-offset") == Array("\(report.offset)".utf8))
                #expect(!(letter.header("matomete-error") ?? []).isEmpty)
                if let key = message.key, String(validating: key, as: UTF8.self) == nil || key.contains(0) {
                    #expect(
                        letter.header("matomete-original-key-base64") == Array(Data(key).base64EncodedString().utf8))
                } else {
                    #expect(letter.key.map(Array.init) == message.key)
                }
            case .rejected(let reason):
                let result = outputs.results["result-\(position)"]
                #expect(result?.status == "rejected", "\(position): \(String(decoding: message.value, as: UTF8.self))")
                #expect(result?.reason == reason, "\(position): \(String(decoding: message.value, as: UTF8.self))")
            }
        }
        var valid = 0
        for ((message, isValid), report) in zip(charges, chargeReports) {
            if isValid {
                valid += 1
                let id = "result-\(report.topicPartition.topic)-\(report.topicPartition.partition)-\(report.offset)"
                #expect(outputs.results[id]?.status == "accepted", "\(id) must be applied")
            } else {
                check(message, report)
            }
        }
        for (message, report) in zip(cancellations, cancellationReports) { check(message, report) }
        for (index, report) in forgeryReports.enumerated() {
            let id = "dead-letter-\(report.topicPartition.topic)-\(report.topicPartition.partition)-\(report.offset)"
            let error = outputs.deadLetters[id]?.header(DeadLetterHeaders.error).map {
                String(decoding: $0, as: UTF8.self)
            }
            #expect(
                error?.hasPrefix(index % 2 == 0 ? "signature_missing" : "signature_invalid") == true,
                "forgery \(index): \(error ?? "no dead letter")")
            #expect(outputs.results["result-\(id.dropFirst("dead-letter-".count))"] == nil, "no merchant hears of it")
        }
        for report in cycleReports {
            #expect(outputs.deadLetters["dead-letter-\(topics.billingCycles)-0-\(report.offset)"] != nil)
        }
        #expect(valid == 5000)
        // Nine kinds of fifty, the forty forgeries, the two bad commands, the four poison messages and the two each over a limit
        // and failing a trigger.
        let expectedDeadLetters = 9 * 50 + 2 + 4 + 2 + 2 + forgeries.count
        #expect(outputs.deadLetters.count == expectedDeadLetters)
        traffic.verifyBills(outputs, cycles: [.september], idleLines: adsl.count)
        #expect(system.running.count == 4, "no worker exited")
        try await Self.checkMerchantDeadLetters(system, outputs)
    }

    /// The dead letters a merchant's key signed are kept for its site, once each, with their original bytes: those
    /// whose content is at fault (not the ones the database refused, nor the unsigned, forged or line-system ones).
    static func checkMerchantDeadLetters(_ system: TestSystem, _ outputs: Outputs) async throws {
        let merchants = Set(
            outputs.deadLetters.values.compactMap { letter -> String? in
                let object = try? JSONSerialization.jsonObject(with: Data(letter.value)) as? [String: Any]
                return object?["merchantId"] as? String
            })
        let kept = try await system.database.withStore { store in
            var kept: [MerchantDeadLetter] = []
            for merchant in merchants {
                kept += try await store.merchantDeadLetters(merchant: MerchantID(rawValue: merchant), limit: 10_000)
            }
            return kept
        }
        var expected: Set<String> = []
        for (id, letter) in outputs.deadLetters {
            let value = String(decoding: letter.value, as: UTF8.self)
            let error = letter.header(DeadLetterHeaders.error).map { String(decoding: $0, as: UTF8.self) } ?? ""
            let keyID = letter.header(MessageSignature.Header.keyID).map { String(decoding: $0, as: UTF8.self) } ?? ""
            let refusedByDatabase = ["poison-", "limit-", "failing-"].contains {
                value.contains(#""chargeId":"\#($0)"#)
            }
            let signatureFault = ["signature_missing", "signature_invalid", "signature_stale"].contains {
                error.hasPrefix($0)
            }
            if keyID.hasPrefix("mk-"), !refusedByDatabase, !signatureFault { expected.insert(id) }
        }
        #expect(!expected.isEmpty, "some bad messages are signed by their merchant")
        var seen: Set<String> = []
        for kept in kept {
            let (merchant, reason) = (kept.merchantID.rawValue, kept.reason)
            let id = "dead-letter-\(kept.sourceTopic)-\(kept.sourcePartition)-\(kept.sourceOffset)"
            #expect(seen.insert(id).inserted, "\(id) kept once")
            guard let letter = outputs.deadLetters[id] else {
                Issue.record("\(id) is kept for \(merchant) but not dead-lettered")
                continue
            }
            #expect(kept.value == Array(letter.value.prefix(MerchantDeadLetter.keptValueBytes)))
            #expect(Int(kept.valueSize) == letter.value.count)
            #expect(letter.header(DeadLetterHeaders.error).map { String(decoding: $0, as: UTF8.self) } == reason)
            let keyID = letter.header(MessageSignature.Header.keyID).map { String(decoding: $0, as: UTF8.self) }
            #expect(keyID.flatMap { system.owner(ofKey: $0) } == .merchant(merchant), "\(id): kept for its signer")
        }
        #expect(
            seen == expected,
            "kept: \(seen.subtracting(expected).sorted().prefix(3)); missing: \(expected.subtracting(seen).sorted().prefix(3))"
        )
    }

    /// The `number`th bad message: twenty kinds, fifty of each.
    static func badMessage(
        number: Int, after valid: (line: Int, merchant: Int, id: String, amount: Int64), topics: Topics
    ) -> BadMessage {
        let line = Requests.line(valid.line)
        let merchant = KnownTraffic.merchant(valid.merchant)
        let id = "bad-\(number)"
        // Signed for exactly what it asks: these requests fail on their content, not their authorization.
        func charge(_ amount: String, line: String = line, merchant: String = merchant, id: String = id) -> String {
            let token = TestKeys.token(
                line: line, merchant: merchant, kind: "charge", amount: Int64(amount) ?? 0, reference: id)
            return
                #"{"type":"charge","merchantId":"\#(merchant)","chargeId":"\#(id)","lineId":"\#(line)","amount":\#(amount),"description":"x","occurredAt":"2026-09-03T10:15:00+09:00","authorization":"\#(token)"}"#
        }
        switch number % 20 {
        case 0: return BadMessage(topics.charges, key: line, "this is not JSON \(number)", .deadLetter)
        case 1: return BadMessage(topics.charges, key: line, String(charge("500").prefix(40)), .deadLetter)
        case 2: return BadMessage(topics.charges, key: line, charge(#""500""#), .deadLetter)
        case 3:
            return BadMessage(
                topics.charges, key: line, #"{"type":"refund","merchantId":"\#(merchant)","lineId":"\#(line)"}"#,
                .deadLetter)
        case 4: return BadMessage(topics.charges, key: line, charge("-500"), .rejected("amount_out_of_range"))
        case 5: return BadMessage(topics.charges, key: line, charge("5000000"), .rejected("amount_out_of_range"))
        case 6:
            let unknown = "L9\(String(format: "%06d", number))"
            return BadMessage(topics.charges, key: unknown, charge("500", line: unknown), .rejected("unknown_line"))
        case 7:
            // No key belongs to a merchant that does not exist: a request naming one is signed with
            // someone else's key (the test signs it with the line system's), so it is dead-lettered
            // (signature_wrong_signer) and no results topic hears of it.
            return BadMessage(topics.charges, key: line, charge("500", merchant: "m-unknown"), .deadLetter)
        case 8:
            let adsl = "A\(String(format: "%07d", number % 50))"
            return BadMessage(topics.charges, key: adsl, charge("500", line: adsl), .rejected("line_not_eligible"))
        case 9:
            // The valid charge just before, under its id, with another amount.
            return BadMessage(
                topics.charges, key: line, charge("\(valid.amount + 1)", id: valid.id), .rejected("duplicate_conflict"))
        case 10:
            return BadMessage(
                topics.cancellations, key: line,
                #"{"type":"charge-cancel","merchantId":"\#(merchant)","chargeId":"\#(id)","lineId":"\#(line)","occurredAt":"2026-09-04T10:00:00+09:00"}"#,
                .rejected("unknown_charge"))
        case 11:
            return BadMessage(
                topics.cancellations, key: line,
                #"{"type":"subscription-cancel","merchantId":"\#(merchant)","subscriptionId":"\#(id)","lineId":"\#(line)","occurredAt":"2026-09-04T10:00:00+09:00"}"#,
                .rejected("unknown_subscription"))
        case 12:
            return BadMessage(
                topics.charges, keyBytes: [0xFF, 0x00, 0xC3, UInt8(number % 256)],
                valueBytes: [0x00, 0x01, 0xFE, 0xFF, UInt8(number % 256)], .deadLetter)
        case 13:
            let nul =
                #"{"type":"charge","merchantId":"\#(merchant)","chargeId":"\#(id)","lineId":"\#(line)","amount":500,"description":"a\u0000b","authorization":"a"}"#
            return BadMessage(topics.charges, key: line, nul, .rejected("invalid_request"))
        case 14:
            let unauthorized =
                #"{"type":"charge","merchantId":"\#(merchant)","chargeId":"\#(id)","lineId":"\#(line)","amount":500,"description":"x"}"#
            return BadMessage(topics.charges, key: line, unauthorized, .rejected("authorization_missing"))
        case 15:
            // Keyed by a line other than the one it names.
            let other = Requests.line((valid.line + 1) % KnownTraffic.lineCount)
            return BadMessage(topics.charges, key: other, charge("500"), .rejected("invalid_request"))
        case 16:
            return BadMessage(
                topics.charges, key: line,
                #"{"type":"charge-cancel","merchantId":"\#(merchant)","chargeId":"\#(valid.id)","lineId":"\#(line)"}"#,
                .rejected("invalid_request"))
        case 17: return BadMessage(topics.charges, key: line, charge("1e30"), .deadLetter)
        case 18: return BadMessage(topics.charges, key: line, "", .deadLetter)
        default: return BadMessage(topics.charges, key: line, "[1,2,3]", .deadLetter)
        }
    }
}

extension ScenarioTests {
    @Test("A message Kafka refuses for good is set aside, and the messages behind it are published")
    func unpublishableSetAside() async throws {
        let system = try await TestSystem.start("parked")
        defer { Task { await system.shutDown() } }
        try system.launch(.relay)
        // Written straight to the outbox, as a worker's batch would: one too large for any broker, then two that fit.
        try await system.database.withClient { client in
            try await client.query(
                """
                INSERT INTO outbox (topic, message_key, message_id, payload)
                VALUES (\(system.topics.lineSystemResults), 'L', 'result-huge', decode(repeat('7b', 1100000), 'hex')),
                       (\(system.topics.lineSystemResults), 'L', 'result-a', convert_to('{"id":"result-a","requestType":"line-termination","requestId":"","lineId":"L","status":"accepted"}', 'UTF8')),
                       (\(system.topics.lineSystemResults), 'L', 'result-b', convert_to('{"id":"result-b","requestType":"line-termination","requestId":"","lineId":"L","status":"accepted"}', 'UTF8'))
                """, logger: TestSystem.logger)
        }
        try await system.waitUntilIdle(within: .seconds(60))
        let parked = try await system.database.withClient { client in
            try await client.fetch(
                "SELECT message_id, error FROM outbox_parked", (String, String).self, logger: TestSystem.logger)
        }
        #expect(parked.map(\.0) == ["result-huge"])
        #expect(parked.first?.1.contains("too large") == true || parked.first?.1.contains("size") == true, "\(parked)")
        let outputs = try await system.outputs()
        #expect(Set(outputs.results.keys) == ["result-a", "result-b"])
    }
}
