import Billing
import Foundation

/// How the sites write money, times and months: in one place, Japan time.
public enum SiteFormat {
    private static let japan = TimeZone(secondsFromGMT: 9 * 3600)!

    /// `¥1,234`, or `-¥1,234`.
    public static func yen(_ amount: Yen) -> String {
        let digits = String(amount.amount.magnitude)
        var grouped = ""
        for (index, digit) in digits.enumerated() {
            if index > 0, (digits.count - index) % 3 == 0 { grouped.append(",") }
            grouped.append(digit)
        }
        return (amount.amount < 0 ? "-¥" : "¥") + grouped
    }

    /// `2026-12-02 10:31:05` in Japan time.
    public static func time(_ date: Date) -> String {
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = japan
        let parts = calendar.dateComponents([.year, .month, .day, .hour, .minute, .second], from: date)
        func two(_ value: Int?) -> String { value.map { $0 < 10 ? "0\($0)" : "\($0)" } ?? "00" }
        return
            "\(parts.year ?? 0)-\(two(parts.month))-\(two(parts.day)) \(two(parts.hour)):\(two(parts.minute)):\(two(parts.second))"
    }

    /// The first instant of `day` (`YYYY-MM-DD`) in Japan, or `nil` when it is not a day.
    public static func startOf(day: String) -> Date? {
        guard let day = CalendarDay(day) else { return nil }
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = japan
        return calendar.date(from: DateComponents(year: day.cycle.year, month: day.cycle.month, day: day.day))
    }

    /// The billing month the instant falls in, Japan time (the years 2000 to 9999).
    public static func cycle(containing date: Date) -> BillingCycle {
        BillingCycle(containing: Int64(date.timeIntervalSince1970.rounded(.down)))
    }

    /// The day (`YYYY-MM-DD`) the instant falls on, Japan time.
    public static func day(_ date: Date) -> String { String(time(date).prefix(10)) }
}

/// A CSV field: quoted when it holds a comma, a quote or a line break; a text that a spreadsheet would take
/// for a formula (`=`, `+`, `-`, `@`, tab, CR first) is prefixed with `'`.
public enum CSVField {
    /// `field` as a CSV field, safe to open in a spreadsheet.
    public static func escape(_ field: String) -> String {
        var field = field
        if let first = field.first, "=+-@\t\r".contains(first) { field = "'" + field }
        guard field.contains(where: { $0 == "," || $0 == "\"" || $0.isNewline }) else { return field }
        return "\"" + field.replacingOccurrences(of: "\"", with: "\"\"") + "\""
    }
}
