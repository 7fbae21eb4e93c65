import Billing
import Contract
import Foundation
import JSON
import Testing

@Suite("Hand-written JSON of hot-path messages")
struct JSONWritingTests {
    @Test("A result's JSON is what JSONEncoder writes, and decodes back", arguments: [false, true])
    func sameAsJSONEncoder(rejected: Bool) throws {
        let request = BillingRequest.charge(
            ChargeRequest(
                merchantID: "m\"1\\", chargeID: "c-1", lineID: "L0000001", amount: 500,
                description: "tab\there, newline\n, quote \", \u{8}\u{c}\u{1} and ポイント"))
        let outcome: Outcome =
            rejected ? .rejected(.spendingLimitExceeded, BillingCycle("2026-11")) : .accepted(BillingCycle("2026-11")!)
        let message = MerchantResultMessage(id: "result-matomete.charges-3-42", request: request, outcome: outcome)
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        #expect(
            String(decoding: message.jsonBytes, as: UTF8.self)
                == String(decoding: try encoder.encode(message), as: UTF8.self))
        #expect(try JSONDecoder().decode(MerchantResultMessage.self, from: Data(message.jsonBytes)) == message)
    }

    @Test("A line bill's JSON and its stored items are what JSONEncoder writes, and decode back", arguments: [0, 1, 3])
    func lineBillSameAsJSONEncoder(charges: Int) throws {
        let cycle = BillingCycle("2026-11")!
        let records = (0..<charges).map { index in
            ChargeRecord(
                merchantID: MerchantID(rawValue: "m\\\(index)"), chargeID: ChargeID(rawValue: "c-\(index)"),
                amount: Yen(Int64(100 * index + 1)), description: "\"Movie\" \u{8}\tポイント \(index)", cycle: cycle)
        }
        let bill = LineBill(closing: cycle, lineID: "L0000001", charges: records, subscriptions: [], credits: [])
        let message = LineBillMessage(bill)
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        let json = message.jsonBytesAndItems()
        #expect(
            String(decoding: json.message, as: UTF8.self)
                == String(decoding: try encoder.encode(message), as: UTF8.self))
        #expect(
            String(decoding: json.items, as: UTF8.self)
                == String(decoding: try encoder.encode(message.items), as: UTF8.self))
        #expect(try JSONDecoder().decode(LineBillMessage.self, from: Data(json.message)) == message)
    }
}
