import CRdKafka
import Logging
import Synchronization

/// What ``KafkaConsumer/poll(maxMessages:timeout:)`` returns, in the order it happened.
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
    public var position: Int64?
    /// The partition's end, as last seen by this consumer.
    public var highWatermark: Int64
    /// Messages between ``position`` (or the partition's start) and the end.
    public var lag: Int64
}

/// A member of a consumer group that lets the application choose where each
/// assigned partition starts.
///
/// Rebalances come out of ``poll(maxMessages:timeout:)`` as events before any
/// message of a newly assigned partition: the application answers
/// ``KafkaConsumerEvent/partitionsAssigned(_:)`` with ``startPartitions(_:)``,
/// giving each partition's starting offset (for example, one kept in a
/// database). Offsets are committed to Kafka only by ``commit(_:)``.
///
/// Blocking librdkafka calls run on two dedicated threads, one for polling and
/// one for everything else, never on Swift's cooperative pool.
public final class KafkaConsumer: Sendable {
    private let handle: KafkaHandle
    private let context: ConsumerContext
    private let queue: ConsumerQueue
    private let poller: BlockingExecutor
    private let blocking: BlockingExecutor
    private let closed = Atomic<Bool>(false)

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
        queue = ConsumerQueue(handle: handle)
        poller = BlockingExecutor(label: "matomete.kafka.consumer.poll")
        blocking = BlockingExecutor(label: "matomete.kafka.consumer.blocking")
    }

    deinit {
        if !closed.load(ordering: .acquiring) {
            poller.runAndWait { _ = rd_kafka_consumer_close(handle.pointer) }
        }
    }

    /// Subscribes to `topics`, replacing any earlier subscription.
    public func subscribe(_ topics: [String]) throws(KafkaError) {
        let list = NativePartitionList.make(topics.map { KafkaTopicPartition(topic: $0, partition: -1) })
        defer { rd_kafka_topic_partition_list_destroy(list) }
        try rd_kafka_subscribe(handle.pointer, list).check("subscribe to \(topics.joined(separator: ", "))")
    }

    /// Reads up to `maxMessages`, waiting at most `timeout` for the first.
    ///
    /// - Returns: what happened, in order; messages read before a rebalance
    ///   come before its event. Empty when nothing happened.
    public func poll(maxMessages: Int = 1000, timeout: Duration = .milliseconds(100)) async throws(KafkaError)
        -> [KafkaConsumerEvent]
    {
        guard !closed.load(ordering: .acquiring) else {
            throw KafkaError(code: .destroyed, message: "the consumer is closed")
        }
        let queue = self.queue
        let context = self.context
        return try await poller.run { () throws(KafkaError) in
            let batch = try queue.consumeBatch(max: maxMessages, timeout: timeout)
            var events: [KafkaConsumerEvent] = []
            if !batch.messages.isEmpty { events.append(.messages(batch.messages)) }
            events += batch.errors.map { .error($0) }
            events += context.takeEvents()
            return events
        }
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
            let list = NativePartitionList.make(pending.map { ($0, (offsets[$0] ?? .committed).native) })
            defer { rd_kafka_topic_partition_list_destroy(list) }
            if cooperative {
                if let error = rd_kafka_incremental_assign(handle.pointer, list) {
                    throw KafkaError(consuming: error, context: "assign partitions")
                }
            } else {
                try rd_kafka_assign(handle.pointer, list).check("assign partitions")
            }
            context.started(pending)
        }
    }

    /// The partitions this consumer is reading.
    public var assignment: [KafkaTopicPartition] { context.currentAssignment }

    /// Commits, for each partition, the offset of the next message to read.
    public func commit(_ offsets: [KafkaTopicPartition: Int64]) async throws(KafkaError) {
        guard !offsets.isEmpty else { return }
        let handle = self.handle
        try await blocking.run { () throws(KafkaError) in
            let list = NativePartitionList.make(offsets.map { ($0.key, $0.value) })
            defer { rd_kafka_topic_partition_list_destroy(list) }
            try rd_kafka_commit(handle.pointer, list, 0).check("commit offsets")
            for entry in NativePartitionList.entries(list) where entry.error != RD_KAFKA_RESP_ERR_NO_ERROR {
                throw KafkaError(entry.error, context: "commit offset of \(entry.0)")
            }
        }
    }

    /// Stops fetching from `partitions` until ``resume(_:)``; their position is kept.
    public func pause(_ partitions: [KafkaTopicPartition]) async throws(KafkaError) {
        let handle = self.handle
        try await blocking.run { () throws(KafkaError) in
            let list = NativePartitionList.make(partitions)
            defer { rd_kafka_topic_partition_list_destroy(list) }
            try rd_kafka_pause_partitions(handle.pointer, list).check("pause partitions")
        }
    }

    /// Resumes fetching from paused `partitions`.
    public func resume(_ partitions: [KafkaTopicPartition]) async throws(KafkaError) {
        let handle = self.handle
        try await blocking.run { () throws(KafkaError) in
            let list = NativePartitionList.make(partitions)
            defer { rd_kafka_topic_partition_list_destroy(list) }
            try rd_kafka_resume_partitions(handle.pointer, list).check("resume partitions")
        }
    }

    /// The lag of every assigned partition, from this consumer's position and
    /// the high watermarks its fetches last saw. Does not contact the brokers.
    public func lag() -> [KafkaPartitionLag] {
        let partitions = assignment
        guard !partitions.isEmpty else { return [] }
        let list = NativePartitionList.make(partitions)
        defer { rd_kafka_topic_partition_list_destroy(list) }
        _ = rd_kafka_position(handle.pointer, list)
        return NativePartitionList.entries(list).map { entry in
            var low: Int64 = 0
            var high: Int64 = 0
            _ = rd_kafka_get_watermark_offsets(
                handle.pointer, entry.0.topic, entry.0.partition, &low, &high)
            let position = entry.offset >= 0 ? entry.offset : nil
            return KafkaPartitionLag(
                topicPartition: entry.0, position: position, highWatermark: high,
                lag: max(0, high - (position ?? low)))
        }
    }

    /// Leaves the group (revoking this consumer's partitions) and stops. Idempotent.
    public func close() async {
        guard !closed.exchange(true, ordering: .acquiringAndReleasing) else { return }
        let handle = self.handle
        let error = try? await poller.run { rd_kafka_consumer_close(handle.pointer) }
        if let error, error != RD_KAFKA_RESP_ERR_NO_ERROR {
            context.logger.warning("Consumer close", metadata: ["kafka.error": "\(KafkaError(error))"])
        }
    }
}

/// Owns the consumer's `rd_kafka_queue_t` and reads message batches from it.
final class ConsumerQueue: @unchecked Sendable {
    // @unchecked Sendable: used only from the consumer's poll thread (and
    // `deinit`); `pointer` never changes.
    private let pointer: OpaquePointer
    private let handle: KafkaHandle
    private var topicNames: [OpaquePointer: String] = [:]

    init(handle: KafkaHandle) {
        self.handle = handle
        pointer = rd_kafka_queue_get_consumer(handle.pointer)
    }

    deinit { rd_kafka_queue_destroy(pointer) }

    /// One batch: messages, and errors librdkafka delivered as messages.
    func consumeBatch(max: Int, timeout: Duration) throws(KafkaError) -> (
        messages: [KafkaConsumerMessage], errors: [KafkaError]
    ) {
        var natives = [UnsafeMutablePointer<rd_kafka_message_t>?](repeating: nil, count: max)
        let count = rd_kafka_consume_batch_queue(pointer, Int32(timeout.milliseconds), &natives, max)
        guard count >= 0 else { throw KafkaError(rd_kafka_last_error(), context: "consume") }
        var messages: [KafkaConsumerMessage] = []
        messages.reserveCapacity(count)
        var errors: [KafkaError] = []
        for native in natives[0..<count] {
            guard let native else { continue }
            defer { rd_kafka_message_destroy(native) }
            let message = native.pointee
            if message.err != RD_KAFKA_RESP_ERR_NO_ERROR {
                if message.err != RD_KAFKA_RESP_ERR__PARTITION_EOF {
                    errors.append(KafkaError(message.err, context: "consumer"))
                }
                continue
            }
            messages.append(convert(native))
        }
        return (messages, errors)
    }

    private func convert(_ native: UnsafeMutablePointer<rd_kafka_message_t>) -> KafkaConsumerMessage {
        let message = native.pointee
        let topic = topicName(message.rkt)
        let value =
            message.payload.map { Array(UnsafeRawBufferPointer(start: $0, count: message.len)) } ?? []
        let key = message.key.map { Array(UnsafeRawBufferPointer(start: $0, count: message.key_len)) }
        var timestampType = RD_KAFKA_TIMESTAMP_NOT_AVAILABLE
        let timestamp = rd_kafka_message_timestamp(native, &timestampType)
        return KafkaConsumerMessage(
            topicPartition: KafkaTopicPartition(topic: topic, partition: message.partition),
            offset: message.offset, key: key, value: value, headers: headers(native),
            timestampMilliseconds: timestampType == RD_KAFKA_TIMESTAMP_NOT_AVAILABLE ? nil : timestamp)
    }

    private func headers(_ native: UnsafeMutablePointer<rd_kafka_message_t>) -> [KafkaHeader] {
        var headers: OpaquePointer?
        guard rd_kafka_message_headers(native, &headers) == RD_KAFKA_RESP_ERR_NO_ERROR, let headers else { return [] }
        var result: [KafkaHeader] = []
        var index = 0
        var name: UnsafePointer<CChar>?
        var value: UnsafeRawPointer?
        var size = 0
        while rd_kafka_header_get_all(headers, index, &name, &value, &size) == RD_KAFKA_RESP_ERR_NO_ERROR {
            let bytes = value.map { Array(UnsafeRawBufferPointer(start: $0, count: size)) }
            result.append(KafkaHeader(name: name.map { String(cString: $0) } ?? "", value: bytes))
            index += 1
        }
        return result
    }

    private func topicName(_ topic: OpaquePointer?) -> String {
        guard let topic else { return "" }
        if let name = topicNames[topic] { return name }
        let name = String(cString: rd_kafka_topic_name(topic))
        topicNames[topic] = name
        return name
    }
}

/// The consumer's rebalance state: a Mutex around a small state machine that
/// the rebalance callback and the application's calls both drive.
final class ConsumerContext: CallbackContext, @unchecked Sendable {
    // @unchecked Sendable: all mutable state is inside `state`'s Mutex.
    private struct State {
        var assigned: Set<KafkaTopicPartition> = []
        var pending: [KafkaTopicPartition]?
        var cooperative = false
        var events: [KafkaConsumerEvent] = []
    }

    private let state = Mutex(State())

    var currentAssignment: [KafkaTopicPartition] { state.withLock { $0.assigned.sorted() } }

    func pendingAssignment() -> ([KafkaTopicPartition]?, cooperative: Bool) {
        state.withLock { ($0.pending, $0.cooperative) }
    }

    func started(_ partitions: [KafkaTopicPartition]) {
        state.withLock { state in
            state.assigned.formUnion(partitions)
            state.pending = nil
        }
    }

    func takeEvents() -> [KafkaConsumerEvent] {
        state.withLock { state in
            defer { state.events.removeAll() }
            return state.events
        }
    }

    /// Called by librdkafka (on the thread that polls or closes) for every rebalance.
    func rebalance(_ handle: OpaquePointer, _ err: rd_kafka_resp_err_t, _ list: UnsafeMutablePointer<rd_kafka_topic_partition_list_t>?) {
        let partitions = NativePartitionList.entries(list).map(\.0).sorted()
        let cooperative = String(cString: rd_kafka_rebalance_protocol(handle)) == "COOPERATIVE"
        switch err {
        case RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS:
            // Deferred: the application starts them with the offsets it chooses.
            state.withLock { state in
                state.cooperative = cooperative
                state.pending = (state.pending ?? []) + partitions
                state.events.append(.partitionsAssigned(partitions))
            }
        case RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS:
            let lost = rd_kafka_assignment_lost(handle) != 0
            if cooperative {
                if let error = rd_kafka_incremental_unassign(handle, list) {
                    clientError(KafkaError(consuming: error, context: "unassign revoked partitions"))
                }
            } else {
                _ = rd_kafka_assign(handle, nil)
            }
            state.withLock { state in
                state.assigned.subtract(partitions)
                state.pending = state.pending?.filter { !partitions.contains($0) }
                if state.pending?.isEmpty == true { state.pending = nil }
                state.events.append(.partitionsRevoked(partitions, lost: lost))
            }
        default:
            _ = rd_kafka_assign(handle, nil)
            state.withLock { state in
                state.assigned.removeAll()
                state.pending = nil
                state.events.append(.error(KafkaError(err, context: "rebalance")))
            }
        }
        logger.info(
            "Consumer group rebalance",
            metadata: ["kafka.event": "\(String(cString: rd_kafka_err2name(err)))", "kafka.partitions": "\(partitions)"])
        // Return from the current poll so the application sees the event first.
        rd_kafka_yield(handle)
    }
}

private let rebalanceCallback:
    @convention(c) (
        OpaquePointer?, rd_kafka_resp_err_t, UnsafeMutablePointer<rd_kafka_topic_partition_list_t>?,
        UnsafeMutableRawPointer?
    ) -> Void = { handle, err, partitions, opaque in
        guard let handle, let context = CallbackContext.from(opaque) as? ConsumerContext else { return }
        context.rebalance(handle, err, partitions)
    }
