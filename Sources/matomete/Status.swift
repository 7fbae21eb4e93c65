import ArgumentParser
import Billing
import Contract
import Foundation
import Kafka
import ServerKit
import Store

struct Status: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Where the system stands: lag per group and partition, closes, outbox backlog, dead letters.",
        discussion: """
            Lag is what a group has not applied yet: the partition's end less the position the \
            workers stored with the state they wrote (the truth on restart, not Kafka's committed \
            offset). Exits 0 when it could read everything, 69 when Kafka or PostgreSQL cannot be \
            reached.
            """)
    @OptionGroup var cluster: ClusterOptions
    @OptionGroup var database: DatabaseOptions
    @OptionGroup var output: OutputOptions
    @Flag(help: "A row for every partition (otherwise one per group and topic, with its most lagging partition).")
    var partitions = false

    struct PartitionLag: Encodable {
        var group: String
        var topic: String
        var partition: Int32
        /// The next offset to apply; nil when the group never applied this partition.
        var appliedUpTo: Int64?
        var end: Int64
        var lag: Int64
        var updatedAt: Date?
    }

    struct Close: Encodable {
        var cycle: String
        var status: String
        var shards: Int
        var shardsDone: Int
        var linesClosed: Int64
        var linesLeft: Int64
        var requestedAt: Date
        var closedAt: Date?
    }

    struct Outbox: Encodable {
        var topic: String
        var messages: Int64
        var oldest: Date?
    }

    struct Report: Encodable {
        var lag: [PartitionLag]
        var closes: [Close]
        var outbox: [Outbox]
        /// Messages Kafka refused for good, set aside in `outbox_parked`.
        var parked: Int64
        var deadLetters: Int64
    }

    func run() async throws {
        try await Exit.mapping {
            let report = try await gather()
            if output.json { return try output.print(report) }
            show(report)
        }
    }

    private func gather() async throws -> Report {
        let topics = cluster.topics
        let admin = try cluster.admin()
        let inputs: [(String, WorkerRole)] = [
            (topics.charges, .chargeWorker), (topics.cancellations, .cancellationWorker),
            (topics.billingCycles, .billingCycleWorker), (topics.collections, .collectionWorker),
        ]
        let inputPartitions = try await admin.partitions(of: inputs.map(\.0))
        let ranges = try await admin.watermarks(
            inputPartitions + (try await admin.partitions(of: [topics.deadLetters])))
        let (positions, closes, outbox, parked) = try await database.withStore { store in
            let closes = try await store.recentCloses()
            var left: [BillingCycle: Int64] = [:]
            for close in closes where !close.status.isClosed {
                left[close.status.cycle] = try await store.linesWithOpenCycle(close.status.cycle)
            }
            return (
                try await store.storedPositions(), closes.map { ($0, left[$0.status.cycle] ?? 0) },
                try await store.outboxSummary(), try await store.parkedMessages()
            )
        }
        var lag: [PartitionLag] = []
        for (topic, role) in inputs {
            let stored = positions.filter { $0.topic == topic }
            let groups = Set(stored.map(\.group)).sorted()
            for group in groups.isEmpty ? ["matomete-\(role.rawValue)"] : groups {
                for partition in inputPartitions where partition.topic == topic {
                    let held = ranges[partition] ?? 0..<0
                    let range = held.lowerBound.rawValue..<held.upperBound.rawValue
                    let position = stored.first { $0.group == group && $0.partition == partition.partition.rawValue }
                    lag.append(
                        PartitionLag(
                            group: group, topic: topic, partition: partition.partition.rawValue,
                            appliedUpTo: position?.nextOffset, end: range.upperBound,
                            lag: max(0, range.upperBound - max(position?.nextOffset ?? 0, range.lowerBound)),
                            updatedAt: position?.updatedAt))
                }
            }
        }
        return Report(
            lag: lag,
            closes: closes.map { close, left in
                Close(
                    cycle: close.status.cycle.description,
                    status: close.status.isClosed ? "closed" : close.status.isSettling ? "settling" : "closing",
                    shards: close.status.shardCount, shardsDone: close.status.shardsDone,
                    linesClosed: close.status.linesClosed, linesLeft: left, requestedAt: close.requestedAt,
                    closedAt: close.closedAt)
            },
            outbox: outbox.map { Outbox(topic: $0.topic, messages: $0.messages, oldest: $0.oldest) }, parked: parked,
            deadLetters: ranges.filter { $0.key.topic == topics.deadLetters }.values.reduce(0) {
                $0 + Int64($1.count)
            })
    }

    private func show(_ report: Report) {
        say("Consumer groups (lag: messages not yet applied)")
        if partitions {
            printTable(
                header: ["group", "topic", "partition", "applied up to", "end", "lag", "updated"],
                rows: report.lag.map {
                    [
                        $0.group, $0.topic, "\($0.partition)", $0.appliedUpTo?.formatted() ?? "—",
                        $0.end.formatted(), $0.lag.formatted(), ago($0.updatedAt),
                    ]
                })
        } else {
            var rows: [[String]] = []
            var seen = Set<String>()
            for row in report.lag where seen.insert("\(row.group) \(row.topic)").inserted {
                let group = report.lag.filter { $0.group == row.group && $0.topic == row.topic }
                let worst = group.max { $0.lag < $1.lag }!
                rows.append([
                    row.group, row.topic, "\(group.count)", group.reduce(0) { $0 + $1.lag }.formatted(),
                    worst.lag == 0 ? "—" : "\(worst.partition) (\(worst.lag.formatted()))",
                    ago(group.compactMap(\.updatedAt).max()),
                ])
            }
            printTable(
                header: ["group", "topic", "partitions", "lag", "most behind", "last applied"], rows: rows)
        }
        say("")
        say("Cycle closes")
        if report.closes.isEmpty {
            say("none yet")
        } else {
            printTable(
                header: ["cycle", "status", "shards done", "lines closed", "lines left", "requested", "took"],
                rows: report.closes.map { close in
                    [
                        close.cycle, close.status, "\(close.shardsDone)/\(close.shards)", close.linesClosed.formatted(),
                        close.linesLeft.formatted(), ago(close.requestedAt),
                        close.closedAt.map { duration($0.timeIntervalSince(close.requestedAt)) } ?? "running",
                    ]
                })
        }
        say("")
        let waiting = report.outbox.reduce(0) { $0 + $1.messages }
        if waiting == 0 {
            say("Outbox: empty (everything written has been published)")
        } else {
            say("Outbox: \(waiting.formatted()) messages waiting for the relay")
            printTable(
                header: ["topic", "waiting", "oldest"],
                rows: report.outbox.map { [$0.topic, $0.messages.formatted(), ago($0.oldest)] })
        }
        if report.parked > 0 {
            say(
                "Set aside: \(report.parked.formatted()) messages Kafka refused for good (too large, invalid); in outbox_parked with the error"
            )
        }
        say("")
        say(
            report.deadLetters == 0
                ? "Dead letters: none"
                : "Dead letters: \(report.deadLetters.formatted()) on \(cluster.topics.deadLetters) (see `matomete dead-letters list`)"
        )
    }
}

/// "12 s ago", "3 min ago", "2 h ago", "4 d ago"; "—" for none.
func ago(_ date: Date?) -> String {
    guard let date else { return "—" }
    return duration(Date().timeIntervalSince(date)) + " ago"
}

func duration(_ seconds: TimeInterval) -> String {
    let seconds = max(0, Int(seconds))
    switch seconds {
    case ..<120: return "\(seconds) s"
    case ..<7_200: return "\(seconds / 60) min"
    case ..<172_800: return "\(seconds / 3_600) h"
    default: return "\(seconds / 86_400) d"
    }
}
