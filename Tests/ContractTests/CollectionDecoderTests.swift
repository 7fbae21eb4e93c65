import Billing
import Contract
import Foundation
import MatometeTestSupport
import Testing

/// Reading `matomete.collections`: what is a report, what is answered `invalid_request`, what is dead-lettered.
@Suite("Collection reports: decoding")
struct CollectionDecoderTests {
    static let sentOn = CalendarDay("2027-01-10")!

    static func decode(_ json: String, key: String? = "L1") -> DecodedCollectionReport {
        CollectionReportDecoder().decode(value: Array(json.utf8), key: key.map { Array($0.utf8) }, sentOn: sentOn)
    }

    @Test("The three reports, as the schema describes them")
    func reports() throws {
        let schema = try JSONSchema(named: "collections")
        let examples: [(String, CollectionReport.Event, BillingCycle?)] = [
            (
                #"{"type":"payment","lineId":"L1","billId":"bill-L1-2026-11","paymentId":"p-1","amount":980,"date":"2026-12-27"}"#,
                .payment("p-1", amount: 980, receivedOn: CalendarDay("2026-12-27")!), BillingCycle("2026-11")
            ),
            (
                #"{"type":"payment-reversal","lineId":"L1","paymentId":"p-1","date":"2027-01-05"}"#,
                .reversal("p-1", reversedOn: CalendarDay("2027-01-05")!), nil
            ),
            (
                #"{"type":"payment-reversal","lineId":"L1","billId":"bill-L1-2026-11","paymentId":"p-1","date":"2027-01-05"}"#,
                .reversal("p-1", reversedOn: CalendarDay("2027-01-05")!), BillingCycle("2026-11")
            ),
            (
                #"{"type":"write-off","lineId":"L1","billId":"bill-L1-2026-11","date":"2027-01-09"}"#,
                .writeOff(writtenOffOn: CalendarDay("2027-01-09")!), BillingCycle("2026-11")
            ),
        ]
        for (json, event, cycle) in examples {
            #expect(schema.violations(of: Array(json.utf8)).isEmpty, "\(json)")
            #expect(
                Self.decode(json)
                    == .report(CollectionReport(lineID: "L1", cycle: cycle, event: event, sentOn: Self.sentOn)))
        }
    }

    @Test(
        "Answered invalid_request, naming the problem",
        arguments: [
            (
                #"{"type":"payment","lineId":"L1","billId":"bill-L1-2026-11","paymentId":"p","amount":0,"date":"2026-12-27"}"#,
                "amount"
            ),
            (
                #"{"type":"payment","lineId":"L1","billId":"bill-L1-2026-11","paymentId":"p","amount":"5","date":"2026-12-27"}"#,
                "amount must be an integer"
            ),
            (
                #"{"type":"payment","lineId":"L1","billId":"bill-L1-2026-11","paymentId":"p","date":"2026-12-27"}"#,
                "amount"
            ),
            (
                #"{"type":"payment","lineId":"L1","billId":"bill-L2-2026-11","paymentId":"p","amount":5,"date":"2026-12-27"}"#,
                "billId"
            ),
            (
                #"{"type":"payment","lineId":"L1","billId":"bill-L1-2026-13","paymentId":"p","amount":5,"date":"2026-12-27"}"#,
                "billId"
            ),
            (#"{"type":"payment","lineId":"L1","paymentId":"p","amount":5,"date":"2026-12-27"}"#, "billId is missing"),
            (
                #"{"type":"payment","lineId":"L1","billId":"bill-L1-2026-11","amount":5,"date":"2026-12-27"}"#,
                "paymentId"
            ),
            (
                #"{"type":"payment","lineId":"L1","billId":"bill-L1-2026-11","paymentId":"p q","amount":5,"date":"2026-12-27"}"#,
                "paymentId"
            ),
            (
                #"{"type":"payment","lineId":"L1","billId":"bill-L1-2026-11","paymentId":"p","amount":5,"date":"2027-02-29"}"#,
                "date"
            ),
            (
                #"{"type":"payment","lineId":"L1","billId":"bill-L1-2026-11","paymentId":"p","amount":5,"date":20261227}"#,
                "date must be a string"
            ),
            (#"{"type":"payment-reversal","lineId":"L1","date":"2027-01-05"}"#, "paymentId"),
            (#"{"type":"write-off","lineId":"L1","date":"2027-01-05"}"#, "billId is missing"),
            (#"{"type":"write-off","lineId":"L1","billId":7,"date":"2027-01-05"}"#, "billId must be a string"),
        ])
    func refused(_ json: String, _ problem: String) throws {
        guard case .refused(let refused) = Self.decode(json) else {
            Issue.record("not refused: \(json)")
            return
        }
        #expect(refused.problem.contains(problem), "\(refused.problem)")
        let result = CollectionResultMessage(id: "collection-result-t-0-1", refused: refused)
        #expect(result.reason == "invalid_request")
        #expect(try JSONSchema(named: "collection-results").violations(of: result.jsonBytes).isEmpty)
    }

    @Test(
        "Dead-lettered: nothing to answer",
        arguments: [
            ("not json", "L1"), (#"{"lineId":"L1"}"#, "L1"), (#"{"type":"refund","lineId":"L1"}"#, "L1"),
            (#"{"type":"payment","lineId":"L1","amount":5}"#, "L2"), (#"{"type":"payment"}"#, "L1"),
            (#"{"type":"payment","lineId":"L1","lineId":"L1"}"#, "L1"), (#"{"type":"payment","lineId":["L1"]}"#, "L1"),
            (#"{"type":1,"lineId":"L1"}"#, "L1"),
        ])
    func deadLettered(_ json: String, _ key: String) {
        guard case .deadLetter = Self.decode(json, key: key) else {
            Issue.record("not dead-lettered: \(json)")
            return
        }
    }

    @Test("Results validate against their schema")
    func results() throws {
        let schema = try JSONSchema(named: "collection-results")
        let report = CollectionReport(
            lineID: "L1", cycle: nil, event: .reversal("p-1", reversedOn: CalendarDay("2027-01-05")!), sentOn: nil)
        for outcome in [
            CollectionOutcome(rejection: nil, cycle: BillingCycle("2026-11"), open: 500),
            CollectionOutcome(rejection: nil, isRepeat: true, cycle: BillingCycle("2026-11"), open: 0),
            CollectionOutcome(rejection: .unknownPayment, cycle: nil),
        ] {
            let message = CollectionResultMessage(id: "collection-result-t-0-1", report: report, outcome: outcome)
            #expect(schema.violations(of: message.jsonBytes).isEmpty)
            // The fast writer writes what JSONEncoder would.
            let decoded = try JSONDecoder().decode(CollectionResultMessage.self, from: Data(message.jsonBytes))
            #expect(decoded == message)
        }
        let accepted = CollectionResultMessage(
            id: "x", report: report, outcome: CollectionOutcome(rejection: nil, cycle: BillingCycle("2026-11")))
        #expect(accepted.billId == "bill-L1-2026-11")
    }
}
