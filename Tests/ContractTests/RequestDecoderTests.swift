import Billing
import Contract
import Foundation
import JSON
import Testing

@Suite("Reading requests from Kafka messages")
struct RequestDecoderTests {
    let decoder = RequestDecoder()

    func decode(_ json: String, key: String? = "L0000001") -> DecodedMessage {
        decoder.decode(value: Array(json.utf8), key: key.map { Array($0.utf8) })
    }

    @Test("Well-formed requests of every type")
    func wellFormed() {
        #expect(
            decode(
                #"{"type":"charge","merchantId":"m1","chargeId":"c-1","lineId":"L0000001","amount":500,"description":"500 points","occurredAt":"2026-11-03T10:15:00+09:00","authorization":"tok"}"#
            ) == .request(Make.charge))
        #expect(
            decode(
                #"{"type":"subscription","merchantId":"m1","subscriptionId":"s-1","lineId":"L0000001","monthlyAmount":300,"description":"club","authorization":"tok"}"#
            )
                == .request(
                    .subscription(
                        SubscriptionRequest(
                            merchantID: "m1", subscriptionID: "s-1", lineID: "L0000001", monthlyAmount: 300,
                            description: "club"))))
        #expect(
            decode(#"{"type":"charge-cancel","merchantId":"m1","chargeId":"c-1","lineId":"L0000001"}"#)
                == .request(
                    .chargeCancellation(ChargeCancellation(merchantID: "m1", chargeID: "c-1", lineID: "L0000001"))))
        #expect(
            decode(#"{"type":"subscription-cancel","merchantId":"m1","subscriptionId":"s-1","lineId":"L0000001"}"#)
                == .request(
                    .subscriptionCancellation(
                        SubscriptionCancellation(merchantID: "m1", subscriptionID: "s-1", lineID: "L0000001"))))
        #expect(
            decode(#"{"type":"line-termination","lineId":"L0000001","occurredAt":"2026-11-30T00:00:00+09:00"}"#)
                == .request(.lineTermination(LineTermination(lineID: "L0000001"))))
    }

    struct BadCase: CustomTestStringConvertible, Sendable {
        var name: String
        var json: String
        var key: String?
        /// A reason code for a refusal, or nil for a dead letter.
        var refusal: RejectionReason?
        var testDescription: String { name }
    }

    @Test(
        "Bad input is refused with a reason or dead-lettered",
        arguments: [
            BadCase(name: "not JSON", json: "hello", key: "L0000001", refusal: nil),
            BadCase(name: "truncated", json: #"{"type":"charge","merchantId":"m1""#, key: "L0000001", refusal: nil),
            BadCase(name: "an array", json: "[1,2,3]", key: "L0000001", refusal: nil),
            BadCase(
                name: "a merchant id with a dot, which would reach past its topic prefix",
                json: #"{"type":"charge-cancel","merchantId":"m-a.results","chargeId":"c-1","lineId":"L0000001"}"#,
                key: "L0000001", refusal: nil),
            BadCase(
                name: "a merchant id with a slash",
                json: #"{"type":"charge-cancel","merchantId":"m/../b","chargeId":"c-1","lineId":"L0000001"}"#,
                key: "L0000001", refusal: nil),
            BadCase(name: "no type", json: #"{"merchantId":"m1"}"#, key: "L0000001", refusal: nil),
            BadCase(name: "unknown type", json: #"{"type":"refund","merchantId":"m1"}"#, key: "L0000001", refusal: nil),
            BadCase(
                name: "amount as a string",
                json:
                    #"{"type":"charge","merchantId":"m1","chargeId":"c","lineId":"L0000001","amount":"500","description":"d","authorization":"t"}"#,
                key: "L0000001", refusal: nil),
            BadCase(
                name: "amount beyond 64 bits",
                json:
                    #"{"type":"charge","merchantId":"m1","chargeId":"c","lineId":"L0000001","amount":1e30,"description":"d","authorization":"t"}"#,
                key: "L0000001", refusal: nil),
            BadCase(
                name: "no merchant", json: #"{"type":"charge","chargeId":"c","lineId":"L0000001"}"#, key: "L0000001",
                refusal: nil),
            BadCase(
                name: "no charge id",
                json:
                    #"{"type":"charge","merchantId":"m1","lineId":"L0000001","amount":5,"description":"d","authorization":"t"}"#,
                key: "L0000001", refusal: .invalidRequest),
            BadCase(
                name: "key is not the line id",
                json:
                    #"{"type":"charge","merchantId":"m1","chargeId":"c","lineId":"L0000001","amount":5,"description":"d","authorization":"t"}"#,
                key: "L0000002", refusal: .invalidRequest),
            BadCase(
                name: "malformed charge id",
                json:
                    #"{"type":"charge","merchantId":"m1","chargeId":"a b","lineId":"L0000001","amount":5,"description":"d","authorization":"t"}"#,
                key: "L0000001", refusal: .invalidRequest),
            BadCase(
                name: "no authorization",
                json:
                    #"{"type":"charge","merchantId":"m1","chargeId":"c","lineId":"L0000001","amount":5,"description":"d"}"#,
                key: "L0000001", refusal: .authorizationMissing),
            BadCase(
                name: "termination for another key", json: #"{"type":"line-termination","lineId":"L0000001"}"#,
                key: "L9",
                refusal: nil),
            BadCase(
                name: "occurredAt not a date-time",
                json:
                    #"{"type":"charge","merchantId":"m1","chargeId":"c","lineId":"L0000001","amount":5,"description":"d","occurredAt":"yesterday","authorization":"t"}"#,
                key: "L0000001", refusal: .invalidRequest),
            BadCase(
                name: "occurredAt without an offset",
                json:
                    #"{"type":"charge-cancel","merchantId":"m1","chargeId":"c","lineId":"L0000001","occurredAt":"2026-11-03T10:15:00"}"#,
                key: "L0000001", refusal: .invalidRequest),
            BadCase(
                name: "termination with occurredAt not a date-time",
                json: #"{"type":"line-termination","lineId":"L0000001","occurredAt":"2026-02-30T00:00:00Z"}"#,
                key: "L0000001", refusal: nil),
        ])
    func badInput(_ example: BadCase) {
        let decoded = decode(example.json, key: example.key)
        switch (decoded, example.refusal) {
        case (.deadLetter, nil): break
        case (.refused(let refused), let reason?): #expect(refused.reason == reason)
        default: Issue.record("\(example.name): got \(decoded)")
        }
    }

    @Test(
        "RFC 3339 date-times, as the schemas' date-time means them",
        arguments: [
            ("2026-11-03T10:15:00+09:00", true), ("2026-11-03T01:15:00Z", true), ("2026-11-03t01:15:00.123456z", true),
            ("2024-02-29T23:59:60-00:30", true), ("2026-11-03 10:15:00+09:00", false), ("2026-11-03T10:15:00", false),
            ("2026-11-03", false), ("2025-02-29T00:00:00Z", false), ("2026-13-01T00:00:00Z", false),
            ("2026-11-03T24:00:00Z", false), ("2026-11-03T10:15:00.Z", false), ("2026-11-03T10:15:00+0900", false),
            ("yesterday", false), ("1764000000", false), ("２０２６-11-03T10:15:00Z", false),
        ])
    func dateTimes(_ text: String, _ valid: Bool) {
        #expect(RFC3339.isDateTime(text) == valid)
    }

    @Test("Negative and huge amounts decode, and the rules refuse them")
    func amountsAreForTheRules() {
        let json =
            #"{"type":"charge","merchantId":"m1","chargeId":"c","lineId":"L0000001","amount":-5,"description":"d","authorization":"t"}"#
        guard case .request(let request) = decode(json) else {
            Issue.record("expected a request")
            return
        }
        var book = LineBook(line: Line(id: "L0000001", type: .bFlets), openCycle: BillingCycle("2026-11")!, spend: 0)
        let outcome = BillingRules().apply(request, to: &book, merchant: Merchant(id: "m1", name: "M"))
        #expect(outcome.rejection == .amountOutOfRange)
    }
}

enum Make {
    static let charge = BillingRequest.charge(
        ChargeRequest(merchantID: "m1", chargeID: "c-1", lineID: "L0000001", amount: 500, description: "500 points"))
}
