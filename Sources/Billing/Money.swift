/// An amount of money in whole yen, tax included. Never a floating-point number.
///
/// Negative amounts are credits. Arithmetic traps on overflow, as Swift's
/// integers do: an amount that overflows 64 bits is a bug, never a result.
public struct Yen: Hashable, Comparable, Sendable, Codable, AdditiveArithmetic, ExpressibleByIntegerLiteral,
    CustomStringConvertible
{
    /// The number of yen.
    public var amount: Int64

    /// An amount of `amount` yen.
    public init(_ amount: Int64) { self.amount = amount }

    /// An amount written as a literal, for example `let limit: Yen = 50_000`.
    public init(integerLiteral value: Int64) { self.amount = value }

    /// Reads a bare JSON integer of yen, as amounts appear in messages.
    public init(from decoder: any Decoder) throws {
        amount = try decoder.singleValueContainer().decode(Int64.self)
    }

    /// Writes the amount as a bare JSON integer of yen.
    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(amount)
    }

    /// No money: ¥0.
    public static let zero = Yen(0)

    /// The sum of two amounts; traps on overflow.
    public static func + (lhs: Yen, rhs: Yen) -> Yen { Yen(lhs.amount + rhs.amount) }
    /// The difference of two amounts, negative when `rhs` is the larger; traps on overflow.
    public static func - (lhs: Yen, rhs: Yen) -> Yen { Yen(lhs.amount - rhs.amount) }
    /// The amount with its sign flipped: a credit is the negated amount of the charge it cancels.
    public static prefix func - (value: Yen) -> Yen { Yen(-value.amount) }
    /// Whether `lhs` is less money than `rhs`; credits (negative amounts) are less than zero.
    public static func < (lhs: Yen, rhs: Yen) -> Bool { lhs.amount < rhs.amount }

    /// `¥1,234` (negative: `-¥1,234`).
    public var description: String {
        let digits = String(amount.magnitude)
        var grouped = ""
        for (index, digit) in digits.enumerated() {
            if index > 0, (digits.count - index) % 3 == 0 { grouped.append(",") }
            grouped.append(digit)
        }
        return (amount < 0 ? "-¥" : "¥") + grouped
    }
}

extension Sequence where Element == Yen {
    /// The total of the amounts.
    public func sum() -> Yen { reduce(.zero, +) }
}
