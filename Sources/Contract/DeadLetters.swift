import Foundation

/// The headers of a message on the dead-letter topic: where the original
/// message was read and why it could not be applied. Its key and value are
/// the original's, byte for byte (a key that is not text is in a header).
public enum DeadLetterHeaders {
    /// The topic the original message was read from.
    public static let sourceTopic = "matomete-source-topic"
    /// Its partition, in decimal.
    public static let sourcePartition = "matomete-source-partition"
    /// Its offset, in decimal.
    public static let sourceOffset = "matomete-source-offset"
    /// Why it was dead-lettered: a sentence, at most 500 bytes, no control characters.
    public static let error = "matomete-error"
    /// The original key in base64, when it was not UTF-8 text without NUL.
    public static let originalKeyBase64 = "matomete-original-key-base64"
    /// Set (`true`) when the original was too large to forward whole: the
    /// value (and key) are cut to ``maximumValueBytes`` (``maximumKeyBytes``).
    public static let truncated = "matomete-truncated"
    /// With ``truncated``: the original value's size in bytes.
    public static let originalSize = "matomete-original-size"
    /// With ``truncated``: the SHA-256 of the original value, hex.
    public static let originalSHA256 = "matomete-original-sha256"
    /// With ``truncated``: the original key's size in bytes.
    public static let originalKeySize = "matomete-original-key-size"
    /// The most of a value a dead letter carries (512 KiB): with its key and
    /// headers it stays well under what a relay publishes (1,000,000 bytes).
    public static let maximumValueBytes = 512 * 1024
    /// The most of a key a dead letter carries.
    public static let maximumKeyBytes = 1024
    /// On a replayed message: the id of the dead letter it came from.
    public static let replayedFrom = "matomete-replayed-from"
    /// The original's headers a dead letter keeps, as they were (when each
    /// is UTF-8 text of at most 128 bytes): its signature, so that the
    /// sender's developers see which key signed it, and a replay carries it.
    public static let keptFromOriginal = ["matomete-key-id", "matomete-timestamp", "matomete-signature"]

    /// The stable id of the dead letter for the message at this position
    /// (also its `id` header).
    public static func id(topic: String, partition: Int32, offset: Int64) -> String {
        "dead-letter-\(topic)-\(partition)-\(offset)"
    }
}

/// A message read back from the dead-letter topic.
public struct DeadLetter: Sendable {
    /// Its id (`dead-letter-<topic>-<partition>-<offset>`).
    public var id: String
    /// The dead-letter topic's partition it sits in.
    public var partition: Int32
    /// Its offset there.
    public var offset: Int64
    /// When it was written there.
    public var timestamp: Date?
    /// The topic the original message was read from.
    public var sourceTopic: String
    /// The original's partition, when the header holds a number.
    public var sourcePartition: Int32?
    /// The original's offset, when the header holds a number.
    public var sourceOffset: Int64?
    /// Why it was dead-lettered.
    public var reason: String
    /// The original's size in bytes when only a prefix of it was kept
    /// (``DeadLetterHeaders/truncated``); `nil` when the value is whole.
    public var truncatedFrom: Int?
    /// The original key, byte for byte.
    public var key: [UInt8]?
    /// The original value, byte for byte.
    public var value: [UInt8]
    /// The original's headers kept (``DeadLetterHeaders/keptFromOriginal``), by name.
    public var originalHeaders: [(name: String, value: String)]

    /// Reads a message of the dead-letter topic from its parts; `nil` when it
    /// lacks the headers a worker writes (it was not put there by Matomete).
    public init?(
        header: (String) -> [UInt8]?, key: [UInt8]?, value: [UInt8], partition: Int32, offset: Int64,
        timestamp: Date?
    ) {
        func text(_ name: String) -> String? { header(name).map { String(decoding: $0, as: UTF8.self) } }
        guard let topic = text(DeadLetterHeaders.sourceTopic) else { return nil }
        sourceTopic = topic
        sourcePartition = text(DeadLetterHeaders.sourcePartition).flatMap { Int32($0) }
        sourceOffset = text(DeadLetterHeaders.sourceOffset).flatMap { Int64($0) }
        reason = text(DeadLetterHeaders.error) ?? ""
        truncatedFrom =
            text(DeadLetterHeaders.truncated) == "true"
            ? text(DeadLetterHeaders.originalSize).flatMap { Int($0) } ?? -1 : nil
        id =
            text("id")
            ?? DeadLetterHeaders.id(topic: topic, partition: sourcePartition ?? -1, offset: sourceOffset ?? -1)
        self.partition = partition
        self.offset = offset
        self.timestamp = timestamp
        self.value = value
        originalHeaders = DeadLetterHeaders.keptFromOriginal.compactMap { name in text(name).map { (name, $0) } }
        if let encoded = text(DeadLetterHeaders.originalKeyBase64), let bytes = Data(base64Encoded: encoded) {
            self.key = Array(bytes)
        } else {
            self.key = key
        }
    }
}
