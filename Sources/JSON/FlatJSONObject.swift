/// A JSON object whose values are all scalars — strings, integers, booleans,
/// null — read in one pass over the bytes.
///
/// Every request on `charges` and every purchase authorization's claims is
/// such an object, and Foundation's `JSONDecoder` cost the charge worker more
/// per charge than anything but the signature check. This reader takes only
/// what it reads exactly as `JSONDecoder` would; anything else — a nested
/// array or object, a number with a fraction or an exponent or beyond 64
/// bits, a repeated key, bytes that are not JSON or not UTF-8 — gives `nil`,
/// and the caller asks `JSONDecoder`, whose errors name the field at fault.
public struct FlatJSONObject: Sendable {
    /// A field's value.
    public enum Value: Sendable, Hashable {
        /// A string, its escapes resolved.
        case string(String)
        /// An integer within 64 bits, written without a fraction or an exponent.
        case integer(Int64)
        /// `true` or `false`.
        case bool(Bool)
        /// `null`.
        case null
    }

    /// In the order written; a request has about ten.
    private var fields: [(key: String, value: Value)]

    /// More fields than this are left to `JSONDecoder`: keys are found by a
    /// scan, which would grow with the square of their number.
    public static let maximumFields = 32

    /// Reads an object from its bytes; `nil` when it is not a flat object this reader takes exactly
    /// (the caller then asks `JSONDecoder`).
    public init?(_ bytes: some Collection<UInt8>) {
        let fields =
            bytes.withContiguousStorageIfAvailable { Self.read($0) }
            ?? Array(bytes).withUnsafeBufferPointer { Self.read($0) }
        guard let fields else { return nil }
        self.fields = fields
    }

    /// The value of `key`; `nil` when the object has no such key.
    public subscript(key: String) -> Value? {
        fields.first { $0.key == key }?.value
    }

    /// The keys, in the order written.
    public var keys: [String] { fields.map(\.key) }

    /// A field holding another type than the one asked for.
    public struct TypeMismatch: Error {}

    /// The string at `key`: `nil` when absent or null; a mismatch when it holds another type.
    public func string(_ key: String) throws(TypeMismatch) -> String? {
        try field(key) { if case .string(let text) = $0 { text } else { nil } }
    }

    /// The integer at `key`: `nil` when absent or null; a mismatch when it holds another type.
    public func integer(_ key: String) throws(TypeMismatch) -> Int64? {
        try field(key) { if case .integer(let value) = $0 { value } else { nil } }
    }

    private func field<T>(_ key: String, _ typed: (Value) -> T?) throws(TypeMismatch) -> T? {
        guard let value = self[key], value != .null else { return nil }
        guard let typedValue = typed(value) else { throw TypeMismatch() }
        return typedValue
    }

    private static func read(_ bytes: UnsafeBufferPointer<UInt8>) -> [(key: String, value: Value)]? {
        var reader = Reader(bytes: bytes)
        var fields: [(key: String, value: Value)] = []
        fields.reserveCapacity(12)
        reader.skipWhitespace()
        guard reader.take(UInt8(ascii: "{")) else { return nil }
        reader.skipWhitespace()
        if !reader.take(UInt8(ascii: "}")) {
            repeat {
                reader.skipWhitespace()
                guard let key = reader.string() else { return nil }
                reader.skipWhitespace()
                guard reader.take(UInt8(ascii: ":")) else { return nil }
                reader.skipWhitespace()
                guard fields.count < maximumFields, let value = reader.scalar(),
                    !fields.contains(where: { $0.key == key })
                else { return nil }
                fields.append((key, value))
                reader.skipWhitespace()
            } while reader.take(UInt8(ascii: ","))
            guard reader.take(UInt8(ascii: "}")) else { return nil }
        }
        reader.skipWhitespace()
        return reader.atEnd ? fields : nil
    }
}

/// A position in the bytes of a JSON text.
private struct Reader {
    let bytes: UnsafeBufferPointer<UInt8>
    var index = 0

    var atEnd: Bool { index == bytes.count }

    mutating func skipWhitespace() {
        while index < bytes.count {
            switch bytes[index] {
            case UInt8(ascii: " "), UInt8(ascii: "\t"), UInt8(ascii: "\n"), UInt8(ascii: "\r"): index += 1
            default: return
            }
        }
    }

    mutating func take(_ byte: UInt8) -> Bool {
        guard index < bytes.count, bytes[index] == byte else { return false }
        index += 1
        return true
    }

    private mutating func take(_ word: StaticString) -> Bool {
        let count = word.utf8CodeUnitCount
        guard bytes.count - index >= count else { return false }
        for offset in 0..<count where bytes[index + offset] != word.utf8Start[offset] { return false }
        index += count
        return true
    }

    mutating func scalar() -> FlatJSONObject.Value? {
        guard index < bytes.count else { return nil }
        switch bytes[index] {
        case UInt8(ascii: "\""): return string().map { .string($0) }
        case UInt8(ascii: "t"): return take("true") ? .bool(true) : nil
        case UInt8(ascii: "f"): return take("false") ? .bool(false) : nil
        case UInt8(ascii: "n"): return take("null") ? .null : nil
        default: return integer().map { .integer($0) }
        }
    }

    /// `-?(0|[1-9][0-9]*)` within 64 bits and not followed by a fraction or
    /// an exponent; `-0` is left to `JSONDecoder` too.
    private mutating func integer() -> Int64? {
        let negative = take(UInt8(ascii: "-"))
        let start = index
        var magnitude: UInt64 = 0
        while index < bytes.count, (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(bytes[index]) {
            let (times10, overflow1) = magnitude.multipliedReportingOverflow(by: 10)
            let (sum, overflow2) = times10.addingReportingOverflow(UInt64(bytes[index] - UInt8(ascii: "0")))
            guard !overflow1, !overflow2 else { return nil }
            magnitude = sum
            index += 1
        }
        let digits = index - start
        guard digits > 0, digits == 1 || bytes[start] != UInt8(ascii: "0") else { return nil }
        if index < bytes.count {
            switch bytes[index] {
            case UInt8(ascii: "."), UInt8(ascii: "e"), UInt8(ascii: "E"): return nil
            default: break
            }
        }
        if negative {
            guard magnitude != 0, magnitude <= UInt64(Int64.max) + 1 else { return nil }
            return Int64(truncatingIfNeeded: 0 &- magnitude)
        }
        return magnitude <= UInt64(Int64.max) ? Int64(magnitude) : nil
    }

    /// A string with its escapes resolved; `nil` for a control character, a
    /// bad escape, an unpaired surrogate or bytes that are not UTF-8.
    mutating func string() -> String? {
        guard take(UInt8(ascii: "\"")) else { return nil }
        let start = index
        // Most strings have no escapes: validated in place.
        while index < bytes.count {
            let byte = bytes[index]
            if byte == UInt8(ascii: "\"") {
                defer { index += 1 }
                return String(validating: UnsafeBufferPointer(rebasing: bytes[start..<index]), as: UTF8.self)
            }
            if byte == UInt8(ascii: "\\") { break }
            guard byte >= 0x20 else { return nil }
            index += 1
        }
        var text = Array(bytes[start..<index])
        while index < bytes.count {
            let byte = bytes[index]
            index += 1
            switch byte {
            case UInt8(ascii: "\""):
                return String(validating: text, as: UTF8.self)
            case UInt8(ascii: "\\"):
                guard index < bytes.count else { return nil }
                let escaped = bytes[index]
                index += 1
                switch escaped {
                case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"): text.append(escaped)
                case UInt8(ascii: "b"): text.append(0x08)
                case UInt8(ascii: "f"): text.append(0x0C)
                case UInt8(ascii: "n"): text.append(0x0A)
                case UInt8(ascii: "r"): text.append(0x0D)
                case UInt8(ascii: "t"): text.append(0x09)
                case UInt8(ascii: "u"):
                    guard let scalar = escapedScalar() else { return nil }
                    text.append(contentsOf: String(Character(scalar)).utf8)
                default: return nil
                }
            default:
                guard byte >= 0x20 else { return nil }
                text.append(byte)
            }
        }
        return nil
    }

    /// After `\u`: four hex digits, and a low surrogate's `\uXXXX` after a high one.
    private mutating func escapedScalar() -> Unicode.Scalar? {
        guard let unit = hex4() else { return nil }
        switch unit {
        case 0xD800...0xDBFF:
            guard take("\\u"), let low = hex4(), (0xDC00...0xDFFF).contains(low) else { return nil }
            return Unicode.Scalar(0x10000 + ((unit - 0xD800) << 10) + (low - 0xDC00))
        case 0xDC00...0xDFFF:
            return nil
        default:
            return Unicode.Scalar(unit)
        }
    }

    private mutating func hex4() -> UInt32? {
        guard bytes.count - index >= 4 else { return nil }
        var value: UInt32 = 0
        for _ in 0..<4 {
            let byte = bytes[index]
            let digit: UInt8
            switch byte {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): digit = byte - UInt8(ascii: "0")
            case UInt8(ascii: "a")...UInt8(ascii: "f"): digit = byte - UInt8(ascii: "a") + 10
            case UInt8(ascii: "A")...UInt8(ascii: "F"): digit = byte - UInt8(ascii: "A") + 10
            default: return nil
            }
            value = value << 4 | UInt32(digit)
            index += 1
        }
        return value
    }
}
