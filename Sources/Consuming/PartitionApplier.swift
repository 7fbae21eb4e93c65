import Kafka

/// What a consumer's partitions are applied to: the store, through one kind
/// of worker's rules. The engine decides when and how much to apply; the
/// applier decides what a message means and writes it.
public protocol PartitionApplier: Sendable {
    /// What the applier makes of one message before any database work
    /// (decoded, its authorization checked). Made once per message and kept
    /// with it however often its batch is retried, combined or split.
    associatedtype Prepared: Sendable

    /// Reads `message` for the rules. Pure CPU work: no I/O.
    func prepare(_ message: KafkaConsumerMessage) -> Prepared

    /// The next offset to apply in `partition`, as last committed by a batch;
    /// `nil` when none ever was.
    func storedOffset(of partition: KafkaTopicPartition) async throws -> KafkaOffset?

    /// Whether ``apply(_:)`` can take several partitions' batches at once;
    /// when not, it is always given one.
    var appliesTogether: Bool { get }

    /// Applies the batches in one transaction that also moves each one's
    /// stored offset by compare-and-set from its ``PreparedBatch/expectedOffset``:
    /// all of them or none.
    ///
    /// - Returns: how many messages of each batch, from the first, were
    ///   applied. Fewer than all means the next one has to wait; it is offered
    ///   again a little later.
    func apply(_ batches: [PreparedBatch<Prepared>]) async throws -> [Int]

    /// Moves the stored offset past `message` from `expectedOffset`, with
    /// nothing applied but its dead letter (the database refused its content
    /// for `reason`).
    func deadLetter(_ message: KafkaConsumerMessage, reason: String, expectedOffset: KafkaOffset?) async throws

    /// What a thrown error means for the batch that threw it.
    func failure(of error: any Error) -> ApplyFailure
}

/// Why a batch was not applied, as far as the engine needs to know.
public enum ApplyFailure: Sendable, Equatable {
    /// The stored offset was not the one expected: another worker applied
    /// the partition meanwhile. The partition re-reads it.
    case staleOffset
    /// The database refused the content of a message in the batch; `reason`
    /// says what it refused. Retrying the same batch fails again.
    case refusedContent(reason: String)
    /// Another transaction changed what the batch read before it could write
    /// (for example, claimed an id the batch was adding): nothing was
    /// applied; the batch runs again at once and sees the change.
    case raced
    /// A lost connection, a restart: retrying will succeed in time. Retried
    /// with backoff for as long as it takes.
    case transient
    /// An error that is neither clearly passing nor clearly the content's
    /// fault (a trigger's exception, an internal error), with its SQLSTATE
    /// `code`. Retried with backoff 5 times in a row; then treated as refused
    /// content (`reason`): the batch is halved until the message is found,
    /// and dead-lettered with the error, so that it cannot hold up its
    /// partition. The same code again from the next message right after such
    /// a dead letter is the database's fault, not the message's: retried
    /// with backoff until it passes, never dead-lettered.
    case unexpected(reason: String, code: String)
}

/// One message read and what the applier made of it (once).
public struct PendingMessage<Prepared: Sendable>: Sendable {
    /// The message as read.
    public var message: KafkaConsumerMessage
    /// What ``PartitionApplier/prepare(_:)`` returned; `nil` until it ran.
    public var prepared: Prepared?

    /// A message not prepared yet.
    public init(_ message: KafkaConsumerMessage, prepared: Prepared? = nil) {
        self.message = message
        self.prepared = prepared
    }

    /// The message's offset.
    public var offset: KafkaOffset { message.offset }
}

/// One partition's messages for ``PartitionApplier/apply(_:)``, in offset order.
public struct PreparedBatch<Prepared: Sendable>: Sendable {
    /// The partition read.
    public var partition: KafkaTopicPartition
    /// The messages and what each was prepared into.
    public var messages: [(message: KafkaConsumerMessage, prepared: Prepared)]
    /// The stored offset the batch starts from (`nil`: none stored yet).
    public var expectedOffset: KafkaOffset?

    /// Names a batch.
    public init(
        partition: KafkaTopicPartition, messages: [(message: KafkaConsumerMessage, prepared: Prepared)],
        expectedOffset: KafkaOffset?
    ) {
        self.partition = partition
        self.messages = messages
        self.expectedOffset = expectedOffset
    }

    /// The stored offset once every message is applied: one past the last.
    public var nextOffset: KafkaOffset { (messages.last?.message.offset).map { $0 + 1 } ?? expectedOffset ?? 0 }
}
