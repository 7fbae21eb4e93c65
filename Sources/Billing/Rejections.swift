/// Why a request was refused: a stable, machine-readable code and a sentence.
///
/// The codes are part of the message contract (`docs/merchants.md`); they never
/// change meaning. Sentences may be reworded.
public enum RejectionReason: String, Sendable, Codable, CaseIterable {
    case invalidRequest = "invalid_request"
    case amountOutOfRange = "amount_out_of_range"
    case unknownLine = "unknown_line"
    case lineNotEligible = "line_not_eligible"
    case lineSuspended = "line_suspended"
    case lineTerminated = "line_terminated"
    case unknownMerchant = "unknown_merchant"
    case merchantSuspended = "merchant_suspended"
    case duplicateConflict = "duplicate_conflict"
    case spendingLimitExceeded = "spending_limit_exceeded"
    case unknownCharge = "unknown_charge"
    case unknownSubscription = "unknown_subscription"
    case authorizationMissing = "authorization_missing"
    case authorizationInvalid = "authorization_invalid"
    case authorizationExpired = "authorization_expired"
    case authorizationMismatch = "authorization_mismatch"
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
        case .authorizationReused: "The purchase authorization has already been used."
        }
    }
}
