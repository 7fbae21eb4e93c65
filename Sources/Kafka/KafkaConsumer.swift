import CRdKafka
import Logging
import Synchronization

/// What ``KafkaConsumer/poll(timeout:)`` returns, in the order it happened.
public enum KafkaConsumerEvent: Sendable {
    /// Messages read, in partition order.
    case messages([KafkaConsumerMessage])
    /// The group gave this consumer these partitions. Nothing is read from them
    /// until the application calls ``KafkaConsumer/startPartitions(_:)`` with
    /// the offset each one starts at.
    case partitionsAssigned([KafkaTopicPartition])
    /// These partitions were taken away (`lost` when the consumer had already
    /// been dropped from the group, so another member may be processing them).
    /// No more of their messages are returned.
    case partitionsRevoked([KafkaTopicPartition], lost: Bool)
    /// An error reported by the consumer; consumption goes on.
    case error(KafkaError)
}

/// How far a consumer is behind one partition's end.
public struct KafkaPartitionLag: Sendable, Hashable {
    /// The partition.
    public var topicPartition: KafkaTopicPartition
    /// The next offset this consumer will read, if it has started reading.
    public var position: KafkaOffset?
    /// The partition's end, as last seen by this consumer.
    public var highWatermark: KafkaOffset
    /// Messages between ``position`` (or the partition's start) and the end.
    public var lag: Int64
}

/// A member of a consumer group that lets the application choose where each
/// assigned partition starts.
///
/// Rebalances come out of ``poll(timeout:)`` as events before any
/// message of a newly assigned partition: the application answers
/// ``KafkaConsumerEvent/partitionsAssigned(_:)`` with ``startPartitions(_:)``,
/// giving each partition's starting offset (for example, one kept in a
/// database). Offsets are committed to Kafka only by ``commit(_:)``.
///
/// `poll` first takes what librdkafka has already queued, with a call that
/// never blocks, on the polling task's own thread: under load it costs no
/// thread switch. Only when nothing is queued does it wait, on a dedicated
/// thread. Every blocking librdkafka call (waiting, assigning, committing,
/// closing) runs on that thread, never on Swift's cooperative pool.
public final class KafkaConsumer: Sendable {
    private let handle: KafkaHandle
    private let context: ConsumerContext
    private let queue: ConsumerQueue
    private let blocking: BlockingExecutor
    private let closed = Atomic<Bool>(false)
    private let polling = Atomic<Bool>(false)
    private let readBatchFill: Duration

    /// Creates a consumer in the configured group. It joins the group when it
    /// subscribes and polls.
    public init(configuration: KafkaConsumerConfiguration, logger: Logger) throws(KafkaError) {
        let context = ConsumerContext(logger: logger)
        handle = try KafkaHandle(type: RD_KAFKA_CONSUMER, properties: configuration.properties, context: context) {
            rd_kafka_conf_set_rebalance_cb($0, rebalanceCallback)
        }
        self.context = context
        // Serve errors and rebalances from the queue that poll reads.
        rd_kafka_poll_set_consumer(handle.pointer)
        queue = ConsumerQueue(
            handle: handle, batchSize: configuration.readBatchMessages, readHeaders: configuration.readHeaders)
        readBatchFill = configuration.readBatchFill
        blocking = BlockingExecutor(label: "matomete.kafka.consumer.blocking")
    }

    deinit {
        if !closed.load(ordering: .acquiring) {
            context.closing()
            blocking.runAndWait { _ = rd_kafka_consumer_close(handle.pointer) }
        }
    }

    /// Subscribes to `topics`, replacing any earlier subscription.
    public func subscribe(_ topics: [String]) throws(KafkaError) {
        let list = NativePartitionList(topics.map { KafkaTopicPartition(topic: $0, partition: -1) })
        try list.withList { rd_kafka_subscribe(handle.pointer, $0) }.check(
            "subscribe to \(topics.joined(separator: ", "))")
    }

    /// Reads up to ``KafkaConsumerConfiguration/readBatchMessages`` messages,
    /// waiting at most `timeout` for the first. Call it from one task at a time.
    ///
    /// - Returns: what happened, in order; messages read before a rebalance
    ///   come before its event. Empty when nothing happened.
    public func poll(timeout: Duration = .milliseconds(100)) async throws(KafkaError) -> [KafkaConsumerEvent] {
        guard !closed.load(ordering: .acquiring) else {
            throw KafkaError(code: .destroyed, message: "the consumer is closed")
        }
        guard !polling.exchange(true, ordering: .acquiringAndReleasing) else {
            throw KafkaError(code: .invalidState, message: "poll called from two tasks at once")
        }
        defer { polling.store(false, ordering: .releasing) }
        let queue = self.queue
        let context = self.context
        // Fast path: a full batch is queued already; take it without blocking or
        // switching threads. Otherwise wait on the dedicated thread for the first
        // message and then briefly for the batch to fill: fewer, fuller batches
        // leave the fetchers more of the CPU.
        var events: [KafkaConsumerEvent] = []
        if queue.hasFullBatch { events = Self.events(queue.read(wait: nil), context: context) }
        if events.isEmpty {
            let fill = readBatchFill
            events = try await blocking.run { Self.events(queue.read(wait: timeout, fill: fill), context: context) }
        }
        if context.hasPendingRevocation {
            let handle = self.handle
            try await blocking.run { context.completeRevocation(handle.pointer) }
        }
        return events
    }

    private static func events(
        _ batch: (messages: [KafkaConsumerMessage], errors: [KafkaError]), context: ConsumerContext
    ) -> [KafkaConsumerEvent] {
        var events: [KafkaConsumerEvent] = []
        if !batch.messages.isEmpty { events.append(.messages(batch.messages)) }
        events += batch.errors.map { .error($0) }
        return events + context.takeEvents()
    }

    /// Starts reading the partitions of the pending assignment, each at the
    /// offset given (``KafkaStartOffset/committed`` for any not listed).
    ///
    /// Call it after ``KafkaConsumerEvent/partitionsAssigned(_:)``; until then
    /// no message of those partitions is read.
    public func startPartitions(_ offsets: [KafkaTopicPartition: KafkaStartOffset]) async throws(KafkaError) {
        let handle = self.handle
        let context = self.context
        try await blocking.run { () throws(KafkaError) in
            let (pending, cooperative) = context.pendingAssignment()
            guard let pending else {
                throw KafkaError(code: .invalidState, message: "no partition assignment is pending")
            }
            let list = NativePartitionList(pending.map { ($0, (offsets[$0] ?? .committed).native) })
            if cooperative {
                if let error = list.withList({ rd_kafka_incremental_assign(handle.pointer, $0) }) {
                    throw KafkaError(consuming: error, context: "assign partitions")
                }
            } else {
                try list.withList { rd_kafka_assign(handle.pointer, $0) }.check("assign partitions")
            }
            context.started(pending)
        }
    }

    /// Reads exactly `offsets`' partitions, each from the offset given, outside
    /// any group rebalance: for tools that read a topic without joining a group
    /// (never call ``subscribe(_:)`` on the same consumer).
    public func assign(_ offsets: [KafkaTopicPartition: KafkaStartOffset]) async throws(KafkaError) {
        let handle = self.handle
        let context = self.context
        try await blocking.run { () throws(KafkaError) in
            let list = NativePartitionList(offsets.map { ($0.key, $0.value.native) })
            try list.withList { rd_kafka_assign(handle.pointer, $0) }.check("assign partitions")
            context.started(Array(offsets.keys))
        }
    }

    /// The partitions this consumer is reading.
    public var assignment: [KafkaTopicPartition] { context.currentAssignment }

    /// Commits, for each partition, the offset of the next message to read.
    public func commit(_ offsets: [KafkaTopicPartition: KafkaOffset]) async throws(KafkaError) {
        guard !offsets.isEmpty else { return }
        let handle = self.handle
        try await blocking.run { () throws(KafkaError) in
            let list = NativePartitionList(offsets.map { ($0.key, $0.value.rawValue) })
            try list.withList { rd_kafka_commit(handle.pointer, $0, 0) }.check("commit offsets")
            for entry in list.entries where entry.error != RD_KAFKA_RESP_ERR_NO_ERROR {
                throw KafkaError(entry.error, context: "commit offset of \(entry.0)")
            }
        }
    }

    /// Moves assigned partitions to read again from the offsets given. Waits
    /// up to `timeout` for the fetchers to take the new position, so no
    /// message fetched before the seek is returned after it; messages already
    /// prefetched for these partitions are dropped and fetched again.
    public func seek(
        _ offsets: [KafkaTopicPartition: KafkaOffset], timeout: Duration = .seconds(5)
    ) async throws(KafkaError) {
        guard !offsets.isEmpty else { return }
        let handle = self.handle
        try await blocking.run { () throws(KafkaError) in
            let list = NativePartitionList(offsets.map { ($0.key, $0.value.rawValue) })
            if let error = list.withList({ rd_kafka_seek_partitions(handle.pointer, $0, Int32(timeout.milliseconds)) })
            {
                throw KafkaError(consuming: error, context: "seek")
            }
            for entry in list.entries where entry.error != RD_KAFKA_RESP_ERR_NO_ERROR {
                throw KafkaError(entry.error, context: "seek \(entry.0) to \(entry.offset)")
            }
        }
    }

    /// Stops returning messages of `partitions` until ``resume(_:)``; reading
    /// then continues after the last message returned.
    public func pause(_ partitions: [KafkaTopicPartition]) async throws(KafkaError) {
        let handle = self.handle
        try await blocking.run { () throws(KafkaError) in
            let list = NativePartitionList(partitions)
            try list.withList { rd_kafka_pause_partitions(handle.pointer, $0) }.check("pause partitions")
        }
    }

    /// Resumes fetching from paused `partitions`.
    public func resume(_ partitions: [KafkaTopicPartition]) async throws(KafkaError) {
        let handle = self.handle
        try await blocking.run { () throws(KafkaError) in
            let list = NativePartitionList(partitions)
            try list.withList { rd_kafka_resume_partitions(handle.pointer, $0) }.check("resume partitions")
        }
    }

    /// The lag of every assigned partition, from this consumer's position and
    /// the high watermarks its fetches last saw. Does not contact the brokers.
    public func lag() -> [KafkaPartitionLag] {
        let partitions = assignment
        guard !partitions.isEmpty else { return [] }
        let list = NativePartitionList(partitions)
        _ = list.withList { rd_kafka_position(handle.pointer, $0) }
        return list.entries.map { entry in
            var low: Int64 = 0
            var high: Int64 = 0
            _ = rd_kafka_get_watermark_offsets(
                handle.pointer, entry.0.topic, entry.0.partition.rawValue, &low, &high)
            let position = entry.offset >= 0 ? entry.offset : nil
            return KafkaPartitionLag(
                topicPartition: entry.0, position: position.map { KafkaOffset($0) }, highWatermark: KafkaOffset(high),
                lag: max(0, high - (position ?? low)))
        }
    }

    /// Leaves the group (revoking this consumer's partitions) and stops. Idempotent.
    public func close() async {
        guard !closed.exchange(true, ordering: .acquiringAndReleasing) else { return }
        let handle = self.handle
        let context = self.context
        let error = try? await blocking.run {
            context.closing()
            return rd_kafka_consumer_close(handle.pointer)
        }
        if let error, error != RD_KAFKA_RESP_ERR_NO_ERROR {
            context.logger.warning("Consumer close", metadata: ["kafka.error": "\(KafkaError(error))"])
        }
    }
}
