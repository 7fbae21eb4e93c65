import Billing
import Contract
import Foundation
import MatometeTestSupport
import Testing

/// The JSON Schemas in `docs/schemas/` describe what the code reads and writes.
@Suite("The documented message contract")
struct SchemaTests {
    static let charge =
        #"{"type":"charge","merchantId":"m1","chargeId":"c-1","lineId":"L0000001","amount":500,"description":"500 points","occurredAt":"2026-11-03T10:15:00+09:00","authorization":"token"}"#
    static let subscription =
        #"{"type":"subscription","merchantId":"m1","subscriptionId":"s-1","lineId":"L0000001","monthlyAmount":300,"description":"video plan","occurredAt":"2026-11-03T10:15:00+09:00","authorization":"token"}"#

    @Test("The documented requests validate and decode as requests")
    func documentedRequests() throws {
        let charges = try JSONSchema(named: "charges")
        let cancellations = try JSONSchema(named: "cancellations")
        let decoder = RequestDecoder()
        for example in [Self.charge, Self.subscription] {
            #expect(charges.violations(of: Array(example.utf8)).isEmpty)
            guard case .request = decoder.decode(value: Array(example.utf8), key: Array("L0000001".utf8)) else {
                Issue.record("\(example) does not decode")
                continue
            }
        }
        let cancels = [
            #"{"type":"charge-cancel","merchantId":"m1","chargeId":"c-1","lineId":"L0000001","occurredAt":"2026-11-04T09:00:00+09:00"}"#,
            #"{"type":"subscription-cancel","merchantId":"m1","subscriptionId":"s-1","lineId":"L0000001","occurredAt":"2026-11-04T09:00:00+09:00"}"#,
            #"{"type":"line-termination","lineId":"L0000001","occurredAt":"2026-11-04T09:00:00+09:00"}"#,
        ]
        for example in cancels {
            #expect(cancellations.violations(of: Array(example.utf8)).isEmpty, "\(example)")
            guard case .request = decoder.decode(value: Array(example.utf8), key: Array("L0000001".utf8)) else {
                Issue.record("\(example) does not decode")
                continue
            }
        }
        let close = try JSONSchema(named: "billing-cycles")
        #expect(close.violations(of: Array(CycleCommand.closeMessage(BillingCycle("2026-11")!).utf8)).isEmpty)
    }

    @Test(
        "Requests the schema refuses are not requests for the workers either",
        arguments: [
            #"{"type":"charge","merchantId":"m1","chargeId":"c-1","lineId":"L0000001","amount":"500","description":"x","authorization":"t"}"#,
            #"{"type":"charge","merchantId":"m1","lineId":"L0000001","amount":500,"description":"x","authorization":"t"}"#,
            #"{"type":"charge","merchantId":"m1","chargeId":"c 1","lineId":"L0000001","amount":500,"description":"x","authorization":"t"}"#,
            #"{"type":"refund","merchantId":"m1","chargeId":"c-1","lineId":"L0000001"}"#,
        ])
    func refusedRequests(example: String) throws {
        #expect(!(try JSONSchema(named: "charges")).violations(of: Array(example.utf8)).isEmpty)
        if case .request = RequestDecoder().decode(value: Array(example.utf8), key: Array("L0000001".utf8)) {
            Issue.record("the worker would apply \(example)")
        }
    }

    @Test("Messages the code publishes validate against their schemas")
    func publishedMessages() throws {
        let november = BillingCycle("2026-11")!
        let request = BillingRequest.charge(
            ChargeRequest(
                merchantID: MerchantID(rawValue: "m1"), chargeID: ChargeID(rawValue: "c-1"),
                lineID: LineID(rawValue: "L0000001"), amount: 500, description: "points"))
        let results = try JSONSchema(named: "merchant-results")
        for outcome in [
            Outcome.accepted(november), .rejected(.spendingLimitExceeded, november), .rejected(.unknownLine, nil),
        ] {
            let message = MerchantResultMessage(id: "result-t-0-1", request: request, outcome: outcome)
            #expect(results.violations(of: message.jsonBytes).isEmpty)
        }
        let bill = LineBill(
            closing: november, lineID: LineID(rawValue: "L0000001"),
            charges: [
                ChargeRecord(
                    merchantID: MerchantID(rawValue: "m1"), chargeID: ChargeID(rawValue: "c-1"), amount: 500,
                    description: "points", cycle: november)
            ],
            subscriptions: [], credits: [])
        let encoder = JSONEncoder()
        #expect(try JSONSchema(named: "line-bills").violations(of: encoder.encode(LineBillMessage(bill))).isEmpty)
        let totals = try #require(MerchantTotals.of([bill]).first)
        // The launch tariff, and a banded one with tax added.
        let banded = try BandedTariff(
            bands: [TariffBand(from: 0, .perLine(sen: 2_500)), TariffBand(from: 1_501, .percentage(basisPoints: 300))],
            tax: .added)
        for tariff in [BandedTariff.launch, banded] {
            let settlement = Settlement(merchantID: totals.key, cycle: november, totals: totals.value, tariff: tariff)
            let violations = try JSONSchema(named: "settlements").violations(
                of: encoder.encode(SettlementMessage(settlement)))
            #expect(violations.isEmpty, "\(violations)")
        }
    }
}
