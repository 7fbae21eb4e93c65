import Foundation
import Kafka
import Logging
import MatometeTestSupport
import Synchronization
import Testing

/// Shared helpers: clusters, unique names, and a consuming loop.
enum TestSupport {
    static let logger: Logger = {
        var logger = Logger(label: "matomete.tests.kafka")
        logger.logLevel = .critical
        return logger
    }()

    /// One 3-broker cluster for tests that inject no faults (each uses its own topics).
    static let sharedCluster: EmbeddedKafkaCluster = {
        do {
            return try EmbeddedKafkaCluster(brokers: 3, logger: logger)
        } catch {
            fatalError("cannot start the embedded Kafka cluster: \(error)")
        }
    }()

    /// A private 3-broker cluster for a test that injects faults.
    static func privateCluster() throws -> EmbeddedKafkaCluster {
        try EmbeddedKafkaCluster(brokers: 3, logger: logger)
    }

    /// The first line `process` writes to `pipe`. If none comes within `limit`,
    /// the process is terminated and the answer is nil.
    static func firstLine(of pipe: Pipe, from process: Process, within limit: Duration) async -> String? {
        let handle = pipe.fileHandleForReading
        let watchdog = Task {
            try await Task.sleep(for: limit)
            process.terminate()
        }
        defer { watchdog.cancel() }
        return await withCheckedContinuation { continuation in
            DispatchQueue.global().async {
                var bytes: [UInt8] = []
                while true {
                    let chunk = handle.availableData
                    if chunk.isEmpty { return continuation.resume(returning: nil) }
                    for byte in chunk {
                        if byte == UInt8(ascii: "\n") {
                            return continuation.resume(returning: String(decoding: bytes, as: UTF8.self))
                        }
                        bytes.append(byte)
                    }
                }
            }
        }
    }

    static func uniqueName(_ prefix: String) -> String {
        "\(prefix)-\(UUID().uuidString.prefix(8).lowercased())"
    }

    static func producer(
        _ cluster: EmbeddedKafkaCluster, configure: (inout KafkaProducerConfiguration) -> Void = { _ in }
    )
        throws -> KafkaProducer
    {
        var configuration = KafkaProducerConfiguration(bootstrapServers: cluster.bootstrapServerList)
        configuration.linger = .milliseconds(1)
        configure(&configuration)
        return try KafkaProducer(configuration: configuration, logger: logger)
    }

    static func consumer(
        _ cluster: EmbeddedKafkaCluster, group: String, topics: [String],
        configure: (inout KafkaConsumerConfiguration) -> Void = { _ in }
    ) throws -> KafkaConsumer {
        var configuration = KafkaConsumerConfiguration(bootstrapServers: cluster.bootstrapServerList, groupID: group)
        configure(&configuration)
        let consumer = try KafkaConsumer(configuration: configuration, logger: logger)
        try consumer.subscribe(topics)
        return consumer
    }
}

/// What a consuming loop saw.
struct Consumed {
    var messages: [KafkaConsumerMessage] = []
    var assigned: [[KafkaTopicPartition]] = []
    var revoked: [[KafkaTopicPartition]] = []
}

extension KafkaConsumer {
    /// Polls until `until` holds or `deadline` passes, starting assigned
    /// partitions where `start` says (from the beginning by default).
    func drain(
        deadline: Duration = .seconds(30),
        start: @Sendable ([KafkaTopicPartition]) -> [KafkaTopicPartition: KafkaStartOffset] = { _ in [:] },
        until: (Consumed) -> Bool
    ) async throws -> Consumed {
        var consumed = Consumed()
        let clock = ContinuousClock()
        let end = clock.now + deadline
        while clock.now < end, !until(consumed) {
            for event in try await poll(timeout: .milliseconds(100)) {
                switch event {
                case .messages(let messages): consumed.messages += messages
                case .partitionsAssigned(let partitions):
                    consumed.assigned.append(partitions)
                    var offsets = start(partitions)
                    for partition in partitions where offsets[partition] == nil { offsets[partition] = .beginning }
                    try await startPartitions(offsets)
                case .partitionsRevoked(let partitions, _): consumed.revoked.append(partitions)
                case .error: break
                }
            }
        }
        return consumed
    }
}

extension KafkaConsumerMessage {
    var valueText: String { String(decoding: value, as: UTF8.self) }
    var keyText: String? { key.map { String(decoding: $0, as: UTF8.self) } }
}

/// A flag that any of several concurrent loops can raise, and all then see.
final class Flag: Sendable {
    private let raised = Atomic<Bool>(false)

    /// Raises the flag when `condition` holds; returns whether it is raised.
    func set(when condition: Bool) -> Bool {
        if condition { raised.store(true, ordering: .relaxed) }
        return raised.load(ordering: .relaxed)
    }
}

/// Counts reported by several concurrent loops, each under its own slot.
final class Counter: Sendable {
    private let counts = Mutex<[Int: Int]>([:])

    /// Records `count` for `slot`; returns the total over all slots.
    func total(of slot: Int, _ count: Int) -> Int {
        counts.withLock { counts in
            counts[slot] = count
            return counts.values.reduce(0, +)
        }
    }
}
