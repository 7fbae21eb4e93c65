import Authorization
import Billing
import Consuming
import Contract
import Foundation
import Kafka
import Store

/// What every worker's applier does the same way against the store: where a
/// partition's offset is kept, how a refused message is dead-lettered, and
/// what a store error means for the engine.
protocol StoreApplier: PartitionApplier {
    var store: BillingStore { get }
    /// The consumer group whose offsets this applier moves.
    var group: String { get }
    /// Where dead letters go.
    var topics: Topics { get }
}

extension StoreApplier {
    func cursor(_ partition: KafkaTopicPartition) -> PartitionCursor {
        PartitionCursor(consumerGroup: group, topic: partition.topic, partition: partition.partition.rawValue)
    }

    /// The partition's stored offset (see ``PartitionApplier/storedOffset(of:)``).
    public func storedOffset(of partition: KafkaTopicPartition) async throws -> KafkaOffset? {
        try await store.storedOffset(cursor(partition)).map { KafkaOffset($0) }
    }

    /// Moves past `message` with only its dead letter (see ``PartitionApplier/deadLetter(_:reason:expectedOffset:)``).
    public func deadLetter(
        _ message: KafkaConsumerMessage, reason: String, expectedOffset: KafkaOffset?
    ) async throws {
        try await store.moveOffsets(
            [
                OffsetMove(
                    cursor(message.topicPartition), from: expectedOffset?.rawValue, to: message.offset.rawValue + 1)
            ],
            publishing: [DeadLetters.message(for: message, reason: reason, topic: topics.deadLetters)])
    }

    /// What a store error means for the engine (see ``PartitionApplier/failure(of:)``).
    public func failure(of error: any Error) -> ApplyFailure {
        switch StoreFailure(error) {
        case .staleOffset: .staleOffset
        case .raced: .raced
        case .refusedContent:
            .refusedContent(reason: "the database refused the message: \(String(reflecting: error).prefix(300))")
        case .transient: .transient
        case .unexpected:
            .unexpected(
                reason: "the database failed the message: \(String(reflecting: error).prefix(300))",
                code: StoreFailure.sqlState(of: error) ?? "")
        }
    }
}

/// Applies charges, subscriptions, cancellations and line terminations read
/// from one topic. Requests that belong on another topic are rejected.
public struct RequestApplier: StoreApplier {
    /// Decides each request and writes the batch.
    var processor: RequestProcessor
    var group: String
    var decoder = RequestDecoder()
    /// The request kinds this topic carries.
    var accepts: Set<RequestKind>
    /// Checks the purchase authorization of every charge and subscription.
    var verifier: AuthorizationVerifier?
    /// Checks who signed each request, before anything else is read from it.
    var signatures: RequestSignatureVerifier?
    /// Now, in seconds since 1970.
    var now: @Sendable () -> Int64 = { Int64(Date().timeIntervalSince1970) }

    var store: BillingStore { processor.store }
    var topics: Topics { processor.topics }

    /// An applier of the requests in `accepts` for the consumer group `group`;
    /// each request must be signed by its sender with a key `signatures`
    /// accepts, and charges and subscriptions must carry an authorization
    /// `verifier` accepts.
    public init(
        processor: RequestProcessor, group: String, accepts: Set<RequestKind>,
        signatures: RequestSignatureVerifier?, verifier: AuthorizationVerifier? = nil
    ) {
        self.processor = processor
        self.group = group
        self.accepts = accepts
        self.signatures = signatures
        self.verifier = verifier
    }

    /// What a message is, decided once, before any database work.
    public enum Prepared: Sendable {
        /// A request for the rules, with its verified authorization (charges and subscriptions).
        case request(BillingRequest, UsedAuthorization?)
        /// A request refused without the rules: its result goes back to the sender.
        case refused(RefusedRequest)
        /// Not a request at all: to the dead letters, for this reason; kept for the merchant's site too when a
        /// merchant's key signed it.
        case deadLetter(String, signedBy: MerchantID?)
        /// Not signed by its sender: to the dead letters, for this reason; kept for the merchant's site too when
        /// it carries a valid signature of a merchant (a request signed for another sender).
        case unsigned(SignatureFailure, signedBy: MerchantID?)
    }

    /// Batches of several partitions share a transaction.
    public var appliesTogether: Bool { true }

    /// Checks who signed the message, decodes it, checks that its signer is
    /// its sender, and checks its purchase authorization: its signature and
    /// what it is for. The authorization's expiry is judged when the request
    /// is applied (a repeat of a request gets the first answer, however old
    /// its authorization).
    public func prepare(_ message: KafkaConsumerMessage) -> Prepared {
        var signer: KeyOwner?
        if let signatures {
            switch signatures.signer(of: message) {
            case .success(let owner): signer = owner
            case .failure(let failure): return .unsigned(failure, signedBy: nil)
            }
        }
        let merchantSigner: MerchantID? =
            if case .merchant(let id) = signer { MerchantID(rawValue: id) } else { nil }
        let (decoded, token) = decoder.decodeWithAuthorization(value: message.value, key: message.key)
        if let signer, let failure = Self.mismatch(of: signer, decoded) {
            return .unsigned(failure, signedBy: merchantSigner)
        }
        switch decoded {
        case .request(let request) where accepts.contains(request.kind):
            switch authorize(request, token: token) {
            case .authorized(let authorization):
                return .request(request, authorization)
            case .refused(let reason):
                return .refused(Self.refusal(of: request, reason))
            }
        case .request(let request):
            return .refused(Self.refusal(of: request, .invalidRequest))
        case .refused(var refused):
            // On the wrong topic, that is what is wrong with it first.
            if let kind = RequestKind(rawValue: refused.requestType), !accepts.contains(kind) {
                refused.reason = .invalidRequest
            }
            return .refused(refused)
        case .deadLetter(let reason):
            return .deadLetter(reason, signedBy: merchantSigner)
        }
    }

    /// Why a request signed by `signer` is not its sender's: a merchant's
    /// request needs a key of the merchant it names, a line termination one
    /// of the line system. `nil` when it is, or when the message is not a
    /// request (it is dead-lettered for that).
    private static func mismatch(of signer: KeyOwner, _ decoded: DecodedMessage) -> SignatureFailure? {
        let type: String
        let merchant: String?
        switch decoded {
        case .request(let request): (type, merchant) = (request.kind.rawValue, request.merchantID?.rawValue)
        case .refused(let refused): (type, merchant) = (refused.requestType, refused.merchantID)
        case .deadLetter: return nil
        }
        let sender: KeyOwner = type == RequestKind.lineTermination.rawValue ? .lineSystem : .merchant(merchant ?? "")
        guard signer != sender else { return nil }
        let claimed =
            sender == .lineSystem
            ? "a line termination, which only the line system signs"
            : merchant.map { "from merchant \($0.prefix(64))" } ?? "from no merchant (no merchantId)"
        return SignatureFailure(.wrongSigner, "signed with a key of \(signer); the request is \(claimed)")
    }

    /// Every message of every batch, in one transaction.
    public func apply(_ batches: [PreparedBatch<Prepared>]) async throws -> [Int] {
        let batches = try await withNewKeys(batches)
        var partitionBatches: [PartitionBatch] = []
        var tallies: [BatchTally] = []
        partitionBatches.reserveCapacity(batches.count)
        for batch in batches {
            let (partitionBatch, tally) = storeBatch(batch)
            partitionBatches.append(partitionBatch)
            tallies.append(tally)
        }
        let outcomes = try await processor.apply(partitionBatches, now: now())
        for (index, tally) in tallies.enumerated() {
            record(tally, outcomes[index], topic: partitionBatches[index].cursor.topic)
        }
        return batches.map(\.messages.count)
    }

    /// The batches with every message that named a key unknown when it was
    /// prepared made again, after the keys are read again: a key created
    /// before its first message is read counts at once, whatever the
    /// refresh interval. (A flood of made-up key ids costs one small read of
    /// the keys per batch.)
    private func withNewKeys(_ batches: [PreparedBatch<Prepared>]) async throws -> [PreparedBatch<Prepared>] {
        func unknownKey(_ prepared: Prepared) -> Bool {
            if case .unsigned(let failure, _) = prepared { return failure.keyUnknown }
            return false
        }
        guard let signatures, batches.contains(where: { $0.messages.contains { unknownKey($0.1) } }) else {
            return batches
        }
        try await signatures.ring.refresh()
        return batches.map { batch in
            var batch = batch
            batch.messages = batch.messages.map { message, prepared in
                (message, unknownKey(prepared) ? prepare(message) : prepared)
            }
            return batch
        }
    }

    /// The requests for the rules, and the answers decided without them.
    private func storeBatch(_ batch: PreparedBatch<Prepared>) -> (PartitionBatch, BatchTally) {
        let cursor = cursor(batch.partition)
        var requests: [SourcedRequest] = []
        var refusals: [SourcedRefusal] = []
        var extra: [OutboxMessage] = []
        var kept: [MerchantDeadLetter] = []
        var tally = BatchTally()
        func keep(_ message: KafkaConsumerMessage, _ reason: String, for merchant: MerchantID?) {
            guard let merchant else { return }
            let key = message.key.flatMap { bytes in
                bytes.contains(0) ? nil : String(validating: bytes, as: UTF8.self)
            }
            kept.append(
                MerchantDeadLetter(
                    merchantID: merchant, sourceTopic: message.topicPartition.topic,
                    sourcePartition: message.topicPartition.partition.rawValue, sourceOffset: message.offset.rawValue,
                    reason: DeadLetters.printable(reason), key: key.map { String($0.prefix(256)) },
                    value: message.value))
        }
        requests.reserveCapacity(batch.messages.count)
        for (message, prepared) in batch.messages {
            switch prepared {
            case .request(let request, let authorization):
                requests.append(SourcedRequest(request, offset: message.offset.rawValue, authorization: authorization))
            case .refused(let refused):
                refusals.append(SourcedRefusal(refused, offset: message.offset.rawValue))
                tally.rejected += 1
            case .deadLetter(let reason, let merchant):
                extra.append(DeadLetters.message(for: message, reason: reason, topic: topics.deadLetters))
                keep(message, reason, for: merchant)
                tally.deadLettered += 1
            case .unsigned(let failure, let merchant):
                extra.append(DeadLetters.message(for: message, reason: failure.reason, topic: topics.deadLetters))
                keep(message, failure.reason, for: merchant)
                tally.deadLettered += 1
                tally.signatureRefusals[failure.refusal, default: 0] += 1
            }
        }
        let partitionBatch = PartitionBatch(
            requests, refusals: refusals, extraMessages: extra, merchantDeadLetters: kept, from: cursor,
            expectedOffset: batch.expectedOffset?.rawValue,
            nextOffset: batch.nextOffset.rawValue)
        return (partitionBatch, tally)
    }

    /// The refusal of a decoded request, for `reason`.
    private static func refusal(of request: BillingRequest, _ reason: RejectionReason) -> RefusedRequest {
        RefusedRequest(
            merchantID: request.merchantID?.rawValue, requestType: request.kind.rawValue, requestID: request.reference,
            lineID: request.lineID.rawValue, reason: reason)
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
            kind: request.kind.rawValue, amount: amount, reference: request.reference, now: nil)
        switch verified {
        case .success(let claims):
            return .authorized(UsedAuthorization(tokenID: claims.tokenID, expiresAt: claims.expiresAt))
        case .failure(.invalid): return .refused(.authorizationInvalid)
        case .failure(.expired): return .refused(.authorizationExpired)
        case .failure(.mismatch): return .refused(.authorizationMismatch)
        }
    }
}
