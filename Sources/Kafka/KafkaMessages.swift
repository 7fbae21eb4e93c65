import CRdKafka

/// A partition's number within its topic, from 0. Its own type, so it is
/// never mixed up with an offset, a count or a broker id.
public struct KafkaPartition: RawRepresentable, Hashable, Comparable, Sendable, ExpressibleByIntegerLiteral,
    CustomStringConvertible
{
    /// The number as Kafka writes it.
    public var rawValue: Int32

    /// The partition `rawValue`.
    public init(rawValue: Int32) { self.rawValue = rawValue }

    /// The partition `value`.
    public init(_ value: Int32) { rawValue = value }

    /// A partition written as a number.
    public init(integerLiteral value: Int32) { rawValue = value }

    /// The number, in decimal.
    public var description: String { String(rawValue) }

    /// Orders partitions by number.
    public static func < (lhs: Self, rhs: Self) -> Bool { lhs.rawValue < rhs.rawValue }
}

/// One partition of one topic.
public struct KafkaTopicPartition: Hashable, Sendable, Comparable, CustomStringConvertible {
    /// The topic's name.
    public var topic: String
    /// The partition's number, from 0.
    public var partition: KafkaPartition

    /// Names a partition.
    public init(topic: String, partition: KafkaPartition) {
        self.topic = topic
        self.partition = partition
    }

    /// The topic and the partition in brackets, for example `matomete.charges[3]`.
    public var description: String { "\(topic)[\(partition)]" }

    /// Orders partitions by topic name, then by partition number.
    public static func < (lhs: Self, rhs: Self) -> Bool {
        (lhs.topic, lhs.partition) < (rhs.topic, rhs.partition)
    }
}

/// A message's position in its partition, from 0: offsets of one partition
/// grow by one per message. Its own type, so it is never mixed up with a
/// count, a partition number or a time.
public struct KafkaOffset: RawRepresentable, Hashable, Sendable, Strideable, ExpressibleByIntegerLiteral,
    CustomStringConvertible
{
    /// The offset as Kafka writes it.
    public var rawValue: Int64

    /// The offset `rawValue`.
    public init(rawValue: Int64) { self.rawValue = rawValue }

    /// The offset `value`.
    public init(_ value: Int64) { rawValue = value }

    /// An offset written as a number.
    public init(integerLiteral value: Int64) { rawValue = value }

    /// The offset `n` messages further.
    public func advanced(by n: Int64) -> KafkaOffset { KafkaOffset(rawValue + n) }

    /// The number of messages from this offset to `other`.
    public func distance(to other: KafkaOffset) -> Int64 { other.rawValue - rawValue }

    /// The number, in decimal.
    public var description: String { String(rawValue) }

    /// The offset `count` messages after `offset`.
    public static func + (offset: KafkaOffset, count: Int64) -> KafkaOffset { offset.advanced(by: count) }

    /// The offset `count` messages before `offset`.
    public static func - (offset: KafkaOffset, count: Int64) -> KafkaOffset { offset.advanced(by: -count) }
}

/// Where a consumer starts reading an assigned partition.
public enum KafkaStartOffset: Sendable, Hashable {
    /// The first message still in the partition.
    case beginning
    /// After the last message: only new messages.
    case end
    /// The group's offset committed in Kafka, or the configured reset when there is none.
    case committed
    /// This exact offset: the next message to read.
    case offset(KafkaOffset)

    var native: Int64 {
        switch self {
        case .beginning: Int64(RD_KAFKA_OFFSET_BEGINNING)
        case .end: Int64(RD_KAFKA_OFFSET_END)
        case .committed: Int64(RD_KAFKA_OFFSET_STORED)
        case .offset(let value): value.rawValue
        }
    }
}

/// A message header. Values are bytes; `nil` is a header without a value.
public struct KafkaHeader: Hashable, Sendable {
    /// The header's name.
    public var name: String
    /// The header's value.
    public var value: [UInt8]?

    /// A header with a byte value.
    public init(name: String, value: [UInt8]?) {
        self.name = name
        self.value = value
    }

    /// A header with a UTF-8 text value.
    public init(name: String, text: String) {
        self.init(name: name, value: Array(text.utf8))
    }
}

/// A message to produce.
public struct KafkaProducerMessage: Sendable {
    /// The topic to write to.
    public var topic: String
    /// A fixed partition, or `nil` to let the key choose (librdkafka's default
    /// partitioner: a consistent hash of the key, so one key stays in one partition).
    public var partition: KafkaPartition?
    /// The key: decides the partition, and so the order of messages that share it.
    public var key: [UInt8]?
    /// The payload.
    public var value: [UInt8]
    /// Headers, in order.
    public var headers: [KafkaHeader]

    /// A message with byte key and value.
    public init(
        topic: String, partition: KafkaPartition? = nil, key: [UInt8]?, value: [UInt8], headers: [KafkaHeader] = []
    ) {
        self.topic = topic
        self.partition = partition
        self.key = key
        self.value = value
        self.headers = headers
    }

    /// A message with UTF-8 text key and value.
    public init(
        topic: String, partition: KafkaPartition? = nil, key: String?, value: String, headers: [KafkaHeader] = []
    ) {
        self.init(
            topic: topic, partition: partition, key: key.map { Array($0.utf8) }, value: Array(value.utf8),
            headers: headers)
    }
}

/// Where a produced message was written.
public struct KafkaDeliveryReport: Sendable, Hashable {
    /// The topic and partition it landed in.
    public var topicPartition: KafkaTopicPartition
    /// Its offset in that partition.
    public var offset: KafkaOffset
}

/// A consumed message.
public struct KafkaConsumerMessage: Sendable {
    /// Where it was read from.
    public var topicPartition: KafkaTopicPartition
    /// Its offset in the partition.
    public var offset: KafkaOffset
    /// Key and value back to back: one slice of the buffer that the messages
    /// of one poll share (one reference to count per message, not two).
    private let bytes: ArraySlice<UInt8>
    /// Where the key ends and the value starts in `bytes`; `nil` without a key.
    private let keyEnd: Int?
    /// Headers, in order.
    public var headers: [KafkaHeader]
    /// The message timestamp, in milliseconds since 1970, if the broker gave one.
    public var timestampMilliseconds: Int64?

    /// The key, if any. Messages of one poll share one buffer; this is a slice of it.
    public var key: ArraySlice<UInt8>? { keyEnd.map { bytes[..<$0] } }
    /// The payload (empty for a message with a null value); a slice of the poll's buffer.
    public var value: ArraySlice<UInt8> { bytes[(keyEnd ?? bytes.startIndex)...] }

    /// A message as a consumer would read it (the consumer makes them; this is
    /// for code that handles them, and its tests).
    public init(
        topicPartition: KafkaTopicPartition, offset: KafkaOffset, key: ArraySlice<UInt8>? = nil,
        value: ArraySlice<UInt8>, headers: [KafkaHeader] = [], timestampMilliseconds: Int64? = nil
    ) {
        var bytes = Array(key ?? [])
        bytes += value
        self.init(
            topicPartition: topicPartition, offset: offset, bytes: bytes[...], keyCount: key?.count, headers: headers,
            timestampMilliseconds: timestampMilliseconds)
    }

    /// A message whose key (`keyCount` bytes, or none) and value are `bytes`.
    init(
        topicPartition: KafkaTopicPartition, offset: KafkaOffset, bytes: ArraySlice<UInt8>, keyCount: Int?,
        headers: [KafkaHeader], timestampMilliseconds: Int64?
    ) {
        self.topicPartition = topicPartition
        self.offset = offset
        self.bytes = bytes
        self.keyEnd = keyCount.map { bytes.startIndex + $0 }
        self.headers = headers
        self.timestampMilliseconds = timestampMilliseconds
    }

    /// The value of the first header called `name`.
    public func header(_ name: String) -> [UInt8]? {
        headers.first { $0.name == name }?.value ?? nil
    }
}

/// A `rd_kafka_topic_partition_list_t` made here: it owns the C list and
/// destroys it when it goes. The list is used only inside ``withList(_:)``,
/// which keeps the owner alive while librdkafka reads it.
final class NativePartitionList {
    private let pointer: UnsafeMutablePointer<rd_kafka_topic_partition_list_t>

    /// A list of partitions with the offsets given.
    init(_ entries: [(KafkaTopicPartition, Int64)]) {
        pointer = rd_kafka_topic_partition_list_new(Int32(max(entries.count, 1)))!
        for (topicPartition, offset) in entries {
            let element = rd_kafka_topic_partition_list_add(
                pointer, topicPartition.topic, topicPartition.partition.rawValue)!
            element.pointee.offset = offset
        }
    }

    /// A list of partitions without offsets.
    convenience init(_ partitions: [KafkaTopicPartition]) {
        self.init(partitions.map { ($0, Int64(RD_KAFKA_OFFSET_INVALID)) })
    }

    deinit {
        rd_kafka_topic_partition_list_destroy(pointer)
    }

    /// Runs `body` with the C list; it must not keep the pointer.
    func withList<Result, Failure: Error>(
        _ body: (UnsafeMutablePointer<rd_kafka_topic_partition_list_t>) throws(Failure) -> Result
    ) throws(Failure) -> Result {
        defer { withExtendedLifetime(self) {} }
        return try body(pointer)
    }

    /// The entries, with the offsets and per-entry errors librdkafka wrote into them.
    var entries: [(KafkaTopicPartition, offset: Int64, error: rd_kafka_resp_err_t)] {
        withList { Self.entries($0) }
    }

    /// The entries of a list librdkafka owns (a rebalance's, a result's).
    static func entries(
        _ list: UnsafePointer<rd_kafka_topic_partition_list_t>?
    ) -> [(
        KafkaTopicPartition, offset: Int64, error: rd_kafka_resp_err_t
    )] {
        guard let list, list.pointee.cnt > 0 else { return [] }
        return (0..<Int(list.pointee.cnt)).map { index in
            let element = list.pointee.elems[index]
            return (
                KafkaTopicPartition(
                    topic: String(cString: element.topic), partition: KafkaPartition(element.partition)),
                element.offset, element.err
            )
        }
    }
}
