/// A small JSON writer for the messages published on the hot path: the same
/// JSON `JSONEncoder` writes with sorted keys (absent optionals omitted), at a
/// fraction of the cost.
struct JSONObjectWriter {
    private(set) var bytes: [UInt8] = [UInt8(ascii: "{")]
    private var first = true

    init(capacity: Int = 256) {
        bytes.reserveCapacity(capacity)
    }

    /// Adds `"key":"value"`; keys must be added in sorted order.
    mutating func add(_ key: StaticString, _ value: String?) {
        guard let value else { return }
        addKey(key)
        appendString(value)
    }

    mutating func finish() -> [UInt8] {
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

    private mutating func appendString(_ value: String) {
        bytes.append(UInt8(ascii: "\""))
        for byte in value.utf8 {
            switch byte {
            case UInt8(ascii: "\""): bytes.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "\"")])
            case UInt8(ascii: "\\"): bytes.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "\\")])
            case UInt8(ascii: "\n"): bytes.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "n")])
            case UInt8(ascii: "\r"): bytes.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "r")])
            case UInt8(ascii: "\t"): bytes.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "t")])
            case 0..<0x20:
                let hex = Array("0123456789abcdef".utf8)
                bytes.append(contentsOf: Array("\\u00".utf8) + [hex[Int(byte >> 4)], hex[Int(byte & 0xf)]])
            default: bytes.append(byte)
            }
        }
        bytes.append(UInt8(ascii: "\""))
    }
}

extension MerchantResultMessage {
    /// The message as JSON (sorted keys, absent fields omitted).
    public var jsonBytes: [UInt8] {
        var writer = JSONObjectWriter()
        writer.add("cycle", cycle)
        writer.add("id", id)
        writer.add("lineId", lineId)
        writer.add("merchantId", merchantId)
        writer.add("message", message)
        writer.add("reason", reason)
        writer.add("requestId", requestId)
        writer.add("requestType", requestType)
        writer.add("status", status)
        return writer.finish()
    }
}
