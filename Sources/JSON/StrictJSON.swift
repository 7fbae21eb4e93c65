/// The rules every JSON text Matomete reads must keep, beyond RFC 8259's
/// grammar: one reader for every input (the topics, the gateway, the
/// authorizations), so that no two parts of the system can read the same
/// bytes differently.
///
/// - UTF-8 only, without a byte order mark (RFC 8259 §8.1);
/// - no key twice in one object, after escapes are resolved (`"a"` and
///   `"\u0061"` are the same key): a reader taking the first and another the
///   last would disagree about what was sent;
/// - numbers are integers, written without a fraction or an exponent (`500`,
///   not `5e2` or `500.0`): every number in Matomete's inputs is a count of
///   yen or seconds;
/// - strings hold no raw control characters and no lone surrogate escapes;
/// - objects and arrays nest at most ``maximumDepth`` deep.
public enum StrictJSON {
    /// Objects and arrays inside one another, at most.
    public static let maximumDepth = 16

    /// What is wrong with `bytes` as a JSON text under these rules, in a few
    /// words naming the place (for a dead letter's reason or an error); `nil`
    /// when nothing is.
    public static func problem(in bytes: some Collection<UInt8>) -> String? {
        let problem =
            bytes.withContiguousStorageIfAvailable { check($0) }
            ?? Array(bytes).withUnsafeBufferPointer { check($0) }
        return problem
    }

    private static func check(_ bytes: UnsafeBufferPointer<UInt8>) -> String? {
        if bytes.starts(with: [0xEF, 0xBB, 0xBF]) { return "a byte order mark: JSON is read as UTF-8 without one" }
        if bytes.first == 0xFE || bytes.first == 0xFF || bytes.first == 0 || (bytes.count > 1 && bytes[1] == 0) {
            return "not UTF-8 (UTF-16 or UTF-32?): JSON is read as UTF-8"
        }
        var parser = Parser(bytes: bytes)
        do throws(Failure) {
            parser.skipWhitespace()
            try parser.value(depth: 0)
            parser.skipWhitespace()
            guard parser.index == bytes.count else { throw Failure("more after the JSON value", at: parser.index) }
            return nil
        } catch {
            return "\(error.what) at byte \(error.offset)"
        }
    }

    struct Failure: Error {
        var what: String
        var offset: Int
        init(_ what: String, at offset: Int) {
            self.what = what
            self.offset = offset
        }
    }

    private struct Parser {
        let bytes: UnsafeBufferPointer<UInt8>
        var index = 0

        var current: UInt8? { index < bytes.count ? bytes[index] : nil }

        mutating func skipWhitespace() {
            while let byte = current, byte == 0x20 || byte == 0x09 || byte == 0x0A || byte == 0x0D { index += 1 }
        }

        mutating func expect(_ literal: StaticString) throws(Failure) {
            let start = index
            for byte in UnsafeBufferPointer(start: literal.utf8Start, count: literal.utf8CodeUnitCount) {
                guard current == byte else { throw Failure("not JSON", at: start) }
                index += 1
            }
        }

        mutating func value(depth: Int) throws(Failure) {
            guard let byte = current else { throw Failure("the JSON text ends early", at: index) }
            switch byte {
            case UInt8(ascii: "{"): try container(depth: depth + 1, isObject: true)
            case UInt8(ascii: "["): try container(depth: depth + 1, isObject: false)
            case UInt8(ascii: "\""): _ = try string()
            case UInt8(ascii: "t"): try expect("true")
            case UInt8(ascii: "f"): try expect("false")
            case UInt8(ascii: "n"): try expect("null")
            case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"): try number()
            default: throw Failure("not JSON", at: index)
            }
        }

        /// An object (`{`, its keys each once) or an array (`[`), from its opening bracket to its closing one.
        mutating func container(depth: Int, isObject: Bool) throws(Failure) {
            guard depth <= StrictJSON.maximumDepth else {
                throw Failure("nested deeper than \(StrictJSON.maximumDepth)", at: index)
            }
            let close = isObject ? UInt8(ascii: "}") : UInt8(ascii: "]")
            index += 1
            skipWhitespace()
            if current == close {
                index += 1
                return
            }
            var keys = Set<String>()
            while true {
                skipWhitespace()
                if isObject {
                    let start = index
                    guard current == UInt8(ascii: "\"") else {
                        throw Failure("an object key that is not a string", at: index)
                    }
                    let key = try string()
                    guard keys.insert(key).inserted else {
                        throw Failure("the key \"\(key.prefix(64))\" twice in one object", at: start)
                    }
                    skipWhitespace()
                    guard current == UInt8(ascii: ":") else { throw Failure("no ':' after a key", at: index) }
                    index += 1
                    skipWhitespace()
                }
                try value(depth: depth)
                skipWhitespace()
                if current == UInt8(ascii: ",") {
                    index += 1
                } else if current == close {
                    index += 1
                    return
                } else {
                    throw Failure("no ',' or '\(Character(Unicode.Scalar(close)))' after a value", at: index)
                }
            }
        }

        /// An integer: `-`, then `0` or a digit 1–9 and more digits; a fraction or an exponent is refused.
        mutating func number() throws(Failure) {
            let start = index
            if current == UInt8(ascii: "-") { index += 1 }
            guard let first = current, (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(first) else {
                throw Failure("not JSON", at: start)
            }
            index += 1
            if first != UInt8(ascii: "0") {
                while let digit = current, (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(digit) { index += 1 }
            }
            if let next = current, next == UInt8(ascii: ".") || next == UInt8(ascii: "e") || next == UInt8(ascii: "E") {
                throw Failure("a number with a fraction or an exponent (numbers here are integers)", at: start)
            }
            if let next = current, (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(next) {
                throw Failure("a number with a leading zero", at: start)
            }
        }

        /// A string, its escapes resolved; its bytes must be UTF-8.
        mutating func string() throws(Failure) -> String {
            let start = index
            index += 1
            var scalars = String.UnicodeScalarView()
            var runStart = index
            func flush(_ end: Int) throws(Failure) {
                guard end > runStart else { return }
                guard
                    let text = String(validating: UnsafeBufferPointer(rebasing: bytes[runStart..<end]), as: UTF8.self)
                else { throw Failure("a string that is not UTF-8", at: runStart) }
                scalars.append(contentsOf: text.unicodeScalars)
            }
            while true {
                guard let byte = current else { throw Failure("a string that does not end", at: start) }
                switch byte {
                case UInt8(ascii: "\""):
                    try flush(index)
                    index += 1
                    return String(scalars)
                case UInt8(ascii: "\\"):
                    try flush(index)
                    index += 1
                    scalars.append(try escape())
                    runStart = index
                case 0..<0x20:
                    throw Failure("a control character inside a string", at: index)
                default:
                    index += 1
                }
            }
        }

        mutating func escape() throws(Failure) -> Unicode.Scalar {
            let start = index - 1
            guard let byte = current else { throw Failure("a string that does not end", at: start) }
            index += 1
            switch byte {
            case UInt8(ascii: "\""): return "\""
            case UInt8(ascii: "\\"): return "\\"
            case UInt8(ascii: "/"): return "/"
            case UInt8(ascii: "b"): return "\u{8}"
            case UInt8(ascii: "f"): return "\u{C}"
            case UInt8(ascii: "n"): return "\n"
            case UInt8(ascii: "r"): return "\r"
            case UInt8(ascii: "t"): return "\t"
            case UInt8(ascii: "u"):
                let unit = try hex4(start)
                if (0xD800..<0xDC00).contains(unit) {
                    guard current == UInt8(ascii: "\\") else { throw Failure("a lone surrogate escape", at: start) }
                    index += 1
                    guard current == UInt8(ascii: "u") else { throw Failure("a lone surrogate escape", at: start) }
                    index += 1
                    let low = try hex4(start)
                    guard (0xDC00..<0xE000).contains(low) else { throw Failure("a lone surrogate escape", at: start) }
                    return Unicode.Scalar(0x10000 + ((unit - 0xD800) << 10) + (low - 0xDC00))!
                }
                guard let scalar = Unicode.Scalar(unit) else { throw Failure("a lone surrogate escape", at: start) }
                return scalar
            default:
                throw Failure("an unknown escape", at: start)
            }
        }

        mutating func hex4(_ start: Int) throws(Failure) -> UInt32 {
            var value: UInt32 = 0
            for _ in 0..<4 {
                guard let byte = current else { throw Failure("a string that does not end", at: start) }
                let digit: UInt32
                switch byte {
                case UInt8(ascii: "0")...UInt8(ascii: "9"): digit = UInt32(byte - UInt8(ascii: "0"))
                case UInt8(ascii: "a")...UInt8(ascii: "f"): digit = UInt32(byte - UInt8(ascii: "a") + 10)
                case UInt8(ascii: "A")...UInt8(ascii: "F"): digit = UInt32(byte - UInt8(ascii: "A") + 10)
                default: throw Failure("an escape \\u without four hex digits", at: start)
                }
                value = value << 4 | digit
                index += 1
            }
            return value
        }
    }
}
