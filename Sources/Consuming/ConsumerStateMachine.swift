import Kafka

/// Every assigned partition of one consumer, and the rules that plan a
/// round of batches: pure, so every path is tested without Kafka or a
/// database. ``PartitionedConsumer`` drives it: it tells the machine what
/// Kafka and the applier did and carries out what the machine answers.
struct ConsumerStateMachine<Prepared: Sendable> {
    /// Most messages in one transaction.
    var batchSize: Int
    /// Whether several partitions' batches may share a transaction.
    var appliesTogether: Bool
    /// Delay before offering again a message that had to wait.
    var waitRetry: Duration

    private(set) var partitions: [KafkaPartition: PartitionMachine<Prepared>] = [:]
    /// Counts assignments, so a batch that outlives its partition's
    /// assignment (revoked, then assigned again) is not taken for the new one's.
    private var assignments = 0
    private var assignment: [KafkaPartition: Int] = [:]

    init(batchSize: Int, appliesTogether: Bool, waitRetry: Duration) {
        self.batchSize = batchSize
        self.appliesTogether = appliesTogether
        self.waitRetry = waitRetry
    }

    // MARK: The group

    /// The partition is this consumer's, starting at the stored offset `stored`.
    mutating func assigned(_ partition: KafkaPartition, stored: KafkaOffset?) {
        assignments += 1
        assignment[partition] = assignments
        partitions[partition] = PartitionMachine(stored: stored)
    }

    /// The partition is no longer this consumer's: what it read is dropped,
    /// and a batch of it still running counts for nothing here.
    mutating func revoked(_ partition: KafkaPartition) {
        partitions[partition] = nil
        assignment[partition] = nil
    }

    // MARK: Reading

    /// Keeps the message in its partition's backlog (see ``PartitionMachine/receive(_:)``).
    mutating func receive(_ message: KafkaConsumerMessage) -> PartitionMachine<Prepared>.Received {
        partitions[message.topicPartition.partition]?.receive(message) ?? .ignored
    }

    /// The partitions waiting at a gap, and where each must be read again from.
    var rereads: [(partition: KafkaPartition, from: KafkaOffset)] {
        partitions.compactMap { partition, machine in machine.rereadFrom.map { (partition, $0) } }
            .sorted { $0.partition < $1.partition }
    }

    /// The partition is being read again from where it was expected.
    mutating func readingAgain(_ partition: KafkaPartition) {
        partitions[partition]?.readingAgain()
    }

    /// Whether any partition has messages to apply.
    var hasBacklog: Bool { partitions.values.contains { !$0.backlog.isEmpty } }

    // MARK: Applying

    /// The batches to run now, each partition's in one ``ConsumerJob``:
    /// small batches of different partitions share a transaction, up to
    /// ``batchSize`` messages in all; a batch that re-reads its offset,
    /// isolates a refused message, dead-letters one, or follows a rolled-back
    /// group runs alone, as does every batch when the applier takes one
    /// partition at a time.
    mutating func nextRound(now: ContinuousClock.Instant) -> [ConsumerJob<Prepared>] {
        var alone: [ConsumerJob<Prepared>] = []
        var together: [ConsumerJob<Prepared>] = []
        var group: [ConsumerBatch<Prepared>] = []
        var size = 0
        for partition in partitions.keys.sorted() {
            guard var work = partitions[partition]?.nextBatch(batchSize: batchSize, now: now) else { continue }
            partitions[partition]?.started()
            work.runsAlone = work.runsAlone || !appliesTogether
            let batch = ConsumerBatch(partition: partition, assignment: assignment[partition]!, work: work)
            if work.runsAlone {
                alone.append(ConsumerJob(batches: [batch]))
                continue
            }
            if size + work.messages.count > batchSize, !group.isEmpty {
                together.append(ConsumerJob(batches: group))
                group = []
                size = 0
            }
            group.append(batch)
            size += work.messages.count
        }
        if !group.isEmpty { together.append(ConsumerJob(batches: group)) }
        return alone + together
    }

    /// Takes in how one partition's batch ended (see
    /// ``PartitionMachine/finished(_:_:prepared:now:waitRetry:)``); `nil`
    /// when the partition is no longer assigned as it was.
    mutating func finished(
        _ batch: ConsumerBatch<Prepared>, _ outcome: BatchOutcome, prepared: [Prepared]?,
        now: ContinuousClock.Instant
    ) -> PartitionMachine<Prepared>.Finished? {
        guard assignment[batch.partition] == batch.assignment else { return nil }
        return partitions[batch.partition]?.finished(
            batch.work, outcome, prepared: prepared, now: now, waitRetry: waitRetry)
    }

    // MARK: Flow and offsets

    /// Partitions to pause (their backlog is long) and to resume (it drained).
    mutating func flowControl() -> (pause: [KafkaPartition], resume: [KafkaPartition]) {
        var pause: [KafkaPartition] = []
        var resume: [KafkaPartition] = []
        for partition in partitions.keys.sorted() {
            switch partitions[partition]?.flowControl(batchSize: batchSize) {
            case true?: pause.append(partition)
            case false?: resume.append(partition)
            case nil: break
            }
        }
        return (pause, resume)
    }

    /// Stored offsets Kafka has not been told yet.
    var uncommitted: [KafkaPartition: KafkaOffset] {
        partitions.compactMapValues(\.uncommitted)
    }

    /// Kafka has been told these offsets.
    mutating func committed(_ offsets: [KafkaPartition: KafkaOffset]) {
        for (partition, offset) in offsets { partitions[partition]?.committed(offset) }
    }

    /// The stored offset of a partition, as last known.
    func stored(_ partition: KafkaPartition) -> KafkaOffset? {
        partitions[partition]?.stored
    }
}

/// One partition's batch inside a ``ConsumerJob``.
struct ConsumerBatch<Prepared: Sendable>: Sendable {
    var partition: KafkaPartition
    /// Which assignment of the partition it belongs to.
    var assignment: Int
    var work: PartitionWork<Prepared>
}

/// One transaction's worth of work: one partition's batch, or several that
/// are applied together.
struct ConsumerJob<Prepared: Sendable>: Sendable {
    var batches: [ConsumerBatch<Prepared>]
}
