import Billing
import Testing

/// The fee taken as a month is collected, and the statements of the periods that pay it out.
@Suite("Payouts")
struct PayoutTests {
    static let october = BillingCycle("2026-10")!

    struct FeeCase: CustomTestStringConvertible, Sendable {
        var name: String
        var gross: Yen
        var fee: Yen
        /// Collected to date after each period.
        var collected: [Yen]
        /// The fee taken in each period.
        var taken: [Yen]
        var testDescription: String { name }
    }

    @Test(
        "The fee is taken in proportion to what is collected, rounded down on the running total",
        arguments: [
            FeeCase(name: "collected at once", gross: 10_000, fee: 500, collected: [10_000], taken: [500]),
            FeeCase(
                name: "in three parts: the rounding never drifts", gross: 3, fee: 1, collected: [1, 2, 3],
                taken: [0, 0, 1]),
            FeeCase(
                name: "a yen at a time", gross: 1_000, fee: 47, collected: [1, 22, 500, 999, 1_000],
                taken: [0, 1, 22, 23, 1]),
            FeeCase(
                name: "a reversal gives its fee back", gross: 10_000, fee: 500, collected: [6_000, 1_000, 10_000],
                taken: [300, -250, 450]),
            FeeCase(
                name: "partly written off: the fee on the rest is waived", gross: 10_000, fee: 500, collected: [7_000],
                taken: [350]),
            FeeCase(name: "a gross of zero takes no fee", gross: 0, fee: 0, collected: [0], taken: [0]),
            FeeCase(
                name: "more collected than the gross (credits on bills not yet paid) takes the whole fee, no more",
                gross: 500, fee: 25, collected: [1_000, 500], taken: [25, 0]),
            FeeCase(name: "below zero takes nothing", gross: 500, fee: 25, collected: [-200, 500], taken: [0, 25]),
        ])
    func fees(_ test: FeeCase) {
        var before: Yen = 0
        var taken: [Yen] = []
        for after in test.collected {
            taken.append(
                Payouts.feeTaken(collected: after, gross: test.gross, fee: test.fee)
                    - Payouts.feeTaken(collected: before, gross: test.gross, fee: test.fee))
            before = after
        }
        #expect(taken == test.taken)
        if test.collected.last == test.gross { #expect(taken.sum() == test.fee, "a month collected in full takes F") }
    }

    @Test("A statement: per billed month, the fee on what moved, the carry in and out")
    func statements() {
        let september = BillingCycle("2026-09")!
        let first = Payouts.statement(
            merchant: "m-a", period: Self.october,
            months: [
                MonthMovement(
                    cycle: september, gross: 10_000, fee: 500, collectedBefore: 0, collected: 8_000, reversed: 0,
                    writtenOff: 0)
            ], carriedIn: 0)
        #expect(first.lines.map(\.fee) == [400])
        #expect(first.amountPayable == 7_600)
        #expect(first.carriedOut == 0)
        // November: ¥5,000 bounces, ¥1,000 of October arrives, the rest of September is written off.
        let second = Payouts.statement(
            merchant: "m-a", period: Self.october.next,
            months: [
                MonthMovement(
                    cycle: september, gross: 10_000, fee: 500, collectedBefore: 8_000, collected: 0, reversed: -5_000,
                    writtenOff: 2_000),
                MonthMovement(
                    cycle: Self.october, gross: 20_000, fee: 1_000, collectedBefore: 0, collected: 1_000, reversed: 0,
                    writtenOff: 0),
            ], carriedIn: 0)
        #expect(second.lines.map(\.fee) == [-250, 50])
        #expect(second.lines.map(\.payable) == [-4_750, 950])
        #expect(second.amountPayable == 0)
        #expect(second.carriedOut == -3_800)
        // December: the carry is recovered first.
        let third = Payouts.statement(
            merchant: "m-a", period: Self.october.next.next,
            months: [
                MonthMovement(
                    cycle: Self.october, gross: 20_000, fee: 1_000, collectedBefore: 1_000, collected: 19_000,
                    reversed: 0, writtenOff: 0)
            ], carriedIn: second.carriedOut)
        #expect(third.amountPayable == Yen(18_050 - 3_800))
        // Every yen: paid out = collected less the fee taken, over the three periods.
        let paid = [first, second, third].map(\.amountPayable).sum() + third.carriedOut
        #expect(paid == Yen((8_000 - 5_000 - 150) + (20_000 - 1_000)))
    }
}
