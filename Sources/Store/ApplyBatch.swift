import Billing
import Contract
import Foundation
import PostgresNIO

/// A Kafka partition as seen by one consumer group, whose next offset the store keeps.
public struct PartitionCursor: Hashable, Sendable, CustomStringConvertible {
    public var consumerGroup: String
    public var topic: String
    public var partition: Int32

    public init(consumerGroup: String, topic: String, partition: Int32) {
        self.consumerGroup = consumerGroup
        self.topic = topic
        self.partition = partition
    }

    public var description: String { "\(consumerGroup)/\(topic)[\(partition)]" }
}

/// A decoded request and where it was read.
public struct SourcedRequest: Sendable, Hashable {
    public var request: BillingRequest
    public var offset: Int64

    public init(_ request: BillingRequest, offset: Int64) {
        self.request = request
        self.offset = offset
    }
}

extension BillingStore {
    /// The next offset to read from a partition, as last committed by a batch;
    /// `nil` when no batch of this group ever committed for it.
    public func storedOffset(_ cursor: PartitionCursor) async throws -> Int64? {
        try await client.fetch(
            """
            SELECT next_offset FROM consumer_offsets
            WHERE consumer_group = \(cursor.consumerGroup) AND topic = \(cursor.topic) AND partition = \(Int(cursor.partition))
            """, Int64.self, logger: logger
        ).first
    }

    /// Applies a batch of requests read from one partition, in one transaction
    /// that also writes every outgoing message to the outbox and moves the
    /// partition's stored offset from `expectedOffset` to `nextOffset`.
    ///
    /// If the stored offset is not `expectedOffset` (`nil`: none stored yet),
    /// another worker has moved it: nothing is applied and the error is
    /// ``StoreError/Code/staleOffset``. Lines are locked in id order, so two
    /// batches touching the same lines cannot deadlock.
    ///
    /// - Parameters:
    ///   - extraMessages: messages the caller decided on without the rules
    ///     (rejections of malformed requests, dead letters), committed with the batch.
    /// - Returns: the outcome of each request, in order.
    @discardableResult
    public func apply(
        _ requests: [SourcedRequest], extraMessages: [OutboxMessage] = [], from cursor: PartitionCursor,
        expectedOffset: Int64?, nextOffset: Int64
    ) async throws -> [Outcome] {
        try await transaction { connection in
            try await moveOffset(cursor, from: expectedOffset, to: nextOffset, on: connection)
            guard !requests.isEmpty else {
                try await connection.insertOutbox(extraMessages, logger: logger)
                return []
            }
            var books = try await loadBooks(for: requests.map(\.request), on: connection)
            let merchants = try await loadMerchants(requests.compactMap(\.request.merchantID), on: connection)
            let encoder = JSONEncoder.messages
            var outcomes: [Outcome] = []
            var messages: [OutboxMessage] = []
            outcomes.reserveCapacity(requests.count)
            messages.reserveCapacity(requests.count + extraMessages.count)
            for sourced in requests {
                let request = sourced.request
                let merchant = request.merchantID.flatMap { merchants[$0] }
                let outcome = rules.apply(request, to: &books[request.lineID]!, merchant: merchant)
                outcomes.append(outcome)
                let id = MerchantResultMessage.id(
                    topic: cursor.topic, partition: cursor.partition, offset: sourced.offset)
                let result = MerchantResultMessage(id: id, request: request, outcome: outcome)
                messages.append(
                    try .json(
                        result, topic: topics.merchantResults,
                        key: request.merchantID?.rawValue ?? request.lineID.rawValue,
                        id: id, encoder: encoder))
            }
            try await persist(books, on: connection)
            try await connection.insertOutbox(messages + extraMessages, logger: logger)
            return outcomes
        }
    }

    /// The compare-and-set on the partition's stored offset.
    private func moveOffset(
        _ cursor: PartitionCursor, from expected: Int64?, to next: Int64, on connection: PostgresConnection
    )
        async throws
    {
        let partition = Int(cursor.partition)
        let moved: Int64?
        if let expected {
            moved = try await connection.fetch(
                """
                UPDATE consumer_offsets SET next_offset = \(next), updated_at = now()
                WHERE consumer_group = \(cursor.consumerGroup) AND topic = \(cursor.topic) AND partition = \(partition)
                  AND next_offset = \(expected)
                RETURNING next_offset
                """, Int64.self, logger: logger
            ).first
        } else {
            moved = try await connection.fetch(
                """
                INSERT INTO consumer_offsets (consumer_group, topic, partition, next_offset)
                VALUES (\(cursor.consumerGroup), \(cursor.topic), \(partition), \(next))
                ON CONFLICT DO NOTHING
                RETURNING next_offset
                """, Int64.self, logger: logger
            ).first
        }
        guard moved != nil else {
            throw StoreError(
                .staleOffset,
                "\(cursor): the stored offset is no longer \(expected.map(String.init) ?? "unset"); another worker owns the partition"
            )
        }
    }

    /// Loads, and locks in id order, every line the requests touch, with the
    /// charges and subscriptions they refer to.
    private func loadBooks(
        for requests: [BillingRequest], on connection: PostgresConnection
    ) async throws
        -> [LineID: LineBook]
    {
        let lineIDs = Array(Set(requests.map(\.lineID.rawValue))).sorted()
        var books: [LineID: LineBook] = [:]
        let placeholder = BillingCycle(year: 2000, month: 1)!
        for id in lineIDs { books[LineID(rawValue: id)] = LineBook(line: nil, openCycle: placeholder, spend: 0) }
        let lineRows = try await connection.query(
            """
            SELECT line_id, line_type, flets_net, status, spending_limit_yen, open_cycle, open_spend_yen
            FROM lines WHERE line_id = ANY(\(lineIDs)) ORDER BY line_id FOR UPDATE
            """, logger: logger)
        for try await (id, type, fletsNet, status, limit, openCycle, spend) in lineRows.decode(
            (String, String, Bool, String, Int64?, String, Int64).self)
        {
            let line = Line(
                id: LineID(rawValue: id), type: LineType(rawValue: type), fletsNetContract: fletsNet,
                status: LineStatus(rawValue: status) ?? .suspended, spendingLimit: limit.map { Yen($0) })
            books[line.id] = LineBook(line: line, openCycle: BillingCycle(openCycle) ?? placeholder, spend: Yen(spend))
        }

        var chargeKeys: (lines: [String], merchants: [String], ids: [String]) = ([], [], [])
        var subscriptionKeys: (lines: [String], merchants: [String], ids: [String]) = ([], [], [])
        var terminating: [String] = []
        for request in requests {
            switch request {
            case .charge(let charge):
                chargeKeys.lines.append(charge.lineID.rawValue)
                chargeKeys.merchants.append(charge.merchantID.rawValue)
                chargeKeys.ids.append(charge.chargeID.rawValue)
            case .chargeCancellation(let cancel):
                chargeKeys.lines.append(cancel.lineID.rawValue)
                chargeKeys.merchants.append(cancel.merchantID.rawValue)
                chargeKeys.ids.append(cancel.chargeID.rawValue)
            case .subscription(let subscription):
                subscriptionKeys.lines.append(subscription.lineID.rawValue)
                subscriptionKeys.merchants.append(subscription.merchantID.rawValue)
                subscriptionKeys.ids.append(subscription.subscriptionID.rawValue)
            case .subscriptionCancellation(let cancel):
                subscriptionKeys.lines.append(cancel.lineID.rawValue)
                subscriptionKeys.merchants.append(cancel.merchantID.rawValue)
                subscriptionKeys.ids.append(cancel.subscriptionID.rawValue)
            case .lineTermination(let termination):
                terminating.append(termination.lineID.rawValue)
            }
        }
        if !chargeKeys.lines.isEmpty {
            let rows = try await connection.query(
                """
                SELECT c.line_id, c.merchant_id, c.charge_id, c.amount_yen, c.description, c.cycle, c.status, c.cancelled_in
                FROM charges c
                JOIN unnest(\(chargeKeys.lines), \(chargeKeys.merchants), \(chargeKeys.ids)) AS k(line_id, merchant_id, charge_id)
                  ON c.line_id = k.line_id AND c.merchant_id = k.merchant_id AND c.charge_id = k.charge_id
                WHERE c.line_id = ANY(\(chargeKeys.lines))
                """, logger: logger)
            for try await (line, merchant, id, amount, description, cycle, status, cancelledIn) in rows.decode(
                (String, String, String, Int64, String, String, String, String?).self)
            {
                guard let cycle = BillingCycle(cycle) else { continue }
                let record = ChargeRecord(
                    merchantID: MerchantID(rawValue: merchant), chargeID: ChargeID(rawValue: id), amount: Yen(amount),
                    description: description, cycle: cycle, status: ChargeRecord.Status(rawValue: status) ?? .active,
                    cancelledIn: cancelledIn.flatMap(BillingCycle.init))
                books[LineID(rawValue: line)]?.charges[record.key] = record
            }
        }
        if !subscriptionKeys.lines.isEmpty || !terminating.isEmpty {
            let rows = try await connection.query(
                """
                SELECT s.line_id, s.merchant_id, s.subscription_id, s.monthly_amount_yen, s.description, s.start_cycle, s.last_cycle
                FROM subscriptions s
                WHERE s.line_id = ANY(\(subscriptionKeys.lines + terminating))
                  AND ((s.line_id, s.merchant_id, s.subscription_id) IN (
                          SELECT * FROM unnest(\(subscriptionKeys.lines), \(subscriptionKeys.merchants), \(subscriptionKeys.ids)))
                       OR (s.line_id = ANY(\(terminating)) AND s.last_cycle IS NULL))
                """, logger: logger)
            for try await (line, merchant, id, amount, description, start, last) in rows.decode(
                (String, String, String, Int64, String, String, String?).self)
            {
                guard let start = BillingCycle(start) else { continue }
                let record = SubscriptionRecord(
                    merchantID: MerchantID(rawValue: merchant), subscriptionID: SubscriptionID(rawValue: id),
                    monthlyAmount: Yen(amount), description: description, startCycle: start,
                    lastCycle: last.flatMap(BillingCycle.init))
                books[LineID(rawValue: line)]?.subscriptions[record.key] = record
            }
        }
        return books
    }

    private func loadMerchants(
        _ ids: [MerchantID], on connection: PostgresConnection
    ) async throws
        -> [MerchantID: Merchant]
    {
        let unique = Array(Set(ids.map(\.rawValue)))
        guard !unique.isEmpty else { return [:] }
        var merchants: [MerchantID: Merchant] = [:]
        let rows = try await connection.query(
            "SELECT merchant_id, name, status FROM merchants WHERE merchant_id = ANY(\(unique))", logger: logger)
        for try await (id, name, status) in rows.decode((String, String, String).self) {
            merchants[MerchantID(rawValue: id)] = Merchant(
                id: MerchantID(rawValue: id), name: name, status: MerchantStatus(rawValue: status) ?? .suspended)
        }
        return merchants
    }

    /// Writes what the rules changed, one statement per kind of change.
    private func persist(_ books: [LineID: LineBook], on connection: PostgresConnection) async throws {
        var added: [(LineID, ChargeRecord)] = []
        var cancelled: [(LineID, ChargeKey, String, BillingCycle)] = []
        var credits: [(LineID, ChargeKey, String, Yen, BillingCycle)] = []
        var subscriptions: [(LineID, SubscriptionRecord)] = []
        var ended: [(LineID, SubscriptionKey, BillingCycle)] = []
        var lineUpdates: [(LineID, Yen, LineStatus)] = []
        for (lineID, book) in books where !book.effects.isEmpty {
            guard let line = book.line else { continue }
            lineUpdates.append((lineID, book.spend, line.status))
            for effect in book.effects {
                switch effect {
                case .chargeAdded(let record): added.append((lineID, record))
                case .chargeCancelled(let key, let cycle): cancelled.append((lineID, key, "cancelled", cycle))
                case .chargeCredited(let key, let cycle, let amount):
                    cancelled.append((lineID, key, "credited", cycle))
                    credits.append((lineID, key, book.charges[key]?.description ?? "", amount, cycle))
                case .subscriptionAdded(let record): subscriptions.append((lineID, record))
                case .subscriptionEnded(let key, let lastCycle): ended.append((lineID, key, lastCycle))
                case .lineTerminated: break
                }
            }
        }
        if !added.isEmpty {
            try await connection.query(
                """
                INSERT INTO charges (line_id, merchant_id, charge_id, amount_yen, description, cycle, status)
                SELECT line_id, merchant_id, charge_id, amount_yen, description, cycle, 'active'
                FROM unnest(\(added.map(\.0.rawValue)), \(added.map(\.1.merchantID.rawValue)), \(added.map(\.1.chargeID.rawValue)),
                            \(added.map(\.1.amount.amount)), \(added.map(\.1.description)), \(added.map(\.1.cycle.description)))
                    AS c(line_id, merchant_id, charge_id, amount_yen, description, cycle)
                """, logger: logger)
        }
        if !cancelled.isEmpty {
            try await connection.query(
                """
                UPDATE charges c SET status = u.status, cancelled_in = u.cycle, cancelled_at = now()
                FROM unnest(\(cancelled.map(\.0.rawValue)), \(cancelled.map(\.1.merchantID.rawValue)),
                            \(cancelled.map(\.1.chargeID.rawValue)), \(cancelled.map(\.2)), \(cancelled.map(\.3.description)))
                    AS u(line_id, merchant_id, charge_id, status, cycle)
                WHERE c.line_id = u.line_id AND c.merchant_id = u.merchant_id AND c.charge_id = u.charge_id
                  AND c.line_id = ANY(\(cancelled.map(\.0.rawValue)))
                """, logger: logger)
        }
        if !credits.isEmpty {
            try await connection.query(
                """
                INSERT INTO credits (line_id, merchant_id, charge_id, description, amount_yen, cycle)
                SELECT * FROM unnest(\(credits.map(\.0.rawValue)), \(credits.map(\.1.merchantID.rawValue)),
                                     \(credits.map(\.1.chargeID.rawValue)), \(credits.map(\.2)), \(credits.map(\.3.amount)),
                                     \(credits.map(\.4.description)))
                """, logger: logger)
        }
        if !subscriptions.isEmpty {
            try await connection.query(
                """
                INSERT INTO subscriptions (line_id, merchant_id, subscription_id, monthly_amount_yen, description, start_cycle)
                SELECT * FROM unnest(\(subscriptions.map(\.0.rawValue)), \(subscriptions.map(\.1.merchantID.rawValue)),
                                     \(subscriptions.map(\.1.subscriptionID.rawValue)), \(subscriptions.map(\.1.monthlyAmount.amount)),
                                     \(subscriptions.map(\.1.description)), \(subscriptions.map(\.1.startCycle.description)))
                """, logger: logger)
        }
        if !ended.isEmpty {
            try await connection.query(
                """
                UPDATE subscriptions s SET last_cycle = u.last_cycle, ended_at = now()
                FROM unnest(\(ended.map(\.0.rawValue)), \(ended.map(\.1.merchantID.rawValue)),
                            \(ended.map(\.1.subscriptionID.rawValue)), \(ended.map(\.2.description)))
                    AS u(line_id, merchant_id, subscription_id, last_cycle)
                WHERE s.line_id = u.line_id AND s.merchant_id = u.merchant_id AND s.subscription_id = u.subscription_id
                  AND s.line_id = ANY(\(ended.map(\.0.rawValue)))
                """, logger: logger)
        }
        if !lineUpdates.isEmpty {
            try await connection.query(
                """
                UPDATE lines l SET open_spend_yen = u.spend, status = u.status, updated_at = now()
                FROM unnest(\(lineUpdates.map(\.0.rawValue)), \(lineUpdates.map(\.1.amount)), \(lineUpdates.map(\.2.rawValue)))
                    AS u(line_id, spend, status)
                WHERE l.line_id = u.line_id AND l.line_id = ANY(\(lineUpdates.map(\.0.rawValue)))
                """, logger: logger)
        }
    }
}
