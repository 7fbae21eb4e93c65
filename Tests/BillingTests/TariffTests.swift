import Billing
import Testing

/// Banded tariffs and consumption tax (issue: "Tariffs as the carrier
/// actually revised them"). The 2012-style tariff below takes from the press
/// coverage of 2012-05-29 only what it reported — a fixed amount per line for
/// an average of ¥901–1,500 a line, 3 % from ¥1,501, tax added — and uses
/// example amounts for everything else (the per-line amounts, the bands below
/// ¥901).
@Suite("Banded tariffs and consumption tax")
struct TariffTests {
    static let june2012 = BillingCycle(year: 2012, month: 6)!

    /// Example values, except the ¥901 and ¥1,501 bounds, the per-line rule of
    /// the ¥901 band and the 3 % (press).
    static let banded2012 = try! BandedTariff(  // Constant, valid bands.
        bands: [
            TariffBand(from: 0, .perLine(sen: 2_500)),  // example: ¥25 a line
            TariffBand(from: 601, .perLine(sen: 3_500)),  // example: ¥35 a line
            TariffBand(from: 901, .perLine(sen: 4_550)),  // press: a fixed amount; example: ¥45.5
            TariffBand(from: 1_501, .percentage(basisPoints: 300)),  // press: 3 %
        ], tax: .added)

    struct Case: CustomTestStringConvertible, Sendable {
        var name: String
        var lines: Int64
        var gross: Yen
        var cycle: BillingCycle = TariffTests.june2012
        var band: Int
        var beforeTax: Yen
        var tax: Yen
        var testDescription: String { name }
    }

    @Test(
        "Each band's lower bound is in it, a yen below is in the one before; fee, then tax, each rounded down once",
        arguments: [
            Case(name: "gross 0: first band, no fee", lines: 10, gross: 0, band: 0, beforeTax: 0, tax: 0),
            Case(name: "gross negative: no fee", lines: 10, gross: -500, band: 0, beforeTax: 0, tax: 0),
            Case(name: "average 600, 1 line", lines: 1, gross: 600, band: 0, beforeTax: 25, tax: 1),
            Case(name: "average 601, 1 line", lines: 1, gross: 601, band: 1, beforeTax: 35, tax: 1),
            Case(name: "average 900, 1 line", lines: 1, gross: 900, band: 1, beforeTax: 35, tax: 1),
            Case(name: "average 901, 1 line", lines: 1, gross: 901, band: 2, beforeTax: 45, tax: 2),
            // 3 lines: 2,702 is an average of 900.67, below ¥901 — compared exactly, not rounded.
            Case(name: "average 900.67, 3 lines", lines: 3, gross: 2_702, band: 1, beforeTax: 105, tax: 5),
            Case(name: "average 901, 3 lines", lines: 3, gross: 2_703, band: 2, beforeTax: 136, tax: 6),
            Case(name: "average 1,500, 1 line", lines: 1, gross: 1_500, band: 2, beforeTax: 45, tax: 2),
            Case(name: "average 1,501, 1 line: 3 %", lines: 1, gross: 1_501, band: 3, beforeTax: 45, tax: 2),
            Case(
                name: "a million lines at 1,501", lines: 1_000_000, gross: 1_501_000_000, band: 3,
                beforeTax: 45_030_000, tax: 2_251_500),
            Case(
                name: "a million lines at 901: ¥45.5 each", lines: 1_000_000, gross: 901_000_000, band: 2,
                beforeTax: 45_500_000, tax: 2_275_000),
        ])
    func bands(_ test: Case) {
        let fee = Self.banded2012.fee(
            for: MerchantTotals(lines: test.lines, gross: test.gross),
            taxRate: ConsumptionTax.japan.rate(for: test.cycle))
        #expect(fee.band == test.band)
        #expect(fee.beforeTax == test.beforeTax)
        #expect(fee.tax == test.tax)
        #expect(fee.total == test.beforeTax + test.tax)
        #expect(fee.taxRate == 500, "June 2012 is taxed at 5 %")
    }

    @Test(
        "A fee plus tax uses the rate of the billed month: 5 % to 2014-03, 8 % from 2014-04, 10 % from 2019-10",
        arguments: [
            ("2014-03", 500, 45, 2), ("2014-04", 800, 45, 3), ("2019-09", 800, 45, 3), ("2019-10", 1_000, 45, 4),
        ] as [(String, Int64, Int64, Int64)])
    func taxRates(_ month: String, _ rate: Int64, _ beforeTax: Int64, _ tax: Int64) throws {
        let cycle = try #require(BillingCycle(month))
        #expect(ConsumptionTax.japan.rate(for: cycle) == rate)
        let fee = Self.banded2012.fee(
            for: MerchantTotals(lines: 1, gross: 1_501), taxRate: ConsumptionTax.japan.rate(for: cycle))
        #expect(fee.beforeTax == Yen(beforeTax) && fee.tax == Yen(tax) && fee.taxRate == rate)
    }

    @Test("A tariff that includes tax adds none; the launch tariff is the 2011 rule as bands")
    func taxIncluded() {
        let fee = BandedTariff.launch.fee(for: MerchantTotals(lines: 100, gross: 59_900), taxRate: 1_000)
        #expect(fee.band == 0 && fee.beforeTax == 3_150 && fee.tax == 0 && fee.taxRate == 0)
        #expect(Tariff.standard.banded == BandedTariff.launch)
        let percentage = BandedTariff.launch.fee(for: MerchantTotals(lines: 100, gross: 60_000), taxRate: 1_000)
        #expect(percentage.band == 1 && percentage.total == 3_000)
    }

    @Test("A settlement on a schedule changed mid-year: each month under its own")
    func scheduleChange() throws {
        let schedule = TariffSchedule(
            versions: [
                TariffVersion(
                    effectiveFrom: Self.june2012,
                    tariff: Tariff(rateBasisPoints: 300, perLineThreshold: 1_501, perLineFeeTenths: 455))
            ])
        let totals = MerchantTotals(lines: 10, gross: 10_000)  // an average of ¥1,000
        let may = Settlement(
            merchantID: "m", cycle: try #require(BillingCycle("2012-05")), totals: totals,
            tariff: schedule.tariff(for: try #require(BillingCycle("2012-05"))))
        let june = Settlement(
            merchantID: "m", cycle: Self.june2012, totals: totals, tariff: schedule.tariff(for: Self.june2012))
        #expect(may.feeRule == .percentage && may.fee == 500, "May: the launch tariff, 5 %")
        #expect(june.feeRule == .perLine && june.fee == 455, "June: ¥45.5 a line below ¥1,501")
    }

    @Test(
        "An invalid schedule is refused, naming the band",
        arguments: [
            ([], "at least one band"),
            ([TariffBand(from: 100, .perLine(sen: 1))], "band 1 starts at ¥100"),
            (
                [
                    TariffBand(from: 0, .perLine(sen: 1)), TariffBand(from: 900, .perLine(sen: 1)),
                    TariffBand(from: 600, .perLine(sen: 1)),
                ],
                "band 3 (from ¥600) does not start above band 2"
            ),
            (
                [TariffBand(from: 0, .perLine(sen: 1)), TariffBand(from: 0, .percentage(basisPoints: 1))],
                "band 2 (from ¥0) does not start above band 1"
            ),
            ([TariffBand(from: 0, .percentage(basisPoints: -1))], "band 1 (from ¥0): a percentage is 0 to 100 %"),
            ([TariffBand(from: 0, .percentage(basisPoints: 10_001))], "a percentage is 0 to 100 %"),
            ([TariffBand(from: 0, .perLine(sen: -5))], "band 1 (from ¥0): a fee per line is ¥0 to ¥1,000,000"),
        ] as [([TariffBand], String)])
    func invalid(_ bands: [TariffBand], _ reason: String) {
        let error = #expect(throws: TariffError.self) { try BandedTariff(bands: bands, tax: .added) }
        #expect(error?.description.contains(reason) == true, "\(error?.description ?? "accepted")")
    }

    @Test("A tax table as configured: MONTH=PERCENT, comma-separated")
    func parsedTaxTable() throws {
        let table = try ConsumptionTax(parsing: "2000-01=5,2014-04=8,2019-10=10")
        #expect(table == ConsumptionTax.japan)
        let future = try ConsumptionTax(parsing: "2000-01=5,2030-01=12.5")
        #expect(future.rate(for: try #require(BillingCycle("2030-02"))) == 1_250)
        // Every month must have a rate: a table starting later would leave earlier months untaxed.
        for bad in [
            "", "2014-04", "2014-04=8", "2000-01=5,2014-04=8%", "2000-01=5,2014-4=8", "2000-01=5,2000-01=10",
            "2000-01=101",
        ] {
            #expect(throws: TariffError.self, "\(bad)") { try ConsumptionTax(parsing: bad) }
        }
    }

    @Test("A tax table with two rates in one month, or a rate out of range, is refused")
    func invalidTaxTable() throws {
        let april = try #require(BillingCycle("2014-04"))
        #expect(throws: TariffError.self) { try ConsumptionTax(rates: [(april, 800), (april, 1_000)]) }
        #expect(throws: TariffError.self) { try ConsumptionTax(rates: [(april, -1)]) }
        let table = try ConsumptionTax(rates: [(april, 800)])
        #expect(table.rate(for: try #require(BillingCycle("2014-03"))) == 0)
    }
}
