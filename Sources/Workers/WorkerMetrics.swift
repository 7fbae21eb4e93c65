import Metrics

/// The metrics of the relay and the cycle close (the consumers' are
/// ``ConsumerMetrics``, the retries' `matomete_store_errors_total`):
/// - `outbox_backlog`: messages in the outbox not yet published.
/// - `outbox_published_total{topic}`: messages the relay published.
/// - `outbox_claim_duration_seconds`: one claim of an outbox batch by the relay
///   (milliseconds when healthy; a claim that takes seconds holds up everything
///   waiting to be published).
/// - `outbox_parked_total`: messages Kafka refused for good (too large, an
///   invalid record), set aside in `outbox_parked`; any is an alert.
/// - `cycle_lines_closed_total{cycle}`: lines this worker billed at a close.
enum WorkerMetrics {
    static let outboxBacklog = Metrics.Gauge(label: "matomete_outbox_backlog")

    static let outboxClaimDuration = Metrics.Timer(label: "matomete_outbox_claim_duration_seconds")

    static let parked = Metrics.Counter(label: "matomete_outbox_parked_total")

    static func published(topic: String) -> Metrics.Counter {
        Metrics.Counter(label: "matomete_outbox_published_total", dimensions: [("topic", topic)])
    }

    static func linesClosed(cycle: String) -> Metrics.Counter {
        Metrics.Counter(label: "matomete_cycle_lines_closed_total", dimensions: [("cycle", cycle)])
    }
}
