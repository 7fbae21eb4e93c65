/// The kinds of worker process: each its own executable and, by default,
/// its own consumer group `matomete-<raw value>`.
public enum WorkerRole: String, Sendable, CaseIterable {
    /// Applies `charges`.
    case chargeWorker = "charge-worker"
    /// Applies `cancellations`.
    case cancellationWorker = "cancellation-worker"
    /// Applies `billing-cycles` and closes cycles.
    case billingCycleWorker = "billing-cycle-worker"
    /// Applies `collections`: payments, reversals and write-offs of line bills.
    case collectionWorker = "collection-worker"
    /// Publishes the outbox.
    case outboxRelay = "outbox-relay"
}
