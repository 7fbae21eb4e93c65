import CRdKafka

/// Owns the consumer's `rd_kafka_queue_t` and turns what it yields into Swift values.
final class ConsumerQueue: @unchecked Sendable {
    // @unchecked Sendable: `read` is called by one poll at a time (the
    // consumer enforces it), from the polling task or the blocking thread;
    // `pointer` never changes.
    private let pointer: OpaquePointer
    private let handle: KafkaHandle
    private var topicNames: [OpaquePointer: String] = [:]
    /// The topic of the last message converted: most batches hold one topic.
    private var lastTopic: (pointer: OpaquePointer, name: String)?
    private var natives: [UnsafeMutablePointer<rd_kafka_message_t>?]
    private let readHeaders: Bool

    init(handle: KafkaHandle, batchSize: Int, readHeaders: Bool) {
        self.handle = handle
        self.readHeaders = readHeaders
        pointer = rd_kafka_queue_get_consumer(handle.pointer)
        natives = Array(repeating: nil, count: max(batchSize, 1))
    }

    deinit { rd_kafka_queue_destroy(pointer) }

    /// Whether a full batch is queued already (a non-blocking count).
    var hasFullBatch: Bool { rd_kafka_queue_length(pointer) >= natives.count }

    /// Takes up to the batch size of what librdkafka has queued. With `wait`,
    /// first waits up to that long for one message, then up to `fill` for the
    /// batch to fill (blocking calls: only on a dedicated thread); without,
    /// returns at once (safe on any thread).
    /// Rebalance callbacks run in here.
    func read(wait: Duration?, fill: Duration = .zero) -> (messages: [KafkaConsumerMessage], errors: [KafkaError]) {
        var taken = 0
        var fillMilliseconds: Int32 = 0
        if let wait {
            guard let first = rd_kafka_consume_queue(pointer, Int32(wait.milliseconds)) else { return ([], []) }
            natives[0] = first
            taken = 1
            fillMilliseconds = Int32(fill.milliseconds)
        }
        let more = natives.withUnsafeMutableBufferPointer { buffer in
            rd_kafka_consume_batch_queue(pointer, fillMilliseconds, buffer.baseAddress! + taken, buffer.count - taken)
        }
        taken += max(more, 0)
        return taken == 0 ? ([], []) : convert(count: taken)
    }

    /// Converts and destroys the first `count` native messages. Every key and
    /// value of the batch is copied into one buffer, written in place: one
    /// allocation per batch instead of two per message.
    private func convert(count: Int) -> (messages: [KafkaConsumerMessage], errors: [KafkaError]) {
        natives.withUnsafeMutableBufferPointer { natives in
            let batch = UnsafeMutableBufferPointer(rebasing: natives[..<count])
            var total = 0
            for native in batch where native!.pointee.err == RD_KAFKA_RESP_ERR_NO_ERROR {
                total += native!.pointee.len + native!.pointee.key_len
            }
            // Keys and values back to back, in message order; the second loop
            // walks the same order to slice them out.
            let buffer = [UInt8](unsafeUninitializedCapacity: total) { bytes, initialized in
                var end = 0
                for native in batch where native!.pointee.err == RD_KAFKA_RESP_ERR_NO_ERROR {
                    end = Self.copy(native!.pointee.key, native!.pointee.key_len, into: bytes, at: end)
                    end = Self.copy(native!.pointee.payload, native!.pointee.len, into: bytes, at: end)
                }
                initialized = end
            }
            var messages: [KafkaConsumerMessage] = []
            messages.reserveCapacity(count)
            var errors: [KafkaError] = []
            var start = 0
            for index in batch.indices {
                let native = batch[index]!
                batch[index] = nil
                defer { rd_kafka_message_destroy(native) }
                let message = native.pointee
                guard message.err == RD_KAFKA_RESP_ERR_NO_ERROR else {
                    if message.err != RD_KAFKA_RESP_ERR__PARTITION_EOF {
                        errors.append(KafkaError(message.err, context: "consumer"))
                    }
                    continue
                }
                let keyCount = message.key == nil ? nil : message.key_len
                let end = start + (keyCount ?? 0) + (message.payload == nil ? 0 : message.len)
                let bytes = buffer[start..<end]
                start = end
                var timestampType = RD_KAFKA_TIMESTAMP_NOT_AVAILABLE
                let timestamp = rd_kafka_message_timestamp(native, &timestampType)
                messages.append(
                    KafkaConsumerMessage(
                        topicPartition: KafkaTopicPartition(
                            topic: topicName(message.rkt), partition: KafkaPartition(message.partition)),
                        offset: KafkaOffset(message.offset), bytes: bytes, keyCount: keyCount,
                        headers: readHeaders ? headers(native) : [],
                        timestampMilliseconds: timestampType == RD_KAFKA_TIMESTAMP_NOT_AVAILABLE ? nil : timestamp))
            }
            return (messages, errors)
        }
    }

    /// Copies `count` bytes at `source` (if any) to `bytes` at `offset`; returns the end.
    private static func copy(
        _ source: UnsafeMutableRawPointer?, _ count: Int, into bytes: UnsafeMutableBufferPointer<UInt8>, at offset: Int
    ) -> Int {
        guard let source, count > 0 else { return offset }
        UnsafeMutableRawPointer(bytes.baseAddress! + offset).copyMemory(from: source, byteCount: count)
        return offset + count
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
        if let last = lastTopic, last.pointer == topic { return last.name }
        if let name = topicNames[topic] {
            lastTopic = (topic, name)
            return name
        }
        let name = String(cString: rd_kafka_topic_name(topic))
        topicNames[topic] = name
        return name
    }
}
