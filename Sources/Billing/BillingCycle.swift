/// A billing cycle: one calendar month in Japan time (UTC+9, no daylight saving),
/// written `2026-11`.
public struct BillingCycle: Hashable, Comparable, Sendable, Codable, CustomStringConvertible, LosslessStringConvertible
{
    /// The year, 2000 to 9999.
    public let year: Int
    /// The month, 1 to 12.
    public let month: Int

    /// A cycle; `nil` when the month is not 1 to 12 or the year not 2000 to 9999.
    public init?(year: Int, month: Int) {
        guard (2000...9999).contains(year), (1...12).contains(month) else { return nil }
        self.year = year
        self.month = month
    }

    /// Parses `YYYY-MM`: four ASCII digits, `-`, two ASCII digits, nothing
    /// else (no sign, no spaces).
    public init?(_ text: String) {
        let bytes = Array(text.utf8)
        guard bytes.count == 7, bytes[4] == UInt8(ascii: "-"),
            bytes.indices.allSatisfy({ $0 == 4 || (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(bytes[$0]) }),
            let year = Int(text.prefix(4)), let month = Int(text.suffix(2))
        else { return nil }
        self.init(year: year, month: month)
    }

    /// The cycle containing an instant, given as seconds since 1970-01-01T00:00Z.
    public init(containing secondsSince1970: Int64) {
        let japan = secondsSince1970 + 9 * 3600
        let days = Int(japan >= 0 ? japan / 86_400 : (japan - 86_399) / 86_400)
        let (year, month, _) = civilDate(daysSince1970: days)
        self.init(year: year, month: month)!
    }

    /// The cycle as written in messages: `2026-11`.
    public var description: String {
        let monthText = month < 10 ? "0\(month)" : "\(month)"
        return "\(year)-\(monthText)"
    }

    /// The month after this one.
    public var next: BillingCycle {
        month == 12 ? BillingCycle(year: year + 1, month: 1)! : BillingCycle(year: year, month: month + 1)!
    }

    /// The month before this one.
    public var previous: BillingCycle {
        month == 1 ? BillingCycle(year: year - 1, month: 12)! : BillingCycle(year: year, month: month - 1)!
    }

    /// Whether `lhs` is an earlier month than `rhs`.
    public static func < (lhs: Self, rhs: Self) -> Bool { (lhs.year, lhs.month) < (rhs.year, rhs.month) }

    /// Reads a JSON string `YYYY-MM`; any other text is a decoding error.
    public init(from decoder: any Decoder) throws {
        let text = try decoder.singleValueContainer().decode(String.self)
        guard let cycle = BillingCycle(text) else {
            throw DecodingError.dataCorrupted(
                .init(codingPath: decoder.codingPath, debugDescription: "not a cycle: \(text)"))
        }
        self = cycle
    }

    /// Writes the cycle as a JSON string `YYYY-MM`.
    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(description)
    }
}

/// The proleptic Gregorian date of a day number (days since 1970-01-01).
/// Howard Hinnant's civil-from-days algorithm.
func civilDate(daysSince1970 days: Int) -> (year: Int, month: Int, day: Int) {
    let z = days + 719_468
    let era = (z >= 0 ? z : z - 146_096) / 146_097
    let dayOfEra = z - era * 146_097
    let yearOfEra = (dayOfEra - dayOfEra / 1460 + dayOfEra / 36524 - dayOfEra / 146_096) / 365
    let dayOfYear = dayOfEra - (365 * yearOfEra + yearOfEra / 4 - yearOfEra / 100)
    let monthIndex = (5 * dayOfYear + 2) / 153
    let day = dayOfYear - (153 * monthIndex + 2) / 5 + 1
    let month = monthIndex < 10 ? monthIndex + 3 : monthIndex - 9
    return (yearOfEra + era * 400 + (month <= 2 ? 1 : 0), month, day)
}
