/// A one-time charge as recorded on a line.
public struct ChargeRecord: Hashable, Sendable {
    /// What became of it.
    public enum Status: String, Hashable, Sendable, Codable {
        /// On the bill of ``ChargeRecord/cycle``.
        case active
        /// Cancelled while its cycle was open: on no bill.
        case cancelled
        /// Cancelled after its cycle closed: billed, then credited on a later bill.
        case credited
    }

    /// The merchant that made the charge.
    public var merchantID: MerchantID
    /// The merchant's id for the charge, unique per merchant.
    public var chargeID: ChargeID
    /// What the line is billed for it, in yen, tax included.
    public var amount: Yen
    /// What was bought, in the merchant's words, as shown on the line's bill.
    public var description: String
    /// The cycle whose bill it is on.
    public var cycle: BillingCycle
    /// Whether it is billed, cancelled before billing, or billed and then credited.
    public var status: Status
    /// The cycle in which the cancellation took effect (removal or credit).
    public var cancelledIn: BillingCycle?

    /// A charge as recorded; active and never cancelled unless told otherwise.
    public init(
        merchantID: MerchantID, chargeID: ChargeID, amount: Yen, description: String, cycle: BillingCycle,
        status: Status = .active, cancelledIn: BillingCycle? = nil
    ) {
        self.merchantID = merchantID
        self.chargeID = chargeID
        self.amount = amount
        self.description = description
        self.cycle = cycle
        self.status = status
        self.cancelledIn = cancelledIn
    }

    /// The key of a charge within its line.
    public var key: ChargeKey { ChargeKey(merchantID: merchantID, chargeID: chargeID) }
}

/// Identifies a charge within a line.
public struct ChargeKey: Hashable, Sendable {
    /// The merchant that made the charge.
    public var merchantID: MerchantID
    /// The merchant's id for the charge.
    public var chargeID: ChargeID
    /// The key of the charge `chargeID` of `merchantID`.
    public init(merchantID: MerchantID, chargeID: ChargeID) {
        self.merchantID = merchantID
        self.chargeID = chargeID
    }
}

/// A subscription as recorded on a line.
public struct SubscriptionRecord: Hashable, Sendable {
    /// The merchant that bills the subscription.
    public var merchantID: MerchantID
    /// The merchant's id for the subscription, unique per merchant.
    public var subscriptionID: SubscriptionID
    /// What the line is billed in every cycle in which the subscription is active, in yen, tax included.
    public var monthlyAmount: Yen
    /// What is subscribed to, in the merchant's words, as shown on the line's bill.
    public var description: String
    /// The first cycle billed.
    public var startCycle: BillingCycle
    /// The last cycle billed, once cancelled or ended by a line termination.
    public var lastCycle: BillingCycle?

    /// A subscription as recorded; still running (no ``lastCycle``) unless told otherwise.
    public init(
        merchantID: MerchantID, subscriptionID: SubscriptionID, monthlyAmount: Yen, description: String,
        startCycle: BillingCycle, lastCycle: BillingCycle? = nil
    ) {
        self.merchantID = merchantID
        self.subscriptionID = subscriptionID
        self.monthlyAmount = monthlyAmount
        self.description = description
        self.startCycle = startCycle
        self.lastCycle = lastCycle
    }

    /// The key of a subscription within its line.
    public var key: SubscriptionKey { SubscriptionKey(merchantID: merchantID, subscriptionID: subscriptionID) }

    /// Whether it is billed in `cycle`: active at any moment of it.
    public func isBilled(in cycle: BillingCycle) -> Bool {
        startCycle <= cycle && (lastCycle.map { cycle <= $0 } ?? true)
    }
}

/// Identifies a subscription within a line.
public struct SubscriptionKey: Hashable, Sendable {
    /// The merchant that bills the subscription.
    public var merchantID: MerchantID
    /// The merchant's id for the subscription.
    public var subscriptionID: SubscriptionID
    /// The key of the subscription `subscriptionID` of `merchantID`.
    public init(merchantID: MerchantID, subscriptionID: SubscriptionID) {
        self.merchantID = merchantID
        self.subscriptionID = subscriptionID
    }
}

/// A change the rules made to a line, for the store to persist.
public enum LedgerEffect: Hashable, Sendable {
    /// A new charge, on the open cycle's bill.
    case chargeAdded(ChargeRecord)
    /// Removed from the open cycle's bill.
    case chargeCancelled(ChargeKey, in: BillingCycle)
    /// Billed in a closed cycle: a credit of `amount` (negative) goes on the bill of `in`.
    case chargeCredited(ChargeKey, in: BillingCycle, amount: Yen)
    /// A new subscription, billed from the open cycle on.
    case subscriptionAdded(SubscriptionRecord)
    /// Billed up to and including `lastCycle`, nothing after.
    case subscriptionEnded(SubscriptionKey, lastCycle: BillingCycle)
    /// The line ended; each subscription it ended has its own `subscriptionEnded`.
    case lineTerminated
}

/// What a request came to, as told to the merchant.
public struct Outcome: Hashable, Sendable {
    /// Accepted, or refused with a reason.
    public var rejection: RejectionReason?
    /// The cycle whose bill it affects (for a refusal: the line's open cycle, if known).
    public var cycle: BillingCycle?

    /// Accepted; `cycle` is the cycle whose bill it affects.
    public static func accepted(_ cycle: BillingCycle) -> Outcome { Outcome(rejection: nil, cycle: cycle) }
    /// Refused for `reason`; `cycle` is the line's open cycle, or `nil` when the line is unknown.
    public static func rejected(_ reason: RejectionReason, _ cycle: BillingCycle?) -> Outcome {
        Outcome(rejection: reason, cycle: cycle)
    }

    /// Whether the request was accepted (it has no rejection reason).
    public var isAccepted: Bool { rejection == nil }
}

/// One line's billing state, loaded for a batch of requests: what the rules
/// need to decide them, and what they changed.
public struct LineBook: Sendable {
    /// The line, or `nil` when no such line exists.
    public var line: Line?
    /// The cycle open for this line: requests applied now land on its bill.
    public var openCycle: BillingCycle
    /// What counts against the spending limit in the open cycle: active
    /// one-time charges plus the subscriptions billed in it.
    public var spend: Yen
    /// The line's charges that the batch's requests refer to (or all of them).
    public var charges: [ChargeKey: ChargeRecord]
    /// The line's subscriptions that the batch's requests refer to; for a line
    /// termination, at least every subscription still running.
    public var subscriptions: [SubscriptionKey: SubscriptionRecord]
    /// Changes made so far, in order.
    public private(set) var effects: [LedgerEffect] = []

    /// A line's book as the store loads it: the line (`nil` if unknown), its open cycle, what it has
    /// spent in that cycle, and the charges and subscriptions the batch may need.
    public init(
        line: Line?, openCycle: BillingCycle, spend: Yen, charges: [ChargeRecord] = [],
        subscriptions: [SubscriptionRecord] = []
    ) {
        self.line = line
        self.openCycle = openCycle
        self.spend = spend
        self.charges = Dictionary(charges.map { ($0.key, $0) }, uniquingKeysWith: { first, _ in first })
        self.subscriptions = Dictionary(subscriptions.map { ($0.key, $0) }, uniquingKeysWith: { first, _ in first })
    }

    mutating func record(_ effect: LedgerEffect) { effects.append(effect) }

    /// The open cycle, when the line exists.
    public var knownCycle: BillingCycle? { line == nil ? nil : openCycle }
}
