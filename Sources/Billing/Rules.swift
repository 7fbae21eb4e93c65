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
    /// merchant (`nil` if unknown or for a line termination).
    ///
    /// Requests are applied in the order they arrive; each sees the changes of
    /// the ones before it.
    public func apply(_ request: BillingRequest, to book: inout LineBook, merchant: Merchant?) -> Outcome {
        switch request {
        case .charge(let charge): applyCharge(charge, &book, merchant)
        case .subscription(let subscription): applySubscription(subscription, &book, merchant)
        case .chargeCancellation(let cancellation): applyChargeCancellation(cancellation, &book)
        case .subscriptionCancellation(let cancellation): applySubscriptionCancellation(cancellation, &book)
        case .lineTermination: applyTermination(&book)
        }
    }

    private func applyCharge(_ request: ChargeRequest, _ book: inout LineBook, _ merchant: Merchant?) -> Outcome {
        let key = ChargeKey(merchantID: request.merchantID, chargeID: request.chargeID)
        if let existing = book.charges[key] {
            // The same request again is a harmless repeat; other content under the same id is a conflict.
            let same = existing.amount == request.amount && existing.description == request.description
            return same ? .accepted(existing.cycle) : .rejected(.duplicateConflict, book.knownCycle)
        }
        if let refusal = refusal(amount: request.amount, book, merchant) { return .rejected(refusal, book.knownCycle) }
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
        _ request: SubscriptionRequest, _ book: inout LineBook, _ merchant: Merchant?
    )
        -> Outcome
    {
        let key = SubscriptionKey(merchantID: request.merchantID, subscriptionID: request.subscriptionID)
        if let existing = book.subscriptions[key] {
            let same = existing.monthlyAmount == request.monthlyAmount && existing.description == request.description
            return same ? .accepted(existing.startCycle) : .rejected(.duplicateConflict, book.knownCycle)
        }
        if let refusal = refusal(amount: request.monthlyAmount, book, merchant) {
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
        guard book.line != nil else { return .rejected(.unknownLine, nil) }
        guard var charge = book.charges[key] else { return .rejected(.unknownCharge, book.openCycle) }
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
        guard book.line != nil else { return .rejected(.unknownLine, nil) }
        guard var subscription = book.subscriptions[key] else {
            return .rejected(.unknownSubscription, book.openCycle)
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

    /// Why a new charge or subscription of `amount` cannot be taken, if it cannot.
    private func refusal(amount: Yen, _ book: LineBook, _ merchant: Merchant?) -> RejectionReason? {
        guard (limits.minimumAmount...limits.maximumAmount).contains(amount) else { return .amountOutOfRange }
        guard let line = book.line else { return .unknownLine }
        guard line.isEligible else { return .lineNotEligible }
        switch line.status {
        case .active: break
        case .suspended: return .lineSuspended
        case .terminated: return .lineTerminated
        }
        guard let merchant else { return .unknownMerchant }
        guard merchant.status == .active else { return .merchantSuspended }
        return nil
    }

    private func exceedsLimit(adding amount: Yen, _ book: LineBook) -> Bool {
        guard let line = book.line, let limit = limits.spendingLimit(of: line) else { return false }
        return book.spend + amount > limit
    }
}
