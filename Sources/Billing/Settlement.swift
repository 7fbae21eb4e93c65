/// One item on a line's monthly bill.
public struct BillItem: Hashable, Sendable, Codable {
    /// What kind of item: a one-time charge, a subscription's monthly amount,
    /// or a credit for a charge cancelled after its cycle closed.
    public enum Kind: String, Hashable, Sendable, Codable {
        case charge, subscription, credit
    }

    /// The merchant whose charge, subscription or credit it is.
    public var merchantID: MerchantID
    /// Whether it is a charge, a subscription's monthly amount, or a credit.
    public var kind: Kind
    /// The merchant's charge or subscription id.
    public var reference: String
    /// What was bought, in the merchant's words.
    public var description: String
    /// Negative for a credit.
    public var amount: Yen

    /// An item of `amount` yen for `merchantID`.
    public init(merchantID: MerchantID, kind: Kind, reference: String, description: String, amount: Yen) {
        self.merchantID = merchantID
        self.kind = kind
        self.reference = reference
        self.description = description
        self.amount = amount
    }
}

/// A credit waiting for a line's bill.
public struct CreditRecord: Hashable, Sendable {
    /// The merchant whose charge is credited.
    public var merchantID: MerchantID
    /// The charge cancelled after its cycle closed.
    public var chargeID: ChargeID
    /// The charge's description, repeated on the bill that carries the credit.
    public var description: String
    /// Negative.
    public var amount: Yen
    /// The cycle whose bill carries it.
    public var cycle: BillingCycle

    /// A credit of `amount` (negative) for `merchantID`'s charge `chargeID`, due on `cycle`'s bill.
    public init(merchantID: MerchantID, chargeID: ChargeID, description: String, amount: Yen, cycle: BillingCycle) {
        self.merchantID = merchantID
        self.chargeID = chargeID
        self.description = description
        self.amount = amount
        self.cycle = cycle
    }
}

/// A line's bill for one closed cycle.
public struct LineBill: Hashable, Sendable {
    /// The line billed.
    public var lineID: LineID
    /// The closed month the bill is for.
    public var cycle: BillingCycle
    /// Items ordered by merchant, kind and reference.
    public var items: [BillItem]

    /// What the line pays for the cycle.
    public var total: Yen { items.map(\.amount).sum() }

    /// Closes `cycle` for one line: its active charges of the cycle (including
    /// those credited later: they were billed), every subscription active at
    /// any moment of the cycle, and the credits due on this bill.
    public init(
        closing cycle: BillingCycle, lineID: LineID, charges: [ChargeRecord], subscriptions: [SubscriptionRecord],
        credits: [CreditRecord]
    ) {
        var items: [BillItem] = []
        for charge in charges where charge.cycle == cycle && charge.status != .cancelled {
            items.append(
                BillItem(
                    merchantID: charge.merchantID, kind: .charge, reference: charge.chargeID.rawValue,
                    description: charge.description, amount: charge.amount))
        }
        for subscription in subscriptions where subscription.isBilled(in: cycle) {
            items.append(
                BillItem(
                    merchantID: subscription.merchantID, kind: .subscription,
                    reference: subscription.subscriptionID.rawValue, description: subscription.description,
                    amount: subscription.monthlyAmount))
        }
        for credit in credits where credit.cycle == cycle {
            items.append(
                BillItem(
                    merchantID: credit.merchantID, kind: .credit, reference: credit.chargeID.rawValue,
                    description: credit.description, amount: credit.amount))
        }
        self.lineID = lineID
        self.cycle = cycle
        self.items = items.sorted {
            ($0.merchantID.rawValue, $0.kind.rawValue, $0.reference) < (
                $1.merchantID.rawValue, $1.kind.rawValue, $1.reference
            )
        }
    }

    /// What the next cycle starts with against the spending limit: the monthly
    /// amounts of the subscriptions that continue into it.
    public static func openingSpend(after cycle: BillingCycle, subscriptions: [SubscriptionRecord]) -> Yen {
        subscriptions.filter { $0.isBilled(in: cycle.next) }.map(\.monthlyAmount).sum()
    }
}

/// One merchant's sums over some lines' bills of one cycle. Sums of disjoint
/// sets of lines add up, so shards of a close can each keep their own.
public struct MerchantTotals: Hashable, Sendable {
    /// Distinct lines with at least one item of the merchant.
    public var lines: Int64 = 0
    /// The sum of the merchant's items (charges, subscriptions, credits).
    public var gross: Yen = 0
    /// The number of the merchant's items on those bills.
    public var itemCount: Int64 = 0
    /// The sum of the credits alone (zero or negative).
    public var creditAmount: Yen = 0

    /// Sums as given; all zero by default (a merchant with no items yet).
    public init(lines: Int64 = 0, gross: Yen = 0, itemCount: Int64 = 0, creditAmount: Yen = 0) {
        self.lines = lines
        self.gross = gross
        self.itemCount = itemCount
        self.creditAmount = creditAmount
    }

    /// Adds another set of lines' sums.
    public static func + (lhs: Self, rhs: Self) -> Self {
        MerchantTotals(
            lines: lhs.lines + rhs.lines, gross: lhs.gross + rhs.gross, itemCount: lhs.itemCount + rhs.itemCount,
            creditAmount: lhs.creditAmount + rhs.creditAmount)
    }

    /// Each merchant's sums over the given bills.
    public static func of(_ bills: [LineBill]) -> [MerchantID: MerchantTotals] {
        var totals: [MerchantID: MerchantTotals] = [:]
        for bill in bills {
            for (merchant, items) in Dictionary(grouping: bill.items, by: \.merchantID) {
                let credits = items.filter { $0.kind == .credit }.map(\.amount).sum()
                totals[merchant, default: MerchantTotals()] =
                    totals[merchant, default: MerchantTotals()]
                    + MerchantTotals(
                        lines: 1, gross: items.map(\.amount).sum(), itemCount: Int64(items.count), creditAmount: credits
                    )
            }
        }
        return totals
    }
}

/// Which fee rule applied to a settlement.
public enum FeeRule: String, Hashable, Sendable, Codable {
    /// A percentage of the gross (the average per line was at or above the threshold).
    case percentage
    /// A fixed fee per line (the average per line was below the threshold).
    case perLine = "per-line"
}

/// What the carrier pays a merchant for one cycle.
public struct Settlement: Hashable, Sendable {
    /// The merchant paid, or, when ``net`` is negative, the merchant that owes.
    public var merchantID: MerchantID
    /// The closed month settled.
    public var cycle: BillingCycle
    /// The merchant's lines, gross, items and credits over the cycle's bills.
    public var totals: MerchantTotals
    /// The tariff in force for the cycle.
    public var tariff: BandedTariff
    /// Which rule set the fee: per line when the average per line was below the threshold, else percentage.
    public var feeRule: FeeRule
    /// The carrier's fee, in whole yen, rounded down once: with the tax added, when the tariff adds it
    /// (``feeDetail`` has the fee before tax, the tax and the band).
    public var fee: Yen
    /// How the fee was worked out: the band, the fee before tax, the tax and its rate.
    public var feeDetail: Fee
    /// The tariff in the launch's three numbers, as published (``BandedTariff/summary``; for a
    /// settlement made before tariffs had bands, the numbers it was made with).
    public var tariffSummary: Tariff

    /// `gross − fee`. Negative when per-line fees exceed a small gross: the
    /// merchant then owes the carrier.
    public var net: Yen { totals.gross - fee }

    /// The average billed amount per line, rounded down to the yen (for
    /// display; the fee rule compares exactly).
    public var averagePerLine: Yen {
        totals.lines == 0 ? .zero : Yen(floorDivide(totals.gross.amount, totals.lines))
    }

    /// Settles one merchant's cycle with the tariff's bands
    /// (``BandedTariff/fee(for:taxRate:)``): if `gross / lines` is below the
    /// tariff's threshold — compared exactly, as `gross < threshold × lines` —
    /// the fee is the per-line fee × `lines`; otherwise the percentage of
    /// `gross`. Computed in sen or basis points and rounded down once. A gross
    /// of zero or less has no fee. `tax` gives the rate for a tariff that adds it.
    public init(
        merchantID: MerchantID, cycle: BillingCycle, totals: MerchantTotals, tariff: BandedTariff,
        tax: ConsumptionTax = .japan
    ) {
        self.merchantID = merchantID
        self.cycle = cycle
        self.totals = totals
        self.tariff = tariff
        feeDetail = tariff.fee(for: totals, taxRate: tax.rate(for: cycle))
        tariffSummary = tariff.summary
        feeRule =
            switch feeDetail.rule {
            case .perLine: .perLine
            case .percentage: .percentage
            }
        fee = feeDetail.total
    }
}

/// Integer division rounding toward negative infinity.
func floorDivide(_ numerator: Int64, _ denominator: Int64) -> Int64 {
    let quotient = numerator / denominator
    return (numerator % denominator != 0 && (numerator < 0) != (denominator < 0)) ? quotient - 1 : quotient
}
