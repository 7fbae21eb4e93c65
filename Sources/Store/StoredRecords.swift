import Billing
import Foundation

/// A cycle read back from the database. Matomete only ever writes `YYYY-MM`;
/// anything else is corruption, and silently skipping the row could, for
/// example, let a repeated charge through as new.
func storedCycle(_ text: String) throws -> BillingCycle {
    guard let cycle = BillingCycle(text) else {
        throw StoreError(.schemaMismatch, "a stored cycle is \"\(text)\", not YYYY-MM")
    }
    return cycle
}

extension SubscriptionRecord {
    /// A subscription from its stored columns.
    init(
        merchant: String, id: String, monthlyAmount: Int64, description: String, startCycle: String,
        lastCycle: String?
    ) throws {
        self.init(
            merchantID: MerchantID(rawValue: merchant), subscriptionID: SubscriptionID(rawValue: id),
            monthlyAmount: Yen(monthlyAmount), description: description, startCycle: try storedCycle(startCycle),
            lastCycle: try lastCycle.map(storedCycle))
    }
}

extension ChargeRecord {
    /// A charge from its stored columns.
    init(
        merchant: String, id: String, amount: Int64, description: String, cycle: BillingCycle, status: String,
        cancelledIn: String? = nil
    ) throws {
        self.init(
            merchantID: MerchantID(rawValue: merchant), chargeID: ChargeID(rawValue: id), amount: Yen(amount),
            description: description, cycle: cycle, status: ChargeRecord.Status(rawValue: status) ?? .active,
            cancelledIn: try cancelledIn.map(storedCycle))
    }
}

extension OutboxMessage {
    /// The headers as the JSON object stored in the outbox.
    var headersJSON: String {
        guard !headers.isEmpty, let data = try? JSONEncoder.messages.encode(headers) else { return "{}" }
        return String(decoding: data, as: UTF8.self)
    }
}
