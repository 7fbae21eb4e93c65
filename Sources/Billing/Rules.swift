/// The billing rules: requests in, decisions and changes out. Pure: no I/O, no
/// clock, no randomness; the store and the workers call it, it calls neither.
public struct BillingRules: Sendable {
    /// The amount range and default spending limit every request is checked against.
    public var limits: BillingLimits

    /// Rules checking requests against `limits` (the documented defaults unless told otherwise).
    public init(limits: BillingLimits = BillingLimits()) {
        self.limits = limits
    }

    /// Applies one request to its line's book. `merchant` is the requesting
    /// merchant (`nil` if unknown or for a line termination); `idHeldBy` is the
    /// line that already holds a charge's or subscription's id
    /// (``BillingRequest/purchaseKey``), if any: a merchant's id names one
    /// purchase across all lines.
    ///
    /// Requests are applied in the order they arrive; each sees the changes of
    /// the ones before it. When several reasons apply, the first in this order
    /// is given (`docs/merchants.md`, "Which reason wins"):
    ///
    /// A charge or subscription:
    /// 1. the id is on this line already: the same content is a repeat,
    ///    answered as the original was (accepted, with its cycle), whatever
    ///    has changed since; other content is `duplicate_conflict`;
    /// 2. the id is on another line: `duplicate_conflict`;
    /// 3. `unknown_merchant`, then `merchant_suspended`;
    /// 4. `amount_out_of_range`;
    /// 5. `unknown_line`, `line_not_eligible`, `line_suspended`, `line_terminated`;
    /// 6. `line_billing_blocked` (the user's own stop, after the carrier's);
    /// 7. `spending_limit_exceeded` (the lower of the line's limit and the user's).
    ///
    /// A cancellation: `unknown_charge` or `unknown_subscription` when the
    /// merchant has no such purchase on the line (also when there is no such
    /// line); a repeat is answered as the original. The merchant's and the
    /// line's status do not matter: a suspended merchant can still refund.
    ///
    /// A line termination: `unknown_line`; a repeat is accepted again.
    public func apply(
        _ request: BillingRequest, to book: inout LineBook, merchant: Merchant?, idHeldBy: LineID? = nil
    ) -> Outcome {
        switch request {
        case .charge(let charge): applyCharge(charge, &book, merchant, idHeldBy)
        case .subscription(let subscription): applySubscription(subscription, &book, merchant, idHeldBy)
        case .chargeCancellation(let cancellation): applyChargeCancellation(cancellation, &book)
        case .subscriptionCancellation(let cancellation): applySubscriptionCancellation(cancellation, &book)
        case .lineTermination: applyTermination(&book)
        }
    }

    private func applyCharge(
        _ request: ChargeRequest, _ book: inout LineBook, _ merchant: Merchant?, _ idHeldBy: LineID?
    ) -> Outcome {
        let key = ChargeKey(merchantID: request.merchantID, chargeID: request.chargeID)
        if let existing = book.charges[key] {
            // The same request again is a harmless repeat; other content under the same id is a conflict.
            let same = existing.amount == request.amount && existing.description == request.description
            return same ? .accepted(existing.cycle) : .rejected(.duplicateConflict, book.knownCycle)
        }
        if let refusal = refusal(amount: request.amount, line: request.lineID, idHeldBy, book, merchant) {
            return .rejected(refusal, book.knownCycle)
        }
        if exceedsLimit(adding: request.amount, book) { return .rejected(.spendingLimitExceeded, book.knownCycle) }
        let record = ChargeRecord(
            merchantID: request.merchantID, chargeID: request.chargeID, amount: request.amount,
            description: request.description, cycle: book.openCycle)
        book.charges[key] = record
        book.spend = book.spend + request.amount
        book.record(.chargeAdded(record))
        return .accepted(book.openCycle)
    }

    private func applySubscription(
        _ request: SubscriptionRequest, _ book: inout LineBook, _ merchant: Merchant?, _ idHeldBy: LineID?
    )
        -> Outcome
    {
        let key = SubscriptionKey(merchantID: request.merchantID, subscriptionID: request.subscriptionID)
        if let existing = book.subscriptions[key] {
            let same = existing.monthlyAmount == request.monthlyAmount && existing.description == request.description
            return same ? .accepted(existing.startCycle) : .rejected(.duplicateConflict, book.knownCycle)
        }
        if let refusal = refusal(amount: request.monthlyAmount, line: request.lineID, idHeldBy, book, merchant) {
            return .rejected(refusal, book.knownCycle)
        }
        if exceedsLimit(adding: request.monthlyAmount, book) {
            return .rejected(.spendingLimitExceeded, book.knownCycle)
        }
        let record = SubscriptionRecord(
            merchantID: request.merchantID, subscriptionID: request.subscriptionID,
            monthlyAmount: request.monthlyAmount, description: request.description, startCycle: book.openCycle)
        book.subscriptions[key] = record
        book.spend = book.spend + request.monthlyAmount
        book.record(.subscriptionAdded(record))
        return .accepted(book.openCycle)
    }

    private func applyChargeCancellation(_ request: ChargeCancellation, _ book: inout LineBook) -> Outcome {
        let key = ChargeKey(merchantID: request.merchantID, chargeID: request.chargeID)
        guard var charge = book.charges[key] else { return .rejected(.unknownCharge, book.knownCycle) }
        if let cancelledIn = charge.cancelledIn { return .accepted(cancelledIn) }  // a repeat
        charge.cancelledIn = book.openCycle
        if charge.cycle == book.openCycle {
            charge.status = .cancelled
            book.spend = book.spend - charge.amount
            book.record(.chargeCancelled(key, in: book.openCycle))
        } else {
            charge.status = .credited
            book.record(.chargeCredited(key, in: book.openCycle, amount: -charge.amount))
        }
        book.charges[key] = charge
        return .accepted(book.openCycle)
    }

    private func applySubscriptionCancellation(_ request: SubscriptionCancellation, _ book: inout LineBook) -> Outcome {
        let key = SubscriptionKey(merchantID: request.merchantID, subscriptionID: request.subscriptionID)
        guard var subscription = book.subscriptions[key] else {
            return .rejected(.unknownSubscription, book.knownCycle)
        }
        if let lastCycle = subscription.lastCycle { return .accepted(lastCycle) }  // already ended
        // Billed in full for the open cycle, nothing after.
        subscription.lastCycle = book.openCycle
        book.subscriptions[key] = subscription
        book.record(.subscriptionEnded(key, lastCycle: book.openCycle))
        return .accepted(book.openCycle)
    }

    private func applyTermination(_ book: inout LineBook) -> Outcome {
        guard var line = book.line else { return .rejected(.unknownLine, nil) }
        if line.status == .terminated { return .accepted(book.openCycle) }
        line.status = .terminated
        book.line = line
        book.record(.lineTerminated)
        for (key, subscription) in book.subscriptions.sorted(by: { $0.key.subscriptionID < $1.key.subscriptionID })
        where subscription.lastCycle == nil {
            book.subscriptions[key]?.lastCycle = book.openCycle
            book.record(.subscriptionEnded(key, lastCycle: book.openCycle))
        }
        return .accepted(book.openCycle)
    }

    /// Why a new charge or subscription of `amount` on `lineID` cannot be
    /// taken, if it cannot: the order of ``apply(_:to:merchant:idHeldBy:)``
    /// from its step 2, the spending limit aside.
    private func refusal(
        amount: Yen, line lineID: LineID, _ idHeldBy: LineID?, _ book: LineBook, _ merchant: Merchant?
    ) -> RejectionReason? {
        if let idHeldBy, idHeldBy != lineID { return .duplicateConflict }
        guard let merchant else { return .unknownMerchant }
        guard merchant.status == .active else { return .merchantSuspended }
        guard (limits.minimumAmount...limits.maximumAmount).contains(amount) else { return .amountOutOfRange }
        guard let line = book.line else { return .unknownLine }
        guard line.isEligible else { return .lineNotEligible }
        switch line.status {
        case .active: break
        case .suspended: return .lineSuspended
        case .terminated: return .lineTerminated
        }
        if line.billingBlocked { return .lineBillingBlocked }
        return nil
    }

    private func exceedsLimit(adding amount: Yen, _ book: LineBook) -> Bool {
        guard let line = book.line, let limit = limits.spendingLimit(of: line) else { return false }
        return book.spend + amount > limit
    }
}
