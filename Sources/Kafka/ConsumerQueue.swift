import CRdKafka

/// Owns the consumer's `rd_kafka_queue_t` and turns what it yields into Swift values.
final class ConsumerQueue: @unchecked Sendable {
    // @unchecked Sendable: `read` is called by one poll at a time (the
    // consumer enforces it), from the polling task or the blocking thread;
    // `pointer` never changes.
    private let pointer: OpaquePointer
    private let handle: KafkaHandle
    private var topicNames: [OpaquePointer: String] = [:]
    private var natives: [UnsafeMutablePointer<rd_kafka_message_t>?]

    init(handle: KafkaHandle, batchSize: Int) {
        self.handle = handle
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
    /// value of the batch is copied into one buffer: one allocation per batch
    /// instead of two per message.
    private func convert(count: Int) -> (messages: [KafkaConsumerMessage], errors: [KafkaError]) {
        var total = 0
        for index in 0..<count where natives[index]!.pointee.err == RD_KAFKA_RESP_ERR_NO_ERROR {
            total += natives[index]!.pointee.len + natives[index]!.pointee.key_len
        }
        var buffer: [UInt8] = []
        buffer.reserveCapacity(total)
        var ranges: [(key: Range<Int>?, value: Range<Int>)] = []
        ranges.reserveCapacity(count)
        var errors: [KafkaError] = []
        for index in 0..<count {
            let message = natives[index]!.pointee
            guard message.err == RD_KAFKA_RESP_ERR_NO_ERROR else {
                if message.err != RD_KAFKA_RESP_ERR__PARTITION_EOF {
                    errors.append(KafkaError(message.err, context: "consumer"))
                }
                continue
            }
            let key = append(message.key, message.key_len, to: &buffer)
            let value = append(message.payload, message.len, to: &buffer) ?? buffer.count..<buffer.count
            ranges.append((key, value))
        }
        var messages: [KafkaConsumerMessage] = []
        messages.reserveCapacity(ranges.count)
        var next = 0
        for index in 0..<count {
            let native = natives[index]!
            natives[index] = nil
            defer { rd_kafka_message_destroy(native) }
            guard native.pointee.err == RD_KAFKA_RESP_ERR_NO_ERROR else { continue }
            let range = ranges[next]
            next += 1
            var timestampType = RD_KAFKA_TIMESTAMP_NOT_AVAILABLE
            let timestamp = rd_kafka_message_timestamp(native, &timestampType)
            messages.append(
                KafkaConsumerMessage(
                    topicPartition: KafkaTopicPartition(
                        topic: topicName(native.pointee.rkt), partition: native.pointee.partition),
                    offset: native.pointee.offset, key: range.key.map { buffer[$0] }, value: buffer[range.value],
                    headers: headers(native),
                    timestampMilliseconds: timestampType == RD_KAFKA_TIMESTAMP_NOT_AVAILABLE ? nil : timestamp))
        }
        return (messages, errors)
    }

    /// Appends `count` bytes at `pointer` (if any) to `buffer`; returns where they landed.
    private func append(_ pointer: UnsafeMutableRawPointer?, _ count: Int, to buffer: inout [UInt8]) -> Range<Int>? {
        guard let pointer else { return nil }
        let start = buffer.count
        buffer.append(contentsOf: UnsafeRawBufferPointer(start: pointer, count: count))
        return start..<buffer.count
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
