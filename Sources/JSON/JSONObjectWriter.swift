/// A small JSON writer for the messages published on the hot path: the same
/// JSON `JSONEncoder` writes with sorted keys (absent optionals omitted), at a
/// fraction of the cost.
public struct JSONObjectWriter {
    /// What is written so far.
    public private(set) var bytes: [UInt8]
    private var first = true

    /// A writer of one object, with room for `capacity` bytes.
    public init(capacity: Int = 256) {
        self.init(opening: UInt8(ascii: "{"), capacity: capacity)
    }

    private init(opening: UInt8?, capacity: Int) {
        bytes = opening.map { [$0] } ?? []
        bytes.reserveCapacity(capacity)
    }

    /// Adds `"key":"value"`; keys must be added in sorted order.
    public mutating func add(_ key: StaticString, _ value: String?) {
        guard let value else { return }
        addKey(key)
        appendString(value)
    }

    /// Adds `"key":value` for an integer; keys must be added in sorted order.
    public mutating func add(_ key: StaticString, _ value: Int64) {
        addKey(key)
        bytes.append(contentsOf: String(value).utf8)
    }

    /// The objects `write` writes for each element, as a JSON array.
    public static func array<Element>(
        _ elements: [Element], _ write: (Element, inout JSONObjectWriter) -> Void
    ) -> [UInt8] {
        var writer = JSONObjectWriter(opening: nil, capacity: 128 * elements.count + 2)
        writer.appendArray(elements, write)
        return writer.bytes
    }

    private mutating func appendArray<Element>(
        _ elements: [Element], _ write: (Element, inout JSONObjectWriter) -> Void
    ) {
        bytes.append(UInt8(ascii: "["))
        for (index, element) in elements.enumerated() {
            if index > 0 { bytes.append(UInt8(ascii: ",")) }
            // Each element's object is written in place, in this buffer.
            bytes.append(UInt8(ascii: "{"))
            first = true
            write(element, &self)
            bytes.append(UInt8(ascii: "}"))
        }
        bytes.append(UInt8(ascii: "]"))
        first = false
    }

    /// Closes the object and returns its bytes.
    public mutating func finish() -> [UInt8] {
        bytes.append(UInt8(ascii: "}"))
        return bytes
    }

    private mutating func addKey(_ key: StaticString) {
        if !first { bytes.append(UInt8(ascii: ",")) }
        first = false
        bytes.append(UInt8(ascii: "\""))
        key.withUTF8Buffer { bytes.append(contentsOf: $0) }
        bytes.append(contentsOf: [UInt8(ascii: "\""), UInt8(ascii: ":")])
    }

    /// Adds `"key":` and JSON already written (an array or object).
    public mutating func add(_ key: StaticString, json: [UInt8]) {
        addKey(key)
        bytes.append(contentsOf: json)
    }

    private mutating func appendString(_ value: String) {
        bytes.append(UInt8(ascii: "\""))
        // Most strings need no escape: copy them whole.
        if !value.utf8.contains(where: { $0 < 0x20 || $0 == UInt8(ascii: "\"") || $0 == UInt8(ascii: "\\") }) {
            bytes.append(contentsOf: value.utf8)
            bytes.append(UInt8(ascii: "\""))
            return
        }
        for byte in value.utf8 {
            switch byte {
            case UInt8(ascii: "\""): bytes.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "\"")])
            case UInt8(ascii: "\\"): bytes.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "\\")])
            case UInt8(ascii: "\n"): bytes.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "n")])
            case UInt8(ascii: "\r"): bytes.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "r")])
            case UInt8(ascii: "\t"): bytes.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "t")])
            case 0x08: bytes.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "b")])
            case 0x0c: bytes.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "f")])
            case 0..<0x20:
                let hex = Array("0123456789abcdef".utf8)
                bytes.append(contentsOf: Array("\\u00".utf8) + [hex[Int(byte >> 4)], hex[Int(byte & 0xf)]])
            default: bytes.append(byte)
            }
        }
        bytes.append(UInt8(ascii: "\""))
    }
}
