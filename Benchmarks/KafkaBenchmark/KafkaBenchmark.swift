import ArgumentParser
import BenchmarkSupport
import CKafkaRawBench
import Foundation
import Kafka
import Logging

/// Produce-then-consume through the Kafka module next to raw librdkafka, on one
/// embedded cluster, in one run.
@main
struct KafkaBenchmark: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "kafka-bench",
        abstract: "Measure the Swift Kafka module against raw librdkafka on the embedded cluster.",
        discussion: """
            Starts a 3-broker embedded cluster, then for each round produces --messages
            messages of --value-bytes bytes and reads them back in a consumer group, once
            with librdkafka called from C and once through the Kafka module. Consume time
            runs from the partition assignment to the last message (the group join,
            about 3 s on the mock cluster, is left out of both). Each side's median
            round is reported. Topics get --partitions partitions so the mock
            cluster (at most about 5 MiB per partition) keeps every message.
            Both consumers prefetch up to --queued-kilobytes and --queued-messages
            (default: the whole run, about a second of reading at these rates).
            librdkafka 2.0.2 refetches at most once a second after a consumer's
            prefetch reaches its limit, so with smaller limits a side that empties
            its prefetch in less than that waits out the rest, and the figures
            measure the wait (the module's defaults, 16 MiB and 100,000 messages,
            are sized for workers that read ~10,000 messages/s). Neither consumer
            asks for headers (the module's `readHeaders` is off, as in the workers).
            Run it in release mode:  swift run -c release kafka-bench
            """)

    @Option(help: "Messages per run.") var messages = 1_000_000
    @Option(help: "Bytes per message value.") var valueBytes = 200
    @Option(help: "Partitions of each benchmark topic.") var partitions = 64
    @Option(help: "Rounds; each side's median round is reported.") var rounds = 5
    @Option(help: "Prefetch limit of both consumers in KiB (queued.max.messages.kbytes).")
    var queuedKilobytes = 262_144
    @Option(help: "Prefetch limit of both consumers in messages (queued.min.messages).")
    var queuedMessages = 1_000_000
    @Flag(help: "Print the figures as JSON.") var json = false

    func run() async throws {
        var logger = Logger(label: "matomete.kafka-bench")
        logger.logLevel = .error
        let cluster = try EmbeddedKafkaCluster(brokers: 3, logger: logger)
        var raw: [Figures] = []
        var swift: [Figures] = []
        for round in 1...rounds {
            // Alternate which side goes first, so neither always meets a fuller cluster.
            if round % 2 == 1 {
                raw.append(try runRaw(cluster, round: round))
                progress("round \(round)/\(rounds) raw librdkafka:  \(raw.last!)")
            }
            swift.append(try await runSwift(cluster, round: round, logger: logger))
            progress("round \(round)/\(rounds) Kafka module:    \(swift.last!)")
            if round % 2 == 0 {
                raw.append(try runRaw(cluster, round: round))
                progress("round \(round)/\(rounds) raw librdkafka:  \(raw.last!)")
            }
        }
        // Medians: the embedded cluster shares 2 cores with both sides, and
        // single rounds vary by a factor of two either way.
        let bestRaw = raw.sorted { $0.overall < $1.overall }[raw.count / 2]
        let bestSwift = swift.sorted { $0.overall < $1.overall }[swift.count / 2]
        let report = Report(
            messages: messages, valueBytes: valueBytes, partitions: partitions, queuedKilobytes: queuedKilobytes,
            queuedMessages: queuedMessages, raw: bestRaw, swift: bestSwift)
        if json {
            try printJSON(report)
        } else {
            print(report.table)
        }
    }

    private func runRaw(_ cluster: EmbeddedKafkaCluster, round: Int) throws -> Figures {
        let topic = "bench-raw-\(round)-\(UUID().uuidString.prefix(6))"
        try cluster.createTopic(topic, partitions: partitions)
        var produced = raw_bench_result()
        var consumed = raw_bench_result()
        var error = [CChar](repeating: 0, count: 512)
        guard
            raw_bench_produce(cluster.bootstrapServers, topic, messages, Int32(valueBytes), &produced, &error, 512)
                == 0,
            raw_bench_consume(
                cluster.bootstrapServers, topic, "bench-raw-\(topic)", messages, queuedKilobytes, queuedMessages,
                &consumed, &error, 512) == 0
        else {
            throw ValidationError(
                "raw benchmark failed: \(error.withUnsafeBufferPointer { String(cString: $0.baseAddress!) })")
        }
        guard produced.messages == messages, consumed.messages == messages else {
            throw ValidationError(
                "raw benchmark lost messages: produced \(produced.messages), read \(consumed.messages)")
        }
        return Figures(messages: messages, produceSeconds: produced.seconds, consumeSeconds: consumed.seconds)
    }

    private func runSwift(_ cluster: EmbeddedKafkaCluster, round: Int, logger: Logger) async throws -> Figures {
        let topic = "bench-swift-\(round)-\(UUID().uuidString.prefix(6))"
        try cluster.createTopic(topic, partitions: partitions)
        let value = [UInt8](repeating: UInt8(ascii: "x"), count: valueBytes)
        // The keys repeat every 100,000 messages (as raw C's do): built once each.
        let keys = (0..<min(messages, 100_000)).map { Array("line-\(String(format: "%07d", $0))".utf8) }
        let batch = (0..<messages).map { index in
            KafkaProducerMessage(topic: topic, key: keys[index % keys.count], value: value)
        }

        let producer = try KafkaProducer(
            configuration: KafkaProducerConfiguration(bootstrapServers: cluster.bootstrapServerList), logger: logger)
        let clock = ContinuousClock()
        let produceStart = clock.now
        let results = await producer.send(batch)
        let produceTime = clock.now - produceStart
        await producer.shutdown()
        let failed = results.failures.count
        guard failed == 0 else { throw ValidationError("Kafka module: \(failed) deliveries failed") }

        var configuration = KafkaConsumerConfiguration(
            bootstrapServers: cluster.bootstrapServerList, groupID: "bench-swift-\(topic)")
        configuration.queuedKilobytes = queuedKilobytes
        configuration.queuedMessages = queuedMessages
        // Raw C reads key and value, never headers (the messages have none):
        // the module's consumer is asked for the same.
        configuration.readHeaders = false
        let consumer = try KafkaConsumer(configuration: configuration, logger: logger)
        try consumer.subscribe([topic])
        var read = 0
        var bytes = 0
        var consumeStart: ContinuousClock.Instant?
        let deadline = clock.now + .seconds(120)
        while read < messages, clock.now < deadline {
            for event in try await consumer.poll(timeout: .milliseconds(100)) {
                switch event {
                case .messages(let batch):
                    read += batch.count
                    for message in batch { bytes += message.value.count }
                case .partitionsAssigned(let partitions):
                    if consumeStart == nil { consumeStart = clock.now }
                    // Committed offsets (none yet: auto.offset.reset=earliest), the
                    // path raw C takes. An explicit `.beginning` for 64 partitions at
                    // once leaves some brokers' fetchers idle for 0.1-0.7 s in
                    // librdkafka 2.0.2, which would be measured as the module's cost.
                    try await consumer.startPartitions(
                        Dictionary(uniqueKeysWithValues: partitions.map { ($0, .committed) }))
                case .partitionsRevoked, .error:
                    break
                }
            }
        }
        let consumeTime = clock.now - (consumeStart ?? clock.now)
        await consumer.close()
        guard read == messages else { throw ValidationError("Kafka module read \(read) of \(messages) messages") }
        return Figures(messages: messages, produceSeconds: produceTime.seconds, consumeSeconds: consumeTime.seconds)
    }

}

struct Figures: Codable, CustomStringConvertible {
    var messages: Int
    var produceSeconds: Double
    var consumeSeconds: Double

    var producePerSecond: Double { Double(messages) / produceSeconds }
    var consumePerSecond: Double { Double(messages) / consumeSeconds }
    /// Messages per second over produce plus consume.
    var overall: Double { Double(messages) / (produceSeconds + consumeSeconds) }

    var description: String {
        "produce \(rate(producePerSecond)) msg/s, consume \(rate(consumePerSecond)) msg/s, overall \(rate(overall)) msg/s"
    }

    enum CodingKeys: String, CodingKey { case messages, produceSeconds, consumeSeconds }
}

struct Report: Encodable {
    var messages: Int
    var valueBytes: Int
    var partitions: Int
    var queuedKilobytes: Int
    var queuedMessages: Int
    var raw: Figures
    var swift: Figures

    var ratio: Double { swift.overall / raw.overall }

    enum CodingKeys: String, CodingKey {
        case messages, valueBytes, partitions, queuedKilobytes, queuedMessages, raw, swift, ratios
    }

    func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(messages, forKey: .messages)
        try container.encode(valueBytes, forKey: .valueBytes)
        try container.encode(partitions, forKey: .partitions)
        try container.encode(queuedKilobytes, forKey: .queuedKilobytes)
        try container.encode(queuedMessages, forKey: .queuedMessages)
        try container.encode(raw, forKey: .raw)
        try container.encode(swift, forKey: .swift)
        try container.encode(
            [
                "produce": swift.producePerSecond / raw.producePerSecond,
                "consume": swift.consumePerSecond / raw.consumePerSecond, "overall": ratio,
            ], forKey: .ratios)
    }

    var table: String {
        func row(_ name: String, _ raw: Double, _ swift: Double) -> String {
            name.padding(toLength: 10, withPad: " ", startingAt: 0)
                + rate(raw).leftPadded(14) + rate(swift).leftPadded(14)
                + String(format: "%.2f×", swift / raw).leftPadded(9)
        }
        return """
            \(messages) messages of \(valueBytes) bytes, \(partitions) partitions, 3 embedded brokers (msg/s)
            prefetch limit of both consumers: \(queuedKilobytes) KiB, \(queuedMessages) messages; headers not read
            phase              raw C  Kafka module    ratio
            \(row("produce", raw.producePerSecond, swift.producePerSecond))
            \(row("consume", raw.consumePerSecond, swift.consumePerSecond))
            \(row("overall", raw.overall, swift.overall))
            target: overall ratio ≥ 0.80× — \(ratio >= 0.8 ? "met" : "NOT met")
            """
    }
}
