import CRdKafka
import Logging

/// A topic to create.
public struct KafkaTopicSpecification: Sendable, Hashable {
    /// The topic's name.
    public var name: String
    /// How many partitions: the most consumers of one group that can share it.
    public var partitions: Int
    /// Copies of each partition across brokers.
    public var replicationFactor: Int
    /// Topic-level configuration (`retention.ms`, `cleanup.policy`, …).
    public var configuration: [String: String]

    /// Describes a topic to create.
    public init(name: String, partitions: Int, replicationFactor: Int, configuration: [String: String] = [:]) {
        self.name = name
        self.partitions = partitions
        self.replicationFactor = replicationFactor
        self.configuration = configuration
    }
}

/// A topic as the cluster describes it.
public struct KafkaTopicDescription: Sendable, Hashable {
    /// One partition's placement.
    public struct Partition: Sendable, Hashable {
        /// The partition number.
        public var id: KafkaPartition
        /// The broker leading it, or `-1` when it has no leader.
        public var leader: Int32
        /// The brokers holding a copy.
        public var replicas: [Int32]
        /// The copies that are in sync.
        public var inSyncReplicas: [Int32]
    }

    /// The topic's name.
    public var name: String
    /// Its partitions, by number.
    public var partitions: [Partition]
}

/// Cluster administration: topics, group offsets, partition ends.
public final class KafkaAdmin: Sendable {
    private let handle: KafkaHandle
    private let blocking: BlockingExecutor
    private let requestTimeout: Duration

    /// A client for the cluster in `settings`; requests time out after `requestTimeout`.
    public init(
        settings: KafkaClientSettings, requestTimeout: Duration = .seconds(30), logger: Logger
    ) throws(KafkaError) {
        handle = try KafkaHandle(
            type: RD_KAFKA_PRODUCER,
            properties: settings.properties([]),
            context: CallbackContext(logger: logger))
        blocking = BlockingExecutor(label: "matomete.kafka.admin")
        self.requestTimeout = requestTimeout
    }

    /// Creates topics that do not exist yet; a topic that exists already is
    /// left as it is (idempotent). Only the missing ones are asked of the
    /// cluster, so a call for topics that all exist needs no controller (and
    /// works on librdkafka's mock cluster, whose controller cannot create).
    ///
    /// - Returns: the names of the topics it created.
    @discardableResult
    public func createTopics(_ topics: [KafkaTopicSpecification]) async throws(KafkaError) -> [String] {
        let existing = try await descriptions(of: topics.map(\.name))
        let missing = topics.filter { existing[$0.name] == nil }
        guard !missing.isEmpty else { return [] }
        let topics = missing
        try await request(RD_KAFKA_ADMIN_OP_CREATETOPICS) { handle, options, queue throws(KafkaError) in
            var errorText = [CChar](repeating: 0, count: 512)
            var natives: [OpaquePointer?] = []
            defer { natives.forEach { rd_kafka_NewTopic_destroy($0) } }
            for topic in topics {
                guard
                    let native = rd_kafka_NewTopic_new(
                        topic.name, Int32(topic.partitions), Int32(topic.replicationFactor), &errorText,
                        errorText.count)
                else {
                    let reason = errorText.withUnsafeBufferPointer { String(cString: $0.baseAddress!) }
                    throw KafkaError(code: .invalidArgument, message: "topic \(topic.name): \(reason)")
                }
                natives.append(native)
                for (key, value) in topic.configuration.sorted(by: { $0.key < $1.key }) {
                    try rd_kafka_NewTopic_set_config(native, key, value).check("topic \(topic.name) \(key)")
                }
            }
            rd_kafka_CreateTopics(handle, &natives, natives.count, options, queue)
        } result: { event throws(KafkaError) in
            var count = 0
            let results = rd_kafka_CreateTopics_result_topics(rd_kafka_event_CreateTopics_result(event), &count)
            for index in 0..<count {
                let result = results![index]
                let err = rd_kafka_topic_result_error(result)
                guard err != RD_KAFKA_RESP_ERR_NO_ERROR, err != RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS else { continue }
                let name = String(cString: rd_kafka_topic_result_name(result))
                let reason = rd_kafka_topic_result_error_string(result).map { String(cString: $0) } ?? ""
                throw KafkaError(err, context: "create topic \(name): \(reason)")
            }
        }
        return missing.map(\.name)
    }

    /// Describes `topics` from the cluster's metadata. Throws
    /// ``KafkaError/Code/unknownTopicOrPartition`` for a topic that does not exist.
    public func describeTopics(_ topics: [String]) async throws(KafkaError) -> [KafkaTopicDescription] {
        let found = try await descriptions(of: topics)
        return try topics.map { name throws(KafkaError) in
            guard let description = found[name] else {
                throw KafkaError(code: .unknownTopicOrPartition, message: "topic \(name) does not exist")
            }
            return description
        }
    }

    /// The names of every topic that starts with `prefix`, sorted.
    public func topicNames(startingWith prefix: String) async throws(KafkaError) -> [String] {
        try await descriptions { $0.hasPrefix(prefix) }.keys.sorted()
    }

    /// The descriptions of those of `topics` that exist, by name.
    private func descriptions(of topics: [String]) async throws(KafkaError) -> [String: KafkaTopicDescription] {
        let wanted = Set(topics)
        return try await descriptions { wanted.contains($0) }
    }

    /// The descriptions of the topics that exist whose names `include` takes, by name.
    private func descriptions(
        where include: @escaping @Sendable (String) -> Bool
    ) async throws(KafkaError) -> [String: KafkaTopicDescription] {
        let handle = self.handle
        let timeout = Int32(requestTimeout.milliseconds)
        return try await blocking.run { () throws(KafkaError) in
            var metadata: UnsafePointer<rd_kafka_metadata>?
            try rd_kafka_metadata(handle.pointer, 1, nil, &metadata, timeout).check("describe topics")
            defer { rd_kafka_metadata_destroy(metadata) }
            var found: [String: KafkaTopicDescription] = [:]
            for index in 0..<Int(metadata!.pointee.topic_cnt) {
                let topic = metadata!.pointee.topics[index]
                let name = String(cString: topic.topic)
                guard include(name), topic.err == RD_KAFKA_RESP_ERR_NO_ERROR else { continue }
                let partitions = (0..<Int(topic.partition_cnt)).map { index in
                    let partition = topic.partitions[index]
                    return KafkaTopicDescription.Partition(
                        id: KafkaPartition(partition.id), leader: partition.leader,
                        replicas: Array(
                            UnsafeBufferPointer(start: partition.replicas, count: Int(partition.replica_cnt))),
                        inSyncReplicas: Array(UnsafeBufferPointer(start: partition.isrs, count: Int(partition.isr_cnt)))
                    )
                }
                found[name] = KafkaTopicDescription(name: name, partitions: partitions.sorted { $0.id < $1.id })
            }
            return found
        }
    }

    /// The offsets `group` has committed for `partitions`; partitions with no
    /// committed offset are absent.
    public func committedOffsets(
        group: String, partitions: [KafkaTopicPartition]
    ) async throws(KafkaError)
        -> [KafkaTopicPartition: KafkaOffset]
    {
        try await request(RD_KAFKA_ADMIN_OP_LISTCONSUMERGROUPOFFSETS) { handle, options, queue in
            let list = NativePartitionList(partitions)
            var request: OpaquePointer? = list.withList { rd_kafka_ListConsumerGroupOffsets_new(group, $0) }
            defer { rd_kafka_ListConsumerGroupOffsets_destroy(request) }
            rd_kafka_ListConsumerGroupOffsets(handle, &request, 1, options, queue)
        } result: { event throws(KafkaError) in
            var committed: [KafkaTopicPartition: KafkaOffset] = [:]
            var count = 0
            let groups = rd_kafka_ListConsumerGroupOffsets_result_groups(
                rd_kafka_event_ListConsumerGroupOffsets_result(event), &count)
            for index in 0..<count {
                if let error = rd_kafka_group_result_error(groups![index]) {
                    let text = String(cString: rd_kafka_error_string(error))
                    throw KafkaError(
                        code: KafkaError.Code(rd_kafka_error_code(error)), message: "offsets of group \(group): \(text)"
                    )
                }
                for entry in NativePartitionList.entries(rd_kafka_group_result_partitions(groups![index]))
                where entry.error == RD_KAFKA_RESP_ERR_NO_ERROR && entry.offset >= 0 {
                    committed[entry.0] = KafkaOffset(entry.offset)
                }
            }
            return committed
        }
    }

    /// The end (high watermark) of each partition, asked of its leader.
    public func highWatermarks(
        _ partitions: [KafkaTopicPartition]
    ) async throws(KafkaError) -> [KafkaTopicPartition: KafkaOffset] {
        try await watermarks(partitions).mapValues(\.upperBound)
    }

    /// The first offset still kept (low watermark) and the end (high watermark)
    /// of each partition, asked of its leader: `low..<high` is what it holds.
    public func watermarks(
        _ partitions: [KafkaTopicPartition]
    ) async throws(KafkaError) -> [KafkaTopicPartition: Range<KafkaOffset>] {
        let handle = self.handle
        let timeout = Int32(requestTimeout.milliseconds)
        return try await blocking.run { () throws(KafkaError) in
            var ranges: [KafkaTopicPartition: Range<KafkaOffset>] = [:]
            for partition in partitions {
                var low: Int64 = 0
                var high: Int64 = 0
                try rd_kafka_query_watermark_offsets(
                    handle.pointer, partition.topic, partition.partition.rawValue, &low, &high, timeout
                ).check("watermarks of \(partition)")
                ranges[partition] = KafkaOffset(min(low, high))..<KafkaOffset(high)
            }
            return ranges
        }
    }

    /// Every partition of `topics`.
    public func partitions(of topics: [String]) async throws(KafkaError) -> [KafkaTopicPartition] {
        try await describeTopics(topics).flatMap { topic in
            topic.partitions.map { KafkaTopicPartition(topic: topic.name, partition: $0.id) }
        }
    }

    /// The lag of `group` on every partition of `topics`: what the group has
    /// not yet committed. A partition the group never committed counts from 0.
    public func groupLag(group: String, topics: [String]) async throws(KafkaError) -> [KafkaPartitionLag] {
        let partitions = try await partitions(of: topics)
        let ends = try await highWatermarks(partitions)
        let committed = try await committedOffsets(group: group, partitions: partitions)
        return partitions.map { partition in
            let end = ends[partition] ?? 0
            let position = committed[partition]
            return KafkaPartitionLag(
                topicPartition: partition, position: position, highWatermark: end,
                lag: max(0, (position ?? 0).distance(to: end)))
        }
    }

    /// Runs one admin request on the blocking thread: `send` issues it on a
    /// fresh queue, `result` reads the event that answers it.
    private func request<T: Sendable>(
        _ operation: rd_kafka_admin_op_t,
        send: @escaping @Sendable (OpaquePointer, OpaquePointer, OpaquePointer) throws(KafkaError) -> Void,
        result: @escaping @Sendable (OpaquePointer) throws(KafkaError) -> T
    ) async throws(KafkaError) -> T {
        let handle = self.handle
        let timeout = requestTimeout
        return try await blocking.run { () throws(KafkaError) in
            let queue = rd_kafka_queue_new(handle.pointer)!
            defer { rd_kafka_queue_destroy(queue) }
            let options = rd_kafka_AdminOptions_new(handle.pointer, operation)!
            defer { rd_kafka_AdminOptions_destroy(options) }
            var errorText = [CChar](repeating: 0, count: 256)
            try rd_kafka_AdminOptions_set_request_timeout(
                options, Int32(timeout.milliseconds), &errorText, errorText.count
            ).check("admin request timeout")
            try send(handle.pointer, options, queue)
            guard let event = rd_kafka_queue_poll(queue, Int32(timeout.milliseconds) + 1000) else {
                throw KafkaError(code: .timedOut, message: "no answer to the admin request", isRetriable: true)
            }
            defer { rd_kafka_event_destroy(event) }
            let err = rd_kafka_event_error(event)
            if err != RD_KAFKA_RESP_ERR_NO_ERROR {
                let text = rd_kafka_event_error_string(event).map { String(cString: $0) }
                throw KafkaError(err, context: text)
            }
            return try result(event)
        }
    }
}
