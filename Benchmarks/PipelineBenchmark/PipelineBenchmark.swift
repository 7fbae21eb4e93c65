import ArgumentParser
import Authorization
import BenchmarkSupport
import Billing
import CKafkaRawBench
import Contract
import Crypto
import Foundation
import Kafka
import Logging
import PostgresNIO
import Processing
import Store

/// The whole pipeline against its limits, measured in one run on the embedded
/// default: librdkafka's mock cluster in this process, a private PostgreSQL,
/// and the worker executables built next to this one as separate processes.
@main
struct PipelineBenchmark: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "pipeline-bench",
        abstract: "Measure charges/s, latency, cycle close and memory against the limits of Kafka and PostgreSQL.",
        discussion: """
            Build everything in release mode first, then run it:
              swift build -c release && .build/release/pipeline-bench
            Phases, each on its own topics and database:
              limit (a)  raw librdkafka consume-then-produce of the
                         same charge messages (C, no processing)
              limit (b)  PostgreSQL COPY of the rows the charge path
                         writes (charge, outbox, authorization)
              checks     Ed25519 checks of the same tokens, and
                         HMAC checks of the charges' signatures,
                         one core each
              pipeline   --charges authorized one-time charges for
                         --lines lines until every accepted result is
                         on the merchant's results; 1, then 2 charge workers
              latency    --rate charges/s for --seconds: produce to
                         result, p50, p99, p99.9
              close      --close-lines lines (3 charges each, a
                         quarter with a subscription) closed by 1,
                         then 2 billing-cycle workers
              collection --collection-bills bills of 300 merchants
                         closed, each paid by one payment report
                         applied by 1 collection worker; then the
                         period paid out
              hot line   --hot-line-charges forged charges to one
                         line while 400 valid charges/s go to other
                         lines of its partition and of another
                         partition of the same worker
            and the peak resident memory of every worker process.
            Exits 1 if a phase fails.
            """)

    @Option(help: "Lines for the charge phases.") var lines = 100_000
    @Option(help: "Charges per throughput phase.") var charges = 200_000
    @Option(help: "Partitions of the charge and result topics (the mock keeps 5 MiB per partition).")
    var partitions = 48
    @Option(help: "Offered load of the latency phase, charges/s.") var rate = 2_000
    @Option(help: "Length of the latency phase, seconds.") var seconds = 15
    @Option(
        parsing: .upToNextOption,
        help: "Line counts of the close phases (each closed by 1 and by 2 workers; 0 skips).")
    var closeLines: [Int] = [100_000, 1_000_000]
    @Option(help: "Forged charges flooding one line in the hot-line phase (0 skips it).") var hotLineCharges = 10_000
    @Option(help: "Bills of the collection phase: each paid by one payment, then paid out to 300 merchants (0 skips).")
    var collectionBills = 200_000
    @Flag(help: "Run the hot-line phase only.") var hotLineOnly = false
    @Flag(help: "Print the figures as JSON.") var json = false
    @Flag(help: "Keep the processes' logs (the directory named at the start) instead of deleting them at the end.")
    var keepLogs = false

    static let logger: Logger = {
        var logger = Logger(label: "matomete.pipeline-bench")
        logger.logLevel = .error
        return logger
    }()

    func run() async throws {
        let logs = URL(fileURLWithPath: NSTemporaryDirectory()).appendingPathComponent(
            "matomete-pipeline-bench-\(UUID().uuidString.prefix(6).lowercased())")
        try FileManager.default.createDirectory(at: logs, withIntermediateDirectories: true)
        do {
            try await measure(logs: logs)
        } catch {
            // No worker outlives a failed run; its logs say why it failed.
            Workers.killAll()
            progress("Logs kept in \(logs.path)")
            throw error
        }
        if keepLogs {
            progress("Logs kept in \(logs.path)")
        } else {
            try? FileManager.default.removeItem(at: logs)
        }
    }

    private func measure(logs: URL) async throws {
        let logger = Self.logger
        progress("Starting 3 mock brokers and a private PostgreSQL (logs in \(logs.path))")
        let cluster = try EmbeddedKafkaCluster(brokers: 3, logger: logger)
        let server = try await EmbeddedPostgres.start(stopWhenProcessExits: true, logger: logger)
        defer { Task { try? await server.stop() } }
        let signer = AuthorizationSigner(keyID: "bench", privateKey: Curve25519.Signing.PrivateKey())
        let keys = "bench=\(signer.publicKey.rawRepresentation.base64EncodedString())"

        progress("Signing \(charges.formatted()) authorizations")
        let workload = try Workload(charges: charges, lines: lines, signer: signer)
        var report = Report(
            machine: Report.Machine.current, lines: lines, charges: charges, partitions: partitions)

        if hotLineOnly {
            progress("Hot line: \(hotLineCharges.formatted()) forged charges to one line")
            report.hotLine = try await hotLinePhase(
                cluster, server, workload: workload, keys: keys, logs: logs, logger: logger)
            if json { try printJSON(report) } else { print(report.table) }
            return
        }
        // Limit (a): the broker and librdkafka, no processing.
        progress("Limit (a): raw librdkafka consume-then-produce")
        report.kafkaLimit = try await kafkaLimit(cluster, workload: workload, logger: logger)
        // Limit (b): the database, no locks, no rules.
        progress("Limit (b): PostgreSQL COPY of the charge path's rows")
        report.copyLimit = try await copyLimit(server, workload: workload, logger: logger)

        // What checking the authorizations costs on its own, one core.
        progress("Verifying authorizations on one core")
        report.verificationsPerCore = try verificationRate(workload, signer: signer)
        progress("Checking request signatures on one core")
        report.signatureChecksPerCore = try signatureCheckRate(workload)

        var memory: [String: Double] = [:]
        for workers in [1, 2] {
            progress("Pipeline with \(workers) charge worker\(workers == 1 ? "" : "s")")
            let (rate, peaks) = try await pipeline(
                cluster, server, workload: workload, workers: workers, keys: keys, logs: logs, logger: logger)
            report.pipeline[workers] = rate
            for (name, mib) in peaks { memory[name] = max(memory[name] ?? 0, mib) }
        }
        // Each phase starts on a quiet server: the earlier phases' databases
        // would otherwise be vacuumed and checkpointed during it.
        try await settle(server, dropping: ["limit_copy", "pipeline1", "pipeline2"], logger: logger)
        progress("Latency at \(rate.formatted()) charges/s for \(seconds) s")
        let (latency, latencyPeaks) = try await latencyPhase(
            cluster, server, workload: workload, keys: keys, logs: logs, logger: logger)
        report.latency = latency
        for (name, mib) in latencyPeaks { memory[name] = max(memory[name] ?? 0, mib) }
        for count in closeLines where count > 0 {
            for workers in [1, 2] {
                let closed = report.closes.map { closeDatabase(lines: $0.lines, workers: $0.workers) }
                try await settle(server, dropping: ["latency"] + closed, logger: logger)
                progress(
                    "Closing \(count.formatted()) lines with \(workers) billing-cycle worker\(workers == 1 ? "" : "s")")
                let (close, peaks) = try await closePhase(
                    cluster, server, lines: count, workers: workers, keys: keys, logs: logs, logger: logger)
                report.closes.append(close)
                for (name, mib) in peaks { memory[name] = max(memory[name] ?? 0, mib) }
            }
        }
        if collectionBills > 0 {
            let closed = report.closes.map { closeDatabase(lines: $0.lines, workers: $0.workers) }
            try await settle(server, dropping: ["latency"] + closed, logger: logger)
            progress("Collection: \(collectionBills.formatted()) bills paid, then paid out")
            let (collection, peaks) = try await collectionPhase(
                cluster, server, bills: collectionBills, keys: keys, logs: logs, logger: logger)
            report.collection = collection
            for (name, mib) in peaks { memory[name] = max(memory[name] ?? 0, mib) }
        }
        if hotLineCharges > 0 {
            try await settle(server, dropping: ["latency"], logger: logger)
            progress("Hot line: \(hotLineCharges.formatted()) forged charges to one line")
            report.hotLine = try await hotLinePhase(
                cluster, server, workload: workload, keys: keys, logs: logs, logger: logger)
        }
        report.peakMemoryMiB = memory
        if json {
            try printJSON(report)
        } else {
            print(report.table)
        }
    }

    // MARK: Limits

    private func kafkaLimit(
        _ cluster: EmbeddedKafkaCluster, workload: Workload, logger: Logger
    ) async throws -> Double {
        try cluster.createTopic("limit.in", partitions: partitions)
        try cluster.createTopic("limit.out", partitions: partitions)
        let producer = try KafkaProducer(
            configuration: KafkaProducerConfiguration(bootstrapServers: cluster.bootstrapServerList), logger: logger)
        try await producer.send(workload.messages(topic: "limit.in")).throwIfAnyFailed()
        await producer.shutdown()
        var result = raw_bench_result()
        var error = [CChar](repeating: 0, count: 256)
        let status = raw_bench_pipe(
            cluster.bootstrapServers, "limit.in", "limit.out", "limit-pipe", workload.count, &result, &error,
            error.count)
        guard status == 0, result.failed == 0 else {
            throw BenchError(
                "raw pipe: \(String(decoding: error.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self))")
        }
        return Double(result.messages) / result.seconds
    }

    private func copyLimit(_ server: EmbeddedPostgres, workload: Workload, logger: Logger) async throws -> Double {
        let database = try await freshDatabase(server, name: "limit_copy", partitions: 16, logger: logger)
        try await workload.load(database, logger: logger)
        let seconds = try await withPostgresClient(database, logger: logger) { client in
            try await copyChargeRows(
                workload.requests, authorizations: workload.tokenIDs, client: client, logger: logger)
        }
        return Double(workload.count) / seconds
    }

    /// Ed25519 verifications a second on one core, of the workload's tokens.
    private func verificationRate(_ workload: Workload, signer: AuthorizationSigner) throws -> Double {
        let verifier = AuthorizationVerifier(keys: ["bench": signer.publicKey])
        let count = min(workload.count, 20_000)
        let now = Int64(Date().timeIntervalSince1970)
        let start = ContinuousClock.now
        for index in 0..<count {
            guard case .success = verifier.claims(of: workload.tokens[index], now: now) else {
                throw BenchError("a benchmark authorization did not verify")
            }
        }
        return Double(count) / (ContinuousClock.now - start).seconds
    }

    /// What checking the merchant's signature of each charge costs on its
    /// own, one core: the headers read, the key looked up, both hashes and
    /// the HMAC, as a charge worker does before decoding a charge.
    private func signatureCheckRate(_ workload: Workload) throws -> Double {
        let ring = SigningKeyRing([
            workload.messageSigner.keyID: .init(owner: .merchant("m-bench"), secret: workload.messageSigner.secret)
        ])
        let verifier = RequestSignatureVerifier(ring: ring, window: .seconds(300))
        let partition = KafkaTopicPartition(topic: "bench.charges", partition: 0)
        let messages = workload.messages(topic: partition.topic).prefix(20_000).enumerated().map { index, message in
            KafkaConsumerMessage(
                topicPartition: partition, offset: KafkaOffset(Int64(index)), key: message.key.map { $0[...] },
                value: message.value[...], headers: message.headers,
                timestampMilliseconds: Int64(Date().timeIntervalSince1970 * 1000))
        }
        let start = ContinuousClock.now
        for message in messages {
            guard case .success = verifier.signer(of: message) else {
                throw BenchError("a benchmark charge's signature did not verify")
            }
        }
        return Double(messages.count) / (ContinuousClock.now - start).seconds
    }

    // MARK: Pipeline

    private func pipeline(
        _ cluster: EmbeddedKafkaCluster, _ server: EmbeddedPostgres, workload: Workload, workers count: Int,
        keys: String, logs: URL, logger: Logger
    ) async throws -> (Double, [(String, Double)]) {
        let prefix = "pipeline\(count)"
        let path = try await ChargePath.start(
            prefix: prefix, chargeWorkers: count, partitions: partitions, cluster: cluster, server: server,
            workload: workload, keys: keys, logs: logs, logger: logger)
        defer { path.reading.cancel() }
        let (topics, workers, reader) = (path.topics, path.workers, path.reader)

        let producer = try KafkaProducer(
            configuration: KafkaProducerConfiguration(bootstrapServers: cluster.bootstrapServerList), logger: logger)
        let messages = workload.messages(topic: topics.charges)
        let start = ContinuousClock.now
        try await producer.send(messages).throwIfAnyFailed()
        let last = try await reader.waitForAccepted(workload.count, within: .seconds(600), label: prefix)
        await producer.shutdown()
        let peaks = workers.peakMemory()
        await workers.stop()
        return (Double(workload.count) / (last - start).seconds, peaks)
    }

    private func latencyPhase(
        _ cluster: EmbeddedKafkaCluster, _ server: EmbeddedPostgres, workload: Workload, keys: String, logs: URL,
        logger: Logger
    ) async throws -> (Report.Latency, [(String, Double)]) {
        let prefix = "latency"
        let path = try await ChargePath.start(
            prefix: prefix, chargeWorkers: 1, partitions: partitions, cluster: cluster, server: server,
            workload: workload, keys: keys, logs: logs, logger: logger)
        defer { path.reading.cancel() }
        let (topics, workers, reader) = (path.topics, path.workers, path.reader)

        var configuration = KafkaProducerConfiguration(bootstrapServers: cluster.bootstrapServerList)
        configuration.linger = .milliseconds(1)
        let producer = try KafkaProducer(configuration: configuration, logger: logger)
        let messages = workload.messages(topic: topics.charges)
        // Warm-up, not measured: the last second's worth of the workload's
        // charges (at most a tenth of it), so every client has its metadata,
        // connections and partitions in hand when the clock starts.
        let warmUp = min(rate, workload.count / 10)
        try await producer.send(Array(messages.suffix(warmUp))).throwIfAnyFailed()
        _ = try await reader.waitForAccepted(warmUp, within: .seconds(120), label: "\(prefix) warm-up")
        reader.forget()
        let total = min(workload.count - warmUp, rate * seconds)
        // Paced in 5 ms ticks: each tick sends what the offered rate owes by then.
        // When each charge was produced: the monotonic clock for its latency,
        // the wall clock (ms) to compare with the pipeline's own stamps.
        var sentAt: [String: (instant: ContinuousClock.Instant, wall: Int64)] = [:]
        sentAt.reserveCapacity(total)
        try await sendPaced(Array(messages[0..<total]), rate: rate, producer: producer, label: "latency") {
            range, now in
            let wallNow = Int64(Date().timeIntervalSince1970 * 1000)
            for index in range { sentAt[workload.requests[index].chargeID.rawValue] = (now, wallNow) }
        }
        _ = try await reader.waitForAccepted(total, within: .seconds(120), label: prefix)
        await producer.shutdown()
        let arrivals = reader.arrivals()
        let latencies = sentAt.compactMap { id, sent in arrivals[id].map { ($0 - sent.instant).seconds * 1000 } }
            .sorted()
        let stages = try await latencyStages(
            path.database, sent: sentAt.mapValues(\.wall), stamps: reader.stamps(), logger: logger)
        let peaks = workers.peakMemory()
        await workers.stop()
        return (
            Report.Latency(
                offered: rate, seconds: seconds, charges: latencies.count, p50: percentile(latencies, 0.5),
                p99: percentile(latencies, 0.99), p999: percentile(latencies, 0.999), max: latencies.last ?? 0,
                stages: stages),
            peaks
        )
    }

    /// Sends `messages` at `rate` a second, in 5 ms ticks: each tick sends what
    /// the rate owes by then, and first whatever `extra` returns for the time
    /// elapsed. `sending` is told which messages go and when. Throws unless
    /// every message was delivered.
    func sendPaced(
        _ messages: [KafkaProducerMessage], rate: Int, producer: KafkaProducer, label: String,
        extra: (Duration) -> [KafkaProducerMessage] = { _ in [] },
        sending: (Range<Int>, ContinuousClock.Instant) -> Void
    ) async throws {
        let start = ContinuousClock.now
        var sent = 0
        var deliveries: [Task<Bool, Never>] = []
        while sent < messages.count {
            let more = extra(ContinuousClock.now - start)
            if !more.isEmpty { deliveries.append(Task { await producer.send(more).allDelivered }) }
            let due = min(messages.count, Int(Double(rate) * (ContinuousClock.now - start).seconds) + 1)
            if due > sent {
                sending(sent..<due, ContinuousClock.now)
                let batch = Array(messages[sent..<due])
                deliveries.append(Task { await producer.send(batch).allDelivered })
                sent = due
            }
            try await Task.sleep(for: .milliseconds(5))
        }
        for delivery in deliveries where !(await delivery.value) {
            throw BenchError("\(label): the producer could not deliver every message")
        }
    }

    /// Where the latency goes, from wall-clock stamps in milliseconds: the
    /// charge's transaction start (`applied_at`, PostgreSQL's `now()`), the
    /// relay's produce of its result (the result message's timestamp) and the
    /// result's arrival at the reader.
    private func latencyStages(
        _ database: DatabaseConfiguration, sent: [String: Int64],
        stamps: [String: (published: Int64, arrived: Int64)], logger: Logger
    ) async throws -> [Report.Latency.Stage] {
        let applied = try await withPostgresClient(database, logger: logger) { client in
            try await client.query(
                "SELECT charge_id, (extract(epoch FROM applied_at) * 1000)::bigint FROM charges", logger: logger
            ).collect().map { try $0.decode((String, Int64).self) }
        }
        var toTransaction: [Double] = []
        var toRelay: [Double] = []
        var toReader: [Double] = []
        for (id, start) in applied {
            guard let sent = sent[id], let stamp = stamps[id] else { continue }
            toTransaction.append(Double(start - sent))
            toRelay.append(Double(stamp.published - start))
            toReader.append(Double(stamp.arrived - stamp.published))
        }
        return [
            ("produced → transaction starts", toTransaction),
            ("transaction starts → relay produces result", toRelay),
            ("relay produces result → result read", toReader),
        ].map { name, values in
            let sorted = values.sorted()
            return Report.Latency.Stage(name: name, p50: percentile(sorted, 0.5), p99: percentile(sorted, 0.99))
        }
    }

    /// A fresh charge path for one phase: its topics, a database with the
    /// lines, charge workers and a relay (all ready) and a results reader that
    /// has joined its group, so no answer is missed.
    struct ChargePath {
        let topics: Topics
        let database: DatabaseConfiguration
        let workers: Workers
        let reader: ResultReader
        let reading: Task<Void, any Error>

        static func start(
            prefix: String, chargeWorkers: Int, partitions: Int, cluster: EmbeddedKafkaCluster,
            server: EmbeddedPostgres, workload: Workload, keys: String, logs: URL, logger: Logger
        ) async throws -> ChargePath {
            let topics = try createTopics(cluster, prefix: prefix, partitions: partitions)
            let database = try await freshDatabase(server, name: prefix, partitions: 16, logger: logger)
            try await workload.load(database, logger: logger)
            let workers = Workers(
                bootstrapServers: cluster.bootstrapServers, database: database, prefix: prefix, keys: keys,
                logs: logs)
            for _ in 0..<chargeWorkers { try workers.launch("charge-worker") }
            try workers.launch("outbox-relay")
            try await workers.waitUntilReady()
            let reader = try ResultReader(
                bootstrapServers: cluster.bootstrapServerList, topic: topics.merchantResults("m-bench"), logger: logger)
            let reading = Task { try await reader.run() }
            while !reader.isAssigned { try await Task.sleep(for: .milliseconds(50)) }
            return ChargePath(
                topics: topics, database: database, workers: workers, reader: reader, reading: reading)
        }
    }

    // MARK: Close

    private func closeDatabase(lines: Int, workers: Int) -> String { "close_\(lines)_\(workers)" }

    private func closePhase(
        _ cluster: EmbeddedKafkaCluster, _ server: EmbeddedPostgres, lines: Int, workers count: Int, keys: String,
        logs: URL, logger: Logger
    ) async throws -> (Report.Close, [(String, Double)]) {
        let prefix = "close\(lines)x\(count)"
        let topics = try createTopics(cluster, prefix: prefix, partitions: 1)
        let database = try await freshDatabase(
            server, name: closeDatabase(lines: lines, workers: count), partitions: 16, logger: logger)
        let cycle = BillingCycle("2026-10")!
        try await CloseWorkload.load(database, lines: lines, cycle: cycle, logger: logger)
        let workers = Workers(
            bootstrapServers: cluster.bootstrapServers, database: database, prefix: prefix, keys: keys, logs: logs)
        for _ in 0..<count { try workers.launch("billing-cycle-worker") }
        try await workers.waitUntilReady()
        let producer = try KafkaProducer(
            configuration: KafkaProducerConfiguration(bootstrapServers: cluster.bootstrapServerList), logger: logger)
        _ = try await producer.send(
            KafkaProducerMessage(topic: topics.billingCycles, key: nil, value: CycleCommand.closeMessage(cycle)))
        await producer.shutdown()
        let seconds = try await withPostgresClient(database, logger: logger) { client in
            let store = try await BillingStore.open(client: client, logger: logger)
            let deadline = ContinuousClock.now + .seconds(1800)
            while ContinuousClock.now < deadline {
                if try await store.closeStatus(cycle)?.isClosed == true {
                    // The database's own clock: from the close's start to the settlement.
                    let row = try await client.query(
                        """
                        SELECT extract(epoch FROM closed_at - requested_at)::float8 FROM cycle_closes
                        WHERE cycle = \(cycle.description)
                        """, logger: logger)
                    for try await seconds in row.decode(Double.self) { return seconds }
                }
                try await Task.sleep(for: .milliseconds(100))
            }
            throw BenchError("the close of \(lines) lines did not finish")
        }
        let peaks = workers.peakMemory()
        await workers.stop()
        return (
            Report.Close(lines: lines, workers: count, seconds: seconds, linesPerSecond: Double(lines) / seconds), peaks
        )
    }
}

/// The value at fraction `p` of `sorted` (0 when empty).
func percentile(_ sorted: [Double], _ p: Double) -> Double {
    sorted.isEmpty ? 0 : sorted[min(sorted.count - 1, Int(Double(sorted.count) * p))]
}
