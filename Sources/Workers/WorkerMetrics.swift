import Foundation
import Metrics
import Prometheus

/// The process's metrics, served in Prometheus text format on `/metrics`.
///
/// Names (all prefixed `matomete_`):
/// - `messages_total{topic,outcome}`: messages read and `applied`, `rejected`
///   (a result with a reason went back to the merchant) or `dead_lettered`.
/// - `batch_duration_seconds{topic}`: one batch's database transaction.
/// - `consumer_lag{topic,partition}`: messages behind the partition's end.
/// - `outbox_backlog`: messages in the outbox not yet published.
/// - `outbox_published_total{topic}`: messages the relay published.
/// - `outbox_claim_duration_seconds`: one claim of an outbox batch by the relay
///   (milliseconds when healthy; a claim that takes seconds holds up everything
///   waiting to be published).
/// - `cycle_lines_closed_total{cycle}`: lines this worker billed at a close.
/// - `store_errors_total{operation}`: database operations that failed and were retried.
/// - `offset_gaps_total{topic}`: times the consumer skipped offsets and the
///   partition was read again from the one expected (should stay 0).
public enum WorkerMetrics {
    /// The registry `/metrics` reads.
    public static let registry = PrometheusCollectorRegistry()

    /// Makes swift-metrics record into ``registry``. Once per process.
    public static func bootstrap() {
        MetricsSystem.bootstrap(PrometheusMetricsFactory(registry: registry))
    }

    static func messages(topic: String, outcome: String) -> Metrics.Counter {
        Metrics.Counter(label: "matomete_messages_total", dimensions: [("topic", topic), ("outcome", outcome)])
    }

    static func batchDuration(topic: String) -> Metrics.Timer {
        Metrics.Timer(label: "matomete_batch_duration_seconds", dimensions: [("topic", topic)])
    }

    static func lag(topic: String, partition: Int32) -> Metrics.Gauge {
        Metrics.Gauge(label: "matomete_consumer_lag", dimensions: [("topic", topic), ("partition", "\(partition)")])
    }

    static let outboxBacklog = Metrics.Gauge(label: "matomete_outbox_backlog")

    static let outboxClaimDuration = Metrics.Timer(label: "matomete_outbox_claim_duration_seconds")

    static func published(topic: String) -> Metrics.Counter {
        Metrics.Counter(label: "matomete_outbox_published_total", dimensions: [("topic", topic)])
    }

    static func linesClosed(cycle: String) -> Metrics.Counter {
        Metrics.Counter(label: "matomete_cycle_lines_closed_total", dimensions: [("cycle", cycle)])
    }

    static func offsetGaps(topic: String) -> Metrics.Counter {
        Metrics.Counter(label: "matomete_offset_gaps_total", dimensions: [("topic", topic)])
    }

    static func storeErrors(operation: String) -> Metrics.Counter {
        Metrics.Counter(label: "matomete_store_errors_total", dimensions: [("operation", operation)])
    }
}

/// Tallies of one batch, counted once its transaction has committed.
struct BatchTally {
    var applied = 0
    var rejected = 0
    var deadLettered = 0

    func record(topic: String) {
        if applied > 0 { WorkerMetrics.messages(topic: topic, outcome: "applied").increment(by: applied) }
        if rejected > 0 { WorkerMetrics.messages(topic: topic, outcome: "rejected").increment(by: rejected) }
        if deadLettered > 0 {
            WorkerMetrics.messages(topic: topic, outcome: "dead_lettered").increment(by: deadLettered)
        }
    }
}
