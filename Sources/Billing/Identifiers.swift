/// An identifier that must not be mixed up with another kind of identifier.
///
/// Valid identifiers are 1 to 64 characters of printable ASCII without spaces;
/// anything else is refused when a request is read.
public protocol BillingIdentifier: RawRepresentable, Hashable, Comparable, Sendable, Codable,
    CustomStringConvertible, ExpressibleByStringLiteral
where RawValue == String {
    /// Wraps `rawValue` as it is, unchecked; ``isWellFormed`` says whether it may be used.
    init(rawValue: String)
    /// Whether the identifier may be used.
    var isWellFormed: Bool { get }
}

extension BillingIdentifier {
    /// An identifier written as a literal, for example `"L0000001"` for a line.
    public init(stringLiteral value: String) { self.init(rawValue: value) }
    /// The identifier's text, as written in messages.
    public var description: String { rawValue }
    /// Orders identifiers by their text.
    public static func < (lhs: Self, rhs: Self) -> Bool { lhs.rawValue < rhs.rawValue }

    /// Whether the identifier is 1 to 64 printable ASCII characters without spaces.
    public var isWellFormed: Bool {
        let utf8 = rawValue.utf8
        return (1...64).contains(utf8.count) && utf8.allSatisfy { (0x21...0x7E).contains($0) }
    }
}

/// An access line (the carrier's fibre or ADSL line), for example `L0000001`.
public struct LineID: BillingIdentifier {
    /// The line id as the carrier's line system writes it; also the Kafka key of the line's requests.
    public var rawValue: String
    /// Wraps a line id, unchecked.
    public init(rawValue: String) { self.rawValue = rawValue }
}

/// A merchant, for example `m-points-shop`.
public struct MerchantID: BillingIdentifier {
    /// The merchant id the carrier registered the merchant under.
    public var rawValue: String
    /// Wraps a merchant id, unchecked.
    public init(rawValue: String) { self.rawValue = rawValue }

    /// Whether the id is 1 to 64 ASCII letters, digits, `-` and `_`: it
    /// names the merchant's own Kafka topics (`<prefix>.merchant.<id>.results`),
    /// so it holds only what a topic name may, and no `.`, so that one
    /// merchant's topic prefix never covers another's.
    public var isWellFormed: Bool {
        let utf8 = rawValue.utf8
        return (1...64).contains(utf8.count)
            && utf8.allSatisfy {
                switch $0 {
                case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"),
                    UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "-"), UInt8(ascii: "_"):
                    true
                default: false
                }
            }
    }
}

/// A one-time charge, unique per merchant.
public struct ChargeID: BillingIdentifier {
    /// The merchant's own id for the charge.
    public var rawValue: String
    /// Wraps a charge id, unchecked.
    public init(rawValue: String) { self.rawValue = rawValue }
}

/// A subscription (monthly charge), unique per merchant.
public struct SubscriptionID: BillingIdentifier {
    /// The merchant's own id for the subscription.
    public var rawValue: String
    /// Wraps a subscription id, unchecked.
    public init(rawValue: String) { self.rawValue = rawValue }
}
