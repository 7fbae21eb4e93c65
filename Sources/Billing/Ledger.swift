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

    public var merchantID: MerchantID
    public var chargeID: ChargeID
    public var amount: Yen
    public var description: String
    /// The cycle whose bill it is on.
    public var cycle: BillingCycle
    public var status: Status
    /// The cycle in which the cancellation took effect (removal or credit).
    public var cancelledIn: BillingCycle?

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
    public var merchantID: MerchantID
    public var chargeID: ChargeID
    public init(merchantID: MerchantID, chargeID: ChargeID) {
        self.merchantID = merchantID
        self.chargeID = chargeID
    }
}

/// A subscription as recorded on a line.
public struct SubscriptionRecord: Hashable, Sendable {
    public var merchantID: MerchantID
    public var subscriptionID: SubscriptionID
    public var monthlyAmount: Yen
    public var description: String
    /// The first cycle billed.
    public var startCycle: BillingCycle
    /// The last cycle billed, once cancelled or ended by a line termination.
    public var lastCycle: BillingCycle?

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
    public var merchantID: MerchantID
    public var subscriptionID: SubscriptionID
    public init(merchantID: MerchantID, subscriptionID: SubscriptionID) {
        self.merchantID = merchantID
        self.subscriptionID = subscriptionID
    }
}

/// A change the rules made to a line, for the store to persist.
public enum LedgerEffect: Hashable, Sendable {
    case chargeAdded(ChargeRecord)
    /// Removed from the open cycle's bill.
    case chargeCancelled(ChargeKey, in: BillingCycle)
    /// Billed in a closed cycle: a credit of `amount` (negative) goes on the bill of `in`.
    case chargeCredited(ChargeKey, in: BillingCycle, amount: Yen)
    case subscriptionAdded(SubscriptionRecord)
    /// Billed up to and including `lastCycle`, nothing after.
    case subscriptionEnded(SubscriptionKey, lastCycle: BillingCycle)
    case lineTerminated
}

/// What a request came to, as told to the merchant.
public struct Outcome: Hashable, Sendable {
    /// Accepted, or refused with a reason.
    public var rejection: RejectionReason?
    /// The cycle whose bill it affects (for a refusal: the line's open cycle, if known).
    public var cycle: BillingCycle?

    public static func accepted(_ cycle: BillingCycle) -> Outcome { Outcome(rejection: nil, cycle: cycle) }
    public static func rejected(_ reason: RejectionReason, _ cycle: BillingCycle?) -> Outcome {
        Outcome(rejection: reason, cycle: cycle)
    }

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
