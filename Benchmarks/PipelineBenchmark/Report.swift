import BenchmarkSupport
import Foundation

/// Every figure of one run, and the table people read.
struct Report: Encodable {
    struct Machine: Encodable {
        var cores: Int
        var memoryGiB: Double
        var system: String

        static var current: Machine {
            let info = ProcessInfo.processInfo
            return Machine(
                cores: info.activeProcessorCount, memoryGiB: Double(info.physicalMemory) / 1_073_741_824,
                system: info.operatingSystemVersionString)
        }
    }

    struct Latency: Encodable {
        var offered: Int
        var seconds: Int
        var charges: Int
        var p50: Double
        var p99: Double
        var p999: Double
        var max: Double
        /// The same latencies, cut where the pipeline leaves a timestamp.
        var stages: [Stage]

        struct Stage: Encodable {
            var name: String
            var p50: Double
            var p99: Double
        }
    }

    /// One line flooded with refused charges; what other lines waited meanwhile (ms).
    struct HotLine: Encodable {
        struct Figures: Encodable {
            var p50: Double
            var p99: Double
            var max: Double
        }
        var flood: Int
        var victimsPerSecond: Int
        var refused: Int
        var samePartition: Figures
        var otherPartition: Figures
    }

    /// Payments applied by one collection worker, and the payout run that follows.
    struct Collection: Encodable {
        var bills: Int
        var paymentsPerSecond: Double
        /// Collection entries the payout run summed.
        var entries: Int
        var payoutSeconds: Double
        /// The payout run scaled to 15 million bills (it reads the period's entries once).
        var payoutSecondsFor15MillionBills: Double
    }

    struct Close: Encodable {
        var lines: Int
        var workers: Int
        var seconds: Double
        var linesPerSecond: Double
    }

    var machine: Machine
    var lines: Int
    var charges: Int
    var partitions: Int
    /// Limit (a), messages/s.
    var kafkaLimit: Double = 0
    /// Limit (b), charges/s (each a charge, an outbox row and an authorization row).
    var copyLimit: Double = 0
    /// Ed25519 authorization checks a second on one core (part of every charge).
    var verificationsPerCore: Double = 0
    /// HMAC-SHA256 request-signature checks a second on one core (part of every request).
    var signatureChecksPerCore: Double = 0
    /// Charges/s by charge-worker count.
    var pipeline: [Int: Double] = [:]
    var latency: Latency?
    var closes: [Close] = []
    var hotLine: HotLine?
    var collection: Collection?
    var peakMemoryMiB: [String: Double] = [:]

    var lowerLimit: Double { min(kafkaLimit, copyLimit) }

    var table: String {
        var lines: [String] = []
        func row(_ name: String, _ value: String, _ note: String = "") {
            lines.append(name.padding(toLength: 44, withPad: " ", startingAt: 0) + value.leftPadded(14) + "  " + note)
        }
        lines.append(
            "Matomete pipeline: \(self.lines.formatted()) lines, \(charges.formatted()) charges, \(partitions) partitions; "
                + "\(machine.cores) cores, \(String(format: "%.0f", machine.memoryGiB)) GiB")
        lines.append("")
        row("limit (a) Kafka consume→produce, raw C", rate(kafkaLimit) + " msg/s")
        row("limit (b) PostgreSQL COPY of the rows", rate(copyLimit) + " /s")
        row("authorization checks, one core", rate(verificationsPerCore) + " /s", "Ed25519, each charge needs one")
        row(
            "request signature checks, one core", rate(signatureChecksPerCore) + " /s",
            String(
                format: "HMAC; at the 1-worker rate, %.1f%% of one core",
                100 * (pipeline[1] ?? 0) / max(signatureChecksPerCore, 1)))
        for (workers, value) in pipeline.sorted(by: { $0.key < $1.key }) {
            row(
                "charges, \(workers) charge worker\(workers == 1 ? "" : "s")", rate(value) + " /s",
                String(format: "%.2f× the lower limit", value / max(lowerLimit, 1)))
        }
        if let latency {
            row("latency at \(latency.offered.formatted())/s, p50", String(format: "%.1f ms", latency.p50))
            row("latency p99", String(format: "%.1f ms", latency.p99))
            row("latency p99.9", String(format: "%.1f ms", latency.p999), String(format: "max %.1f ms", latency.max))
            for stage in latency.stages {
                row("  " + stage.name, String(format: "%.0f ms", stage.p50), String(format: "p99 %.0f ms", stage.p99))
            }
        }
        for close in closes {
            row(
                "close \(close.lines.formatted()) lines, \(close.workers) worker\(close.workers == 1 ? "" : "s")",
                rate(close.linesPerSecond) + " lines/s", String(format: "%.1f s", close.seconds))
        }
        if let collection {
            row(
                "payments, 1 collection worker", rate(collection.paymentsPerSecond) + " /s",
                String(
                    format: "%.2f× the lower limit; %.0f min for 15M bills",
                    collection.paymentsPerSecond / max(lowerLimit, 1),
                    15_000_000 / max(collection.paymentsPerSecond, 1) / 60))
            row(
                "payout run, 300 merchants, \(collection.bills.formatted()) bills",
                String(format: "%.1f s", collection.payoutSeconds),
                String(
                    format: "%@ entries; %.0f s scaled to 15M bills", collection.entries.formatted(),
                    collection.payoutSecondsFor15MillionBills))
        }
        if let hotLine {
            row(
                "hot line: \(hotLine.flood.formatted()) refused, same partition p50",
                String(format: "%.0f ms", hotLine.samePartition.p50),
                String(format: "p99 %.0f ms, max %.0f ms", hotLine.samePartition.p99, hotLine.samePartition.max))
            row(
                "hot line: other partition, same worker p50", String(format: "%.0f ms", hotLine.otherPartition.p50),
                String(format: "p99 %.0f ms, max %.0f ms", hotLine.otherPartition.p99, hotLine.otherPartition.max))
        }
        for (name, mib) in peakMemoryMiB.sorted(by: { $0.key < $1.key }) {
            row("peak RSS \(name)", String(format: "%.0f MiB", mib))
        }
        return lines.joined(separator: "\n")
    }

    enum CodingKeys: String, CodingKey {
        case machine, lines, charges, partitions, kafkaLimit, copyLimit, pipeline, latency, closes, peakMemoryMiB
        case lowerLimit, verificationsPerCore, signatureChecksPerCore, hotLine, collection
    }

    func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(machine, forKey: .machine)
        try container.encode(lines, forKey: .lines)
        try container.encode(charges, forKey: .charges)
        try container.encode(partitions, forKey: .partitions)
        try container.encode(kafkaLimit, forKey: .kafkaLimit)
        try container.encode(copyLimit, forKey: .copyLimit)
        try container.encode(lowerLimit, forKey: .lowerLimit)
        try container.encode(verificationsPerCore, forKey: .verificationsPerCore)
        try container.encode(signatureChecksPerCore, forKey: .signatureChecksPerCore)
        try container.encode(
            Dictionary(uniqueKeysWithValues: pipeline.map { ("\($0.key)", $0.value) }), forKey: .pipeline)
        try container.encodeIfPresent(latency, forKey: .latency)
        try container.encode(closes, forKey: .closes)
        try container.encodeIfPresent(hotLine, forKey: .hotLine)
        try container.encodeIfPresent(collection, forKey: .collection)
        try container.encode(peakMemoryMiB, forKey: .peakMemoryMiB)
    }
}
