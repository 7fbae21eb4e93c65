import Authorization
import Billing
import Consuming
import Contract
import Foundation
import Kafka
import Logging
import PostgresNIO
import Processing
import ServerKit
import ServiceLifecycle
import Store

/// Runs one worker process: logging and metrics set up, the database client,
/// the HTTP endpoints and the worker itself in one `ServiceGroup` that stops
/// gracefully on SIGTERM or SIGINT (the worker first: it finishes its batch,
/// commits and leaves the group; then the endpoints; then the database client).
public enum WorkerProcess {
    /// What the process does once its store is open.
    public enum Work: Sendable {
        /// Applies charges and subscription starts from the charges topic, checking each one's signature
        /// with `signing` and its purchase authorization with `verifier`; housekeeping runs beside it.
        case charges(signing: RequestSigningSettings, verifier: AuthorizationVerifier)
        /// Applies charge and subscription cancellations and line terminations from the cancellations topic,
        /// checking each one's signature with `signing`; housekeeping runs beside it.
        case cancellations(signing: RequestSigningSettings)
        /// Begins the closes asked for on the billing-cycles topic and closes lines and settles, sharing the work
        /// with the other billing-cycle workers: `chunkLines` lines per close transaction, `concurrency` chunks
        /// at once; `allowEarlyClose` accepts closing the current month.
        /// Tariffs that add tax add it at `tax`'s rate for the month billed.
        case billingCycles(allowEarlyClose: Bool, chunkLines: Int, concurrency: Int, tax: ConsumptionTax)
        /// Applies the billing system's payments, reversals and write-offs of line bills from the collections topic.
        case collections
        /// Publishes the outbox to Kafka, holding each claimed batch for `lease` before another relay may
        /// publish it.
        case relay(lease: Duration)
    }

    /// Runs the process with `settings` until SIGTERM or SIGINT, or until `work` ends or fails.
    public static func run(_ settings: WorkerSettings, work: Work) async throws {
        ProcessSetup.bootstrapLogging(level: settings.logLevel, format: settings.logFormat)
        ProcessMetrics.bootstrap()
        let logger = Logger(label: "matomete.\(settings.role.rawValue)")
        logger.info(
            "Starting",
            metadata: [
                "database": "\(settings.database)",
                "kafka.bootstrap": "\(settings.bootstrapServers.joined(separator: ","))",
                "group": "\(settings.groupID)", "topic.prefix": "\(settings.topicPrefix)",
                "batch.size": "\(settings.batchSize)",
            ])
        let readiness = Readiness(["database", "kafka"])
        let client = PostgresClient(configuration: settings.database.clientConfiguration, backgroundLogger: logger)
        let http = HTTPEndpoints.application(address: settings.httpAddress, readiness: readiness, logger: logger)
        let worker = WorkerService(settings: settings, work: work, client: client, readiness: readiness, logger: logger)
        let group = ServiceGroup(
            configuration: ServiceGroupConfiguration(
                services: [
                    .init(service: client),
                    .init(service: http),
                    .init(
                        service: worker, successTerminationBehavior: .gracefullyShutdownGroup,
                        failureTerminationBehavior: .gracefullyShutdownGroup),
                ],
                gracefulShutdownSignals: [.sigterm, .sigint],
                logger: logger))
        try await group.run()
        logger.info("Stopped")
    }
}

/// Opens the store (waiting for the database if it is not up yet) and runs the work.
struct WorkerService: Service {
    var settings: WorkerSettings
    var work: WorkerProcess.Work
    var client: PostgresClient
    var readiness: Readiness
    var logger: Logger

    func run() async throws {
        let topics = Topics(prefix: settings.topicPrefix)
        let store: BillingStore
        do {
            store = try await Retrying.database("open the store", readiness: readiness, logger: logger) {
                try await BillingStore.open(client: client, logger: logger)
            }
        } catch is CancellationError {
            return
        }
        readiness.set("database", passing: true, "connected")
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { await StoreMonitor(store: store, readiness: readiness, logger: logger).run() }
            defer { group.cancelAll() }
            try await runWork(store: store, topics: topics)
        }
    }

    private func runWork(store: BillingStore, topics: Topics) async throws {
        switch work {
        case .charges(let signing, let verifier):
            try await withHousekeeping(store) {
                try await withSigningKeys(store, signing) { signatures in
                    try await consumer(
                        topic: topics.charges,
                        applier: RequestApplier(
                            processor: RequestProcessor(store: store, topics: topics), group: settings.groupID,
                            accepts: [.charge, .subscription], signatures: signatures, verifier: verifier)
                    ).run()
                }
            }
        case .cancellations(let signing):
            try await withHousekeeping(store) {
                try await withSigningKeys(store, signing) { signatures in
                    try await consumer(
                        topic: topics.cancellations,
                        applier: RequestApplier(
                            processor: RequestProcessor(store: store, topics: topics), group: settings.groupID,
                            accepts: [.chargeCancellation, .subscriptionCancellation, .lineTermination],
                            signatures: signatures)
                    ).run()
                }
            }
        case .billingCycles(let allowEarlyClose, let chunkLines, let concurrency, let tax):
            let commands = consumer(
                topic: topics.billingCycles,
                applier: CycleCommandApplier(
                    store: store, group: settings.groupID, topics: topics, allowEarlyClose: allowEarlyClose,
                    logger: logger))
            let closer = CycleCloser(
                store: store, publisher: CloseMessages(topics: topics), chunkLines: chunkLines,
                concurrency: concurrency, tax: tax, readiness: readiness, logger: logger)
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask { try await commands.run() }
                group.addTask { try await closer.run() }
                try await group.waitForAll()
            }
        case .collections:
            try await consumer(
                topic: topics.collections,
                applier: CollectionApplier(store: store, group: settings.groupID, topics: topics)
            ).run()
        case .relay(let lease):
            var configuration = KafkaProducerConfiguration(bootstrapServers: settings.bootstrapServers)
            configuration.client = settings.kafkaClient()
            // The relay hands over a whole claimed batch at once: lingering for
            // more would only delay it.
            configuration.linger = .milliseconds(1)
            // Deliveries are reported on the producer's own polling thread;
            // the relay flushes and shuts it down when it stops.
            let producer = try KafkaProducer(configuration: configuration, logger: logger)
            try await OutboxRelay(
                store: store, producer: producer, batchSize: settings.batchSize, lease: lease, readiness: readiness,
                logger: logger
            ).run()
        }
    }

    /// Runs `work` with ``Housekeeping`` beside it; housekeeping stops when the work does.
    private func withHousekeeping(
        _ store: BillingStore, _ work: @escaping @Sendable () async throws -> Void
    )
        async throws
    {
        let housekeeping = Housekeeping(
            store: store, interval: settings.housekeepingInterval,
            resultRetentionMonths: settings.resultRetentionMonths, readiness: readiness, logger: logger)
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { await housekeeping.run() }
            defer { group.cancelAll() }
            try await work()
        }
    }

    /// Reads the signing keys (waiting for the database if need be), then
    /// runs `work` with a verifier over them and refreshes them beside it.
    private func withSigningKeys(
        _ store: BillingStore, _ signing: RequestSigningSettings,
        _ work: @escaping @Sendable (RequestSignatureVerifier) async throws -> Void
    ) async throws {
        let ring = SigningKeyRing(store: store, sealer: signing.sealer, interval: signing.refresh, logger: logger)
        try await Retrying.database("read the signing keys", readiness: readiness, logger: logger) {
            try await ring.refresh()
        }
        if ring.count == 0 {
            logger.warning(
                "No valid signing key: every request is refused until one is created (matomete merchants keys create)"
            )
        }
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { await ring.run() }
            defer { group.cancelAll() }
            try await work(RequestSignatureVerifier(ring: ring, window: signing.window))
        }
    }

    private func consumer<Applier: PartitionApplier>(topic: String, applier: Applier) -> PartitionedConsumer<Applier> {
        let topics = Topics(prefix: settings.topicPrefix)
        var configuration = KafkaConsumerConfiguration(
            bootstrapServers: settings.bootstrapServers, groupID: settings.groupID)
        configuration.client = settings.kafkaClient()
        configuration.fetchWait = settings.fetchWait
        // No waiting for a batch to fill: what arrives while a round's
        // transactions run is the next round's batch already.
        configuration.readBatchFill = .zero
        // Requests carry their signature in headers; the billing-cycle commands and collection reports need none
        // (only operators and the billing system may write their topics).
        configuration.readHeaders = [topics.charges, topics.cancellations].contains(topic)
        return PartitionedConsumer(
            topic: topic, configuration: configuration, applier: applier, batchSize: settings.batchSize,
            readiness: readiness, logger: logger)
    }
}
