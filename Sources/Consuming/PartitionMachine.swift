import Kafka
import ServerKit

/// One partition's state inside a consumer: what was read, what is stored,
/// and how its next batch runs. Pure: it reads no clock and does no I/O; the
/// consumer's loop asks it what to do and tells it what happened.
struct PartitionMachine<Prepared: Sendable> {
    /// How reading the partition stands.
    enum Reading: Equatable {
        /// The next message is the first of a read from `expected` (`nil`:
        /// from the beginning): wherever it lands, that is where the log goes on.
        case fresh(expected: KafkaOffset?)
        /// Messages follow one another from `expected`.
        case following(expected: KafkaOffset)
        /// A message arrived past `expected`: later ones are ignored until the
        /// partition is read again from `expected`.
        case gap(expected: KafkaOffset, received: KafkaOffset)

        /// The next offset the partition should hand over.
        var expected: KafkaOffset? {
            switch self {
            case .fresh(let expected): expected
            case .following(let expected), .gap(let expected, _): expected
            }
        }
    }

    /// When the partition's next batch may run.
    enum Schedule: Equatable {
        /// As soon as it has messages.
        case ready
        /// A batch of it is being applied.
        case applying
        /// Not before this instant (a failed batch's backoff, or a message that has to wait).
        case waiting(until: ContinuousClock.Instant)
    }

    /// Smaller batches, to find the message whose content the database refuses.
    struct Isolation: Equatable {
        /// Through this offset batches hold at most `size` messages.
        var through: KafkaOffset
        var size: Int
        /// A batch of one was refused: this message goes to the dead letters.
        var refused: (offset: KafkaOffset, reason: String)?

        static func == (lhs: Self, rhs: Self) -> Bool {
            lhs.through == rhs.through && lhs.size == rhs.size && lhs.refused?.offset == rhs.refused?.offset
                && lhs.refused?.reason == rhs.refused?.reason
        }
    }

    /// The stored offset as last known: the next message to apply (`nil`: none stored yet).
    private(set) var stored: KafkaOffset?
    /// Messages read and not yet applied, in offset order, without gaps.
    private(set) var backlog: [PendingMessage<Prepared>] = []
    private(set) var reading: Reading
    private(set) var schedule: Schedule = .ready
    private(set) var isolation: Isolation?
    /// The stored offset may have moved without this machine knowing (a
    /// commit whose answer was lost, another worker, a rollback shared with
    /// other partitions' batches): read it before the next batch, which runs alone.
    private(set) var resync = false
    /// Batches failed in a row with an unexpected database error.
    var unexpectedFailures = 0
    /// The SQLSTATE of the unexpected error whose message was just dead-lettered, until a batch applies.
    var deadLetteredCode: String?
    /// Failed batches in a row.
    private(set) var failures = 0
    /// Fetching is paused because the backlog is long.
    private(set) var paused = false
    /// The offset last committed to Kafka (for lag tools only).
    private(set) var committed: KafkaOffset?

    /// A partition whose reading starts at the stored offset `stored`.
    init(stored: KafkaOffset?) {
        self.stored = stored
        reading = .fresh(expected: stored)
    }

    // MARK: Reading

    /// What receiving a message showed, for the log.
    enum Received: Equatable {
        case kept
        /// Read before, or applied already.
        case ignored
        /// Past a gap: the partition must be read again from `expected`.
        case gap(expected: KafkaOffset, received: KafkaOffset)
        /// The first message of a fresh read is past where it started: the
        /// log itself does not hold these offsets.
        case missingInLog(Range<KafkaOffset>)
    }

    /// Keeps a message read from the partition once, in offset order, and
    /// never past a gap.
    mutating func receive(_ message: KafkaConsumerMessage) -> Received {
        let offset = message.offset
        var received = Received.kept
        switch reading {
        case .gap:
            return .ignored
        case .following(let expected):
            if offset < expected { return .ignored }
            if offset > expected {
                reading = .gap(expected: expected, received: offset)
                return .gap(expected: expected, received: offset)
            }
        case .fresh(let expected?):
            if offset < expected { return .ignored }
            if offset > expected { received = .missingInLog(expected..<offset) }
        case .fresh(nil):
            break
        }
        backlog.append(PendingMessage(message))
        reading = .following(expected: offset + 1)
        return received
    }

    /// Where the partition must be read again from, while it waits at a gap.
    var rereadFrom: KafkaOffset? {
        if case .gap(let expected, _) = reading { expected } else { nil }
    }

    /// The partition is being read again from where it was expected.
    mutating func readingAgain() {
        guard case .gap(let expected, _) = reading else { return }
        reading = .fresh(expected: expected)
    }

    // MARK: Applying

    /// The batch this partition would run now, if any.
    func nextBatch(batchSize: Int, now: ContinuousClock.Instant) -> PartitionWork<Prepared>? {
        guard let first = backlog.first else { return nil }
        switch schedule {
        case .applying: return nil
        case .waiting(let until) where until > now: return nil
        case .ready, .waiting: break
        }
        if let refused = isolation?.refused, first.offset == refused.offset {
            return PartitionWork(
                messages: [first], expectedOffset: stored, resync: resync, deadLetter: refused.reason,
                runsAlone: true)
        }
        let isolating = isolation.map { first.offset <= $0.through } ?? false
        let size = isolating ? isolation!.size : batchSize
        return PartitionWork(
            messages: Array(backlog.prefix(size)), expectedOffset: stored, resync: resync, deadLetter: nil,
            runsAlone: resync || isolating)
    }

    /// The batch was handed to the applier.
    mutating func started() {
        schedule = .applying
    }

    /// What a finished batch tells the consumer, for its log and metrics.
    enum Finished: Equatable {
        case applied
        case staleOffset
        case raced
        case isolating(through: KafkaOffset, size: Int)
        case deadLettering(offset: KafkaOffset)
        case failed(attempt: Int, retryIn: Duration)
        case rolledBackTogether
    }

    /// Takes in how `work` ended. `prepared` is what the applier made of its
    /// messages, kept for the batches that follow.
    mutating func finished(
        _ work: PartitionWork<Prepared>, _ outcome: BatchOutcome, prepared: [Prepared]?, now: ContinuousClock.Instant,
        waitRetry: Duration
    ) -> Finished {
        if let prepared, outcome != .applied(stored: work.messages.last.map { $0.offset + 1 }, waiting: false) {
            // Some of them will be offered again.
            remember(prepared, of: work)
        }
        schedule = .ready
        switch outcome {
        case .applied(let newStored, let waiting):
            advance(to: newStored)
            failures = 0
            unexpectedFailures = 0
            if work.deadLetter == nil { deadLetteredCode = nil }
            resync = false
            if waiting { schedule = .waiting(until: now + waitRetry) }
            return .applied
        case .failed(.staleOffset):
            resync = true
            return .staleOffset
        case .failed(.raced):
            // Nothing was applied and the stored offset did not move: at once, again.
            return .raced
        case .rolledBackTogether:
            // Perhaps its own stale offset, perhaps another's refused content:
            // alone, from the stored offset, it finds out.
            resync = true
            return .rolledBackTogether
        case .failed(.refusedContent(let reason)) where work.deadLetter == nil:
            return isolate(work, reason: reason)
        case .failed(.unexpected(let reason, let code))
        where work.deadLetter == nil && deadLetteredCode != code
            && (isolation != nil || unexpectedFailures + 1 >= Self.unexpectedFailureAttempts):
            // Retried enough, or already narrowing down: as if the content were refused, so that one
            // message cannot stop the partition.
            unexpectedFailures += 1
            failures += 1
            resync = true
            let finished = isolate(work, reason: reason)
            if case .deadLettering = finished { deadLetteredCode = code }
            return finished
        case .failed(.unexpected) where work.deadLetter == nil:
            // Within its retries, or the same error as the dead letter just before: waited out.
            unexpectedFailures += 1
            failures += 1
            resync = true
            let backoff = Retrying.delay(attempt: failures)
            schedule = .waiting(until: now + backoff)
            return .failed(attempt: failures, retryIn: backoff)
        case .failed(.transient), .failed(.refusedContent), .failed(.unexpected):
            // A dead letter refused too is retried like a lost connection.
            failures += 1
            resync = true
            let backoff = Retrying.delay(attempt: failures)
            schedule = .waiting(until: now + backoff)
            return .failed(attempt: failures, retryIn: backoff)
        }
    }

    /// Failures in a row of a batch with an unexpected error
    /// (``ApplyFailure/unexpected(reason:)``) after which it is isolated as if
    /// its content were refused: about 3 seconds of backoff in all.
    static var unexpectedFailureAttempts: Int { 5 }

    /// Halves `work` to find the message whose content is refused for `reason`; a batch of one is dead-lettered.
    private mutating func isolate(_ work: PartitionWork<Prepared>, reason: String) -> Finished {
        guard work.messages.count > 1, let last = work.messages.last else {
            let offset = work.messages[0].offset
            let through = max(offset, isolation?.through ?? offset)
            isolation = Isolation(through: through, size: 1, refused: (offset, reason))
            return .deadLettering(offset: offset)
        }
        let size = max(1, work.messages.count / 2)
        isolation = Isolation(through: max(last.offset, isolation?.through ?? last.offset), size: size)
        return .isolating(through: isolation!.through, size: size)
    }

    /// The stored offset moved to `newStored`: what is before it leaves the backlog.
    private mutating func advance(to newStored: KafkaOffset?) {
        guard let newStored else { return }
        stored = newStored
        let applied = backlog.prefix { $0.offset < newStored }.count
        backlog.removeFirst(applied)
        // Another worker may have applied further than this one has read:
        // what lies before the stored offset is not wanted any more.
        switch reading {
        case .following(let expected) where newStored > expected:
            reading = .following(expected: newStored)
        case .gap(let expected, let received) where newStored > expected:
            reading = .gap(expected: newStored, received: received)
        case .fresh(let expected) where expected.map { newStored > $0 } ?? true:
            reading = .fresh(expected: newStored)
        default:
            break
        }
        if let isolation, newStored > isolation.through {
            self.isolation = nil
        } else if let refused = isolation?.refused, newStored > refused.offset {
            isolation?.refused = nil
        }
    }

    /// Keeps what the applier made of the batch's messages with them.
    private mutating func remember(_ prepared: [Prepared], of work: PartitionWork<Prepared>) {
        guard let start = backlog.firstIndex(where: { $0.offset == work.messages.first?.offset }) else { return }
        for (index, value) in zip(start..<backlog.endIndex, prepared) where backlog[index].prepared == nil {
            backlog[index].prepared = value
        }
    }

    // MARK: Flow and offsets

    /// Pause when the backlog holds `4 × batchSize` messages, resume once it is below `batchSize`.
    mutating func flowControl(batchSize: Int) -> Bool? {
        if !paused, backlog.count >= 4 * batchSize {
            paused = true
            return true
        }
        if paused, backlog.count < batchSize {
            paused = false
            return false
        }
        return nil
    }

    /// The stored offset, when Kafka has not been told it yet.
    var uncommitted: KafkaOffset? {
        guard let stored, stored != committed else { return nil }
        return stored
    }

    mutating func committed(_ offset: KafkaOffset) {
        committed = offset
    }
}

/// One partition's batch as the machine plans it.
struct PartitionWork<Prepared: Sendable>: Sendable {
    var messages: [PendingMessage<Prepared>]
    /// The stored offset the batch starts from, as the machine knows it.
    var expectedOffset: KafkaOffset?
    /// Read the stored offset first, and apply only what lies past it.
    var resync: Bool
    /// Dead-letter the one message for this reason instead of applying it.
    var deadLetter: String?
    /// Not to share a transaction with other partitions' batches.
    var runsAlone: Bool
}

/// How one partition's batch ended.
enum BatchOutcome: Sendable, Equatable {
    /// Committed: the stored offset is now `stored`. `waiting`: fewer messages
    /// than offered were applied, the next one waits a little.
    case applied(stored: KafkaOffset?, waiting: Bool)
    /// Rolled back because another partition's batch in the same transaction failed.
    case rolledBackTogether
    case failed(ApplyFailure)
}
