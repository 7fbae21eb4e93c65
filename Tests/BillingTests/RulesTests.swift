import Billing
import Testing

@Suite("Billing rules")
struct RulesTests {
    let november = BillingCycle("2026-11")!
    let rules = BillingRules()
    let shop = Merchant(id: "m-points", name: "Points shop")

    func book(
        _ line: Line?, spend: Yen = 0, charges: [ChargeRecord] = [], subscriptions: [SubscriptionRecord] = []
    )
        -> LineBook
    {
        LineBook(line: line, openCycle: november, spend: spend, charges: charges, subscriptions: subscriptions)
    }

    func charge(
        _ id: ChargeID = "c-1", amount: Yen = 500, line: LineID = "L1", description: String = "500 points"
    )
        -> BillingRequest
    {
        .charge(
            ChargeRequest(merchantID: "m-points", chargeID: id, lineID: line, amount: amount, description: description))
    }

    struct EligibilityCase: CustomTestStringConvertible, Sendable {
        var name: String
        var line: Line?
        var merchantStatus: MerchantStatus?
        var amount: Yen
        var expected: RejectionReason?
        var testDescription: String { name }
    }

    @Test(
        "Who may be charged",
        arguments: [
            EligibilityCase(
                name: "Hikari Next", line: Line(id: "L1", type: .hikariNext), merchantStatus: .active, amount: 500,
                expected: nil),
            EligibilityCase(
                name: "Hikari Light", line: Line(id: "L1", type: .hikariLight), merchantStatus: .active, amount: 500,
                expected: nil),
            EligibilityCase(
                name: "B Flets", line: Line(id: "L1", type: .bFlets), merchantStatus: .active, amount: 500,
                expected: nil),
            EligibilityCase(
                name: "ADSL with Flets.net", line: Line(id: "L1", type: .adsl, fletsNetContract: true),
                merchantStatus: .active, amount: 500, expected: nil),
            EligibilityCase(
                name: "ADSL without Flets.net", line: Line(id: "L1", type: .adsl), merchantStatus: .active, amount: 500,
                expected: .lineNotEligible),
            EligibilityCase(
                name: "another kind of line", line: Line(id: "L1", type: LineType(rawValue: "isdn")),
                merchantStatus: .active, amount: 500, expected: .lineNotEligible),
            EligibilityCase(
                name: "unknown line", line: nil, merchantStatus: .active, amount: 500, expected: .unknownLine),
            EligibilityCase(
                name: "suspended line", line: Line(id: "L1", type: .bFlets, status: .suspended),
                merchantStatus: .active, amount: 500, expected: .lineSuspended),
            EligibilityCase(
                name: "terminated line", line: Line(id: "L1", type: .bFlets, status: .terminated),
                merchantStatus: .active, amount: 500, expected: .lineTerminated),
            EligibilityCase(
                name: "unknown merchant", line: Line(id: "L1", type: .bFlets), merchantStatus: nil, amount: 500,
                expected: .unknownMerchant),
            EligibilityCase(
                name: "suspended merchant", line: Line(id: "L1", type: .bFlets), merchantStatus: .suspended,
                amount: 500, expected: .merchantSuspended),
            EligibilityCase(
                name: "zero yen", line: Line(id: "L1", type: .bFlets), merchantStatus: .active, amount: 0,
                expected: .amountOutOfRange),
            EligibilityCase(
                name: "negative", line: Line(id: "L1", type: .bFlets), merchantStatus: .active, amount: -5,
                expected: .amountOutOfRange),
            EligibilityCase(
                name: "one yen", line: Line(id: "L1", type: .bFlets, spendingLimit: 0), merchantStatus: .active,
                amount: 1, expected: nil),
            EligibilityCase(
                name: "one million yen, no limit", line: Line(id: "L1", type: .bFlets, spendingLimit: 0),
                merchantStatus: .active, amount: 1_000_000, expected: nil),
            EligibilityCase(
                name: "over one million", line: Line(id: "L1", type: .bFlets, spendingLimit: 0),
                merchantStatus: .active, amount: 1_000_001, expected: .amountOutOfRange),
        ])
    func eligibility(_ example: EligibilityCase) {
        var ledger = book(example.line)
        let merchant = example.merchantStatus.map { Merchant(id: "m-points", name: "Points shop", status: $0) }
        let outcome = rules.apply(charge(amount: example.amount), to: &ledger, merchant: merchant)
        #expect(outcome.rejection == example.expected)
        #expect(ledger.effects.isEmpty == (example.expected != nil))
    }

    @Test("The same charge again is a repeat; the same id with other content is a conflict")
    func duplicates() {
        var ledger = book(Line(id: "L1", type: .hikariNext))
        #expect(rules.apply(charge(), to: &ledger, merchant: shop) == .accepted(november))
        #expect(rules.apply(charge(), to: &ledger, merchant: shop) == .accepted(november))
        #expect(
            rules.apply(charge(amount: 501), to: &ledger, merchant: shop) == .rejected(.duplicateConflict, november))
        #expect(rules.apply(charge(description: "other"), to: &ledger, merchant: shop).rejection == .duplicateConflict)
        #expect(ledger.effects.count == 1)
        #expect(ledger.spend == 500)

        // A repeat of a charge billed in an earlier cycle answers with that cycle,
        // even if the line has been suspended since.
        let october = november.previous
        var later = book(
            Line(id: "L1", type: .hikariNext, status: .suspended),
            charges: [
                ChargeRecord(
                    merchantID: "m-points", chargeID: "c-1", amount: 500, description: "500 points", cycle: october)
            ])
        #expect(rules.apply(charge(), to: &later, merchant: shop) == .accepted(october))
    }

    @Test("The monthly spending limit counts one-time charges and subscriptions; 0 means none")
    func spendingLimit() {
        var ledger = book(Line(id: "L1", type: .bFlets), spend: 49_000)  // default limit ¥50,000
        #expect(rules.apply(charge("a", amount: 1_000), to: &ledger, merchant: shop).isAccepted)  // exactly 50,000
        #expect(rules.apply(charge("b", amount: 1), to: &ledger, merchant: shop).rejection == .spendingLimitExceeded)
        let subscription = BillingRequest.subscription(
            SubscriptionRequest(
                merchantID: "m-points", subscriptionID: "s", lineID: "L1", monthlyAmount: 300, description: "fan club"))
        #expect(rules.apply(subscription, to: &ledger, merchant: shop).rejection == .spendingLimitExceeded)
        // Cancelling in the open cycle makes room again.
        let cancel = BillingRequest.chargeCancellation(
            ChargeCancellation(merchantID: "m-points", chargeID: "a", lineID: "L1"))
        #expect(rules.apply(cancel, to: &ledger, merchant: shop).isAccepted)
        #expect(rules.apply(subscription, to: &ledger, merchant: shop).isAccepted)
        #expect(ledger.spend == 49_300)

        var ownLimit = book(Line(id: "L1", type: .bFlets, spendingLimit: 1_000))
        #expect(
            rules.apply(charge("a", amount: 1_001), to: &ownLimit, merchant: shop).rejection == .spendingLimitExceeded)
        var noLimit = book(Line(id: "L1", type: .bFlets, spendingLimit: 0), spend: 5_000_000)
        #expect(rules.apply(charge("a", amount: 1_000_000), to: &noLimit, merchant: shop).isAccepted)

        var globalOff = LineBook(line: Line(id: "L1", type: .bFlets), openCycle: november, spend: 900_000)
        var limits = BillingLimits()
        limits.defaultSpendingLimit = 0
        #expect(BillingRules(limits: limits).apply(charge(amount: 200_000), to: &globalOff, merchant: shop).isAccepted)
    }

    @Test("Cancelling in the open cycle removes the charge; after its cycle closed it credits the next bill")
    func chargeCancellation() {
        let october = november.previous
        var ledger = book(
            Line(id: "L1", type: .hikariNext), spend: 800,
            charges: [
                ChargeRecord(
                    merchantID: "m-points", chargeID: "old", amount: 1_200, description: "old", cycle: october),
                ChargeRecord(merchantID: "m-points", chargeID: "new", amount: 800, description: "new", cycle: november),
            ])
        let cancelNew = BillingRequest.chargeCancellation(
            ChargeCancellation(merchantID: "m-points", chargeID: "new", lineID: "L1"))
        let cancelOld = BillingRequest.chargeCancellation(
            ChargeCancellation(merchantID: "m-points", chargeID: "old", lineID: "L1"))
        #expect(rules.apply(cancelNew, to: &ledger, merchant: nil) == .accepted(november))
        #expect(rules.apply(cancelOld, to: &ledger, merchant: nil) == .accepted(november))
        #expect(rules.apply(cancelOld, to: &ledger, merchant: nil) == .accepted(november))  // a repeat changes nothing
        #expect(
            ledger.effects == [
                .chargeCancelled(ChargeKey(merchantID: "m-points", chargeID: "new"), in: november),
                .chargeCredited(ChargeKey(merchantID: "m-points", chargeID: "old"), in: november, amount: -1_200),
            ])
        #expect(ledger.spend == 0)
        let unknown = BillingRequest.chargeCancellation(
            ChargeCancellation(merchantID: "m-points", chargeID: "none", lineID: "L1"))
        #expect(rules.apply(unknown, to: &ledger, merchant: nil).rejection == .unknownCharge)
        // Another merchant cannot cancel this merchant's charge: the key includes the merchant.
        let foreign = BillingRequest.chargeCancellation(
            ChargeCancellation(merchantID: "m-video", chargeID: "old", lineID: "L1"))
        #expect(rules.apply(foreign, to: &ledger, merchant: nil).rejection == .unknownCharge)
    }

    @Test("A subscription is billed from its start month through its cancellation month")
    func subscriptionLifecycle() {
        var ledger = book(Line(id: "L1", type: .bFlets))
        let start = BillingRequest.subscription(
            SubscriptionRequest(
                merchantID: "m-points", subscriptionID: "s-1", lineID: "L1", monthlyAmount: 300, description: "club"))
        #expect(rules.apply(start, to: &ledger, merchant: shop) == .accepted(november))
        let record = ledger.subscriptions[SubscriptionKey(merchantID: "m-points", subscriptionID: "s-1")]!
        #expect(record.isBilled(in: november))
        #expect(record.isBilled(in: november.next.next))
        #expect(!record.isBilled(in: november.previous))

        // Cancelled in January: billed in full for January, not in February.
        let january = november.next.next
        var later = LineBook(
            line: Line(id: "L1", type: .bFlets), openCycle: january, spend: 300, subscriptions: [record])
        let cancel = BillingRequest.subscriptionCancellation(
            SubscriptionCancellation(merchantID: "m-points", subscriptionID: "s-1", lineID: "L1"))
        #expect(rules.apply(cancel, to: &later, merchant: nil) == .accepted(january))
        let ended = later.subscriptions[record.key]!
        #expect(ended.isBilled(in: january))
        #expect(!ended.isBilled(in: january.next))
        #expect(later.spend == 300)  // still billed this month
        #expect(LineBill.openingSpend(after: january, subscriptions: [ended]) == 0)
        #expect(rules.apply(cancel, to: &later, merchant: nil) == .accepted(january))  // repeat
        #expect(later.effects.count == 1)
    }

    @Test("A line termination ends every subscription after the open cycle and refuses new charges")
    func termination() {
        var ledger = book(
            Line(id: "L1", type: .bFlets), spend: 1_300,
            charges: [
                ChargeRecord(merchantID: "m-points", chargeID: "c", amount: 1_000, description: "", cycle: november)
            ],
            subscriptions: [
                SubscriptionRecord(
                    merchantID: "m-points", subscriptionID: "s-1", monthlyAmount: 300, description: "",
                    startCycle: november.previous),
                SubscriptionRecord(
                    merchantID: "m-video", subscriptionID: "s-2", monthlyAmount: 500, description: "",
                    startCycle: november.previous, lastCycle: november.previous),
            ])
        let terminate = BillingRequest.lineTermination(LineTermination(lineID: "L1"))
        #expect(rules.apply(terminate, to: &ledger, merchant: nil) == .accepted(november))
        #expect(rules.apply(terminate, to: &ledger, merchant: nil) == .accepted(november))
        #expect(
            ledger.effects == [
                .lineTerminated,
                .subscriptionEnded(SubscriptionKey(merchantID: "m-points", subscriptionID: "s-1"), lastCycle: november),
            ])
        #expect(rules.apply(charge("new"), to: &ledger, merchant: shop).rejection == .lineTerminated)
        // What is on the open cycle is still billed.
        let bill = LineBill(
            closing: november, lineID: "L1", charges: Array(ledger.charges.values),
            subscriptions: Array(ledger.subscriptions.values), credits: [])
        #expect(bill.total == 1_300)
        #expect(LineBill.openingSpend(after: november, subscriptions: Array(ledger.subscriptions.values)) == 0)
        var unknown = book(nil)
        #expect(rules.apply(terminate, to: &unknown, merchant: nil).rejection == .unknownLine)
    }

    /// What a charge or subscription meets: the line, the merchant, the
    /// amount, what the line has spent, and which line holds its id.
    struct Situation {
        var line: Line? = Line(id: "L1", type: .bFlets)
        var merchant: Merchant? = Merchant(id: "m-points", name: "Points shop")
        var amount: Yen = 500
        var spend: Yen = 0
        var idHeldBy: LineID?
    }

    /// One reason a purchase is refused: how to bring it about, and whether
    /// it holds in a situation (another's setting may undo it).
    struct Refusal: Sendable {
        var reason: RejectionReason
        var make: @Sendable (inout Situation) -> Void
        var holds: @Sendable (Situation) -> Bool
    }

    /// The documented order (`docs/merchants.md`, "Which reason wins"), first
    /// wins. A repeat of the id on the same line comes before all of them (see
    /// ``duplicates()``).
    static let order: [Refusal] = [
        Refusal(reason: .duplicateConflict, make: { $0.idHeldBy = "L2" }, holds: { $0.idHeldBy == "L2" }),
        Refusal(reason: .unknownMerchant, make: { $0.merchant = nil }, holds: { $0.merchant == nil }),
        Refusal(
            reason: .merchantSuspended,
            make: { $0.merchant = Merchant(id: "m-points", name: "Points shop", status: .suspended) },
            holds: { $0.merchant?.status == .suspended }),
        Refusal(reason: .amountOutOfRange, make: { $0.amount = 1_000_001 }, holds: { $0.amount > 1_000_000 }),
        Refusal(reason: .unknownLine, make: { $0.line = nil }, holds: { $0.line == nil }),
        Refusal(
            reason: .lineNotEligible, make: { $0.line?.type = .adsl },
            holds: { $0.line.map { !$0.isEligible } == true }),
        Refusal(
            reason: .lineSuspended, make: { $0.line?.status = .suspended }, holds: { $0.line?.status == .suspended }),
        Refusal(
            reason: .lineTerminated, make: { $0.line?.status = .terminated }, holds: { $0.line?.status == .terminated }),
        Refusal(
            reason: .lineBillingBlocked, make: { $0.line?.billingBlocked = true },
            holds: { $0.line?.billingBlocked == true }),
        Refusal(
            reason: .spendingLimitExceeded, make: { $0.spend = 50_000 },
            holds: { $0.line != nil && $0.spend + $0.amount > 50_000 }),
    ]

    struct Pair: CustomTestStringConvertible, Sendable {
        var first: Int
        var second: Int
        var testDescription: String { "\(order[first].reason.code) before \(order[second].reason.code)" }
    }

    /// Every pair of reasons that can both hold at once (no line is neither
    /// suspended nor terminated; an unknown merchant is not a suspended one).
    static let pairs: [Pair] = order.indices.flatMap { first in
        order.indices.filter { $0 > first }.map { Pair(first: first, second: $0) }
    }.filter { pair in
        var situation = Situation()
        order[pair.second].make(&situation)
        order[pair.first].make(&situation)
        return order[pair.first].holds(situation) && order[pair.second].holds(situation)
    }

    @Test("45 pairs of 10 reasons: all but the 7 that exclude each other are tested")
    func pairsTested() {
        #expect(Self.order.count == 10)
        #expect(Self.pairs.count == 38)
    }

    struct BlockCase: CustomTestStringConvertible, Sendable {
        var name: String
        var line: Line
        var spend: Yen
        var amount: Yen
        var expected: RejectionReason?
        var testDescription: String { name }
    }

    @Test(
        "A user's stop and a user's lower limit: which reason, with the carrier's own states and limits",
        arguments: [
            BlockCase(
                name: "blocked", line: Line(id: "L1", type: .bFlets, billingBlocked: true), spend: 0, amount: 1,
                expected: .lineBillingBlocked),
            BlockCase(
                name: "blocked and over the limit: the stop wins",
                line: Line(id: "L1", type: .bFlets, billingBlocked: true), spend: 49_900, amount: 500,
                expected: .lineBillingBlocked),
            BlockCase(
                name: "blocked and suspended: the carrier's stop wins",
                line: Line(id: "L1", type: .bFlets, status: .suspended, billingBlocked: true), spend: 0, amount: 500,
                expected: .lineSuspended),
            BlockCase(
                name: "blocked and terminated",
                line: Line(id: "L1", type: .bFlets, status: .terminated, billingBlocked: true),
                spend: 0, amount: 500, expected: .lineTerminated),
            BlockCase(
                name: "blocked ADSL without Flets.net: not eligible first",
                line: Line(id: "L1", type: .adsl, billingBlocked: true), spend: 0, amount: 500,
                expected: .lineNotEligible),
            BlockCase(
                name: "a user's limit below the default", line: Line(id: "L1", type: .bFlets, userSpendingLimit: 3_000),
                spend: 2_600, amount: 500, expected: .spendingLimitExceeded),
            BlockCase(
                name: "up to a user's limit exactly", line: Line(id: "L1", type: .bFlets, userSpendingLimit: 3_000),
                spend: 2_500, amount: 500, expected: nil),
            BlockCase(
                name: "a user's limit above the line's own: the line's applies",
                line: Line(id: "L1", type: .bFlets, spendingLimit: 1_000, userSpendingLimit: 3_000), spend: 600,
                amount: 500, expected: .spendingLimitExceeded),
            BlockCase(
                name: "a user's limit on a line with none (0)",
                line: Line(id: "L1", type: .bFlets, spendingLimit: 0, userSpendingLimit: 800), spend: 400,
                amount: 500, expected: .spendingLimitExceeded),
            BlockCase(
                name: "no limit at all", line: Line(id: "L1", type: .bFlets, spendingLimit: 0), spend: 900_000,
                amount: 500_000, expected: nil),
        ])
    func userStops(_ example: BlockCase) {
        for request in [
            charge(amount: example.amount),
            .subscription(
                SubscriptionRequest(
                    merchantID: "m-points", subscriptionID: "s-1", lineID: "L1", monthlyAmount: example.amount,
                    description: "club")),
        ] {
            var ledger = book(example.line, spend: example.spend)
            let outcome = rules.apply(request, to: &ledger, merchant: shop)
            #expect(outcome.rejection == example.expected, "\(request.kind)")
        }
    }

    @Test(
        "A stop refuses new purchases only: a repeat of an accepted one, a cancellation and a termination still apply")
    func stopKeepsWhatWasDone() {
        let accepted = ChargeRecord(
            merchantID: "m-points", chargeID: "c-1", amount: 500, description: "500 points", cycle: november)
        let club = SubscriptionRecord(
            merchantID: "m-points", subscriptionID: "s-1", monthlyAmount: 300, description: "club",
            startCycle: november)
        var ledger = book(
            Line(id: "L1", type: .bFlets, billingBlocked: true), spend: 800, charges: [accepted],
            subscriptions: [club])
        #expect(rules.apply(charge(), to: &ledger, merchant: shop) == .accepted(november), "a repeat")
        #expect(rules.apply(charge("c-2"), to: &ledger, merchant: shop).rejection == .lineBillingBlocked)
        let cancel = BillingRequest.chargeCancellation(
            ChargeCancellation(merchantID: "m-points", chargeID: "c-1", lineID: "L1"))
        #expect(rules.apply(cancel, to: &ledger, merchant: shop) == .accepted(november))
        #expect(ledger.spend == 300)
        let endClub = BillingRequest.subscriptionCancellation(
            SubscriptionCancellation(merchantID: "m-points", subscriptionID: "s-1", lineID: "L1"))
        #expect(rules.apply(endClub, to: &ledger, merchant: shop) == .accepted(november))
        #expect(ledger.subscriptions.values.first?.lastCycle == november)
    }

    @Test("Which reason wins when two apply: the documented order, for charges and subscriptions", arguments: pairs)
    func reasonOrder(_ pair: Pair) {
        let (first, second) = (Self.order[pair.first], Self.order[pair.second])
        var situation = Situation()
        second.make(&situation)
        first.make(&situation)
        let requests: [BillingRequest] = [
            charge(amount: situation.amount),
            .subscription(
                SubscriptionRequest(
                    merchantID: "m-points", subscriptionID: "c-1", lineID: "L1", monthlyAmount: situation.amount,
                    description: "club")),
        ]
        for request in requests {
            var ledger = book(situation.line, spend: situation.spend)
            let outcome = rules.apply(request, to: &ledger, merchant: situation.merchant, idHeldBy: situation.idHeldBy)
            #expect(outcome == .rejected(first.reason, situation.line == nil ? nil : november), "\(request.kind)")
            #expect(ledger.effects.isEmpty)
        }
    }

    @Test("Each reason alone is given, and the order names every reason the rules give to a purchase")
    func eachReasonAlone() {
        for refusal in Self.order {
            var situation = Situation()
            refusal.make(&situation)
            var ledger = book(situation.line, spend: situation.spend)
            let outcome = rules.apply(
                charge(amount: situation.amount), to: &ledger, merchant: situation.merchant,
                idHeldBy: situation.idHeldBy)
            #expect(outcome.rejection == refusal.reason)
        }
        var clean = book(Situation().line)
        #expect(rules.apply(charge(), to: &clean, merchant: shop, idHeldBy: "L1").isAccepted)  // its own line
    }

    @Test("A cancellation is answered by what the merchant has on the line, whatever the line's or merchant's state")
    func cancellationReasons() {
        let cancel = BillingRequest.chargeCancellation(
            ChargeCancellation(merchantID: "m-points", chargeID: "c-1", lineID: "L1"))
        let cancelSubscription = BillingRequest.subscriptionCancellation(
            SubscriptionCancellation(merchantID: "m-points", subscriptionID: "s-1", lineID: "L1"))
        var unknownLine = book(nil)
        #expect(rules.apply(cancel, to: &unknownLine, merchant: nil) == .rejected(.unknownCharge, nil))
        #expect(
            rules.apply(cancelSubscription, to: &unknownLine, merchant: nil) == .rejected(.unknownSubscription, nil))
        var suspended = book(
            Line(id: "L1", type: .adsl, status: .suspended),
            charges: [
                ChargeRecord(merchantID: "m-points", chargeID: "c-1", amount: 500, description: "", cycle: november)
            ])
        let suspendedMerchant = Merchant(id: "m-points", name: "Points shop", status: .suspended)
        #expect(rules.apply(cancel, to: &suspended, merchant: suspendedMerchant) == .accepted(november))
    }

    @Test(
        "A cycle is exactly YYYY-MM in ASCII digits",
        arguments: [
            ("2026-11", true), ("2000-01", true), ("9999-12", true), ("2026-+1", false), ("+026-11", false),
            ("2026-1", false), ("2026-13", false), ("1999-12", false), ("2026/11", false), (" 2026-11", false),
            ("２０２６-11", false), ("2026-11-01", false), ("", false),
        ])
    func cycleText(_ text: String, _ valid: Bool) {
        #expect((BillingCycle(text) != nil) == valid)
    }

    @Test("Every reason has a stable snake_case code and a sentence")
    func reasons() {
        for reason in RejectionReason.allCases {
            #expect(reason.code.allSatisfy { $0.isLowercase || $0 == "_" })
            #expect(reason.sentence.hasSuffix("."))
        }
    }
}
