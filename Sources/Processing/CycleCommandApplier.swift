import Billing
import Consuming
import Contract
import Foundation
import Kafka
import Logging
import Store

/// Applies the commands of `matomete.billing-cycles`: a close begins the
/// cycle's close (idempotently) and moves the stored offset past it; the
/// lines themselves are closed by every billing-cycle worker's ``CycleCloser``.
///
/// A close waits while an earlier cycle's close is still running. A close that
/// can never run (a cycle not ended yet, unless early closes are allowed, or
/// one with an earlier cycle still open) is dead-lettered with the reason.
public struct CycleCommandApplier: StoreApplier {
    var store: BillingStore
    var group: String
    var topics: Topics
    var allowEarlyClose: Bool
    var logger: Logger
    /// Now, as seconds since 1970 (a parameter for tests).
    var now: @Sendable () -> Int64 = { Int64(Date().timeIntervalSince1970) }

    /// An applier of the commands read by `group`; closes of a cycle not
    /// ended yet are refused unless `allowEarlyClose` (tests and demos); of a
    /// month that has not begun, always.
    public init(store: BillingStore, group: String, topics: Topics, allowEarlyClose: Bool, logger: Logger) {
        self.store = store
        self.group = group
        self.topics = topics
        self.allowEarlyClose = allowEarlyClose
        self.logger = logger
    }

    /// One partition at a time: a close waits for the one before it.
    public var appliesTogether: Bool { false }

    /// Decodes the command.
    public func prepare(_ message: KafkaConsumerMessage) -> DecodedCycleCommand {
        CycleCommand.decode(value: message.value)
    }

    /// Applies the one partition's commands.
    public func apply(_ batches: [PreparedBatch<DecodedCycleCommand>]) async throws -> [Int] {
        // Always one: this applier takes one partition at a time.
        [try await apply(batches[0])]
    }

    private func apply(_ batch: PreparedBatch<DecodedCycleCommand>) async throws -> Int {
        var deadLetters: [OutboxMessage] = []
        var handled = 0
        commands: for (message, decoded) in batch.messages {
            switch decoded {
            case .deadLetter(let reason):
                deadLetters.append(DeadLetters.message(for: message, reason: reason, topic: topics.deadLetters))
            case .command(.close(let cycle)):
                let current = BillingCycle(containing: now())
                // A month that has not begun is never closed: lines would be billed before their month.
                if cycle > current || (!allowEarlyClose && cycle == current) {
                    let state = cycle > current ? "has not begun" : "has not ended yet"
                    deadLetters.append(
                        DeadLetters.message(
                            for: message, reason: "cycle \(cycle) \(state) (it is \(current) in Japan)",
                            topic: topics.deadLetters))
                    break
                }
                if let running = try await store.closingCycles().first(where: { $0 < cycle }) {
                    logger.info(
                        "Close waits for the running close of an earlier cycle",
                        metadata: ["cycle": "\(cycle)", "running": "\(running)"])
                    break commands
                }
                do {
                    let status = try await store.startClose(cycle)
                    logger.info(
                        "Cycle close requested",
                        metadata: [
                            "cycle": "\(cycle)", "shards": "\(status.shardCount)", "closed": "\(status.isClosed)",
                        ])
                } catch let error as StoreError where error.code == .cycleOutOfOrder {
                    deadLetters.append(
                        DeadLetters.message(for: message, reason: error.message, topic: topics.deadLetters))
                }
            }
            handled += 1
        }
        guard handled > 0 else { return 0 }
        let last = batch.messages[handled - 1].message
        try await store.moveOffsets(
            [OffsetMove(cursor(batch.partition), from: batch.expectedOffset?.rawValue, to: last.offset.rawValue + 1)],
            publishing: deadLetters)
        BatchTally(applied: handled - deadLetters.count, deadLettered: deadLetters.count).record(
            topic: batch.partition.topic)
        return handled
    }
}
