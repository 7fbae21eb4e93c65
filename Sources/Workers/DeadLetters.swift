import Foundation
import Kafka
import Store

/// Messages that are not a request at all go to the dead-letter topic with
/// their original bytes: the value as it was, the key as it was (when it is
/// text; otherwise base64 in a header) and where they came from and why in headers.
public enum DeadLetters {
    public static let sourceTopic = "matomete-source-topic"
    public static let sourcePartition = "matomete-source-partition"
    public static let sourceOffset = "matomete-source-offset"
    public static let error = "matomete-error"
    public static let originalKeyBase64 = "matomete-original-key-base64"
    /// On a replayed message: the id of the dead letter it came from.
    public static let replayedFrom = "matomete-replayed-from"

    /// The stable id of the dead letter for the message at this position.
    static func id(topic: String, partition: Int32, offset: Int64) -> String {
        "dead-letter-\(topic)-\(partition)-\(offset)"
    }

    static func message(for source: KafkaConsumerMessage, reason: String, topic: String) -> OutboxMessage {
        let position = source.topicPartition
        var headers = [
            sourceTopic: position.topic, sourcePartition: "\(position.partition)", sourceOffset: "\(source.offset)",
            error: printable(reason),
        ]
        var key: String?
        if let bytes = source.key {
            // The outbox keeps keys as text: only valid UTF-8 without NUL fits.
            if !bytes.contains(0), let text = String(validating: bytes, as: UTF8.self) {
                key = text
            } else {
                headers[originalKeyBase64] = Data(bytes).base64EncodedString()
            }
        }
        return OutboxMessage(
            topic: topic, key: key, id: id(topic: position.topic, partition: position.partition, offset: source.offset),
            payload: Array(source.value), headers: headers)
    }

    /// The reason without control characters (JSON in the store cannot hold
    /// NUL) and at most 500 bytes: it may quote the offending input.
    private static func printable(_ text: String) -> String {
        let cleaned = String(String.UnicodeScalarView(text.unicodeScalars.map { $0.value < 0x20 ? " " : $0 }))
        guard cleaned.utf8.count > 500 else { return cleaned }
        return String(decoding: cleaned.utf8.prefix(500), as: UTF8.self)
    }
}

/// A message read back from the dead-letter topic.
public struct DeadLetter: Sendable {
    /// Its id (`dead-letter-<topic>-<partition>-<offset>`).
    public var id: String
    /// Where it sits on the dead-letter topic.
    public var position: KafkaTopicPartition
    public var offset: Int64
    public var timestamp: Date?
    /// Where the original message was read.
    public var sourceTopic: String
    public var sourcePartition: Int32?
    public var sourceOffset: Int64?
    /// Why it was dead-lettered.
    public var reason: String
    /// The original key and value, byte for byte.
    public var key: [UInt8]?
    public var value: [UInt8]

    /// Reads a message of the dead-letter topic; `nil` when it lacks the
    /// headers a worker writes (it was not put there by Matomete).
    public init?(_ message: KafkaConsumerMessage) {
        func text(_ name: String) -> String? { message.header(name).map { String(decoding: $0, as: UTF8.self) } }
        guard let topic = text(DeadLetters.sourceTopic) else { return nil }
        sourceTopic = topic
        sourcePartition = text(DeadLetters.sourcePartition).flatMap { Int32($0) }
        sourceOffset = text(DeadLetters.sourceOffset).flatMap { Int64($0) }
        reason = text(DeadLetters.error) ?? ""
        id =
            text("id")
            ?? DeadLetters.id(topic: topic, partition: sourcePartition ?? -1, offset: sourceOffset ?? -1)
        position = message.topicPartition
        offset = message.offset
        timestamp = message.timestampMilliseconds.map { Date(timeIntervalSince1970: Double($0) / 1000) }
        value = Array(message.value)
        if let encoded = text(DeadLetters.originalKeyBase64), let bytes = Data(base64Encoded: encoded) {
            key = Array(bytes)
        } else {
            key = message.key.map(Array.init)
        }
    }

    /// The original message again, for its source topic (or `topic`), marked
    /// with the dead letter it came from. Requests carry their own ids, so a
    /// replay of a message that was applied after all is answered, not applied twice.
    public func replay(to topic: String? = nil) -> KafkaProducerMessage {
        KafkaProducerMessage(
            topic: topic ?? sourceTopic, key: key, value: value,
            headers: [KafkaHeader(name: DeadLetters.replayedFrom, text: id)])
    }
}
