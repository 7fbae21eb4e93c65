/// A merchant's one-time charge.
public struct ChargeRequest: Hashable, Sendable {
    /// The merchant asking for the charge.
    public var merchantID: MerchantID
    /// The merchant's id for the charge; the same charge sent again is a harmless repeat.
    public var chargeID: ChargeID
    /// The access line whose bill the charge goes on.
    public var lineID: LineID
    /// The amount in yen, tax included: ¥1 to ¥1,000,000 under the default limits.
    public var amount: Yen
    /// What is bought, in the merchant's words, for the line's bill (at most 512 bytes).
    public var description: String

    /// A charge of `amount` on `lineID`'s bill for `merchantID`.
    public init(merchantID: MerchantID, chargeID: ChargeID, lineID: LineID, amount: Yen, description: String) {
        self.merchantID = merchantID
        self.chargeID = chargeID
        self.lineID = lineID
        self.amount = amount
        self.description = description
    }
}

/// A merchant's subscription start: its monthly amount is billed every cycle
/// in which it is active.
public struct SubscriptionRequest: Hashable, Sendable {
    /// The merchant starting the subscription.
    public var merchantID: MerchantID
    /// The merchant's id for the subscription; the same subscription sent again is a harmless repeat.
    public var subscriptionID: SubscriptionID
    /// The access line whose bills the subscription goes on.
    public var lineID: LineID
    /// The amount billed each cycle in yen, tax included: ¥1 to ¥1,000,000 under the default limits.
    public var monthlyAmount: Yen
    /// What is subscribed to, in the merchant's words, for the line's bills (at most 512 bytes).
    public var description: String

    /// A subscription of `monthlyAmount` a month on `lineID` for `merchantID`.
    public init(
        merchantID: MerchantID, subscriptionID: SubscriptionID, lineID: LineID, monthlyAmount: Yen, description: String
    ) {
        self.merchantID = merchantID
        self.subscriptionID = subscriptionID
        self.lineID = lineID
        self.monthlyAmount = monthlyAmount
        self.description = description
    }
}

/// A merchant cancels a one-time charge.
public struct ChargeCancellation: Hashable, Sendable {
    /// The merchant that made the charge.
    public var merchantID: MerchantID
    /// The charge to cancel.
    public var chargeID: ChargeID
    /// The line the charge is on.
    public var lineID: LineID

    /// The cancellation of `merchantID`'s charge `chargeID` on `lineID`.
    public init(merchantID: MerchantID, chargeID: ChargeID, lineID: LineID) {
        self.merchantID = merchantID
        self.chargeID = chargeID
        self.lineID = lineID
    }
}

/// A merchant cancels a subscription.
public struct SubscriptionCancellation: Hashable, Sendable {
    /// The merchant that bills the subscription.
    public var merchantID: MerchantID
    /// The subscription to cancel.
    public var subscriptionID: SubscriptionID
    /// The line the subscription is on.
    public var lineID: LineID

    /// The cancellation of `merchantID`'s subscription `subscriptionID` on `lineID`.
    public init(merchantID: MerchantID, subscriptionID: SubscriptionID, lineID: LineID) {
        self.merchantID = merchantID
        self.subscriptionID = subscriptionID
        self.lineID = lineID
    }
}

/// The carrier's line system ends a line.
public struct LineTermination: Hashable, Sendable {
    /// The line that ended.
    public var lineID: LineID

    /// The termination of `lineID`.
    public init(lineID: LineID) { self.lineID = lineID }
}

/// Any request that changes a line's billing.
public enum BillingRequest: Hashable, Sendable {
    /// A one-time charge (`charge`).
    case charge(ChargeRequest)
    /// A subscription start (`subscription`).
    case subscription(SubscriptionRequest)
    /// A charge cancellation (`charge-cancel`).
    case chargeCancellation(ChargeCancellation)
    /// A subscription cancellation (`subscription-cancel`).
    case subscriptionCancellation(SubscriptionCancellation)
    /// A line termination from the carrier's line system (`line-termination`).
    case lineTermination(LineTermination)

    /// The line it concerns.
    public var lineID: LineID {
        switch self {
        case .charge(let request): request.lineID
        case .subscription(let request): request.lineID
        case .chargeCancellation(let request): request.lineID
        case .subscriptionCancellation(let request): request.lineID
        case .lineTermination(let request): request.lineID
        }
    }

    /// The merchant it comes from; `nil` for a line termination.
    public var merchantID: MerchantID? {
        switch self {
        case .charge(let request): request.merchantID
        case .subscription(let request): request.merchantID
        case .chargeCancellation(let request): request.merchantID
        case .subscriptionCancellation(let request): request.merchantID
        case .lineTermination: nil
        }
    }

    /// The request's kind.
    public var kind: RequestKind {
        switch self {
        case .charge: .charge
        case .subscription: .subscription
        case .chargeCancellation: .chargeCancellation
        case .subscriptionCancellation: .subscriptionCancellation
        case .lineTermination: .lineTermination
        }
    }

    /// The merchant's identifier of what it concerns (charge or subscription id;
    /// the line id for a termination).
    public var reference: String {
        switch self {
        case .charge(let request): request.chargeID.rawValue
        case .subscription(let request): request.subscriptionID.rawValue
        case .chargeCancellation(let request): request.chargeID.rawValue
        case .subscriptionCancellation(let request): request.subscriptionID.rawValue
        case .lineTermination(let request): request.lineID.rawValue
        }
    }
}

/// The kinds of request, named (raw values) as in the message contract's `type`.
public enum RequestKind: String, Sendable, Hashable, CaseIterable {
    /// A one-time charge.
    case charge
    /// A subscription start.
    case subscription
    /// A charge cancellation.
    case chargeCancellation = "charge-cancel"
    /// A subscription cancellation.
    case subscriptionCancellation = "subscription-cancel"
    /// A line termination from the carrier's line system.
    case lineTermination = "line-termination"

    /// Whether the line's user must authorize it (a purchase): charges and subscription starts.
    public var isPurchase: Bool { self == .charge || self == .subscription }
}

/// A merchant's charge or subscription id, which names one purchase on one
/// line: unique per merchant and kind across every line.
public struct PurchaseKey: Hashable, Sendable, Comparable {
    /// The merchant whose id it is.
    public var merchantID: MerchantID
    /// ``RequestKind/charge`` or ``RequestKind/subscription``.
    public var kind: RequestKind
    /// The merchant's charge or subscription id.
    public var id: String

    /// Names a purchase.
    public init(merchantID: MerchantID, kind: RequestKind, id: String) {
        self.merchantID = merchantID
        self.kind = kind
        self.id = id
    }

    /// By merchant, then kind, then id: the order in which they are claimed.
    public static func < (lhs: PurchaseKey, rhs: PurchaseKey) -> Bool {
        (lhs.merchantID.rawValue, lhs.kind.rawValue, lhs.id) < (rhs.merchantID.rawValue, rhs.kind.rawValue, rhs.id)
    }
}

extension BillingRequest {
    /// The purchase a charge or subscription creates; `nil` for other requests.
    public var purchaseKey: PurchaseKey? {
        switch self {
        case .charge(let request):
            PurchaseKey(merchantID: request.merchantID, kind: .charge, id: request.chargeID.rawValue)
        case .subscription(let request):
            PurchaseKey(merchantID: request.merchantID, kind: .subscription, id: request.subscriptionID.rawValue)
        default: nil
        }
    }
}
