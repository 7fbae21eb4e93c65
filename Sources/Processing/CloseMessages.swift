import Billing
import Contract
import Store

/// A close's line bills and settlements as the contract publishes them, on
/// `line-bills`, and on `settlements` (finance's) and the merchant's own
/// settlements topic.
public struct CloseMessages: ClosePublisher {
    /// Where they are published.
    public var topics: Topics

    /// The messages for `topics`.
    public init(topics: Topics = Topics()) {
        self.topics = topics
    }

    /// The line bill's message, and its items (written once, for both).
    public func lineBill(_ bill: LineBill) -> (message: OutboxMessage, items: [UInt8]) {
        let message = LineBillMessage(bill)
        let json = message.jsonBytesAndItems()
        return (
            OutboxMessage(topic: topics.lineBills, key: message.lineId, id: message.id, payload: json.message),
            json.items
        )
    }

    /// The settlement's message, keyed by merchant, for finance and for the merchant.
    public func settlement(_ settlement: Settlement) throws -> [OutboxMessage] {
        let message = SettlementMessage(settlement)
        let json = try message.jsonBytes()
        return [topics.settlements, topics.merchantSettlements(message.merchantId)].map {
            OutboxMessage(topic: $0, key: message.merchantId, id: message.id, payload: json)
        }
    }
}
