import Billing
import Foundation
import PostgresNIO

/// A Kafka partition as seen by one consumer group, whose next offset the store keeps.
public struct PartitionCursor: Hashable, Sendable, CustomStringConvertible {
    /// The consumer group the stored offset belongs to.
    public var consumerGroup: String
    /// The topic's name, with its prefix.
    public var topic: String
    /// The partition's number, from 0.
    public var partition: Int32

    /// Names a partition of a group.
    public init(consumerGroup: String, topic: String, partition: Int32) {
        self.consumerGroup = consumerGroup
        self.topic = topic
        self.partition = partition
    }

    /// `group/topic[partition]`, for example `matomete-charge-worker/matomete.charges[3]`.
    public var description: String { "\(consumerGroup)/\(topic)[\(partition)]" }
}

/// Where one partition's stored offset moves in a transaction.
public struct OffsetMove: Sendable, Hashable {
    /// The partition.
    public var cursor: PartitionCursor
    /// The stored offset the move starts from (`nil`: none stored yet).
    public var expected: Int64?
    /// The stored offset after it.
    public var next: Int64

    /// Names a move.
    public init(_ cursor: PartitionCursor, from expected: Int64?, to next: Int64) {
        self.cursor = cursor
        self.expected = expected
        self.next = next
    }
}

/// A purchase authorization on a line: each is accepted once.
public struct AuthorizationKey: Sendable, Hashable {
    /// The line it was issued for.
    public var lineID: LineID
    /// The authorization's own id.
    public var tokenID: String

    /// Names an authorization.
    public init(lineID: LineID, tokenID: String) {
        self.lineID = lineID
        self.tokenID = tokenID
    }
}

/// What an authorization was used for, as stored.
public struct AuthorizationUse: Sendable, Hashable {
    /// The line and the authorization's id.
    public var key: AuthorizationKey
    /// The merchant that used it (empty for none).
    public var merchantID: String
    /// The request kind it was used for, as on the wire.
    public var kind: String
    /// The merchant's reference of the request.
    public var reference: String
    /// Whether the request it came with was accepted.
    public var accepted: Bool
    /// The reason code it was refused with, when it was.
    public var reason: String?
    /// The cycle its answer named, when it named one.
    public var cycle: BillingCycle?
    /// Seconds since 1970: when the authorization expired (or expires).
    public var expiresAt: Int64

    /// A use of an authorization, with the answer its request got.
    public init(
        key: AuthorizationKey, merchantID: String, kind: String, reference: String, accepted: Bool,
        reason: String? = nil, cycle: BillingCycle? = nil, expiresAt: Int64
    ) {
        self.key = key
        self.merchantID = merchantID
        self.kind = kind
        self.reference = reference
        self.accepted = accepted
        self.reason = reason
        self.cycle = cycle
        self.expiresAt = expiresAt
    }
}

/// What one batch's transaction loaded, for the caller's rules to decide on.
/// What they change in it is written back in the same transaction.
public struct BatchState: Sendable {
    /// Every line the requests touch, locked, with the records they refer to.
    /// Changes are written back through each book's effects.
    public var books: [LineID: LineBook]
    /// The merchants the requests name, where known.
    public let merchants: [MerchantID: Merchant]
    /// The spending limit of lines without their own, as set with
    /// ``BillingStore/setDefaultSpendingLimit(_:)`` (`0`: none); `nil` when
    /// never set (the rules' default applies).
    public var defaultSpendingLimit: Yen? = nil
    /// The stored uses of the authorizations the batch carries.
    public let authorizationUses: [AuthorizationKey: AuthorizationUse]
    /// The line holding each charge and subscription id the requests carry,
    /// where one does. The rules keep it current: a purchase the batch adds
    /// claims its id in the same transaction.
    public var purchaseHolders: [PurchaseKey: LineID] = [:]
    /// Ids to claim besides those of the purchases the books add (which are
    /// claimed with them): an accepted repeat of a purchase whose id no line
    /// holds yet.
    public var purchaseClaims: [(PurchaseKey, LineID)] = []
    /// Uses to record.
    public var newAuthorizationUses: [AuthorizationUse] = []
    /// The messages the batch publishes, committed with it.
    public var outbox: [OutboxMessage] = []
    /// The results the merchants are told, kept for looking up later
    /// (``BillingStore/results(line:before:limit:)``).
    public var results: [RequestResult] = []
    /// The dead letters a merchant signed, kept for its site.
    public var merchantDeadLetters: [MerchantDeadLetter] = []
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

    /// Moves stored offsets and publishes `messages`, with nothing else
    /// applied (dead letters, commands handled outside the store), in one
    /// transaction. Throws ``StoreError/Code/staleOffset`` as
    /// ``applyBatch(moving:requests:authorizations:_:)`` does.
    public func moveOffsets(_ moves: [OffsetMove], publishing messages: [OutboxMessage]) async throws {
        try await applyBatch(moving: moves, requests: [], authorizations: []) { $0.outbox = messages }
    }

    /// Applies a batch read from one or more partitions in one transaction:
    /// loads (and locks, in id order) every line `requests` touch with the
    /// records they refer to, the merchants they name and the stored uses of
    /// `authorizations` and the lines holding the charge and subscription ids
    /// they carry; lets `decide` apply the rules to that state; writes back
    /// what it changed, the authorization uses it added, the ids its new
    /// purchases claim and the outbox messages it chose; and moves every
    /// partition's stored offset by compare-and-set.
    ///
    /// If a stored offset is not the one expected, another worker has moved
    /// it: nothing is applied and the error is ``StoreError/Code/staleOffset``.
    /// Lines are locked in id order, so two batches touching the same lines
    /// cannot deadlock. If another transaction claimed one of the new
    /// purchases' ids first (the same id on another line, at the same moment),
    /// nothing is applied and the error is
    /// ``StoreError/Code/purchaseIDClaimed``: applied again, the batch sees the
    /// claim.
    ///
    /// - Returns: what `decide` returned.
    @discardableResult
    public func applyBatch<T: Sendable>(
        moving moves: [OffsetMove], requests: [BillingRequest], authorizations: [AuthorizationKey],
        _ decide: @escaping @Sendable (inout BatchState) throws -> T
    ) async throws -> T {
        try await transaction { [self] connection in
            let (merchants, defaultLimit) = try await moveOffsets(
                moves, loading: requests.compactMap(\.merchantID), on: connection)
            guard !requests.isEmpty else {
                var state = BatchState(
                    books: [:], merchants: merchants, defaultSpendingLimit: defaultLimit, authorizationUses: [:])
                let result = try decide(&state)
                try await persist(state, on: connection)
                return result
            }
            var state = BatchState(
                books: try await loadBooks(for: requests, on: connection), merchants: merchants,
                defaultSpendingLimit: defaultLimit,
                authorizationUses: try await loadAuthorizationUses(authorizations, on: connection),
                purchaseHolders: try await loadPurchaseHolders(requests.compactMap(\.purchaseKey), on: connection))
            let result = try decide(&state)
            try await persist(state, on: connection)
            return result
        }
    }

    /// The compare-and-set on every batch's stored offset, in one round trip
    /// with reading the batches' merchants and the default spending limit
    /// (the first statement of every transaction): a transaction of many
    /// partitions' small batches costs one statement here, not one per
    /// partition.
    func moveOffsets(
        _ moves: [OffsetMove], loading merchantIDs: [MerchantID], on connection: PostgresConnection
    ) async throws -> (merchants: [MerchantID: Merchant], defaultSpendingLimit: Yen?) {
        let ids = Array(Set(merchantIDs.map(\.rawValue)))
        let groups = moves.map(\.cursor.consumerGroup)
        let topicNames = moves.map(\.cursor.topic)
        let partitions = moves.map { Int($0.cursor.partition) }
        // Where none is stored yet, the row must not exist: inserted, not updated.
        let stored = moves.map { $0.expected != nil }
        let expected = moves.map { $0.expected ?? 0 }
        let next = moves.map(\.next)
        let rows = try await connection.fetch(
            """
            WITH wanted AS (
                SELECT * FROM unnest(\(groups)::text[], \(topicNames)::text[], \(partitions)::int[], \(stored)::bool[],
                                     \(expected)::bigint[], \(next)::bigint[])
                    AS w(consumer_group, topic, partition, stored, expected, next)
            ), updated AS (
                UPDATE consumer_offsets o SET next_offset = w.next, updated_at = now()
                FROM wanted w
                WHERE w.stored AND o.consumer_group = w.consumer_group AND o.topic = w.topic
                  AND o.partition = w.partition AND o.next_offset = w.expected
                RETURNING 1
            ), inserted AS (
                INSERT INTO consumer_offsets (consumer_group, topic, partition, next_offset)
                SELECT w.consumer_group, w.topic, w.partition, w.next FROM wanted w WHERE NOT w.stored
                ON CONFLICT DO NOTHING
                RETURNING 1
            )
            SELECT ((SELECT count(*) FROM updated) + (SELECT count(*) FROM inserted))::int, m.merchant_id, m.name, m.status,
                   (SELECT value FROM matomete_settings WHERE key = \(defaultSpendingLimitKey))
            FROM (SELECT 1) AS one LEFT JOIN merchants m ON m.merchant_id = ANY(\(ids))
            """, (Int, String?, String?, String?, String?).self, logger: logger)
        guard rows.first?.0 == moves.count else {
            let cursors = moves.map { "\($0.cursor) at \($0.expected.map(String.init) ?? "unset")" }
            throw StoreError(
                .staleOffset,
                "\(cursors.joined(separator: ", ")): a stored offset is no longer the one expected; another worker owns the partition"
            )
        }
        var merchants: [MerchantID: Merchant] = [:]
        for case (_, let id?, let name?, let status?, _) in rows {
            merchants[MerchantID(rawValue: id)] = Merchant(
                id: MerchantID(rawValue: id), name: name, status: MerchantStatus(rawValue: status) ?? .suspended)
        }
        return (merchants, rows.first?.4.flatMap { Int64($0) }.map { Yen($0) })
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
        // Locked one by one in id order (the keys are sorted): no deadlock with
        // another batch over the same lines.
        let lineRows = try await connection.query(
            """
            SELECT \(unescaped: Line.storedColumns("l")), l.open_cycle, l.open_spend_yen
            FROM unnest(\(lineIDs)) WITH ORDINALITY AS k(line_id, position)
            CROSS JOIN LATERAL (SELECT * FROM lines WHERE lines.line_id = k.line_id FOR UPDATE) l
            ORDER BY k.position
            """, logger: logger)
        for try await row in lineRows {
            var columns = RowColumns(row)
            let line = try Line(stored: &columns)
            let openCycle: String = try columns.next()
            let spend: Int64 = try columns.next()
            books[line.id] = LineBook(line: line, openCycle: try storedCycle(openCycle), spend: Yen(spend))
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
                FROM unnest(\(chargeKeys.lines), \(chargeKeys.merchants), \(chargeKeys.ids)) AS k(line_id, merchant_id, charge_id)
                CROSS JOIN LATERAL (
                    -- `|| ''` keeps the planner off the merchant index (one merchant can
                    -- have millions of charges): the probe goes through the line id.
                    SELECT * FROM charges
                    WHERE charges.line_id = k.line_id AND charges.merchant_id || '' = k.merchant_id
                      AND charges.charge_id = k.charge_id
                ) c
                """, logger: logger)
            for try await (line, merchant, id, amount, description, cycle, status, cancelledIn) in rows.decode(
                (String, String, String, Int64, String, String, String, String?).self)
            {
                let record = try ChargeRecord(
                    merchant: merchant, id: id, amount: amount, description: description, cycle: storedCycle(cycle),
                    status: status, cancelledIn: cancelledIn)
                books[LineID(rawValue: line)]?.charges[record.key] = record
            }
        }
        if !subscriptionKeys.lines.isEmpty || !terminating.isEmpty {
            let rows = try await connection.query(
                """
                SELECT s.line_id, s.merchant_id, s.subscription_id, s.monthly_amount_yen, s.description, s.start_cycle, s.last_cycle
                FROM subscriptions s
                WHERE s.line_id = ANY(\(subscriptionKeys.lines + terminating))
                  AND ((s.line_id, s.merchant_id || '', s.subscription_id) IN (
                          SELECT * FROM unnest(\(subscriptionKeys.lines), \(subscriptionKeys.merchants), \(subscriptionKeys.ids)))
                       OR (s.line_id = ANY(\(terminating)) AND s.last_cycle IS NULL))
                """, logger: logger)
            for try await (line, merchant, id, amount, description, start, last) in rows.decode(
                (String, String, String, Int64, String, String, String?).self)
            {
                let record = try SubscriptionRecord(
                    merchant: merchant, id: id, monthlyAmount: amount, description: description, startCycle: start,
                    lastCycle: last)
                books[LineID(rawValue: line)]?.subscriptions[record.key] = record
            }
        }
        return books
    }

    /// The lines holding `keys`, where one does. Reads the merchants' partitions.
    private func loadPurchaseHolders(
        _ keys: [PurchaseKey], on connection: PostgresConnection
    ) async throws -> [PurchaseKey: LineID] {
        guard !keys.isEmpty else { return [:] }
        let rows = try await connection.query(
            """
            SELECT p.merchant_id, p.kind, p.purchase_id, p.line_id
            FROM unnest(\(keys.map(\.merchantID.rawValue)), \(keys.map(\.kind.rawValue)), \(keys.map(\.id)))
                AS k(merchant_id, kind, purchase_id)
            CROSS JOIN LATERAL (
                SELECT * FROM purchase_ids
                WHERE purchase_ids.merchant_id = k.merchant_id AND purchase_ids.kind = k.kind
                  AND purchase_ids.purchase_id = k.purchase_id) p
            """, logger: logger)
        var holders: [PurchaseKey: LineID] = [:]
        for try await (merchant, kind, id, line) in rows.decode((String, String, String, String).self) {
            guard let kind = RequestKind(rawValue: kind) else { continue }
            holders[PurchaseKey(merchantID: MerchantID(rawValue: merchant), kind: kind, id: id)] = LineID(
                rawValue: line)
        }
        return holders
    }

    /// The stored uses of `keys`.
    private func loadAuthorizationUses(
        _ keys: [AuthorizationKey], on connection: PostgresConnection
    ) async throws -> [AuthorizationKey: AuthorizationUse] {
        guard !keys.isEmpty else { return [:] }
        let rows = try await connection.query(
            """
            SELECT u.line_id, u.token_id, u.merchant_id, u.request_kind, u.reference, u.accepted, u.reason, u.cycle,
                   extract(epoch FROM u.expires_at)::bigint
            FROM unnest(\(keys.map(\.lineID.rawValue)), \(keys.map(\.tokenID)))
                AS k(line_id, token_id)
            CROSS JOIN LATERAL (
                SELECT * FROM used_authorizations
                WHERE used_authorizations.line_id = k.line_id AND used_authorizations.token_id = k.token_id) u
            """, logger: logger)
        var uses: [AuthorizationKey: AuthorizationUse] = [:]
        for try await (line, token, merchant, kind, reference, accepted, reason, cycle, expiresAt) in rows.decode(
            (String, String, String, String, String, Bool, String?, String?, Int64).self)
        {
            let key = AuthorizationKey(lineID: LineID(rawValue: line), tokenID: token)
            uses[key] = AuthorizationUse(
                key: key, merchantID: merchant, kind: kind, reference: reference, accepted: accepted, reason: reason,
                cycle: try cycle.map(storedCycle), expiresAt: expiresAt)
        }
        return uses
    }

    /// Writes what the rules changed and the batch's outgoing messages in one
    /// statement (data-modifying CTEs: one round trip).
    ///
    /// Each record is written in its final state: a charge added and cancelled
    /// in the same batch is inserted already cancelled (sibling CTEs cannot
    /// see each other's rows).
    private func persist(_ state: BatchState, on connection: PostgresConnection) async throws {
        let (books, uses, messages, results) = (state.books, state.newAuthorizationUses, state.outbox, state.results)
        let deadLetters = state.merchantDeadLetters
        var claims = state.purchaseClaims
        var newCharges: [(LineID, ChargeRecord)] = []
        var changedCharges: [(LineID, ChargeRecord)] = []
        var credits: [(LineID, ChargeRecord, Yen)] = []
        var newSubscriptions: [(LineID, SubscriptionRecord)] = []
        var endedSubscriptions: [(LineID, SubscriptionRecord)] = []
        var lineUpdates: [(LineID, Yen, LineStatus)] = []
        for (lineID, book) in books.sorted(by: { $0.key < $1.key }) where !book.effects.isEmpty {
            guard let line = book.line else { continue }
            lineUpdates.append((lineID, book.spend, line.status))
            var addedCharges = Set<ChargeKey>()
            var addedSubscriptions = Set<SubscriptionKey>()
            var touchedCharges = Set<ChargeKey>()
            var touchedSubscriptions = Set<SubscriptionKey>()
            for effect in book.effects {
                switch effect {
                case .chargeAdded(let record):
                    addedCharges.insert(record.key)
                    claims.append(
                        (
                            PurchaseKey(merchantID: record.merchantID, kind: .charge, id: record.chargeID.rawValue),
                            lineID
                        ))
                case .chargeCancelled(let key, _): touchedCharges.insert(key)
                case .chargeCredited(let key, _, let amount):
                    touchedCharges.insert(key)
                    if let record = book.charges[key] { credits.append((lineID, record, amount)) }
                case .subscriptionAdded(let record):
                    addedSubscriptions.insert(record.key)
                    claims.append(
                        (
                            PurchaseKey(
                                merchantID: record.merchantID, kind: .subscription, id: record.subscriptionID.rawValue),
                            lineID
                        ))
                case .subscriptionEnded(let key, _): touchedSubscriptions.insert(key)
                case .lineTerminated: break
                }
            }
            for key in addedCharges.sorted(by: { $0.chargeID < $1.chargeID }) {
                if let record = book.charges[key] { newCharges.append((lineID, record)) }
            }
            for key in touchedCharges.subtracting(addedCharges).sorted(by: { $0.chargeID < $1.chargeID }) {
                if let record = book.charges[key] { changedCharges.append((lineID, record)) }
            }
            for key in addedSubscriptions.sorted(by: { $0.subscriptionID < $1.subscriptionID }) {
                if let record = book.subscriptions[key] { newSubscriptions.append((lineID, record)) }
            }
            for key in touchedSubscriptions.subtracting(addedSubscriptions).sorted(by: {
                $0.subscriptionID < $1.subscriptionID
            }) {
                if let record = book.subscriptions[key] { endedSubscriptions.append((lineID, record)) }
            }
        }
        // Claimed in one order by every transaction: two batches claiming the
        // same ids wait for each other without deadlocking.
        claims.sort { $0.0 < $1.0 }
        let claimed = try await connection.fetch(
            """
            WITH new_claims AS (
                INSERT INTO purchase_ids (merchant_id, kind, purchase_id, line_id)
                SELECT merchant_id, kind, purchase_id, line_id
                FROM unnest(\(claims.map(\.0.merchantID.rawValue)), \(claims.map(\.0.kind.rawValue)),
                            \(claims.map(\.0.id)), \(claims.map(\.1.rawValue))) WITH ORDINALITY
                    AS c(merchant_id, kind, purchase_id, line_id, position)
                ORDER BY position
                ON CONFLICT DO NOTHING
                RETURNING 1
            ), new_charges AS (
                INSERT INTO charges (line_id, merchant_id, charge_id, amount_yen, description, cycle, status, cancelled_in, cancelled_at)
                SELECT line_id, merchant_id, charge_id, amount_yen, description, cycle, status, NULLIF(cancelled_in, ''),
                       CASE WHEN cancelled_in = '' THEN NULL ELSE now() END
                FROM unnest(\(newCharges.map(\.0.rawValue)), \(newCharges.map(\.1.merchantID.rawValue)),
                            \(newCharges.map(\.1.chargeID.rawValue)), \(newCharges.map(\.1.amount.amount)),
                            \(newCharges.map(\.1.description)), \(newCharges.map(\.1.cycle.description)),
                            \(newCharges.map(\.1.status.rawValue)), \(newCharges.map { $0.1.cancelledIn?.description ?? "" }))
                    AS c(line_id, merchant_id, charge_id, amount_yen, description, cycle, status, cancelled_in)
            ), changed_charges AS (
                UPDATE charges c SET status = u.status, cancelled_in = u.cancelled_in, cancelled_at = now()
                FROM unnest(\(changedCharges.map(\.0.rawValue)), \(changedCharges.map(\.1.merchantID.rawValue)),
                            \(changedCharges.map(\.1.chargeID.rawValue)), \(changedCharges.map(\.1.status.rawValue)),
                            \(changedCharges.map { $0.1.cancelledIn?.description ?? "" }))
                    AS u(line_id, merchant_id, charge_id, status, cancelled_in)
                WHERE c.line_id = u.line_id AND c.merchant_id || '' = u.merchant_id AND c.charge_id = u.charge_id
            ), new_credits AS (
                INSERT INTO credits (line_id, merchant_id, charge_id, description, amount_yen, cycle)
                SELECT * FROM unnest(\(credits.map(\.0.rawValue)), \(credits.map(\.1.merchantID.rawValue)),
                                     \(credits.map(\.1.chargeID.rawValue)), \(credits.map(\.1.description)),
                                     \(credits.map(\.2.amount)), \(credits.map { $0.1.cancelledIn?.description ?? "" }))
            ), new_subscriptions AS (
                INSERT INTO subscriptions (line_id, merchant_id, subscription_id, monthly_amount_yen, description, start_cycle, last_cycle)
                SELECT line_id, merchant_id, subscription_id, amount, description, start_cycle, NULLIF(last_cycle, '')
                FROM unnest(\(newSubscriptions.map(\.0.rawValue)), \(newSubscriptions.map(\.1.merchantID.rawValue)),
                            \(newSubscriptions.map(\.1.subscriptionID.rawValue)), \(newSubscriptions.map(\.1.monthlyAmount.amount)),
                            \(newSubscriptions.map(\.1.description)), \(newSubscriptions.map(\.1.startCycle.description)),
                            \(newSubscriptions.map { $0.1.lastCycle?.description ?? "" }))
                    AS s(line_id, merchant_id, subscription_id, amount, description, start_cycle, last_cycle)
            ), ended_subscriptions AS (
                UPDATE subscriptions s SET last_cycle = u.last_cycle, ended_at = now()
                FROM unnest(\(endedSubscriptions.map(\.0.rawValue)), \(endedSubscriptions.map(\.1.merchantID.rawValue)),
                            \(endedSubscriptions.map(\.1.subscriptionID.rawValue)),
                            \(endedSubscriptions.map { $0.1.lastCycle?.description ?? "" }))
                    AS u(line_id, merchant_id, subscription_id, last_cycle)
                WHERE s.line_id = u.line_id AND s.merchant_id || '' = u.merchant_id AND s.subscription_id = u.subscription_id
            ), new_uses AS (
                INSERT INTO used_authorizations (line_id, token_id, merchant_id, request_kind, reference, accepted, reason, cycle, expires_at)
                SELECT line_id, token_id, merchant_id, kind, reference, accepted, NULLIF(reason, ''), NULLIF(cycle, ''),
                       to_timestamp(expires_at)
                FROM unnest(\(uses.map(\.key.lineID.rawValue)), \(uses.map(\.key.tokenID)), \(uses.map(\.merchantID)),
                            \(uses.map(\.kind)), \(uses.map(\.reference)), \(uses.map(\.accepted)),
                            \(uses.map { $0.reason ?? "" }), \(uses.map { $0.cycle?.description ?? "" }),
                            \(uses.map { Double($0.expiresAt) }))
                    AS u(line_id, token_id, merchant_id, kind, reference, accepted, reason, cycle, expires_at)
            ), new_results AS (
                INSERT INTO request_results (line_id, merchant_id, request_type, request_id, result_id, accepted, reason, cycle)
                SELECT line_id, NULLIF(merchant_id, ''), request_type, request_id, result_id, accepted, NULLIF(reason, ''), NULLIF(cycle, '')
                FROM unnest(\(results.map(\.lineID.rawValue)), \(results.map { $0.merchantID?.rawValue ?? "" }),
                            \(results.map(\.requestType)), \(results.map(\.requestID)), \(results.map(\.resultID)),
                            \(results.map(\.accepted)), \(results.map { $0.reason ?? "" }),
                            \(results.map { $0.cycle?.description ?? "" }))
                    AS r(line_id, merchant_id, request_type, request_id, result_id, accepted, reason, cycle)
            ), updated_lines AS (
                UPDATE lines l SET open_spend_yen = u.spend, status = u.status, updated_at = now()
                FROM unnest(\(lineUpdates.map(\.0.rawValue)), \(lineUpdates.map(\.1.amount)), \(lineUpdates.map(\.2.rawValue)))
                    AS u(line_id, spend, status)
                WHERE l.line_id = u.line_id
            ), new_outbox AS (
                INSERT INTO outbox (topic, message_key, message_id, payload, headers)
                SELECT topic, NULLIF(message_key, ''), message_id, payload, headers::jsonb
                FROM unnest(\(messages.map(\.topic)), \(messages.map { $0.key ?? "" }), \(messages.map(\.id)),
                            \(messages.map { ByteBuffer(bytes: $0.payload) }), \(messages.map(\.headersJSON)))
                    AS m(topic, message_key, message_id, payload, headers)
            ), new_dead_letters AS (
                INSERT INTO merchant_dead_letters (source_topic, source_partition, source_offset, merchant_id, reason,
                    message_key, value, value_size)
                SELECT topic, partition, source_offset, merchant_id, reason, NULLIF(message_key, ''), value, size
                FROM unnest(\(deadLetters.map(\.sourceTopic)), \(deadLetters.map(\.sourcePartition)),
                            \(deadLetters.map(\.sourceOffset)), \(deadLetters.map(\.merchantID.rawValue)),
                            \(deadLetters.map(\.reason)), \(deadLetters.map { $0.key ?? "" }),
                            \(deadLetters.map { ByteBuffer(bytes: $0.value) }), \(deadLetters.map(\.valueSize)))
                    AS d(topic, partition, source_offset, merchant_id, reason, message_key, value, size)
                ON CONFLICT DO NOTHING
            )
            SELECT (SELECT count(*) FROM new_claims)::int
            """, Int.self, logger: logger)
        guard claimed.first == claims.count else {
            throw StoreError(
                .purchaseIDClaimed,
                "another transaction claimed one of \(claims.count) new charge or subscription ids first; nothing was applied"
            )
        }
    }
}
