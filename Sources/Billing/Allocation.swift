/// How a payment against a line bill is shared among the merchants on it
/// (the collection issue: "a payment that covers part of a bill is shared
/// among that bill's items by a documented, deterministic rule to the yen").
///
/// The rule: a payment is shared in proportion to what each merchant still
/// has open on the bill — its items netted (charges and subscription amounts,
/// less its credits), less what earlier payments already gave it. Each share
/// is the exact proportion rounded down to the yen; the yen left over go one
/// each to the largest remainders (ties: the larger open amount, then the
/// merchant id in order). So the shares always add up to the payment, a
/// payment of everything still open closes every merchant exactly, and no
/// share is more than a yen from its exact proportion.
///
/// A merchant whose net on the bill is negative (a credit larger than its
/// charges) takes a negative share: its credit is drawn down as the bill is
/// paid, and the other merchants' shares grow by as much. A bill whose total
/// is zero or negative has nothing to collect.
public enum PaymentAllocation {
    /// The shares of `payment` among the merchants' `open` amounts (see
    /// ``PaymentAllocation``); every merchant in `open` has a share, zero
    /// included.
    public static func allocate(
        _ payment: Yen, open: [MerchantID: Yen]
    ) throws(AllocationError) -> [MerchantID: Yen] {
        let total = open.values.reduce(Int128(0)) { $0 + Int128($1.amount) }
        guard payment > .zero else { throw .paymentNotPositive }
        guard total > 0 else { throw .nothingOpen }
        guard Int128(payment.amount) <= total else { throw .overpayment(open: Yen(Int64(total))) }
        let paid = Int128(payment.amount)
        var shares: [(merchant: MerchantID, open: Int128, share: Int128, remainder: Int128)] = []
        for (merchant, amount) in open {
            let exact = paid * Int128(amount.amount)
            // Rounded down, also for a negative share: the remainder is then 0 ≤ r < total.
            var share = exact / total
            var remainder = exact - share * total
            if remainder < 0 {
                share -= 1
                remainder += total
            }
            shares.append((merchant, Int128(amount.amount), share, remainder))
        }
        var leftover = Int(paid - shares.reduce(Int128(0)) { $0 + $1.share })
        shares.sort {
            ($0.remainder, $0.open) != ($1.remainder, $1.open)
                ? ($0.remainder, $0.open) > ($1.remainder, $1.open) : $0.merchant < $1.merchant
        }
        for index in shares.indices where leftover > 0 {
            shares[index].share += 1
            leftover -= 1
        }
        return Dictionary(uniqueKeysWithValues: shares.map { ($0.merchant, Yen(Int64($0.share))) })
    }
}

/// Why a payment cannot be shared.
public enum AllocationError: Error, Hashable, Sendable {
    /// A payment of zero or less.
    case paymentNotPositive
    /// The bill has nothing open: its total, less what was paid, is zero or negative.
    case nothingOpen
    /// The payment is more than what is open (`open`).
    case overpayment(open: Yen)
}
