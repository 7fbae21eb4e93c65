/// Why a request was refused: a stable, machine-readable code and a sentence.
///
/// The codes are part of the message contract (`docs/merchants.md`); they never
/// change meaning. Sentences may be reworded.
public enum RejectionReason: String, Sendable, Codable, CaseIterable {
    /// A field is missing or has the wrong form.
    case invalidRequest = "invalid_request"
    /// The amount is below the minimum (¥1) or above the maximum (¥1,000,000).
    case amountOutOfRange = "amount_out_of_range"
    /// No access line has this id.
    case unknownLine = "unknown_line"
    /// This kind of line cannot be charged (ADSL without Flets.net, other services).
    case lineNotEligible = "line_not_eligible"
    /// The carrier has suspended the line.
    case lineSuspended = "line_suspended"
    /// The line has ended.
    case lineTerminated = "line_terminated"
    /// The line's user asked the carrier to stop carrier billing on the line.
    case lineBillingBlocked = "line_billing_blocked"
    /// The merchant id is not registered.
    case unknownMerchant = "unknown_merchant"
    /// The merchant's account is suspended.
    case merchantSuspended = "merchant_suspended"
    /// The charge or subscription id was already used with other content.
    case duplicateConflict = "duplicate_conflict"
    /// The line's monthly spending limit would be exceeded.
    case spendingLimitExceeded = "spending_limit_exceeded"
    /// Nothing to cancel: the merchant has no charge with this id on this line.
    case unknownCharge = "unknown_charge"
    /// Nothing to cancel: the merchant has no subscription with this id on this line.
    case unknownSubscription = "unknown_subscription"
    /// A charge or subscription carries no purchase authorization.
    case authorizationMissing = "authorization_missing"
    /// The authorization is not one the carrier issued: garbled, badly signed, or signed with a retired key.
    case authorizationInvalid = "authorization_invalid"
    /// The authorization's few minutes have passed.
    case authorizationExpired = "authorization_expired"
    /// The authorization is for another line, merchant, kind, amount or reference.
    case authorizationMismatch = "authorization_mismatch"
    /// The authorization was already used for another request, or refused
    /// before its answer was kept (a repeat otherwise gets the first answer).
    case authorizationReused = "authorization_reused"

    /// The stable code, for example `spending_limit_exceeded`.
    public var code: String { rawValue }

    /// A sentence for people.
    public var sentence: String {
        switch self {
        case .invalidRequest: "The request is missing a field or has a field of the wrong form."
        case .amountOutOfRange: "The amount is outside the allowed range."
        case .unknownLine: "No access line has this id."
        case .lineNotEligible: "This kind of access line cannot be charged (ADSL needs a Flets.net contract)."
        case .lineSuspended: "The access line is suspended."
        case .lineTerminated: "The access line has been terminated."
        case .lineBillingBlocked: "The line's user has stopped carrier billing on this access line."
        case .unknownMerchant: "No merchant has this id."
        case .merchantSuspended: "The merchant is suspended."
        case .duplicateConflict: "This id was already used for a request with different content."
        case .spendingLimitExceeded: "The line's monthly spending limit would be exceeded."
        case .unknownCharge: "No charge with this id exists on this line for this merchant."
        case .unknownSubscription: "No subscription with this id exists on this line for this merchant."
        case .authorizationMissing: "The request carries no purchase authorization."
        case .authorizationInvalid: "The purchase authorization is not one the carrier issued, or its key is retired."
        case .authorizationExpired: "The purchase authorization has expired."
        case .authorizationMismatch:
            "The purchase authorization is for another line, merchant, kind, amount or reference."
        case .authorizationReused: "The purchase authorization has already been used for another request."
        }
    }
}
