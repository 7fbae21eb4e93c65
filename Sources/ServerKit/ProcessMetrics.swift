import Metrics
import Prometheus

/// The process's metrics registry, served in Prometheus text format on
/// `/metrics`. Each module names its own metrics (all prefixed `matomete_`)
/// through swift-metrics; they land here once ``bootstrap()`` has run.
public enum ProcessMetrics {
    /// The registry `/metrics` reads.
    public static let registry = PrometheusCollectorRegistry()

    /// Makes swift-metrics record into ``registry``. Once per process.
    public static func bootstrap() {
        MetricsSystem.bootstrap(PrometheusMetricsFactory(registry: registry))
    }
}
