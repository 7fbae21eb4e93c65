import Billing
import Foundation
import Logging
import MatometeTestSupport
import PostgresNIO
import Processing
import Store
import Testing

extension BillingCycle {
    static let november = BillingCycle("2026-11")!
    static let december = BillingCycle("2026-12")!
    static let january = BillingCycle("2027-01")!
}

/// Builds requests tersely.
enum Make {
    static func charge(
        _ merchant: String, _ id: String, line: String, _ amount: Int64, _ description: String = "item"
    )
        -> BillingRequest
    {
        .charge(
            ChargeRequest(
                merchantID: MerchantID(rawValue: merchant), chargeID: ChargeID(rawValue: id),
                lineID: LineID(rawValue: line),
                amount: Yen(amount), description: description))
    }

    static func subscription(_ merchant: String, _ id: String, line: String, _ amount: Int64) -> BillingRequest {
        .subscription(
            SubscriptionRequest(
                merchantID: MerchantID(rawValue: merchant), subscriptionID: SubscriptionID(rawValue: id),
                lineID: LineID(rawValue: line), monthlyAmount: Yen(amount), description: "monthly"))
    }

    static func cancelCharge(_ merchant: String, _ id: String, line: String) -> BillingRequest {
        .chargeCancellation(
            ChargeCancellation(
                merchantID: MerchantID(rawValue: merchant), chargeID: ChargeID(rawValue: id),
                lineID: LineID(rawValue: line)))
    }

    static func cancelSubscription(_ merchant: String, _ id: String, line: String) -> BillingRequest {
        .subscriptionCancellation(
            SubscriptionCancellation(
                merchantID: MerchantID(rawValue: merchant), subscriptionID: SubscriptionID(rawValue: id),
                lineID: LineID(rawValue: line)))
    }

    static func lines(_ count: Int, prefix: String = "L", type: LineType = .hikariNext) -> [Line] {
        (0..<count).map { Line(id: LineID(rawValue: "\(prefix)\(String(format: "%07d", $0))"), type: type) }
    }
}

/// Feeds requests through a store as one worker would: one batch at a time,
/// offsets advancing.
final class Feeder: @unchecked Sendable {
    // @unchecked Sendable: used from one task at a time in each test.
    let store: BillingStore
    let cursor: PartitionCursor
    private(set) var offset: Int64 = 0
    private var stored = false

    init(
        _ store: BillingStore, topic: String = "matomete.charges", partition: Int32 = 0, group: String = "charge-worker"
    ) {
        self.store = store
        cursor = PartitionCursor(consumerGroup: group, topic: topic, partition: partition)
    }

    @discardableResult
    func apply(_ requests: [BillingRequest]) async throws -> [Outcome] {
        let sourced = requests.enumerated().map { SourcedRequest($1, offset: offset + Int64($0)) }
        let outcomes = try await RequestProcessor(store: store).apply(
            sourced, from: cursor, expectedOffset: stored ? offset : nil, nextOffset: offset + Int64(requests.count))
        offset += Int64(requests.count)
        stored = true
        return outcomes
    }
}

/// Waits up to `limit` for `condition` to hold, checking every 10 ms; fails
/// the test (throws) naming `what` if it never does.
func eventually(
    _ what: String, within limit: Duration = .seconds(10), _ condition: () async throws -> Bool
) async throws {
    let deadline = ContinuousClock.now + limit
    while try await !condition() {
        guard ContinuousClock.now < deadline else {
            Issue.record("not within \(limit): \(what)")
            throw CancellationError()
        }
        try await Task.sleep(for: .milliseconds(10))
    }
}
