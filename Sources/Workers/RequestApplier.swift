import Authorization
import Billing
import Contract
import Foundation
import Kafka
import Store

/// Applies charges, subscriptions, cancellations and line terminations read
/// from one topic. Requests that belong on another topic are rejected.
struct RequestApplier: BatchApplier {
    var store: BillingStore
    var decoder: RequestDecoder
    /// The request kinds this topic carries.
    var accepts: Set<RequestKind>
    /// Checks the purchase authorization of every charge and subscription.
    var verifier: AuthorizationVerifier?
    /// Now, in seconds since 1970.
    var now: @Sendable () -> Int64 = { Int64(Date().timeIntervalSince1970) }

    enum RequestKind: Sendable, Hashable {
        case charge, subscription, chargeCancellation, subscriptionCancellation, lineTermination
    }

    static func kind(of request: BillingRequest) -> RequestKind {
        switch request {
        case .charge: .charge
        case .subscription: .subscription
        case .chargeCancellation: .chargeCancellation
        case .subscriptionCancellation: .subscriptionCancellation
        case .lineTermination: .lineTermination
        }
    }

    func apply(
        _ messages: ArraySlice<KafkaConsumerMessage>, cursor: PartitionCursor, expectedOffset: Int64?
    ) async throws -> Int {
        try await applyAll([PartitionMessages(messages: messages, cursor: cursor, expectedOffset: expectedOffset)])[0]
    }

    var appliesTogether: Bool { true }

    func applyTogether(_ jobs: [PartitionMessages]) async throws -> [Int] {
        try await applyAll(jobs)
    }

    /// Every message of every job, in one transaction.
    private func applyAll(_ jobs: [PartitionMessages]) async throws -> [Int] {
        var batches: [PartitionBatch] = []
        var tallies: [BatchTally] = []
        for job in jobs {
            guard let (batch, tally) = prepare(job.messages, cursor: job.cursor, expectedOffset: job.expectedOffset)
            else { continue }
            batches.append(batch)
            tallies.append(tally)
        }
        guard !batches.isEmpty else { return jobs.map { _ in 0 } }
        let outcomes = try await store.apply(batches)
        for (index, tally) in tallies.enumerated() {
            record(tally, outcomes[index], topic: batches[index].cursor.topic)
        }
        return jobs.map(\.messages.count)
    }

    /// Decodes the messages and checks their authorizations (no database work):
    /// the requests for the rules, and the answers decided without them.
    private func prepare(
        _ messages: ArraySlice<KafkaConsumerMessage>, cursor: PartitionCursor, expectedOffset: Int64?
    ) -> (PartitionBatch, BatchTally)? {
        guard let last = messages.last else { return nil }
        let topics = store.topics
        var requests: [SourcedRequest] = []
        var extra: [OutboxMessage] = []
        var tally = BatchTally()
        requests.reserveCapacity(messages.count)
        for message in messages {
            let (decoded, token) = decoder.decodeWithAuthorization(value: message.value, key: message.key)
            switch decoded {
            case .request(let request) where accepts.contains(Self.kind(of: request)):
                switch authorize(request, token: token) {
                case .authorized(let authorization):
                    requests.append(SourcedRequest(request, offset: message.offset, authorization: authorization))
                case .refused(let reason):
                    let refused = RefusedRequest(
                        merchantID: request.merchantID?.rawValue, requestType: request.kind,
                        requestID: request.reference, lineID: request.lineID.rawValue, reason: reason)
                    extra.append(result(refused, at: message.offset, cursor: cursor, topics: topics))
                    tally.rejected += 1
                }
            case .request(let request):
                let refused = RefusedRequest(
                    merchantID: request.merchantID?.rawValue, requestType: request.kind,
                    requestID: request.reference, lineID: request.lineID.rawValue, reason: .invalidRequest)
                extra.append(result(refused, at: message.offset, cursor: cursor, topics: topics))
                tally.rejected += 1
            case .refused(let refused):
                extra.append(result(refused, at: message.offset, cursor: cursor, topics: topics))
                tally.rejected += 1
            case .deadLetter(let reason):
                extra.append(DeadLetters.message(for: message, reason: reason, topic: topics.deadLetters))
                tally.deadLettered += 1
            }
        }
        let batch = PartitionBatch(
            requests, extraMessages: extra, from: cursor, expectedOffset: expectedOffset, nextOffset: last.offset + 1)
        return (batch, tally)
    }

    /// Counts a committed batch in the metrics.
    private func record(_ tally: BatchTally, _ outcomes: [Outcome], topic: String) {
        var tally = tally
        for outcome in outcomes {
            if outcome.rejection == nil { tally.applied += 1 } else { tally.rejected += 1 }
        }
        tally.record(topic: topic)
    }

    /// Verifies a charge's or subscription's authorization; other requests need none.
    private enum AuthorizationCheck {
        /// With the verified authorization (none needed, or none checked, for other requests).
        case authorized(UsedAuthorization?)
        case refused(RejectionReason)
    }

    private func authorize(_ request: BillingRequest, token: String?) -> AuthorizationCheck {
        guard let verifier else { return .authorized(nil) }
        let amount: Int64
        switch request {
        case .charge(let charge): amount = charge.amount.amount
        case .subscription(let subscription): amount = subscription.monthlyAmount.amount
        default: return .authorized(nil)
        }
        let verified = verifier.verify(
            token ?? "", lineID: request.lineID.rawValue, merchantID: request.merchantID?.rawValue ?? "",
            kind: request.kind, amount: amount, reference: request.reference, now: now())
        switch verified {
        case .success(let claims):
            return .authorized(UsedAuthorization(tokenID: claims.tokenID, expiresAt: claims.expiresAt))
        case .failure(.invalid): return .refused(.authorizationInvalid)
        case .failure(.expired): return .refused(.authorizationExpired)
        case .failure(.mismatch): return .refused(.authorizationMismatch)
        }
    }

    private func result(
        _ refused: RefusedRequest, at offset: Int64, cursor: PartitionCursor, topics: Topics
    )
        -> OutboxMessage
    {
        let id = MerchantResultMessage.id(topic: cursor.topic, partition: cursor.partition, offset: offset)
        return OutboxMessage(
            topic: topics.merchantResults, key: refused.merchantID ?? refused.lineID, id: id,
            payload: MerchantResultMessage(id: id, refused: refused).jsonBytes)
    }
}
