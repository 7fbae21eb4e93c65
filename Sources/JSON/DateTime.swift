/// RFC 3339 timestamps, as JSON Schema's `date-time` format means them:
/// `2026-11-03T10:15:00+09:00`, `2026-11-03T01:15:00.250Z`.
public enum RFC3339 {
    /// Whether `text` is an RFC 3339 `date-time`: a full date, `T`, a full
    /// time with optional fraction, and `Z` or an offset; every field in range
    /// (a real day of its month, leap years counted; second 60 for a leap
    /// second). `t` and `z` may be lower case, as the RFC allows.
    public static func isDateTime(_ text: String) -> Bool {
        let bytes = Array(text.utf8)
        guard bytes.count >= 20, bytes.count <= 64 else { return false }
        func number(_ range: Range<Int>) -> Int? {
            var value = 0
            for index in range {
                guard (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(bytes[index]) else { return nil }
                value = value * 10 + Int(bytes[index] - UInt8(ascii: "0"))
            }
            return value
        }
        func byte(_ index: Int, is characters: String) -> Bool {
            index < bytes.count && characters.utf8.contains(bytes[index])
        }
        guard let year = number(0..<4), byte(4, is: "-"), let month = number(5..<7), byte(7, is: "-"),
            let day = number(8..<10), byte(10, is: "Tt"), let hour = number(11..<13), byte(13, is: ":"),
            let minute = number(14..<16), byte(16, is: ":"), let second = number(17..<19)
        else { return false }
        let leap = year % 4 == 0 && (year % 100 != 0 || year % 400 == 0)
        let days = [31, leap ? 29 : 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31]
        guard (1...12).contains(month), (1...days[month - 1]).contains(day), hour < 24, minute < 60, second <= 60
        else { return false }
        var index = 19
        if byte(index, is: ".") {
            index += 1
            let digits = index
            while index < bytes.count, (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(bytes[index]) { index += 1 }
            guard index > digits else { return false }
        }
        if byte(index, is: "Zz") { return index + 1 == bytes.count }
        guard byte(index, is: "+-"), index + 6 == bytes.count, let offsetHour = number((index + 1)..<(index + 3)),
            byte(index + 3, is: ":"), let offsetMinute = number((index + 4)..<(index + 6))
        else { return false }
        return offsetHour < 24 && offsetMinute < 60
    }
}
