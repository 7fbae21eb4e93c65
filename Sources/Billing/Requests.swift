/// A merchant's one-time charge.
public struct ChargeRequest: Hashable, Sendable {
    public var merchantID: MerchantID
    public var chargeID: ChargeID
    public var lineID: LineID
    public var amount: Yen
    public var description: String

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
    public var merchantID: MerchantID
    public var subscriptionID: SubscriptionID
    public var lineID: LineID
    public var monthlyAmount: Yen
    public var description: String

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
    public var merchantID: MerchantID
    public var chargeID: ChargeID
    public var lineID: LineID

    public init(merchantID: MerchantID, chargeID: ChargeID, lineID: LineID) {
        self.merchantID = merchantID
        self.chargeID = chargeID
        self.lineID = lineID
    }
}

/// A merchant cancels a subscription.
public struct SubscriptionCancellation: Hashable, Sendable {
    public var merchantID: MerchantID
    public var subscriptionID: SubscriptionID
    public var lineID: LineID

    public init(merchantID: MerchantID, subscriptionID: SubscriptionID, lineID: LineID) {
        self.merchantID = merchantID
        self.subscriptionID = subscriptionID
        self.lineID = lineID
    }
}

/// The carrier's line system ends a line.
public struct LineTermination: Hashable, Sendable {
    public var lineID: LineID

    public init(lineID: LineID) { self.lineID = lineID }
}

/// Any request that changes a line's billing.
public enum BillingRequest: Hashable, Sendable {
    case charge(ChargeRequest)
    case subscription(SubscriptionRequest)
    case chargeCancellation(ChargeCancellation)
    case subscriptionCancellation(SubscriptionCancellation)
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

    /// The request's kind as named in the message contract.
    public var kind: String {
        switch self {
        case .charge: "charge"
        case .subscription: "subscription"
        case .chargeCancellation: "charge-cancel"
        case .subscriptionCancellation: "subscription-cancel"
        case .lineTermination: "line-termination"
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
