/// An identifier that must not be mixed up with another kind of identifier.
///
/// Valid identifiers are 1 to 64 characters of printable ASCII without spaces;
/// anything else is refused when a request is read.
public protocol BillingIdentifier: RawRepresentable, Hashable, Comparable, Sendable, Codable,
    CustomStringConvertible, ExpressibleByStringLiteral
where RawValue == String {
    init(rawValue: String)
}

extension BillingIdentifier {
    public init(stringLiteral value: String) { self.init(rawValue: value) }
    public var description: String { rawValue }
    public static func < (lhs: Self, rhs: Self) -> Bool { lhs.rawValue < rhs.rawValue }

    /// Whether the identifier is 1 to 64 printable ASCII characters without spaces.
    public var isWellFormed: Bool {
        let utf8 = rawValue.utf8
        return (1...64).contains(utf8.count) && utf8.allSatisfy { (0x21...0x7E).contains($0) }
    }
}

/// An access line (the carrier's fibre or ADSL line), for example `L0000001`.
public struct LineID: BillingIdentifier {
    public var rawValue: String
    public init(rawValue: String) { self.rawValue = rawValue }
}

/// A merchant, for example `m-points-shop`.
public struct MerchantID: BillingIdentifier {
    public var rawValue: String
    public init(rawValue: String) { self.rawValue = rawValue }
}

/// A one-time charge, unique per merchant.
public struct ChargeID: BillingIdentifier {
    public var rawValue: String
    public init(rawValue: String) { self.rawValue = rawValue }
}

/// A subscription (monthly charge), unique per merchant.
public struct SubscriptionID: BillingIdentifier {
    public var rawValue: String
    public init(rawValue: String) { self.rawValue = rawValue }
}
