import Billing
import Contract
import Foundation
import Kafka
import Logging
import ServiceLifecycle
import Store

/// Applies the commands of `matomete.billing-cycles`: a close begins the
/// cycle's close (idempotently) and moves the stored offset past it; the
/// lines themselves are closed by every billing-cycle worker's ``CycleCloser``.
///
/// A close waits while an earlier cycle's close is still running. A close that
/// can never run (a cycle not ended yet, unless early closes are allowed, or
/// one with an earlier cycle still open) is dead-lettered with the reason.
struct CycleCommandApplier: BatchApplier {
    var store: BillingStore
    var allowEarlyClose: Bool
    var logger: Logger
    /// Now, as seconds since 1970 (a parameter for tests).
    var now: @Sendable () -> Int64 = { Int64(Date().timeIntervalSince1970) }

    func apply(
        _ messages: ArraySlice<KafkaConsumerMessage>, cursor: PartitionCursor, expectedOffset: Int64?
    ) async throws -> Int {
        var deadLetters: [OutboxMessage] = []
        var handled = 0
        commands: for message in messages {
            switch CycleCommand.decode(value: message.value) {
            case .deadLetter(let reason):
                deadLetters.append(DeadLetters.message(for: message, reason: reason, topic: store.topics.deadLetters))
            case .command(.close(let cycle)):
                let current = BillingCycle(containing: now())
                if !allowEarlyClose, cycle >= current {
                    deadLetters.append(
                        DeadLetters.message(
                            for: message, reason: "cycle \(cycle) has not ended yet (it is \(current) in Japan)",
                            topic: store.topics.deadLetters))
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
                        DeadLetters.message(for: message, reason: error.message, topic: store.topics.deadLetters))
                }
            }
            handled += 1
        }
        guard handled > 0 else { return 0 }
        let last = messages[messages.startIndex + handled - 1]
        try await store.apply(
            [], extraMessages: deadLetters, from: cursor, expectedOffset: expectedOffset, nextOffset: last.offset + 1)
        BatchTally(applied: handled - deadLetters.count, deadLettered: deadLetters.count).record(topic: cursor.topic)
        return handled
    }

}

/// Closes the lines of every cycle whose close has begun, chunk by chunk,
/// sharing the shards with every other billing-cycle worker: each chunk takes
/// a shard no one else holds at that moment. A crash loses at most one
/// chunk's transaction; the chunk that finishes the last shard settles.
///
/// `concurrency` chunks run at once here, each in its own shard and
/// transaction: a chunk spends most of its time waiting for PostgreSQL.
struct CycleCloser: Sendable {
    var store: BillingStore
    var chunkLines: Int
    var concurrency: Int = 1
    var readiness: Readiness
    var logger: Logger

    func run() async throws {
        while !Task.isShuttingDownGracefully, !Task.isCancelled {
            let cycles = try await retryingStore("list closing cycles", readiness: readiness, logger: logger) {
                try await store.closingCycles()
            }
            guard let cycle = cycles.first else {
                try? await Task.sleep(for: .milliseconds(250))
                continue
            }
            let clock = ContinuousClock()
            let started = clock.now
            let closedHere = try await withThrowingTaskGroup(of: Int.self) { group in
                for _ in 0..<concurrency { group.addTask { try await closeChunks(of: cycle) } }
                return try await group.reduce(0, +)
            }
            if closedHere > 0 {
                logger.info(
                    "Close work done here",
                    metadata: [
                        "cycle": "\(cycle)", "lines": "\(closedHere)",
                        "seconds": "\((clock.now - started).components.seconds)",
                    ])
            }
            try? await Task.sleep(for: .milliseconds(250))
        }
    }

    /// Closes chunks of `cycle` until every unfinished shard is in other hands
    /// (or none is left); returns the lines closed.
    private func closeChunks(of cycle: BillingCycle) async throws -> Int {
        var closed = 0
        while !Task.isShuttingDownGracefully, !Task.isCancelled {
            let chunk = try await retryingStore("close a chunk", readiness: readiness, logger: logger) {
                try await store.closeNextChunk(cycle, maxLines: chunkLines)
            }
            guard let (shard, progress) = chunk else { break }
            closed += progress.linesClosed
            WorkerMetrics.linesClosed(cycle: cycle.description).increment(by: progress.linesClosed)
            if progress.shardDone {
                logger.info("Shard closed", metadata: ["cycle": "\(cycle)", "shard": "\(shard)"])
            }
            if progress.settled {
                logger.notice("Cycle closed and settled", metadata: ["cycle": "\(cycle)"])
            }
        }
        return closed
    }
}
