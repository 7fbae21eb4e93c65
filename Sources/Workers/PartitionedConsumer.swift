import Foundation
import Kafka
import Logging
import Metrics
import PostgresNIO
import ServiceLifecycle
import Store

/// How a worker applies the messages of one partition to the store.
protocol BatchApplier: Sendable {
    /// Applies `messages` (one partition, in offset order) in one transaction
    /// that also moves the partition's stored offset from `expectedOffset` to
    /// one past the last message applied.
    ///
    /// - Returns: how many messages, from the first, were applied. Fewer than
    ///   all means the next one has to wait; it is offered again a little later.
    func apply(
        _ messages: ArraySlice<KafkaConsumerMessage>, cursor: PartitionCursor, expectedOffset: Int64?
    ) async throws -> Int

    /// Whether ``applyTogether(_:)`` can take several partitions' batches;
    /// when not, every batch runs alone.
    var appliesTogether: Bool { get }

    /// Applies several partitions' batches in one transaction, each moving its
    /// own stored offset by compare-and-set: all of them or none (any error
    /// rolls back every batch). Called only when ``appliesTogether``.
    ///
    /// - Returns: how many messages of each batch were applied.
    func applyTogether(_ jobs: [PartitionMessages]) async throws -> [Int]
}

extension BatchApplier {
    var appliesTogether: Bool { false }

    func applyTogether(_ jobs: [PartitionMessages]) async throws -> [Int] {
        preconditionFailure("\(Self.self) applies one partition at a time")
    }
}

/// One partition's messages for ``BatchApplier/applyTogether(_:)``.
struct PartitionMessages: Sendable {
    var messages: ArraySlice<KafkaConsumerMessage>
    var cursor: PartitionCursor
    var expectedOffset: Int64?
}

/// A consumer-group member that applies each partition's messages in batches,
/// exactly once, with the offsets kept in PostgreSQL.
///
/// - On assignment each partition starts at the offset stored in the database
///   (the beginning when none is stored), never at Kafka's committed offset.
/// - Each batch is one transaction: state, outbox and the offset's
///   compare-and-set. A batch whose compare-and-set fails (another worker moved
///   the offset) is dropped and the partition re-reads the stored offset.
/// - A failed transaction is retried with backoff after re-reading the stored
///   offset (its commit may have succeeded before the connection broke). The
///   loop keeps polling meanwhile, so the group membership stays healthy;
///   partitions with a large backlog are paused.
/// - A batch the database refuses because of its content (a data error) is
///   retried in halves until the message it refuses is alone; that one is
///   dead-lettered: no message can stop its partition.
/// - Offsets go to Kafka about once a second afterwards, for lag tools only.
/// - On graceful shutdown the batch in progress finishes, offsets are
///   committed and the consumer leaves the group.
struct PartitionedConsumer: Sendable {
    var topic: String
    var batchSize: Int
    var configuration: KafkaConsumerConfiguration
    var applier: any BatchApplier
    var store: BillingStore
    var readiness: Readiness
    var logger: Logger

    /// Delay before retrying a partition whose next message has to wait.
    var waitRetry: Duration = .milliseconds(500)

    private var group: String { configuration.groupID }

    func run() async throws {
        let consumer = try KafkaConsumer(configuration: configuration, logger: logger)
        try consumer.subscribe([topic])
        readiness.set("kafka", passing: false, "joining consumer group \(group)")
        var partitions: [Int32: PartitionState] = [:]
        let clock = ContinuousClock()
        var lastCommit = clock.now
        var lastLag = clock.now
        do {
            while !Task.isShuttingDownGracefully, !Task.isCancelled {
                let busy = partitions.values.contains { !$0.backlog.isEmpty }
                let events = try await consumer.poll(timeout: busy ? .milliseconds(10) : .milliseconds(100))
                for event in events {
                    switch event {
                    case .partitionsAssigned(let assigned):
                        try await start(assigned, on: consumer, into: &partitions)
                    case .partitionsRevoked(let revoked, let lost):
                        for topicPartition in revoked {
                            partitions[topicPartition.partition] = nil
                            WorkerMetrics.lag(topic: topic, partition: topicPartition.partition).record(0)
                        }
                        readiness.set("kafka", passing: false, "rebalancing")
                        logger.info(
                            "Partitions revoked",
                            metadata: ["partitions": "\(revoked.map(\.partition))", "lost": "\(lost)"])
                    case .messages(let messages):
                        for message in messages { partitions[message.topicPartition.partition]?.receive(message) }
                    case .error(let error):
                        if error.isFatal { throw error }
                        logger.warning("Kafka consumer error", metadata: ["kafka.error": "\(error)"])
                    }
                }
                await rereadGaps(consumer, &partitions)
                await applyDue(&partitions)
                try await controlFlow(consumer, &partitions)
                if clock.now - lastCommit > .seconds(1) {
                    await commit(consumer, &partitions)
                    lastCommit = clock.now
                }
                if clock.now - lastLag > .seconds(5) {
                    recordLag(consumer, partitions)
                    lastLag = clock.now
                }
            }
        } catch is CancellationError {
            // Shutdown while waiting for the database: leave the group below.
        }
        await commit(consumer, &partitions)
        await consumer.close()
        readiness.set("kafka", passing: false, "left the group")
        logger.info("Consumer stopped", metadata: ["topic": "\(topic)"])
    }

    private func cursor(_ partition: Int32) -> PartitionCursor {
        PartitionCursor(consumerGroup: group, topic: topic, partition: partition)
    }

    /// Starts each assigned partition at the offset stored in the database.
    private func start(
        _ assigned: [KafkaTopicPartition], on consumer: KafkaConsumer, into partitions: inout [Int32: PartitionState]
    ) async throws {
        var offsets: [KafkaTopicPartition: KafkaStartOffset] = [:]
        for topicPartition in assigned {
            let stored = try await retryingStore("read the stored offset", readiness: readiness, logger: logger) {
                try await store.storedOffset(cursor(topicPartition.partition))
            }
            partitions[topicPartition.partition] = PartitionState(starting: stored)
            offsets[topicPartition] = stored.map { .offset($0) } ?? .beginning
        }
        try await consumer.startPartitions(offsets)
        readiness.set("kafka", passing: true, "\(partitions.count) partitions of \(topic) assigned")
        logger.info(
            "Partitions assigned",
            metadata: [
                "topic": "\(topic)",
                "offsets": "\(offsets.sorted { $0.key < $1.key }.map { "\($0.key.partition)@\($0.value)" })",
            ])
    }

    /// Reads again, from the offset expected, every partition whose messages
    /// skipped offsets. These topics have no compacted or transactional
    /// records, so a skip means messages were not handed over; reading again
    /// either delivers them or shows the gap is in the log itself.
    private func rereadGaps(_ consumer: KafkaConsumer, _ partitions: inout [Int32: PartitionState]) async {
        for (partition, state) in partitions {
            if let missing = state.missingInLog {
                logger.error(
                    "Offsets absent from the log (expired by retention before they were applied, or never written)",
                    metadata: [
                        "partition": "\(partition)", "from": "\(missing.lowerBound)", "to": "\(missing.upperBound - 1)",
                    ])
                partitions[partition]?.missingInLog = nil
            }
            guard let gap = state.gap else { continue }
            let topicPartition = KafkaTopicPartition(topic: topic, partition: partition)
            logger.warning(
                "Offsets skipped by the consumer; reading the partition again from the one expected",
                metadata: ["partition": "\(partition)", "expected": "\(gap.expected)", "received": "\(gap.received)"])
            WorkerMetrics.offsetGaps(topic: topic).increment()
            do {
                try await consumer.seek([topicPartition: gap.expected])
                partitions[partition]?.reread()
            } catch {
                // Its later messages stay ignored; the next loop tries again.
                logger.error(
                    "Could not read the partition again; retrying",
                    metadata: ["partition": "\(partition)", "kafka.error": "\(error)"])
            }
        }
    }

    /// Applies one batch of every partition that has messages and is not
    /// waiting, the partitions concurrently.
    private func applyDue(_ partitions: inout [Int32: PartitionState]) async {
        let now = ContinuousClock.now
        let jobs = partitions.compactMap { partition, state -> BatchJob? in
            guard !state.backlog.isEmpty, state.retryAt.map({ $0 <= now }) ?? true else { return nil }
            let isolating = state.isolation.map { state.backlog[0].offset <= $0.through } == true
            let size = isolating ? state.isolation!.size : batchSize
            return BatchJob(
                cursor: cursor(partition), next: state.next, resync: state.needsResync,
                runsAlone: !applier.appliesTogether || state.needsResync || isolating || state.solo,
                messages: state.backlog.prefix(size))
        }
        guard !jobs.isEmpty else { return }
        let results = await withTaskGroup(of: [BatchResult].self) { group in
            for work in combine(jobs) {
                if work.count == 1 {
                    group.addTask { [await run(work[0])] }
                } else {
                    group.addTask { await runTogether(work) }
                }
            }
            return await group.reduce(into: []) { $0 += $1 }
        }
        for result in results {
            partitions[result.partition]?.absorb(result, waitRetry: waitRetry, logger: logger)
            if case .failed = result.kind { readiness.set("database", passing: false, "the last batch failed") }
        }
        if results.contains(where: { if case .applied = $0.kind { true } else { false } }) {
            readiness.set("database", passing: true, "connected")
        }
    }

    /// Groups small batches of different partitions into one transaction each,
    /// up to `batchSize` messages in all: under light load a round is a few
    /// transactions instead of one per partition. A batch that re-reads its
    /// offset, isolates a refused message or follows a failed group runs alone,
    /// as does every batch of an applier that applies one partition at a time.
    private func combine(_ jobs: [BatchJob]) -> [[BatchJob]] {
        var work: [[BatchJob]] = []
        var group: [BatchJob] = []
        var size = 0
        for job in jobs.sorted(by: { $0.cursor.partition < $1.cursor.partition }) {
            if job.runsAlone {
                work.append([job])
                continue
            }
            if size + job.messages.count > batchSize, !group.isEmpty {
                work.append(group)
                group = []
                size = 0
            }
            group.append(job)
            size += job.messages.count
        }
        if !group.isEmpty { work.append(group) }
        return work
    }

    /// Several partitions' batches in one transaction: all applied or none. A
    /// stale offset or refused content anywhere sends each batch back to run
    /// alone, where the usual rules find which partition it was.
    private func runTogether(_ jobs: [BatchJob]) async -> [BatchResult] {
        do {
            let started = ContinuousClock.now
            let together = jobs.map {
                PartitionMessages(messages: $0.messages, cursor: $0.cursor, expectedOffset: $0.next)
            }
            let counts = try await applier.applyTogether(together)
            recordBatchDuration(since: started)
            return zip(jobs, counts).map { job, count in
                BatchResult(
                    job, next: offset(after: count, of: job.messages, from: job.next), kind: .applied(count: count))
            }
        } catch let error as StoreError where error.code == .staleOffset {
            return jobs.map { BatchResult($0, next: $0.next, kind: .stale) }
        } catch  where isDataError(error) {
            return jobs.map { BatchResult($0, next: $0.next, kind: .alone) }
        } catch {
            return jobs.map { BatchResult($0, next: $0.next, kind: .failed(error)) }
        }
    }

    /// One batch, with the resynchronisation and isolation rules.
    private func run(_ job: BatchJob) async -> BatchResult {
        var next = job.next
        var messages = job.messages
        do {
            if job.resync {
                next = try await store.storedOffset(job.cursor)
                if let next { messages = messages.drop { $0.offset < next } }
                // All of them were applied before (the last commit's answer was lost).
                guard !messages.isEmpty else {
                    return BatchResult(job, next: next, kind: .applied(count: job.messages.count))
                }
            }
            let started = ContinuousClock.now
            let count = try await applier.apply(messages, cursor: job.cursor, expectedOffset: next)
            recordBatchDuration(since: started)
            return BatchResult(job, next: offset(after: count, of: messages, from: next), kind: .applied(count: count))
        } catch let error as StoreError where error.code == .staleOffset {
            return BatchResult(job, next: next, kind: .stale)
        } catch  where isDataError(error) {
            guard messages.count == 1, let message = messages.first else {
                // Halve the batch until the refused message is alone.
                return BatchResult(
                    job, next: next, kind: .isolate(through: messages.last!.offset, size: messages.count / 2))
            }
            let reason = "the database refused the message: \(String(reflecting: error).prefix(300))"
            logger.error(
                "Message refused by the database; dead-lettering it",
                metadata: ["partition": "\(message.topicPartition.partition)", "offset": "\(message.offset)"])
            do {
                // Past it with nothing but its dead letter: the partition goes on.
                try await store.apply(
                    [],
                    extraMessages: [DeadLetters.message(for: message, reason: reason, topic: store.topics.deadLetters)],
                    from: job.cursor, expectedOffset: next, nextOffset: message.offset + 1)
                WorkerMetrics.messages(topic: topic, outcome: "dead_lettered").increment()
                return BatchResult(job, next: message.offset + 1, kind: .applied(count: 1))
            } catch {
                return BatchResult(job, next: next, kind: .failed(error))
            }
        } catch {
            return BatchResult(job, next: next, kind: .failed(error))
        }
    }

    private func recordBatchDuration(since started: ContinuousClock.Instant) {
        let elapsed = ContinuousClock.now - started
        WorkerMetrics.batchDuration(topic: topic).recordNanoseconds(
            elapsed.components.seconds * 1_000_000_000 + elapsed.components.attoseconds / 1_000_000_000)
    }

    /// The stored offset after the first `count` of `messages` were applied from `next`.
    private func offset(after count: Int, of messages: ArraySlice<KafkaConsumerMessage>, from next: Int64?) -> Int64? {
        count > 0 ? messages[messages.startIndex + count - 1].offset + 1 : next
    }

    /// Pauses partitions whose backlog has grown, resumes them once it drains.
    private func controlFlow(_ consumer: KafkaConsumer, _ partitions: inout [Int32: PartitionState]) async throws {
        var pause: [KafkaTopicPartition] = []
        var resume: [KafkaTopicPartition] = []
        for (partition, state) in partitions {
            if !state.paused, state.backlog.count >= 4 * batchSize {
                pause.append(KafkaTopicPartition(topic: topic, partition: partition))
                partitions[partition]?.paused = true
            } else if state.paused, state.backlog.count < batchSize {
                resume.append(KafkaTopicPartition(topic: topic, partition: partition))
                partitions[partition]?.paused = false
            }
        }
        if !pause.isEmpty { try await consumer.pause(pause) }
        if !resume.isEmpty { try await consumer.resume(resume) }
    }

    /// Tells Kafka the stored offsets, for lag tools; the database stays the truth.
    private func commit(_ consumer: KafkaConsumer, _ partitions: inout [Int32: PartitionState]) async {
        var offsets: [KafkaTopicPartition: Int64] = [:]
        for (partition, state) in partitions {
            if let next = state.next, next != state.committed {
                offsets[KafkaTopicPartition(topic: topic, partition: partition)] = next
            }
        }
        guard !offsets.isEmpty else { return }
        do {
            try await consumer.commit(offsets)
            for (topicPartition, offset) in offsets { partitions[topicPartition.partition]?.committed = offset }
        } catch {
            logger.debug(
                "Offset commit to Kafka failed; the next one repeats it", metadata: ["kafka.error": "\(error)"])
        }
    }

    /// Lag per partition: from the stored offset (what is applied) to the end.
    private func recordLag(_ consumer: KafkaConsumer, _ partitions: [Int32: PartitionState]) {
        for lag in consumer.lag() {
            let applied = partitions[lag.topicPartition.partition]?.next ?? lag.position ?? lag.highWatermark
            WorkerMetrics.lag(topic: topic, partition: lag.topicPartition.partition).record(
                max(0, lag.highWatermark - applied))
        }
    }
}

/// One partition's state inside the loop.
struct PartitionState {
    /// The stored offset: the next message to apply (`nil`: none stored yet).
    var next: Int64?
    /// Messages read and not yet applied, in offset order without gaps.
    var backlog: [KafkaConsumerMessage] = []
    /// The offset the partition's next message should have: one past the
    /// last one read, or the stored offset if that is further (`nil` before
    /// the first message, when starting at the beginning).
    var frontier: Int64?
    /// Offsets were skipped: later messages are ignored until the partition
    /// is read again from `expected`.
    var gap: (expected: Int64, received: Int64)?
    /// The next message is the first of a fresh read: wherever it lands, that
    /// is where the log continues.
    var fresh = true
    /// Offsets the log itself does not hold, found by a fresh read (for the log).
    var missingInLog: Range<Int64>?
    var retryAt: ContinuousClock.Instant?
    var failures = 0
    /// Re-read the stored offset before the next batch.
    var needsResync = false
    /// Smaller batches up to this offset, to find a message the database refuses.
    var isolation: (through: Int64, size: Int)?
    var committed: Int64?
    var paused = false
    /// Its last batch was rolled back with other partitions': the next runs alone.
    var solo = false

    /// A partition that starts reading at the stored offset `next`.
    init(starting next: Int64?) {
        self.next = next
        frontier = next
    }

    /// Keeps a message read from the partition, once, in offset order and
    /// without gaps: a message past the offset expected starts a ``gap``
    /// unless it is the first of a fresh read.
    mutating func receive(_ message: KafkaConsumerMessage) {
        guard gap == nil else { return }
        if let expected = frontier {
            // Read or applied already.
            if message.offset < expected { return }
            if message.offset > expected {
                guard fresh else {
                    gap = (expected, message.offset)
                    return
                }
                missingInLog = expected..<message.offset
            }
        }
        fresh = false
        backlog.append(message)
        frontier = message.offset + 1
    }

    /// The partition is read again from the offset expected.
    mutating func reread() {
        gap = nil
        fresh = true
    }

    mutating func absorb(_ result: BatchResult, waitRetry: Duration, logger: Logger) {
        switch result.kind {
        case .applied(let count):
            next = result.next
            if let next, next > frontier ?? next { frontier = next }
            dropApplied()
            failures = 0
            needsResync = false
            solo = false
            // Fewer applied than offered: the next message waits.
            retryAt = count < result.offered ? .now + waitRetry : nil
            if let isolation, let next, next > isolation.through { self.isolation = nil }
        case .stale:
            needsResync = true
            retryAt = nil
            logger.warning(
                "Another worker moved the stored offset; re-reading it",
                metadata: ["partition": "\(result.partition)"])
        case .alone:
            solo = true
            retryAt = nil
        case .isolate(let through, let size):
            isolation = (max(through, isolation?.through ?? through), max(1, size))
            needsResync = true
            logger.warning(
                "The database refused a batch's content; retrying it in smaller batches",
                metadata: ["partition": "\(result.partition)", "through": "\(through)", "batch": "\(max(1, size))"])
        case .failed(let error):
            failures += 1
            needsResync = true
            let backoff = retryDelay(attempt: failures)
            retryAt = .now + backoff
            WorkerMetrics.storeErrors(operation: "apply").increment()
            logger.error(
                "Batch failed; retrying",
                metadata: [
                    "partition": "\(result.partition)", "attempt": "\(failures)",
                    "retry.ms":
                        "\(backoff.components.seconds * 1000 + backoff.components.attoseconds / 1_000_000_000_000_000)",
                    "error": "\(String(reflecting: error).prefix(500))",
                ])
        }
    }

    private mutating func dropApplied() {
        guard let next else { return }
        let applied = backlog.prefix { $0.offset < next }.count
        backlog.removeFirst(applied)
    }
}

struct BatchJob: Sendable {
    var cursor: PartitionCursor
    var next: Int64?
    var resync: Bool
    /// Not to share a transaction with other partitions' batches.
    var runsAlone: Bool
    var messages: ArraySlice<KafkaConsumerMessage>
}

struct BatchResult: Sendable {
    enum Kind: Sendable {
        case applied(count: Int)
        case stale
        case isolate(through: Int64, size: Int)
        /// Rolled back with other partitions' batches: run it alone next.
        case alone
        case failed(any Error)
    }

    var partition: Int32
    var offered: Int
    var next: Int64?
    var kind: Kind

    init(_ job: BatchJob, next: Int64?, kind: Kind) {
        partition = job.cursor.partition
        offered = job.messages.count
        self.next = next
        self.kind = kind
    }
}

/// Whether PostgreSQL refused a statement because of the data in it (SQLSTATE
/// classes 22, data exception, and 23, integrity violation), as opposed to a
/// connection or server problem that a retry can cure.
func isDataError(_ error: any Error) -> Bool {
    var underlying = error
    if let transaction = error as? PostgresTransactionError, let inner = transaction.closureError {
        underlying = inner
    }
    guard let state = (underlying as? PSQLError)?.serverInfo?[.sqlState] else { return false }
    return state.hasPrefix("22") || state.hasPrefix("23")
}

/// How long to wait before retrying after `attempt` failures in a row: 200 ms, doubling, at most 5 s.
func retryDelay(attempt: Int) -> Duration {
    .milliseconds(min(5000, 100 << min(attempt, 6)))
}

/// Runs a store operation until it succeeds, backing off while the database is
/// unreachable; throws `CancellationError` if the process is shutting down.
func retryingStore<T: Sendable>(
    _ what: String, readiness: Readiness, logger: Logger, _ operation: () async throws -> T
) async throws -> T {
    var attempt = 0
    while true {
        do {
            let value = try await operation()
            if attempt > 0 { readiness.set("database", passing: true, "connected") }
            return value
        } catch {
            attempt += 1
            readiness.set("database", passing: false, "cannot \(what)")
            WorkerMetrics.storeErrors(operation: what).increment()
            logger.error(
                "Database operation failed; retrying",
                metadata: [
                    "operation": "\(what)", "attempt": "\(attempt)",
                    "error": "\(String(reflecting: error).prefix(500))",
                ])
            try await Task.sleep(for: retryDelay(attempt: attempt))
            if Task.isShuttingDownGracefully { throw CancellationError() }
        }
    }
}
