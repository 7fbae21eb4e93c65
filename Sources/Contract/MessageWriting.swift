import Foundation
import JSON

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

extension LineBillMessage {
    /// The message as JSON (sorted keys), as `JSONEncoder` writes it, and its
    /// items alone as a JSON array (as stored with the line's bill): the items
    /// are written once for both.
    public func jsonBytesAndItems() -> (message: [UInt8], items: [UInt8]) {
        let itemsJSON = JSONObjectWriter.array(items) { item, object in item.write(to: &object) }
        var writer = JSONObjectWriter(capacity: 96 + itemsJSON.count)
        writer.add("cycle", cycle)
        writer.add("id", id)
        writer.add("items", json: itemsJSON)
        writer.add("lineId", lineId)
        writer.add("total", total)
        return (writer.finish(), itemsJSON)
    }
}

extension LineBillMessage.Item {
    fileprivate func write(to object: inout JSONObjectWriter) {
        object.add("amount", amount)
        object.add("description", description)
        object.add("kind", kind)
        object.add("merchantId", merchantId)
        object.add("reference", reference)
    }
}

extension SettlementMessage {
    /// The message as JSON (sorted keys).
    public func jsonBytes() throws -> [UInt8] { try sortedJSON(self) }
}

/// A message as `JSONEncoder` writes it with sorted keys and unescaped slashes.
func sortedJSON(_ message: some Encodable) throws -> [UInt8] {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
    return Array(try encoder.encode(message))
}
