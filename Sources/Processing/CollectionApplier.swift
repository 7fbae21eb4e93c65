import Billing
import Consuming
import Contract
import Kafka
import Store

/// Applies the reports of `matomete.collections` (payments, reversals,
/// write-offs of line bills): each exactly once, in one transaction per round
/// that also writes its result to `matomete.collection-results` through the
/// outbox and moves the partitions' stored offsets.
///
/// The topic is written by the carrier's billing system alone (an ACL, as
/// `billing-cycles` is the operators'), so reports are not signed.
public struct CollectionApplier: StoreApplier {
    var store: BillingStore
    var group: String
    var topics: Topics
    var decoder = CollectionReportDecoder()

    /// An applier of the reports read by `group`.
    public init(store: BillingStore, group: String, topics: Topics) {
        self.store = store
        self.group = group
        self.topics = topics
    }

    /// Batches of several partitions share a transaction.
    public var appliesTogether: Bool { true }

    /// Decodes the report; its date limit is the Japan day of its Kafka timestamp.
    public func prepare(_ message: KafkaConsumerMessage) -> DecodedCollectionReport {
        // A timestamp outside the years a cycle can be gives no day, and so no limit.
        let sentOn = message.timestampMilliseconds.flatMap(CalendarDay.containing(milliseconds:))
        return decoder.decode(value: message.value, key: message.key, sentOn: sentOn)
    }

    /// Every message of every batch, in one transaction.
    public func apply(_ batches: [PreparedBatch<DecodedCollectionReport>]) async throws -> [Int] {
        var moves: [OffsetMove] = []
        var reports: [CollectionReport] = []
        for batch in batches {
            moves.append(
                OffsetMove(
                    cursor(batch.partition), from: batch.expectedOffset?.rawValue, to: batch.nextOffset.rawValue))
            for case (_, .report(let report)) in batch.messages { reports.append(report) }
        }
        let topics = topics
        let tallies = try await store.applyCollections(moving: moves, reports: reports) { state in
            var tallies: [BatchTally] = []
            for batch in batches {
                var tally = BatchTally()
                for (message, decoded) in batch.messages {
                    let id = CollectionResultMessage.id(
                        topic: message.topicPartition.topic, partition: message.topicPartition.partition.rawValue,
                        offset: message.offset.rawValue)
                    let result: CollectionResultMessage
                    switch decoded {
                    case .deadLetter(let reason):
                        state.outbox.append(
                            DeadLetters.message(for: message, reason: reason, topic: topics.deadLetters))
                        tally.deadLettered += 1
                        continue
                    case .refused(let refused):
                        result = CollectionResultMessage(id: id, refused: refused)
                        tally.rejected += 1
                    case .report(let report):
                        let outcome =
                            state.lines[report.lineID]?.apply(report, firstOpenPeriod: state.firstOpenPeriod)
                            ?? CollectionOutcome(rejection: .unknownBill, isRepeat: false, cycle: report.cycle)
                        result = CollectionResultMessage(id: id, report: report, outcome: outcome)
                        if outcome.isAccepted { tally.applied += 1 } else { tally.rejected += 1 }
                    }
                    state.outbox.append(
                        OutboxMessage(
                            topic: topics.collectionResults, key: result.lineId, id: result.id,
                            payload: result.jsonBytes))
                }
                tallies.append(tally)
            }
            return tallies
        }
        for (batch, tally) in zip(batches, tallies) { tally.record(topic: batch.partition.topic) }
        return batches.map(\.messages.count)
    }
}
