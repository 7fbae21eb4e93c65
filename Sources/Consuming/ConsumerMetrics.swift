import Kafka
import Metrics

/// The consumers' metrics (all prefixed `matomete_`):
/// - `messages_total{topic,outcome}`: messages read and `applied`, `rejected`
///   (a result with a reason went back to the merchant) or `dead_lettered`.
/// - `batch_duration_seconds{topic}`: one batch's database transaction.
/// - `consumer_lag{topic,partition}`: messages behind the partition's end.
/// - `offset_gaps_total{topic}`: times the consumer skipped offsets and the
///   partition was read again from the one expected (should stay 0).
/// - `signature_refusals_total{topic,code}`: requests dead-lettered because
///   their sender's signature is missing, invalid, stale or another's (any
///   is worth a look: a merchant's broken integration, or a forgery).
public enum ConsumerMetrics {
    /// `matomete_messages_total{topic,outcome}`.
    public static func messages(topic: String, outcome: String) -> Metrics.Counter {
        Metrics.Counter(label: "matomete_messages_total", dimensions: [("topic", topic), ("outcome", outcome)])
    }

    /// `matomete_signature_refusals_total{topic,code}`.
    public static func signatureRefusals(topic: String, code: String) -> Metrics.Counter {
        Metrics.Counter(label: "matomete_signature_refusals_total", dimensions: [("topic", topic), ("code", code)])
    }

    static func batchDuration(topic: String) -> Metrics.Timer {
        Metrics.Timer(label: "matomete_batch_duration_seconds", dimensions: [("topic", topic)])
    }

    static func lag(topic: String, partition: KafkaPartition) -> Metrics.Gauge {
        Metrics.Gauge(label: "matomete_consumer_lag", dimensions: [("topic", topic), ("partition", "\(partition)")])
    }

    static func offsetGaps(topic: String) -> Metrics.Counter {
        Metrics.Counter(label: "matomete_offset_gaps_total", dimensions: [("topic", topic)])
    }
}
