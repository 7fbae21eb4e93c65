import Billing
import Foundation
import PostgresNIO

/// Where one consumer group has applied one partition up to, as the workers
/// stored it with the state it produced.
public struct StoredPosition: Sendable, Hashable {
    /// The consumer group.
    public var group: String
    /// The topic's name, with its prefix.
    public var topic: String
    /// The partition's number, from 0.
    public var partition: Int32
    /// The offset of the next message to apply.
    public var nextOffset: Int64
    /// When a batch last moved the offset.
    public var updatedAt: Date
}

/// What the outbox holds.
public struct OutboxSummary: Sendable, Hashable {
    /// The topic the messages are for.
    public var topic: String
    /// How many messages for the topic wait to be published (or acknowledged).
    public var messages: Int64
    /// When the oldest unpublished message was written.
    public var oldest: Date?
}

/// One cycle's close: what has begun, how far each of its shards is.
public struct CloseProgress: Sendable, Hashable {
    /// The cycle, its shards done out of how many, the lines billed so far, and whether it is closed.
    public var status: CloseStatus
    /// When the close began.
    public var requestedAt: Date
    /// When the settlements were published and the cycle closed; `nil` while it is closing.
    public var closedAt: Date?
}

extension BillingStore {
    /// Every stored consumer position, by group, topic and partition.
    public func storedPositions() async throws -> [StoredPosition] {
        try await client.fetch(
            """
            SELECT consumer_group, topic, partition, next_offset, updated_at FROM consumer_offsets
            ORDER BY consumer_group, topic, partition
            """, (String, String, Int32, Int64, Date).self, logger: logger
        ).map { StoredPosition(group: $0, topic: $1, partition: $2, nextOffset: $3, updatedAt: $4) }
    }

    /// The unpublished messages per topic.
    public func outboxSummary() async throws -> [OutboxSummary] {
        try await client.fetch(
            "SELECT topic, count(*)::bigint, min(created_at) FROM outbox GROUP BY topic ORDER BY topic",
            (String, Int64, Date?).self, logger: logger
        ).map { OutboxSummary(topic: $0, messages: $1, oldest: $2) }
    }

    /// The latest `limit` closes, newest first, with their progress.
    public func recentCloses(limit: Int = 6) async throws -> [CloseProgress] {
        let rows = try await client.fetch(
            """
            SELECT c.cycle, c.shard_count, c.shards_done, c.status, coalesce(sum(s.lines_closed), 0)::bigint,
                   c.requested_at, c.closed_at
            FROM cycle_closes c LEFT JOIN cycle_close_shards s ON s.cycle = c.cycle
            GROUP BY c.cycle ORDER BY c.cycle DESC LIMIT \(limit)
            """, (String, Int, Int, String, Int64, Date, Date?).self, logger: logger)
        return rows.compactMap { cycle, count, done, status, lines, requested, closed in
            BillingCycle(cycle).map {
                CloseProgress(
                    status: CloseStatus(
                        cycle: $0, shardCount: count, shardsDone: done, linesClosed: lines,
                        isSettling: status == "settling", isClosed: status == "closed"),
                    requestedAt: requested, closedAt: closed)
            }
        }
    }

    /// Lines whose cycle `cycle` is open: what a close of `cycle` has to bill.
    public func linesWithOpenCycle(_ cycle: BillingCycle) async throws -> Int64 {
        try await client.fetch(
            "SELECT count(*)::bigint FROM lines WHERE open_cycle = \(cycle.description)", Int64.self,
            logger: logger
        ).first ?? 0
    }
}
