/// Payouts (精算): each merchant is paid, per payout period, what was
/// collected for it in that period, less the carrier's fee on it.
///
/// The fee of a billed month is the settlement's (the merchant's tariff on
/// that month, tax included). It is taken in proportion to what is collected:
/// once `C` of a month's gross `G` is collected, the fee taken so far is
/// `⌊F × C / G⌋` (with `C` held between 0 and `G`), so each period takes the
/// difference, and a month collected in full has taken exactly `F`. What is
/// written off is never collected, so no fee is taken on it: the carrier
/// waives its fee on the written-off part. A reversal gives back its share
/// of the fee with the money. A period that pays out less than nothing (a
/// reversal after the money was paid out) pays nothing and carries the
/// negative amount into the merchant's next payout.
public enum Payouts {
    /// The fee taken once `collected` of a month's `gross` is collected, for the month's `fee` (see ``Payouts``).
    public static func feeTaken(collected: Yen, gross: Yen, fee: Yen) -> Yen {
        guard gross > .zero, fee > .zero else { return .zero }
        let share = min(max(collected.amount, 0), gross.amount)
        return Yen(Int64(Int128(fee.amount) * Int128(share) / Int128(gross.amount)))
    }

    /// One merchant's statement for `period`, from its months' positions
    /// before the period and what moved in it, and the carry from its last
    /// statement (zero or negative).
    public static func statement(
        merchant: MerchantID, period: BillingCycle, months: [MonthMovement], carriedIn: Yen
    ) -> PayoutStatement {
        var lines: [PayoutLine] = []
        for month in months.sorted(by: { $0.cycle < $1.cycle }) {
            let before = month.collectedBefore
            let after = before + month.collected + month.reversed
            let fee =
                feeTaken(collected: after, gross: month.gross, fee: month.fee)
                - feeTaken(collected: before, gross: month.gross, fee: month.fee)
            lines.append(
                PayoutLine(
                    cycle: month.cycle, collected: month.collected, reversed: month.reversed,
                    writtenOff: month.writtenOff, fee: fee, payable: month.collected + month.reversed - fee))
        }
        let total = lines.map(\.payable).sum() + carriedIn
        return PayoutStatement(
            merchantID: merchant, period: period, lines: lines, carriedIn: carriedIn,
            amountPayable: max(total, .zero), carriedOut: min(total, .zero))
    }
}

/// What moved in one payout period for one merchant's billed month.
public struct MonthMovement: Hashable, Sendable {
    /// The billed month.
    public var cycle: BillingCycle
    /// The month's settlement: the merchant's gross on its bills.
    public var gross: Yen
    /// The month's settlement fee, tax included.
    public var fee: Yen
    /// Collected in earlier periods (payments less reversals).
    public var collectedBefore: Yen
    /// Payments' shares received in the period.
    public var collected: Yen
    /// Reversed payments' shares in the period, negated: negative, or positive for a credit's share.
    public var reversed: Yen
    /// Written off in the period (negative for a credit left open).
    public var writtenOff: Yen

    /// A month's movement.
    public init(
        cycle: BillingCycle, gross: Yen, fee: Yen, collectedBefore: Yen, collected: Yen, reversed: Yen, writtenOff: Yen
    ) {
        self.cycle = cycle
        self.gross = gross
        self.fee = fee
        self.collectedBefore = collectedBefore
        self.collected = collected
        self.reversed = reversed
        self.writtenOff = writtenOff
    }
}

/// One billed month on a payout statement.
public struct PayoutLine: Hashable, Sendable {
    /// The billed month the money is for.
    public var cycle: BillingCycle
    /// Payments' shares received in the period.
    public var collected: Yen
    /// Reversed payments' shares, negated: negative, or positive for a credit's share.
    public var reversed: Yen
    /// Written off in the period (shown; it moves no money).
    public var writtenOff: Yen
    /// The fee taken in the period (negative when a reversal gives some back).
    public var fee: Yen
    /// `collected + reversed − fee`.
    public var payable: Yen

    /// A line as stored.
    public init(cycle: BillingCycle, collected: Yen, reversed: Yen, writtenOff: Yen, fee: Yen, payable: Yen) {
        self.cycle = cycle
        self.collected = collected
        self.reversed = reversed
        self.writtenOff = writtenOff
        self.fee = fee
        self.payable = payable
    }
}

/// A merchant's payout statement for one period.
public struct PayoutStatement: Hashable, Sendable {
    /// The merchant paid.
    public var merchantID: MerchantID
    /// The period: the month the money moved in.
    public var period: BillingCycle
    /// Per billed month, oldest first.
    public var lines: [PayoutLine]
    /// The negative amount carried from the merchant's last statement (or zero).
    public var carriedIn: Yen
    /// What the carrier pays: the lines' payable plus the carry, when above zero.
    public var amountPayable: Yen
    /// What is carried to the next statement, when the total is below zero.
    public var carriedOut: Yen

    /// A statement as stored.
    public init(
        merchantID: MerchantID, period: BillingCycle, lines: [PayoutLine], carriedIn: Yen, amountPayable: Yen,
        carriedOut: Yen
    ) {
        self.merchantID = merchantID
        self.period = period
        self.lines = lines
        self.carriedIn = carriedIn
        self.amountPayable = amountPayable
        self.carriedOut = carriedOut
    }
}

/// Where one merchant's billed month stands: what its settlement's net has
/// become so far. The four parts always add up to the net; ``reconciles``
/// checks them against the month's figures computed another way.
public struct MonthPosition: Hashable, Sendable {
    /// The merchant.
    public var merchantID: MerchantID
    /// The billed month.
    public var cycle: BillingCycle
    /// The settlement's gross, fee (tax included) and net.
    public var gross: Yen, fee: Yen, net: Yen
    /// Collected to date (payments less reversals), and written off, from the ledger.
    public var collected: Yen, writtenOff: Yen
    /// Of it, what payout statements have paid out: the collected amount, and the fee taken on it.
    public var paidOutCollected: Yen, paidOutFee: Yen
    /// What the ledger books into the periods paid out: collected, and written off. The statements made must
    /// have paid exactly that.
    public var ledgerCollectedPaidOut: Yen, ledgerWrittenOffPaidOut: Yen
    /// What the statements made showed written off.
    public var paidOutWrittenOff: Yen

    /// A month's position from its settlement, its ledger and its payouts.
    public init(
        merchantID: MerchantID, cycle: BillingCycle, gross: Yen, fee: Yen, net: Yen, collected: Yen, writtenOff: Yen,
        paidOutCollected: Yen, paidOutFee: Yen, paidOutWrittenOff: Yen, ledgerCollectedPaidOut: Yen,
        ledgerWrittenOffPaidOut: Yen
    ) {
        self.merchantID = merchantID
        self.cycle = cycle
        self.gross = gross
        self.fee = fee
        self.net = net
        self.collected = collected
        self.writtenOff = writtenOff
        self.paidOutCollected = paidOutCollected
        self.paidOutFee = paidOutFee
        self.paidOutWrittenOff = paidOutWrittenOff
        self.ledgerCollectedPaidOut = ledgerCollectedPaidOut
        self.ledgerWrittenOffPaidOut = ledgerWrittenOffPaidOut
    }

    private func feeTaken(_ collected: Yen) -> Yen { Payouts.feeTaken(collected: collected, gross: gross, fee: fee) }

    /// Paid out to the merchant: collected less the fee, over the statements made.
    public var paidOut: Yen { paidOutCollected - paidOutFee }
    /// Collected in periods not paid out yet, less their fee.
    public var toPayOut: Yen { collected - feeTaken(collected) - paidOut }
    /// Written off, less the fee waived on it.
    public var writtenOffNet: Yen { writtenOff - (feeTaken(collected + writtenOff) - feeTaken(collected)) }
    /// Still open on the bills (gross).
    public var open: Yen { gross - collected - writtenOff }
    /// Still open, less the fee still to be taken on it.
    public var openNet: Yen { open - (fee - feeTaken(collected + writtenOff)) }

    /// Whether paid out + to pay out + written off + open = net, to the yen; the
    /// statements made paid out exactly what the ledger books into their
    /// periods (so what is to pay out is exactly what it books into the periods
    /// not paid out yet), and took exactly the fee due on it.
    public var reconciles: Bool {
        paidOut + toPayOut + writtenOffNet + openNet == net && paidOutFee == feeTaken(paidOutCollected)
            && paidOutCollected == ledgerCollectedPaidOut && paidOutWrittenOff == ledgerWrittenOffPaidOut
    }
}
