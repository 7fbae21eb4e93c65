import Contract
import Foundation
import Kafka
import Store

/// Messages that are not a request at all go to the dead-letter topic with
/// their original bytes: the value as it was, the key as it was (when it is
/// text; otherwise base64 in a header) and where they came from and why in headers.
enum DeadLetters {
    static func message(for source: KafkaConsumerMessage, reason: String, topic: String) -> OutboxMessage {
        let position = source.topicPartition
        var headers = [
            DeadLetterHeaders.sourceTopic: position.topic, DeadLetterHeaders.sourcePartition: "\(position.partition)",
            DeadLetterHeaders.sourceOffset: "\(source.offset)", DeadLetterHeaders.error: printable(reason),
        ]
        var key: String?
        if let bytes = source.key {
            // The outbox keeps keys as text: only valid UTF-8 without NUL fits.
            if !bytes.contains(0), let text = String(validating: bytes, as: UTF8.self) {
                key = text
            } else {
                headers[DeadLetterHeaders.originalKeyBase64] = Data(bytes).base64EncodedString()
            }
        }
        return OutboxMessage(
            topic: topic, key: key,
            id: DeadLetterHeaders.id(
                topic: position.topic, partition: position.partition.rawValue, offset: source.offset.rawValue),
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
