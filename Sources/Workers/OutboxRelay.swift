import Foundation
import Kafka
import Logging
import ServerKit
import ServiceLifecycle
import Store
import Synchronization

/// Publishes the outbox to Kafka: claims a batch of the oldest messages for
/// a lease, sends them with the idempotent producer, and deletes each one
/// once Kafka has acknowledged it. Any number of relays can run: leases keep
/// them on different messages. A relay that dies after sending and before
/// deleting leaves its messages to be sent again when the lease ends, with the
/// same `id` header, which consumers use to drop repeats.
///
/// A relay does not wait for the brokers before claiming more: up to
/// `batchesInFlight` batches are on their way at once, each queued behind the
/// one claimed before it (so messages keep their order) and deleted when
/// acknowledged. With nothing to claim it sleeps until PostgreSQL announces a
/// commit that added to the outbox, or `idlePoll` has passed (messages whose
/// lease ran out announce nothing).
struct OutboxRelay: Sendable {
    var store: BillingStore
    var producer: KafkaProducer
    var batchSize: Int
    var lease: Duration = .seconds(30)
    var readiness: Readiness
    var logger: Logger
    var batchesInFlight = 4
    var idlePoll: Duration = .milliseconds(100)

    func run() async throws {
        readiness.set("kafka", passing: true, "producer started")
        WorkerMetrics.parked.increment(by: 0)  // exported from the start, at 0
        let wakeup = Wakeup()
        // Child tasks: the listener (false when it ends) and the batches being
        // published (true).
        await withTaskGroup(of: Bool.self) { group in
            group.addTask {
                await listen(wakeup)
                return false
            }
            var publishing = 0
            // Waits for publishing batches until fewer than `limit` remain.
            func drain(below limit: Int) async {
                while publishing >= limit, let finished = await group.next() {
                    if finished { publishing -= 1 }
                }
            }
            while !Task.isShuttingDownGracefully, !Task.isCancelled {
                let claimed: [ClaimedMessage]
                do {
                    claimed = try await Retrying.database("claim outbox messages", readiness: readiness, logger: logger)
                    {
                        let started = ContinuousClock.now
                        defer { WorkerMetrics.outboxClaimDuration.record(duration: ContinuousClock.now - started) }
                        return try await store.claimOutbox(limit: batchSize, lease: lease)
                    }
                } catch {
                    break  // cancelled
                }
                readiness.set("database", passing: true, "connected")
                guard !claimed.isEmpty else {
                    await wakeup.wait(upTo: idlePoll)
                    continue
                }
                let delivery = await producer.enqueue(claimed.map(Self.kafkaMessage))
                group.addTask {
                    await acknowledge(claimed, delivery)
                    return true
                }
                publishing += 1
                await drain(below: batchesInFlight)
            }
            await drain(below: 1)
            group.cancelAll()
        }
        await producer.shutdown()
        logger.info("Relay stopped")
    }

    /// Errors no retry cures: the message itself is what Kafka refuses.
    static let refusedForGood: Set<KafkaError.Code> = [.messageTooLarge, .invalidRecord]

    /// Waits for a batch's delivery reports and deletes what Kafka acknowledged.
    private func acknowledge(_ claimed: [ClaimedMessage], _ delivery: KafkaPendingDelivery) async {
        let results = await delivery.results()
        var published: [Int64] = []
        published.reserveCapacity(claimed.count)
        var perTopic: [String: Int] = [:]
        var refused: [(sequence: Int64, error: KafkaError)] = []
        for (index, result) in results.enumerated() {
            switch result {
            case .success:
                published.append(claimed[index].sequence)
                perTopic[claimed[index].message.topic, default: 0] += 1
            case .failure(let error) where Self.refusedForGood.contains(error.code):
                refused.append((claimed[index].sequence, error))
            case .failure:
                break
            }
        }
        if !refused.isEmpty {
            // Sending them again would fail again: set aside, never in the way of the rest.
            for (sequence, error) in refused {
                logger.error(
                    "Kafka refused a message for good; set aside in outbox_parked",
                    metadata: ["outbox.id": "\(sequence)", "kafka.error": "\(error)"])
                _ = try? await Retrying.database("set aside a refused message", readiness: readiness, logger: logger) {
                    try await store.park([sequence], error: "\(error)")
                }
            }
            WorkerMetrics.parked.increment(by: refused.count)
        }
        if let failure = results.failures.first(where: { !Self.refusedForGood.contains($0.error.code) }) {
            readiness.set("kafka", passing: false, "publishing fails: \(failure.error.code)")
            logger.error(
                "Publishing failed; the messages are sent again when their lease ends",
                metadata: ["failed": "\(results.failures.count)", "kafka.error": "\(failure.error)"])
        } else {
            readiness.set("kafka", passing: true, "publishing")
        }
        for (topic, count) in perTopic { WorkerMetrics.published(topic: topic).increment(by: count) }
        // Cancelled (shutdown with the database away): the lease runs out and
        // the messages are published again, with the same ids.
        _ = try? await Retrying.database("acknowledge published messages", readiness: readiness, logger: logger) {
            try await store.acknowledge(published)
        }
    }

    /// Wakes the relay whenever PostgreSQL announces new outbox messages;
    /// reconnects when the connection fails, polling meanwhile.
    private func listen(_ wakeup: Wakeup) async {
        var attempt = 0
        while !Task.isCancelled {
            do {
                try await store.listenForOutbox {
                    wakeup.signal()
                }
                return  // cancelled
            } catch {
                attempt += 1
                logger.warning(
                    "Listening for outbox notifications failed; polling every \(idlePoll) until it works again",
                    metadata: ["attempt": "\(attempt)", "error": "\(String(reflecting: error).prefix(300))"])
                try? await Task.sleep(for: Retrying.delay(attempt: attempt))
            }
        }
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

/// A wake-up call one task waits for and others give: a call given while
/// nobody waits is kept for the next wait.
final class Wakeup: Sendable {
    private struct State {
        var pending = false
        var waiter: CheckedContinuation<Void, Never>?
        /// Which wait a timer belongs to, so a late timer cannot end a later wait.
        var wait = 0
    }

    private let state = Mutex(State())

    /// Wakes the waiting task, or the next one to wait.
    func signal() {
        let waiter = state.withLock { state in
            guard let waiter = state.waiter else {
                state.pending = true
                return nil as CheckedContinuation<Void, Never>?
            }
            state.waiter = nil
            return waiter
        }
        waiter?.resume()
    }

    /// Returns at the next wake-up call (at once if one is pending), or after `timeout`.
    func wait(upTo timeout: Duration) async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let wait: Int? = state.withLock { state in
                if state.pending {
                    state.pending = false
                    return nil
                }
                state.wait += 1
                state.waiter = continuation
                return state.wait
            }
            guard let wait else { return continuation.resume() }
            Task { [self] in
                try? await Task.sleep(for: timeout)
                expire(wait)
            }
        }
    }

    private func expire(_ wait: Int) {
        let waiter = state.withLock { state in
            guard state.wait == wait, let waiter = state.waiter else { return nil as CheckedContinuation<Void, Never>? }
            state.waiter = nil
            return waiter
        }
        waiter?.resume()
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
