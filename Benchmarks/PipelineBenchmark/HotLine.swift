import Foundation
import Kafka
import Logging
import Store

extension PipelineBenchmark {
    /// One line flooded with forged charges, and what it costs the other
    /// lines: valid charges to other lines at a steady rate, half on the
    /// flooded line's partition and half on another partition of the same
    /// worker, produce to result, while the flood is applied.
    func hotLinePhase(
        _ cluster: EmbeddedKafkaCluster, _ server: EmbeddedPostgres, workload: Workload, keys: String, logs: URL,
        logger: Logger
    ) async throws -> Report.HotLine {
        let prefix = "hotline"
        // Two partitions, one worker: the flooded partition and a quiet one, both its own.
        let path = try await ChargePath.start(
            prefix: prefix, chargeWorkers: 1, partitions: 2, cluster: cluster, server: server, workload: workload,
            keys: keys, logs: logs, logger: logger)
        defer { path.reading.cancel() }
        let (topics, workers, reader) = (path.topics, path.workers, path.reader)
        var configuration = KafkaProducerConfiguration(bootstrapServers: cluster.bootstrapServerList)
        configuration.linger = .milliseconds(1)
        let producer = try KafkaProducer(configuration: configuration, logger: logger)
        var messages = workload.messages(topic: topics.charges)
        for index in messages.indices { messages[index].partition = KafkaPartition(rawValue: Int32(index % 2)) }

        // Warm-up, not measured.
        let warmUp = 200
        try await producer.send(Array(messages.suffix(warmUp))).throwIfAnyFailed()
        _ = try await reader.waitForAccepted(warmUp, within: .seconds(120), label: "\(prefix) warm-up")
        reader.forget()

        // The flood: one line, forged authorizations (each refused), all on partition 0.
        let hotLine = workload.requests[0].lineID.rawValue
        // Signed by the merchant: each one's signature is checked, then its authorization refused.
        let flood = (0..<hotLineCharges).map { index in
            var message = KafkaProducerMessage(
                topic: topics.charges, key: Array(hotLine.utf8),
                value: Array(
                    #"{"type":"charge","merchantId":"m-bench","chargeId":"flood-\#(index)","lineId":"\#(hotLine)","amount":100,"authorization":"v1.bench.forged.forged"}"#
                        .utf8))
            message.partition = KafkaPartition(rawValue: 0)
            return workload.signed(message)
        }
        // Victims: 400 charges/s to other lines for 6 seconds, alternating partitions 0 and 1.
        let victimRate = 400
        let victims = Array(messages[1..<(1 + victimRate * 6)])
        var sentAt: [String: (ContinuousClock.Instant, Int32)] = [:]
        var floodSent = false
        try await sendPaced(victims, rate: victimRate, producer: producer, label: "hot line") { elapsed in
            // Half a second in, the flood, all at once, as an attacker would send it.
            guard !floodSent, elapsed > .milliseconds(500) else { return [] }
            floodSent = true
            return flood
        } sending: { range, now in
            for index in range {
                sentAt[workload.requests[index + 1].chargeID.rawValue] = (now, victims[index].partition!.rawValue)
            }
        }
        _ = try await reader.waitForAccepted(
            victims.count, within: .seconds(300), label: prefix, allowingRejections: true)
        await producer.shutdown()
        let arrivals = reader.arrivals()
        func latencies(partition: Int32) -> [Double] {
            sentAt.compactMap { id, sent in
                sent.1 == partition ? arrivals[id].map { ($0 - sent.0).seconds * 1000 } : nil
            }.sorted()
        }
        let same = latencies(partition: 0)
        let other = latencies(partition: 1)
        let rejected = reader.rejectedCount
        await workers.stop()
        return Report.HotLine(
            flood: hotLineCharges, victimsPerSecond: victimRate, refused: rejected,
            samePartition: .init(p50: percentile(same, 0.5), p99: percentile(same, 0.99), max: same.last ?? 0),
            otherPartition: .init(p50: percentile(other, 0.5), p99: percentile(other, 0.99), max: other.last ?? 0))
    }
}
