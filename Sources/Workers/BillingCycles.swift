import Billing
import Consuming
import Contract
import Foundation
import Kafka
import Logging
import Processing
import ServerKit
import ServiceLifecycle
import Store

/// Closes the lines of every cycle whose close has begun, chunk by chunk,
/// sharing the shards with every other billing-cycle worker: each chunk takes
/// a shard no one else holds at that moment. A crash loses at most one
/// chunk's transaction. Once every line is billed, one worker settles the
/// cycle, once, in a transaction of its own.
///
/// `concurrency` chunks run at once here, each in its own shard and
/// transaction: a chunk spends most of its time waiting for PostgreSQL.
struct CycleCloser: Sendable {
    var store: BillingStore
    /// What the close publishes.
    var publisher: CloseMessages
    var chunkLines: Int
    var concurrency: Int = 1
    /// The consumption tax rates by month, for tariffs that add tax.
    var tax: ConsumptionTax = .japan
    var readiness: Readiness
    var logger: Logger

    func run() async throws {
        while !Task.isShuttingDownGracefully, !Task.isCancelled {
            let cycles = try await Retrying.database("list closing cycles", readiness: readiness, logger: logger) {
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
            // Once every line is billed, one worker settles (the others find it done).
            let settled = try await Retrying.database("settle a cycle", readiness: readiness, logger: logger) {
                try await store.settle(cycle, publishing: publisher, tax: tax)
            }
            if settled { logger.notice("Cycle closed and settled", metadata: ["cycle": "\(cycle)"]) }
            try? await Task.sleep(for: .milliseconds(250))
        }
    }

    /// Closes chunks of `cycle` until every unfinished shard is in other hands
    /// (or none is left); returns the lines closed.
    private func closeChunks(of cycle: BillingCycle) async throws -> Int {
        var closed = 0
        while !Task.isShuttingDownGracefully, !Task.isCancelled {
            let chunk = try await Retrying.database("close a chunk", readiness: readiness, logger: logger) {
                try await store.closeNextChunk(cycle, maxLines: chunkLines, publishing: publisher)
            }
            guard let (shard, progress) = chunk else { break }
            closed += progress.linesClosed
            WorkerMetrics.linesClosed(cycle: cycle.description).increment(by: progress.linesClosed)
            if progress.shardDone {
                logger.info("Shard closed", metadata: ["cycle": "\(cycle)", "shard": "\(shard)"])
            }
            if progress.linesDone {
                logger.info("Every line of the cycle billed", metadata: ["cycle": "\(cycle)"])
            }
        }
        return closed
    }
}
