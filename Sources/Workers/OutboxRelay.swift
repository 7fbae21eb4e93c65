import Foundation
import Kafka
import Logging
import ServiceLifecycle
import Store

/// Publishes the outbox to Kafka: claims a batch of the oldest messages for
/// a lease, sends them with the idempotent producer, and deletes each one
/// once Kafka has acknowledged it. Any number of relays can run: leases keep
/// them on different messages. A relay that dies after sending and before
/// deleting leaves its messages to be sent again when the lease ends, with the
/// same `id` header, which consumers use to drop repeats.
struct OutboxRelay: Sendable {
    var store: BillingStore
    var producer: KafkaProducer
    var batchSize: Int
    var lease: Duration = .seconds(30)
    var readiness: Readiness
    var logger: Logger

    func run() async throws {
        readiness.set("kafka", passing: true, "producer started")
        while !Task.isShuttingDownGracefully, !Task.isCancelled {
            let claimed: [ClaimedMessage]
            do {
                claimed = try await retryingStore("claim outbox messages", readiness: readiness, logger: logger) {
                    try await store.claimOutbox(limit: batchSize, lease: lease)
                }
            } catch is CancellationError {
                break
            }
            readiness.set("database", passing: true, "connected")
            guard !claimed.isEmpty else {
                try? await Task.sleep(for: .milliseconds(50))
                continue
            }
            let results = await producer.send(claimed.map(Self.kafkaMessage))
            var published: [Int64] = []
            published.reserveCapacity(claimed.count)
            var perTopic: [String: Int] = [:]
            for (index, result) in results.enumerated() {
                if case .success = result {
                    published.append(claimed[index].sequence)
                    perTopic[claimed[index].message.topic, default: 0] += 1
                }
            }
            if let failure = results.failures.first {
                readiness.set("kafka", passing: false, "publishing fails: \(failure.error.code)")
                logger.error(
                    "Publishing failed; the messages are sent again when their lease ends",
                    metadata: ["failed": "\(results.failures.count)", "kafka.error": "\(failure.error)"])
            } else {
                readiness.set("kafka", passing: true, "publishing")
            }
            for (topic, count) in perTopic { WorkerMetrics.published(topic: topic).increment(by: count) }
            do {
                try await retryingStore("acknowledge published messages", readiness: readiness, logger: logger) {
                    try await store.acknowledge(published)
                }
            } catch is CancellationError {
                break
            }
        }
        await producer.shutdown()
        logger.info("Relay stopped")
    }

    static func kafkaMessage(_ claimed: ClaimedMessage) -> KafkaProducerMessage {
        let message = claimed.message
        var headers = [KafkaHeader(name: "id", text: message.id)]
        for (name, value) in message.headers.sorted(by: { $0.key < $1.key }) {
            headers.append(KafkaHeader(name: name, text: value))
        }
        return KafkaProducerMessage(
            topic: message.topic, key: message.key.map { Array($0.utf8) }, value: message.payload, headers: headers)
    }
}

/// Keeps `/healthz`'s database check and the outbox backlog gauge fresh.
struct StoreMonitor: Sendable {
    var store: BillingStore
    var readiness: Readiness
    var logger: Logger
    var interval: Duration = .seconds(5)

    func run() async {
        while !Task.isShuttingDownGracefully, !Task.isCancelled {
            do {
                WorkerMetrics.outboxBacklog.record(try await store.outboxBacklog())
                readiness.set("database", passing: true, "connected")
            } catch {
                readiness.set("database", passing: false, "unreachable")
                logger.warning("Database check failed", metadata: ["error": "\(String(reflecting: error).prefix(300))"])
            }
            try? await Task.sleep(for: interval)
        }
    }
}
