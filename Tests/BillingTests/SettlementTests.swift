import Billing
import Testing

@Suite("Fees and settlements")
struct SettlementTests {
    let cycle = BillingCycle("2026-11")!

    struct FeeCase: CustomTestStringConvertible, Sendable {
        var name: String
        var lines: Int64
        var gross: Yen
        var rule: FeeRule
        var fee: Yen
        var testDescription: String { name }
    }

    @Test(
        "Fee rule and amount, exactly at the boundaries",
        arguments: [
            FeeCase(name: "average 599: per line", lines: 100, gross: 59_900, rule: .perLine, fee: 3_150),
            FeeCase(name: "average 600 is not below: 5%", lines: 100, gross: 60_000, rule: .percentage, fee: 3_000),
            FeeCase(name: "average 601: 5%", lines: 100, gross: 60_100, rule: .percentage, fee: 3_005),
            FeeCase(name: "average 599.99: per line", lines: 100, gross: 59_999, rule: .perLine, fee: 3_150),
            // From ¥600 to ¥630 a line, 5% is less than ¥31.5 a line, and 5% applies.
            FeeCase(name: "average 615: 5% (¥30.75 a line)", lines: 4, gross: 2_460, rule: .percentage, fee: 123),
            FeeCase(name: "average 629: 5%", lines: 1, gross: 629, rule: .percentage, fee: 31),
            FeeCase(name: "average 630: 5% equals ¥31.5", lines: 2, gross: 1_260, rule: .percentage, fee: 63),
            FeeCase(name: "one line at ¥300: ¥31.5 rounds down", lines: 1, gross: 300, rule: .perLine, fee: 31),
            FeeCase(name: "two lines at ¥300: exactly ¥63", lines: 2, gross: 600, rule: .perLine, fee: 63),
            FeeCase(name: "three lines: ¥94.5 rounds down", lines: 3, gross: 900, rule: .perLine, fee: 94),
            FeeCase(name: "5% of ¥1,999 rounds down", lines: 1, gross: 1_999, rule: .percentage, fee: 99),
            FeeCase(
                name: "many lines, 5%", lines: 1_000_000, gross: 1_000_000_000, rule: .percentage, fee: 50_000_000),
            FeeCase(
                name: "many lines, per line", lines: 1_000_001, gross: 500_000_000, rule: .perLine, fee: 31_500_031),
            FeeCase(name: "credits make gross zero: no fee", lines: 2, gross: 0, rule: .perLine, fee: 0),
            FeeCase(name: "credits make gross negative: no fee", lines: 3, gross: -500, rule: .perLine, fee: 0),
            FeeCase(name: "tiny gross: fee above gross", lines: 10, gross: 100, rule: .perLine, fee: 315),
        ])
    func feeRule(_ example: FeeCase) {
        let settlement = Settlement(
            merchantID: "m1", cycle: cycle, totals: MerchantTotals(lines: example.lines, gross: example.gross),
            tariff: .launch)
        #expect(settlement.feeRule == example.rule)
        #expect(settlement.fee == example.fee)
        #expect(settlement.net == example.gross - example.fee)
    }

    @Test("Average per line is shown rounded down, also for negative gross")
    func averagePerLine() {
        let positive = Settlement(
            merchantID: "m1", cycle: cycle, totals: MerchantTotals(lines: 3, gross: 1_000), tariff: .launch)
        #expect(positive.averagePerLine == 333)
        let negative = Settlement(
            merchantID: "m1", cycle: cycle, totals: MerchantTotals(lines: 3, gross: -1_000), tariff: .launch)
        #expect(negative.averagePerLine == -334)
    }

    @Test("A tariff revised mid-year applies from its effective cycle on")
    func tariffChangeMidYear() {
        let revised = Tariff(rateBasisPoints: 450, perLineThreshold: 500, perLineFeeTenths: 250)
        let schedule = TariffSchedule(versions: [
            TariffVersion(effectiveFrom: BillingCycle("2011-07")!, tariff: Tariff.standard),
            TariffVersion(effectiveFrom: BillingCycle("2012-04")!, tariff: revised),
        ])
        #expect(schedule.tariff(for: BillingCycle("2011-06")!) == .launch)  // before any version: fallback
        #expect(schedule.tariff(for: BillingCycle("2012-03")!) == .launch)
        #expect(schedule.tariff(for: BillingCycle("2012-04")!) == revised.banded)
        #expect(schedule.tariff(for: BillingCycle("2013-01")!) == revised.banded)

        // Average ¥550: per line under the launch tariff, 4.5% under the revised one.
        let totals = MerchantTotals(lines: 10, gross: 5_500)
        let march = Settlement(
            merchantID: "m1", cycle: BillingCycle("2012-03")!, totals: totals,
            tariff: schedule.tariff(for: BillingCycle("2012-03")!))
        let april = Settlement(
            merchantID: "m1", cycle: BillingCycle("2012-04")!, totals: totals,
            tariff: schedule.tariff(for: BillingCycle("2012-04")!))
        #expect(march.feeRule == .perLine)
        #expect(march.fee == 315)
        #expect(april.feeRule == .percentage)
        #expect(april.fee == 247)  // 5,500 × 4.5% = 247.5, rounded down
    }

    @Test("Merchant totals count distinct lines, items and credits")
    func merchantTotals() {
        let bills = [
            LineBill(
                closing: cycle, lineID: "L1",
                charges: [
                    ChargeRecord(merchantID: "m1", chargeID: "c1", amount: 500, description: "", cycle: cycle),
                    ChargeRecord(merchantID: "m1", chargeID: "c2", amount: 300, description: "", cycle: cycle),
                    ChargeRecord(merchantID: "m2", chargeID: "c3", amount: 100, description: "", cycle: cycle),
                ], subscriptions: [],
                credits: [CreditRecord(merchantID: "m1", chargeID: "old", description: "", amount: -200, cycle: cycle)]),
            LineBill(
                closing: cycle, lineID: "L2",
                charges: [ChargeRecord(merchantID: "m1", chargeID: "c4", amount: 1_000, description: "", cycle: cycle)],
                subscriptions: [], credits: []),
        ]
        let totals = MerchantTotals.of(bills)
        #expect(totals["m1"] == MerchantTotals(lines: 2, gross: 1_600, itemCount: 4, creditAmount: -200))
        #expect(totals["m2"] == MerchantTotals(lines: 1, gross: 100, itemCount: 1, creditAmount: 0))
        #expect(bills.map(\.total).sum() == totals.values.map(\.gross).sum())
    }
}

@Suite("Billing cycles")
struct BillingCycleTests {
    @Test(
        "Cycles are months in Japan time",
        arguments: [
            (Int64(1_793_458_799), "2026-10"),  // 2026-10-31T23:59:59+09:00
            (Int64(1_793_458_800), "2026-11"),  // 2026-11-01T00:00:00+09:00 (= 10-31T15:00Z)
            (Int64(1_798_729_199), "2026-12"),  // 2026-12-31T23:59:59+09:00
            (Int64(1_798_729_200), "2027-01"),
            (Int64(951_836_400), "2000-03"),  // 2000-03-01T00:00+09:00, after a leap day
        ])
    func cycleOfInstant(seconds: Int64, expected: String) {
        #expect(BillingCycle(containing: seconds).description == expected)
    }

    @Test("Parsing, order and stepping")
    func parsing() {
        #expect(BillingCycle("2026-11")?.next.description == "2026-12")
        #expect(BillingCycle("2026-12")?.next.description == "2027-01")
        #expect(BillingCycle("2027-01")?.previous.description == "2026-12")
        #expect(BillingCycle("2026-13") == nil)
        #expect(BillingCycle("2026-1") == nil)
        #expect(BillingCycle("26-11") == nil)
        #expect(BillingCycle("2026-11")! < BillingCycle("2027-01")!)
    }

    @Test("Yen prints with grouping")
    func yenDescription() {
        #expect(Yen(1_234_567).description == "¥1,234,567")
        #expect(Yen(-600).description == "-¥600")
        #expect(Yen(0).description == "¥0")
    }
}
