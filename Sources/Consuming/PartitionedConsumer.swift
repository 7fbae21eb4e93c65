import Kafka
import Logging
import ServerKit
import ServiceLifecycle

/// A consumer-group member that applies each partition's messages in batches,
/// exactly once, with the offsets kept by the applier (in PostgreSQL).
///
/// - On assignment each partition starts at its stored offset (the beginning
///   when none is stored), never at Kafka's committed offset.
/// - Each batch is one transaction: state, outbox and the offset's
///   compare-and-set. A batch whose compare-and-set fails (another worker
///   moved the offset) is dropped and the partition re-reads the stored offset.
/// - A failed transaction is retried with backoff after re-reading the stored
///   offset (its commit may have succeeded before the connection broke). The
///   loop keeps polling meanwhile, so the group membership stays healthy;
///   partitions with a large backlog are paused.
/// - A batch whose content the database refuses is retried in halves until
///   the message it refuses is alone; that one is dead-lettered: no message
///   can stop its partition.
/// - Every message is prepared (decoded, its authorization checked) once,
///   however often its batch is retried or split.
/// - Offsets go to Kafka about once a second afterwards, for lag tools only.
/// - On graceful shutdown the batch in progress finishes, offsets are
///   committed and the consumer leaves the group.
///
/// What to do is decided by ``ConsumerStateMachine``; this loop only carries
/// it out against Kafka and the applier, and logs and counts what happened.
public struct PartitionedConsumer<Applier: PartitionApplier>: Sendable {
    var topic: String
    var configuration: KafkaConsumerConfiguration
    var applier: Applier
    var batchSize: Int
    var readiness: Readiness
    var logger: Logger
    /// Delay before offering again a message that had to wait.
    var waitRetry: Duration

    /// A consumer of `topic` in the configured group, applying batches of at
    /// most `batchSize` messages with `applier`.
    public init(
        topic: String, configuration: KafkaConsumerConfiguration, applier: Applier, batchSize: Int,
        readiness: Readiness, logger: Logger, waitRetry: Duration = .milliseconds(500)
    ) {
        self.topic = topic
        self.configuration = configuration
        self.applier = applier
        self.batchSize = batchSize
        self.readiness = readiness
        self.logger = logger
        self.waitRetry = waitRetry
    }

    private typealias Machine = ConsumerStateMachine<Applier.Prepared>

    /// Runs until the process shuts down gracefully or the task is cancelled.
    public func run() async throws {
        let consumer = try KafkaConsumer(configuration: configuration, logger: logger)
        try consumer.subscribe([topic])
        readiness.set("kafka", passing: false, "joining consumer group \(configuration.groupID)")
        var machine = Machine(batchSize: batchSize, appliesTogether: applier.appliesTogether, waitRetry: waitRetry)
        let clock = ContinuousClock()
        var lastCommit = clock.now
        var lastLag = clock.now
        do {
            while !Task.isShuttingDownGracefully, !Task.isCancelled {
                let events = try await consumer.poll(
                    timeout: machine.hasBacklog ? .milliseconds(10) : .milliseconds(100))
                for event in events {
                    switch event {
                    case .partitionsAssigned(let assigned):
                        try await start(assigned, on: consumer, in: &machine)
                    case .partitionsRevoked(let revoked, let lost):
                        for topicPartition in revoked {
                            machine.revoked(topicPartition.partition)
                            ConsumerMetrics.lag(topic: topic, partition: topicPartition.partition).record(0)
                        }
                        readiness.set("kafka", passing: false, "rebalancing")
                        logger.info(
                            "Partitions revoked",
                            metadata: ["partitions": "\(revoked.map(\.partition))", "lost": "\(lost)"])
                    case .messages(let messages):
                        for message in messages { note(machine.receive(message), message.topicPartition) }
                    case .error(let error):
                        if error.isFatal { throw error }
                        logger.warning("Kafka consumer error", metadata: ["kafka.error": "\(error)"])
                    }
                }
                await reread(consumer, &machine)
                await applyRound(&machine)
                try await controlFlow(consumer, &machine)
                if clock.now - lastCommit > .seconds(1) {
                    await commit(consumer, &machine)
                    lastCommit = clock.now
                }
                if clock.now - lastLag > .seconds(5) {
                    recordLag(consumer, machine)
                    lastLag = clock.now
                }
            }
        } catch is CancellationError {
            // Shutdown while waiting for the database: leave the group below.
        }
        await commit(consumer, &machine)
        await consumer.close()
        readiness.set("kafka", passing: false, "left the group")
        logger.info("Consumer stopped", metadata: ["topic": "\(topic)"])
    }

    /// Starts each assigned partition at its stored offset.
    private func start(
        _ assigned: [KafkaTopicPartition], on consumer: KafkaConsumer, in machine: inout Machine
    ) async throws {
        var offsets: [KafkaTopicPartition: KafkaStartOffset] = [:]
        for topicPartition in assigned {
            let stored = try await Retrying.database("read the stored offset", readiness: readiness, logger: logger) {
                try await applier.storedOffset(of: topicPartition)
            }
            machine.assigned(topicPartition.partition, stored: stored)
            offsets[topicPartition] = stored.map { .offset($0) } ?? .beginning
        }
        try await consumer.startPartitions(offsets)
        readiness.set("kafka", passing: true, "\(machine.partitions.count) partitions of \(topic) assigned")
        logger.info(
            "Partitions assigned",
            metadata: [
                "topic": "\(topic)",
                "offsets": "\(offsets.sorted { $0.key < $1.key }.map { "\($0.key.partition)@\($0.value)" })",
            ])
    }

    /// Logs what receiving a message showed.
    private func note(_ received: PartitionMachine<Applier.Prepared>.Received, _ partition: KafkaTopicPartition) {
        switch received {
        case .kept, .ignored:
            break
        case .gap(let expected, let received):
            logger.warning(
                "Offsets skipped by the consumer; reading the partition again from the one expected",
                metadata: ["partition": "\(partition.partition)", "expected": "\(expected)", "received": "\(received)"])
            ConsumerMetrics.offsetGaps(topic: topic).increment()
        case .missingInLog(let missing):
            logger.error(
                "Offsets absent from the log (expired by retention before they were applied, or never written)",
                metadata: [
                    "partition": "\(partition.partition)", "from": "\(missing.lowerBound)",
                    "to": "\(missing.upperBound - 1)",
                ])
        }
    }

    /// Reads again, from the offset expected, every partition whose messages
    /// skipped offsets. These topics have no compacted or transactional
    /// records, so a skip means messages were not handed over; reading again
    /// either delivers them or shows the gap is in the log itself.
    private func reread(_ consumer: KafkaConsumer, _ machine: inout Machine) async {
        for (partition, offset) in machine.rereads {
            do {
                try await consumer.seek([KafkaTopicPartition(topic: topic, partition: partition): offset])
                machine.readingAgain(partition)
            } catch {
                // Its later messages stay ignored; the next round tries again.
                logger.error(
                    "Could not read the partition again; retrying",
                    metadata: ["partition": "\(partition)", "kafka.error": "\(error)"])
            }
        }
    }

    /// Runs the round's batches concurrently and tells the machine how each ended.
    private func applyRound(_ machine: inout Machine) async {
        let jobs = machine.nextRound(now: .now)
        guard !jobs.isEmpty else { return }
        let reports = await withTaskGroup(of: [BatchReport].self) { group in
            for job in jobs { group.addTask { await run(job) } }
            return await group.reduce(into: []) { $0 += $1 }
        }
        var applied = false
        for report in reports {
            guard let finished = machine.finished(report.batch, report.outcome, prepared: report.prepared, now: .now)
            else { continue }
            note(finished, report)
            if case .applied = report.outcome { applied = true }
        }
        if applied { readiness.set("database", passing: true, "connected") }
    }

    /// How one partition's batch ended, with what its messages were prepared into.
    private struct BatchReport: Sendable {
        var batch: ConsumerBatch<Applier.Prepared>
        var outcome: BatchOutcome
        var prepared: [Applier.Prepared]?
        /// The error behind a failure, for the log.
        var error: (any Error)?
    }

    /// One job: one partition's batch alone, or several in one transaction.
    private func run(_ job: ConsumerJob<Applier.Prepared>) async -> [BatchReport] {
        let prepared = job.batches.map { prepare($0.work.messages) }
        guard job.batches.count > 1 else {
            return [await runAlone(job.batches[0], prepared: prepared[0])]
        }
        let batches = zip(job.batches, prepared).map { batch, prepared in
            PreparedBatch(
                partition: KafkaTopicPartition(topic: topic, partition: batch.partition),
                messages: zip(batch.work.messages, prepared).map { ($0.message, $1) },
                expectedOffset: batch.work.expectedOffset)
        }
        do {
            let started = ContinuousClock.now
            let counts = try await applier.apply(batches)
            ConsumerMetrics.batchDuration(topic: topic).record(duration: .now - started)
            return zip(job.batches, zip(batches, counts)).enumerated().map { index, element in
                let (batch, (applied, count)) = element
                return BatchReport(
                    batch: batch, outcome: outcome(appliedCount: count, of: applied), prepared: prepared[index])
            }
        } catch {
            let outcome: BatchOutcome =
                switch applier.failure(of: error) {
                case .staleOffset, .refusedContent, .raced, .unexpected: .rolledBackTogether
                case .transient: .failed(.transient)
                }
            return zip(job.batches, prepared).map {
                BatchReport(batch: $0, outcome: outcome, prepared: $1, error: error)
            }
        }
    }

    /// One partition's batch in a transaction of its own: re-reading its
    /// stored offset first when asked, or dead-lettering its one message.
    private func runAlone(
        _ batch: ConsumerBatch<Applier.Prepared>, prepared: [Applier.Prepared]
    ) async
        -> BatchReport
    {
        let partition = KafkaTopicPartition(topic: topic, partition: batch.partition)
        var messages = Array(zip(batch.work.messages.map(\.message), prepared))
        var expected = batch.work.expectedOffset
        do {
            if batch.work.resync {
                expected = try await applier.storedOffset(of: partition)
                if let expected { messages.removeAll { $0.0.offset < expected } }
                // All of them were applied before (the last commit's answer was lost).
                guard !messages.isEmpty else {
                    return BatchReport(
                        batch: batch, outcome: .applied(stored: expected, waiting: false), prepared: prepared)
                }
            }
            if let reason = batch.work.deadLetter {
                let message = messages[0].0
                try await applier.deadLetter(message, reason: reason, expectedOffset: expected)
                ConsumerMetrics.messages(topic: topic, outcome: "dead_lettered").increment()
                return BatchReport(
                    batch: batch, outcome: .applied(stored: message.offset + 1, waiting: false), prepared: prepared)
            }
            let started = ContinuousClock.now
            let applying = PreparedBatch(partition: partition, messages: messages, expectedOffset: expected)
            let count = try await applier.apply([applying])[0]
            ConsumerMetrics.batchDuration(topic: topic).record(duration: .now - started)
            return BatchReport(batch: batch, outcome: outcome(appliedCount: count, of: applying), prepared: prepared)
        } catch {
            return BatchReport(
                batch: batch, outcome: .failed(applier.failure(of: error)), prepared: prepared, error: error)
        }
    }

    /// What each message is prepared into: kept from an earlier try, or made now.
    private func prepare(_ messages: [PendingMessage<Applier.Prepared>]) -> [Applier.Prepared] {
        messages.map { $0.prepared ?? applier.prepare($0.message) }
    }

    private func outcome(appliedCount count: Int, of batch: PreparedBatch<Applier.Prepared>) -> BatchOutcome {
        let stored = count > 0 ? batch.messages[count - 1].message.offset + 1 : batch.expectedOffset
        return .applied(stored: stored, waiting: count < batch.messages.count)
    }

    /// Logs and counts how a batch ended.
    private func note(_ finished: PartitionMachine<Applier.Prepared>.Finished, _ report: BatchReport) {
        let partition = report.batch.partition
        switch finished {
        case .applied, .rolledBackTogether:
            break
        case .staleOffset:
            logger.warning(
                "Another worker moved the stored offset; re-reading it", metadata: ["partition": "\(partition)"])
        case .raced:
            logger.notice(
                "Another transaction changed what the batch read; applying it again",
                metadata: [
                    "partition": "\(partition)", "reason": "\(String(describing: report.error as Any).prefix(300))",
                ])
        case .isolating(let through, let size):
            logger.warning(
                "The database refused a batch's content; retrying it in smaller batches",
                metadata: ["partition": "\(partition)", "through": "\(through)", "batch": "\(size)"])
        case .deadLettering(let offset):
            logger.error(
                "Message refused by the database; dead-lettering it",
                metadata: ["partition": "\(partition)", "offset": "\(offset)"])
        case .failed(let attempt, let retryIn):
            readiness.set("database", passing: false, "the last batch failed")
            Retrying.storeErrors(operation: "apply").increment()
            logger.error(
                "Batch failed; retrying",
                metadata: [
                    "partition": "\(partition)", "attempt": "\(attempt)", "retry.ms": "\(retryIn.wholeMilliseconds)",
                    "error": "\(String(reflecting: report.error as Any).prefix(500))",
                ])
        }
    }

    /// Pauses partitions whose backlog has grown, resumes them once it drains.
    private func controlFlow(_ consumer: KafkaConsumer, _ machine: inout Machine) async throws {
        let (pause, resume) = machine.flowControl()
        if !pause.isEmpty { try await consumer.pause(pause.map { KafkaTopicPartition(topic: topic, partition: $0) }) }
        if !resume.isEmpty {
            try await consumer.resume(resume.map { KafkaTopicPartition(topic: topic, partition: $0) })
        }
    }

    /// Tells Kafka the stored offsets, for lag tools; the database stays the truth.
    private func commit(_ consumer: KafkaConsumer, _ machine: inout Machine) async {
        let offsets = machine.uncommitted
        guard !offsets.isEmpty else { return }
        do {
            try await consumer.commit(
                Dictionary(uniqueKeysWithValues: offsets.map { (KafkaTopicPartition(topic: topic, partition: $0), $1) })
            )
            machine.committed(offsets)
        } catch {
            logger.debug(
                "Offset commit to Kafka failed; the next one repeats it", metadata: ["kafka.error": "\(error)"])
        }
    }

    /// Lag per partition: from the stored offset (what is applied) to the end.
    private func recordLag(_ consumer: KafkaConsumer, _ machine: Machine) {
        for lag in consumer.lag() {
            let applied = machine.stored(lag.topicPartition.partition) ?? lag.position ?? lag.highWatermark
            ConsumerMetrics.lag(topic: topic, partition: lag.topicPartition.partition).record(
                max(0, applied.distance(to: lag.highWatermark)))
        }
    }
}
