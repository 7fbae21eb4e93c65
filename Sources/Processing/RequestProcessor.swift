import Billing
import Contract
import Foundation
import Store

/// A decoded request and where it was read.
public struct SourcedRequest: Sendable, Hashable {
    /// The request.
    public var request: BillingRequest
    /// Its offset in the partition it was read from.
    public var offset: Int64
    /// The verified purchase authorization it came with (charges and subscriptions).
    public var authorization: UsedAuthorization?

    /// A request read at `offset`.
    public init(_ request: BillingRequest, offset: Int64, authorization: UsedAuthorization? = nil) {
        self.request = request
        self.offset = offset
        self.authorization = authorization
    }
}

/// A verified purchase authorization, recorded with the request it was used
/// for: an authorization is accepted once.
public struct UsedAuthorization: Sendable, Hashable {
    /// The authorization's id.
    public var tokenID: String
    /// Seconds since 1970; the record may be purged after this.
    public var expiresAt: Int64

    /// A verified authorization.
    public init(tokenID: String, expiresAt: Int64) {
        self.tokenID = tokenID
        self.expiresAt = expiresAt
    }
}

/// A request refused before the rules (invalid, on the wrong topic, or
/// without a valid authorization), and where it was read.
public struct SourcedRefusal: Sendable, Hashable {
    /// What was refused, and why.
    public var refused: RefusedRequest
    /// Its offset in the partition it was read from.
    public var offset: Int64

    /// A refusal of the request at `offset`.
    public init(_ refused: RefusedRequest, offset: Int64) {
        self.refused = refused
        self.offset = offset
    }
}

/// The requests read from one partition, and where its stored offset moves.
public struct PartitionBatch: Sendable {
    /// The requests for the rules, in offset order.
    public var requests: [SourcedRequest]
    /// Requests refused before the rules: their results are told and kept
    /// like the others.
    public var refusals: [SourcedRefusal]
    /// Messages decided on without the rules (dead letters), committed with the batch.
    public var extraMessages: [OutboxMessage]
    /// The dead letters a merchant signed, kept for its site with the batch.
    public var merchantDeadLetters: [MerchantDeadLetter]
    /// The partition.
    public var cursor: PartitionCursor
    /// The stored offset the batch starts from (`nil`: none stored yet).
    public var expectedOffset: Int64?
    /// The stored offset after the batch: one past its last message.
    public var nextOffset: Int64

    /// Names a batch.
    public init(
        _ requests: [SourcedRequest], refusals: [SourcedRefusal] = [], extraMessages: [OutboxMessage] = [],
        merchantDeadLetters: [MerchantDeadLetter] = [], from cursor: PartitionCursor, expectedOffset: Int64?,
        nextOffset: Int64
    ) {
        self.requests = requests
        self.refusals = refusals
        self.extraMessages = extraMessages
        self.merchantDeadLetters = merchantDeadLetters
        self.cursor = cursor
        self.expectedOffset = expectedOffset
        self.nextOffset = nextOffset
    }
}

/// Decides what happens to each request of a batch — the used-once rule of
/// purchase authorizations, then the billing rules — and what the merchant
/// is told, in the store's transaction for the batch.
public struct RequestProcessor: Sendable {
    /// Where the batch's state is loaded and written.
    public var store: BillingStore
    /// The billing rules; their default spending limit gives way to the one
    /// set with `matomete lines default-limit`, when one is.
    public var rules: BillingRules
    /// Where results are published.
    public var topics: Topics

    /// A processor over `store`.
    public init(store: BillingStore, rules: BillingRules = BillingRules(), topics: Topics = Topics()) {
        self.store = store
        self.rules = rules
        self.topics = topics
    }

    /// Applies a batch read from one partition (see ``apply(_:now:)``).
    @discardableResult
    public func apply(
        _ requests: [SourcedRequest], refusals: [SourcedRefusal] = [], extraMessages: [OutboxMessage] = [],
        from cursor: PartitionCursor, expectedOffset: Int64?, nextOffset: Int64,
        now: Int64 = Int64(Date().timeIntervalSince1970)
    ) async throws -> [Outcome] {
        let batch = PartitionBatch(
            requests, refusals: refusals, extraMessages: extraMessages, from: cursor, expectedOffset: expectedOffset,
            nextOffset: nextOffset)
        return try await apply([batch], now: now)[0]
    }

    /// Applies the batches of several partitions in one transaction, each
    /// moving its own partition's stored offset by compare-and-set: all of
    /// them or none. One stale offset (``StoreError/Code/staleOffset``) or one
    /// refused request rolls back every batch; the caller then applies them
    /// one by one.
    ///
    /// Each request's result, and each refusal's, goes to the outbox for
    /// its sender's results topic and is kept in the results history; the batches'
    /// extra messages follow. `now` (seconds since 1970) judges whether an
    /// authorization presented for the first time has expired.
    ///
    /// - Returns: the outcome of each request, batch by batch, in order.
    @discardableResult
    public func apply(
        _ batches: [PartitionBatch], now: Int64 = Int64(Date().timeIntervalSince1970)
    ) async throws -> [[Outcome]] {
        let requests = batches.flatMap(\.requests)
        let authorizations = requests.compactMap { sourced in
            sourced.authorization.map { AuthorizationKey(lineID: sourced.request.lineID, tokenID: $0.tokenID) }
        }
        let moves = batches.map { OffsetMove($0.cursor, from: $0.expectedOffset, to: $0.nextOffset) }
        return try await store.applyBatch(
            moving: moves, requests: requests.map(\.request), authorizations: authorizations
        ) { [rules, topics] state in
            var rules = rules
            if let limit = state.defaultSpendingLimit { rules.limits.defaultSpendingLimit = limit }
            var outcomes: [[Outcome]] = []
            outcomes.reserveCapacity(batches.count)
            let told = requests.count + batches.reduce(0) { $0 + $1.refusals.count }
            state.outbox.reserveCapacity(told + batches.reduce(0) { $0 + $1.extraMessages.count })
            state.results.reserveCapacity(told)
            var uses = state.authorizationUses
            for batch in batches {
                var batchOutcomes: [Outcome] = []
                batchOutcomes.reserveCapacity(batch.requests.count)
                for sourced in batch.requests {
                    let outcome = Self.decide(sourced, in: &state, uses: &uses, rules: rules, now: now)
                    batchOutcomes.append(outcome)
                    let id = MerchantResultMessage.id(
                        topic: batch.cursor.topic, partition: batch.cursor.partition, offset: sourced.offset)
                    let request = sourced.request
                    state.tell(
                        MerchantResultMessage(id: id, request: request, outcome: outcome), topics: topics,
                        keeping: RequestResult(
                            resultID: id, lineID: request.lineID, merchantID: request.merchantID,
                            requestType: request.kind.rawValue, requestID: request.reference,
                            accepted: outcome.isAccepted, reason: outcome.rejection?.code, cycle: outcome.cycle))
                }
                for refusal in batch.refusals {
                    let id = MerchantResultMessage.id(
                        topic: batch.cursor.topic, partition: batch.cursor.partition, offset: refusal.offset)
                    state.tell(
                        MerchantResultMessage(id: id, refused: refusal.refused), topics: topics,
                        keeping: RequestResult(id, refused: refusal.refused))
                }
                outcomes.append(batchOutcomes)
            }
            state.outbox += batches.flatMap(\.extraMessages)
            state.merchantDeadLetters += batches.flatMap(\.merchantDeadLetters)
            return outcomes
        }
    }

    /// One request's outcome. A request with an authorization is decided in
    /// this order (`docs/merchants.md`, "Which reason wins"):
    /// 1. the authorization was used before: by the same merchant for the same
    ///    kind and reference, the request is a repeat and gets the first
    ///    answer — status, reason and cycle — whatever the authorization's age;
    ///    by anything else, `authorization_reused` (as is a repeat of a use
    ///    recorded before answers were kept and refused then);
    /// 2. presented for the first time after it expired: `authorization_expired`;
    /// 3. the billing rules; the authorization is then used, with the answer.
    private static func decide(
        _ sourced: SourcedRequest, in state: inout BatchState, uses: inout [AuthorizationKey: AuthorizationUse],
        rules: BillingRules, now: Int64
    ) -> Outcome {
        let request = sourced.request
        guard let authorization = sourced.authorization else { return state.apply(request, rules) }
        let key = AuthorizationKey(lineID: request.lineID, tokenID: authorization.tokenID)
        if let use = uses[key] {
            let repeated =
                use.merchantID == request.merchantID?.rawValue && use.kind == request.kind.rawValue
                && use.reference == request.reference
            guard repeated else { return .rejected(.authorizationReused, state.books[request.lineID]!.knownCycle) }
            switch (use.accepted, use.cycle, use.reason.flatMap(RejectionReason.init(rawValue:))) {
            case (true, let cycle?, _): return .accepted(cycle)
            case (true, nil, _): return state.apply(request, rules)  // kept before answers were: the purchase's repeat
            case (false, _, let reason?): return .rejected(reason, use.cycle)
            case (false, _, nil): return .rejected(.authorizationReused, state.books[request.lineID]!.knownCycle)
            }
        }
        guard now <= authorization.expiresAt else {
            return .rejected(.authorizationExpired, state.books[request.lineID]!.knownCycle)
        }
        let outcome = state.apply(request, rules)
        let use = AuthorizationUse(
            key: key, merchantID: request.merchantID?.rawValue ?? "", kind: request.kind.rawValue,
            reference: request.reference, accepted: outcome.isAccepted, reason: outcome.rejection?.code,
            cycle: outcome.cycle, expiresAt: authorization.expiresAt)
        uses[key] = use
        state.newAuthorizationUses.append(use)
        return outcome
    }
}

extension BatchState {
    /// Applies the billing rules to `request`'s line, telling them which line
    /// holds its charge or subscription id. A purchase they accept claims its
    /// id when no line holds it: a new one (the store claims it with the
    /// purchase) or a repeat of one added before ids were claimed.
    fileprivate mutating func apply(_ request: BillingRequest, _ rules: BillingRules) -> Outcome {
        let key = request.purchaseKey
        let holder = key.flatMap { purchaseHolders[$0] }
        let effects = books[request.lineID]!.effects.count
        let outcome = rules.apply(
            request, to: &books[request.lineID]!, merchant: request.merchantID.flatMap { merchants[$0] },
            idHeldBy: holder)
        if let key, holder == nil, outcome.isAccepted {
            purchaseHolders[key] = request.lineID
            if books[request.lineID]!.effects.count == effects { purchaseClaims.append((key, request.lineID)) }
        }
        return outcome
    }

    /// Publishes `result` to its sender alone — the merchant's own results
    /// topic, or the line system's for a line termination — keyed by line
    /// (without a key when the line id echoed is not well-formed),
    /// and keeps `record` of it in the results history. (A request reaches
    /// the rules only with a well-formed merchant id, and, signed, only
    /// from that merchant.)
    fileprivate mutating func tell(_ result: MerchantResultMessage, topics: Topics, keeping record: RequestResult) {
        let topic = result.merchantId.map(topics.merchantResults) ?? topics.lineSystemResults
        // A refusal echoes the line id as written: only a well-formed one is a key (none otherwise).
        let key = LineID(rawValue: result.lineId).isWellFormed ? result.lineId : nil
        outbox.append(OutboxMessage(topic: topic, key: key, id: result.id, payload: result.jsonBytes))
        results.append(record)
    }
}

extension RequestResult {
    /// The history's record of a request refused before the rules. Its ids are
    /// as the sender wrote them: only well-formed ones are kept (empty
    /// otherwise), so no input can make the row unstorable.
    fileprivate init(_ id: String, refused: RefusedRequest) {
        let line = LineID(rawValue: refused.lineID)
        let merchant = refused.merchantID.map(MerchantID.init(rawValue:))
        self.init(
            resultID: id, lineID: line.isWellFormed ? line : "",
            merchantID: merchant?.isWellFormed == true ? merchant : nil,
            requestType: RequestKind(rawValue: refused.requestType)?.rawValue ?? "",
            requestID: ChargeID(rawValue: refused.requestID).isWellFormed ? refused.requestID : "", accepted: false,
            reason: refused.reason.code, cycle: nil)
    }
}
