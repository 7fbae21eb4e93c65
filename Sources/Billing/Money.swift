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

/// Exact decimals as written by people: `"31.5"` yen, `"4.75"` percent.
public enum FixedPoint {
    /// `text` — ASCII digits, at most one `.` and at most `decimals` digits
    /// after it, no sign, under a billion — as an integer in units of
    /// 10^-decimals (`"4.75"`, 2 → 475); `nil` for anything else.
    public static func parse(_ text: String, decimals: Int) -> Int64? {
        let parts = text.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count <= 2, let wholeText = parts.first, (1...9).contains(wholeText.count),
            wholeText.allSatisfy({ $0.isASCII && $0.isNumber }), let whole = Int64(wholeText)
        else { return nil }
        var fraction = parts.count == 2 ? String(parts[1]) : ""
        guard parts.count == 1 || !fraction.isEmpty, fraction.count <= decimals,
            fraction.allSatisfy({ $0.isASCII && $0.isNumber })
        else { return nil }
        fraction += String(repeating: "0", count: decimals - fraction.count)
        var scale: Int64 = 1
        for _ in 0..<decimals { scale *= 10 }
        return whole * scale + (Int64(fraction) ?? 0)
    }
}
