import Contract
import Crypto
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
        for name in DeadLetterHeaders.keptFromOriginal {
            if let bytes = source.header(name), bytes.count <= 128, let text = String(validating: bytes, as: UTF8.self)
            {
                headers[name] = printable(text)
            }
        }
        var key: String?
        var value = Array(source.value)
        var originalKey = source.key.map(Array.init)
        if value.count > DeadLetterHeaders.maximumValueBytes
            || (originalKey?.count ?? 0) > DeadLetterHeaders.maximumKeyBytes
        {
            // Too large to forward whole: a bounded, marked prefix. The original stays in its
            // source topic at the offset named (for that topic's retention).
            headers[DeadLetterHeaders.truncated] = "true"
            headers[DeadLetterHeaders.originalSize] = "\(value.count)"
            headers[DeadLetterHeaders.originalSHA256] = SHA256.hash(data: value).map { String(format: "%02x", $0) }
                .joined()
            headers[DeadLetterHeaders.originalKeySize] = "\(originalKey?.count ?? 0)"
            value = Array(value.prefix(DeadLetterHeaders.maximumValueBytes))
            originalKey = originalKey.map { Array($0.prefix(DeadLetterHeaders.maximumKeyBytes)) }
        }
        if let bytes = originalKey {
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
            payload: value, headers: headers)
    }

    /// The reason without control characters (JSON in the store cannot hold
    /// NUL) and at most 500 bytes: it may quote the offending input.
    static func printable(_ text: String) -> String {
        let cleaned = String(String.UnicodeScalarView(text.unicodeScalars.map { $0.value < 0x20 ? " " : $0 }))
        guard cleaned.utf8.count > 500 else { return cleaned }
        return String(decoding: cleaned.utf8.prefix(500), as: UTF8.self)
    }
}
