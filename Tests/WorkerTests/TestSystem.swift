import Authorization
import Billing
import Contract
import Crypto
import Foundation
import Kafka
import Logging
import MatometeTestSupport
import PostgresNIO
import Store
import Synchronization
import Testing

#if canImport(FoundationNetworking)
    import FoundationNetworking
#endif

/// One whole Matomete for a test: librdkafka's mock cluster in this process
/// (other processes reach it over loopback), a database of its own, and the
/// real worker executables as child processes, each logging to its own file.
final class TestSystem: Sendable {
    enum Role: String, CaseIterable, Sendable {
        case charges = "charge-worker"
        case cancellations = "cancellation-worker"
        case billingCycles = "billing-cycle-worker"
        case collections = "collection-worker"
        case relay = "outbox-relay"

        /// The roles every request and close needs; collection workers are started by the tests of collection.
        static let core: [Role] = [.charges, .cancellations, .billingCycles, .relay]

        var group: String { "matomete-\(rawValue)" }
    }

    static let logger: Logger = {
        var logger = Logger(label: "matomete.tests.workers")
        logger.logLevel = .critical
        return logger
    }()

    let cluster: EmbeddedKafkaCluster
    let database: TestDatabase
    let topics: Topics
    let logDirectory: URL
    let inputPartitions: Int
    let outputPartitions: Int
    private let producer: KafkaProducer
    private let admin: KafkaAdmin
    private let workers = Mutex<[WorkerProcess]>([])
    /// The signing key of each merchant set up, and of the line system.
    private let signers = Mutex<[KeyOwner: RequestSigner]>([:])
    private let launches = Atomic<Int>(0)

    /// The merchants whose own topics exist, read by ``outputs()``.
    private let merchants = Mutex<Set<String>>([])

    private init(
        cluster: EmbeddedKafkaCluster, database: TestDatabase, topics: Topics, logDirectory: URL, inputPartitions: Int,
        outputPartitions: Int
    ) throws {
        self.cluster = cluster
        self.database = database
        self.topics = topics
        self.logDirectory = logDirectory
        self.inputPartitions = inputPartitions
        self.outputPartitions = outputPartitions
        var configuration = KafkaProducerConfiguration(bootstrapServers: cluster.bootstrapServerList)
        configuration.linger = .milliseconds(2)
        producer = try KafkaProducer(configuration: configuration, logger: Self.logger)
        admin = try KafkaAdmin(
            settings: KafkaClientSettings(bootstrapServers: cluster.bootstrapServerList), logger: Self.logger)
    }

    /// A fresh cluster with Matomete's topics and a fresh migrated database
    /// (on `server`, or the shared test server).
    static func start(
        _ name: String, inputPartitions: Int = 6, outputPartitions: Int = 12, server: DatabaseConfiguration? = nil
    ) async throws -> TestSystem {
        let cluster = try EmbeddedKafkaCluster(brokers: 3, logger: logger)
        let topics = Topics(prefix: "matomete")
        for topic in [topics.charges, topics.cancellations, topics.collections] {
            try cluster.createTopic(topic, partitions: inputPartitions)
        }
        try cluster.createTopic(topics.billingCycles, partitions: 1)
        for topic in [
            topics.lineSystemResults, topics.lineBills, topics.settlements, topics.collectionResults, topics.payouts,
            topics.deadLetters,
        ] {
            try cluster.createTopic(topic, partitions: outputPartitions)
        }
        let database = try await TestDatabase.create(partitions: 8, on: server)
        let logs = URL(fileURLWithPath: NSTemporaryDirectory()).appendingPathComponent(
            "matomete-worker-tests/\(name)-\(UUID().uuidString.prefix(6).lowercased())")
        try FileManager.default.createDirectory(at: logs, withIntermediateDirectories: true)
        return try TestSystem(
            cluster: cluster, database: database, topics: topics, logDirectory: logs, inputPartitions: inputPartitions,
            outputPartitions: outputPartitions)
    }

    // MARK: Reference data

    /// Adds `merchants` and `lines`, with a signing key for each merchant
    /// and one for the line system: ``produce(_:_:)`` signs with them.
    func setUp(merchants: [Merchant], lines: [Line], openCycle: BillingCycle) async throws {
        try await database.withStore { store in
            for merchant in merchants { try await store.upsertMerchant(merchant) }
            _ = try await store.importLines(lines, openCycle: openCycle)
        }
        try await addSigningKeys(for: merchants.map { .merchant($0.id.rawValue) } + [.lineSystem])
    }

    /// Gives each owner that has none a signing key, stored sealed as
    /// `matomete merchants keys create` stores it.
    @discardableResult
    func addSigningKeys(for owners: [KeyOwner]) async throws -> [KeyOwner: RequestSigner] {
        for case .merchant(let merchant) in owners { addMerchantTopics(merchant) }
        let missing = signers.withLock { held in owners.filter { held[$0] == nil } }
        let added = Dictionary(uniqueKeysWithValues: Set(missing).map { ($0, TestKeys.newSigningKey(for: $0)) })
        try await database.withStore { store in
            for (owner, signer) in added {
                try await store.addSigningKey(
                    keyID: signer.keyID, owner: owner,
                    sealedSecret: try TestKeys.sealer.seal(
                        signer.secret, boundTo: owner.sealingContext(keyID: signer.keyID)))
            }
        }
        signers.withLock { $0.merge(added) { old, _ in old } }
        return added
    }

    /// Signs `owner`'s requests with `signer` from now on (a key made elsewhere, by the operator tool).
    func useSigningKey(_ signer: RequestSigner, for owner: KeyOwner) {
        if case .merchant(let merchant) = owner { addMerchantTopics(merchant) }
        signers.withLock { $0[owner] = signer }
    }

    /// Creates `merchant`'s own topics, as adding a merchant does, unless they exist.
    private func addMerchantTopics(_ merchant: String) {
        guard merchants.withLock({ $0.insert(merchant).inserted }) else { return }
        for topic in topics.merchantLayout(merchant, partitions: outputPartitions) {
            // The mock cluster creates a topic on its first message too: one that exists is left as it is.
            try? cluster.createTopic(topic.name, partitions: topic.partitions)
        }
    }

    /// The key ``produce(_:_:)`` signs `owner`'s requests with.
    func signer(of owner: KeyOwner) -> RequestSigner? { signers.withLock { $0[owner] } }

    /// The merchant-keyed copy of the billed items (the sites' statements) holds every item of every line bill
    /// once, and nothing else: whatever was killed during the closes.
    func checkMerchantBillItems() async throws {
        let (bills, differing) = try await database.withClient { client -> (Int64, Int64) in
            let rows = try await client.query(
                """
                WITH billed AS (
                    SELECT i.item->>'merchantId' AS merchant_id, b.cycle, b.line_id, i.n, i.item->>'kind' AS kind,
                           i.item->>'reference' AS reference, (i.item->>'amount')::bigint AS amount_yen
                    FROM line_bills b, json_array_elements(b.items) WITH ORDINALITY AS i(item, n)
                ), copied AS (
                    SELECT merchant_id, cycle, line_id, n, kind, reference, amount_yen FROM merchant_bill_items
                )
                SELECT (SELECT count(*) FROM billed),
                       (SELECT count(*) FROM ((SELECT * FROM billed EXCEPT ALL SELECT * FROM copied)
                                              UNION ALL (SELECT * FROM copied EXCEPT ALL SELECT * FROM billed)) d)
                """, logger: Self.logger)
            for try await counts in rows.decode((Int64, Int64).self) { return counts }
            return (0, -1)
        }
        #expect(bills > 0, "the closes billed items")
        #expect(differing == 0, "\(differing) items differ between the bills and the merchants' copy")
    }

    /// Whose key `keyID` is, among the keys the system made.
    func owner(ofKey keyID: String) -> KeyOwner? {
        signers.withLock { held in held.first { $0.value.keyID == keyID }?.key }
    }

    /// Who sends `value`: the line system for a line termination, else the
    /// merchant it names. Anything else (not JSON, no merchant, a merchant
    /// without a key) is signed by the line system, so that its signature
    /// passes and the rest of it is judged: that is what the tests of bad
    /// input send. Tests of signatures sign for themselves.
    private func sender(of value: [UInt8]) -> RequestSigner? {
        let object = try? JSONSerialization.jsonObject(with: Data(value)) as? [String: Any]
        return signers.withLock { held in
            if object?["type"] as? String != "line-termination", let merchant = object?["merchantId"] as? String,
                let signer = held[.merchant(merchant)]
            {
                return signer
            }
            return held[.lineSystem]
        }
    }

    // MARK: Worker processes

    /// Starts a worker process. Its log goes to `<role>-<n>.log` in ``logDirectory``.
    @discardableResult
    func launch(_ role: Role, arguments: [String] = [], httpPort: Int = 0) throws -> WorkerProcess {
        let number = launches.add(1, ordering: .relaxed).newValue
        let logURL = logDirectory.appendingPathComponent("\(role.rawValue)-\(number).log")
        _ = FileManager.default.createFile(atPath: logURL.path, contents: nil)
        let process = Process()
        process.executableURL = try Processes.builtExecutable(role.rawValue)
        var arguments = arguments
        // Short leases and small chunks: crashes cost seconds, closes take many transactions.
        switch role {
        case .relay where !arguments.contains("--lease"): arguments += ["--lease", "3"]
        case .billingCycles where !arguments.contains("--chunk-lines"): arguments += ["--chunk-lines", "100"]
        default: break
        }
        process.arguments = arguments
        var environment = ProcessInfo.processInfo.environment
        environment["MATOMETE_BOOTSTRAP_SERVERS"] = cluster.bootstrapServers
        environment["MATOMETE_DATABASE_URL"] = database.configuration.url
        environment["MATOMETE_HTTP_ADDRESS"] = "127.0.0.1:\(httpPort)"
        environment["MATOMETE_AUTHORIZATION_KEYS"] = TestKeys.acceptedKeys
        environment["MATOMETE_KEY_ENCRYPTION_KEY"] = TestKeys.keyEncryptionKey
        environment["MATOMETE_SIGNING_KEY_REFRESH_SECONDS"] = "1"
        environment["MATOMETE_LOG_LEVEL"] =
            ProcessInfo.processInfo.environment["MATOMETE_TEST_WORKER_LOG_LEVEL"] ?? "info"
        // Quick takeover after a SIGKILL: the group notices a dead member in 6 s.
        environment["MATOMETE_KAFKA_PROPERTIES"] = "session.timeout.ms=6000;heartbeat.interval.ms=500"
        process.environment = environment
        process.standardError = try FileHandle(forWritingTo: logURL)
        process.standardOutput = FileHandle.nullDevice
        try process.run()
        ChildProcesses.register(process)
        let worker = WorkerProcess(role: role, process: process, log: logURL)
        workers.withLock { $0.append(worker) }
        return worker
    }

    /// Starts `count` processes of each core role.
    func launchAll(_ count: Int = 1) throws {
        for role in Role.core { for _ in 0..<count { try launch(role) } }
    }

    var running: [WorkerProcess] { workers.withLock { $0.filter(\.process.isRunning) } }

    /// SIGKILL: no chance to finish anything.
    func kill(_ worker: WorkerProcess) async throws {
        Foundation.kill(worker.process.processIdentifier, SIGKILL)
        _ = try await Processes.waitForExit(worker.process, within: .seconds(10))
    }

    /// SIGTERM to every running worker; returns each one's exit status.
    @discardableResult
    func stopAll() async throws -> [(WorkerProcess, Int32)] {
        let all = running
        for worker in all { worker.process.terminate() }
        var statuses: [(WorkerProcess, Int32)] = []
        for worker in all {
            if try await !Processes.waitForExit(worker.process, within: .seconds(30)) {
                Foundation.kill(worker.process.processIdentifier, SIGKILL)
                _ = try await Processes.waitForExit(worker.process, within: .seconds(5))
                statuses.append((worker, -1))
            } else {
                statuses.append((worker, worker.process.terminationStatus))
            }
        }
        return statuses
    }

    /// Stops everything; for `defer`.
    func shutDown() async {
        _ = try? await stopAll()
        await producer.shutdown()
    }

    // MARK: Traffic

    /// Produces messages and waits until Kafka has them all; returns where each one landed.
    @discardableResult
    func produce(_ topic: String, _ messages: [(key: String?, value: String)]) async throws -> [KafkaDeliveryReport] {
        try await produceBytes(topic, messages.map { ($0.key.map { Array($0.utf8) }, Array($0.value.utf8)) })
    }

    @discardableResult
    func produceBytes(
        _ topic: String, _ messages: [(key: [UInt8]?, value: [UInt8])]
    ) async throws
        -> [KafkaDeliveryReport]
    {
        var reports: [KafkaDeliveryReport] = []
        for chunk in stride(from: 0, to: messages.count, by: 10_000) {
            let batch = messages[chunk..<min(chunk + 10_000, messages.count)].map { message in
                let headers =
                    [topics.billingCycles, topics.collections].contains(topic)
                    ? []
                    : (sender(of: message.value)?.headers(topic: topic, key: message.key, value: message.value) ?? [])
                return KafkaProducerMessage(
                    topic: topic, key: message.key, value: message.value,
                    headers: headers.map { KafkaHeader(name: $0.name, value: Array($0.value.utf8)) })
            }
            let results = await producer.send(batch)
            try results.throwIfAnyFailed()
            for result in results { reports.append(try result.get()) }
        }
        return reports
    }

    /// Produces messages as they are (headers included) and waits until Kafka has them all.
    @discardableResult
    func send(_ messages: [KafkaProducerMessage]) async throws -> [KafkaDeliveryReport] {
        let results = await producer.send(messages)
        try results.throwIfAnyFailed()
        return try results.map { try $0.get() }
    }

    func close(_ cycle: BillingCycle) async throws {
        try await produce(topics.billingCycles, [(nil, CycleCommand.closeMessage(cycle))])
    }

    // MARK: Waiting and reading

    /// Waits until every input message is applied (each group's stored offset
    /// at its partition's end), no close is running and the outbox is empty.
    func waitUntilIdle(within limit: Duration = .seconds(180)) async throws {
        let inputs: [(Role, String, Int)] = [
            (.charges, topics.charges, inputPartitions), (.cancellations, topics.cancellations, inputPartitions),
            (.billingCycles, topics.billingCycles, 1), (.collections, topics.collections, inputPartitions),
        ]
        let partitions = inputs.flatMap { _, topic, count in
            (0..<count).map { KafkaTopicPartition(topic: topic, partition: KafkaPartition(Int32($0))) }
        }
        let deadline = ContinuousClock.now + limit
        var state = ""
        while ContinuousClock.now < deadline {
            let ends = try await admin.highWatermarks(partitions)
            let (stored, outbox, closing) = try await database.withClient { client in
                let rows = try await client.query(
                    "SELECT consumer_group, topic, partition, next_offset FROM consumer_offsets", logger: Self.logger)
                var stored: [String: Int64] = [:]
                for try await (group, topic, partition, next) in rows.decode((String, String, Int, Int64).self) {
                    stored["\(group)/\(topic)/\(partition)"] = next
                }
                var outbox = 0
                for try await count in try await client.query("SELECT count(*)::int FROM outbox", logger: Self.logger)
                    .decode(Int.self)
                { outbox = count }
                var closing = 0
                for try await count in try await client.query(
                    "SELECT count(*)::int FROM cycle_closes WHERE status <> 'closed'", logger: Self.logger
                ).decode(Int.self) { closing = count }
                return (stored, outbox, closing)
            }
            var behind: [String] = []
            for (role, topic, _) in inputs {
                for (partition, end) in ends where partition.topic == topic && end > 0 {
                    let applied = stored["\(role.group)/\(topic)/\(partition.partition)"] ?? 0
                    if applied < end.rawValue { behind.append("\(partition) \(applied)/\(end)") }
                }
            }
            if behind.isEmpty, outbox == 0, closing == 0 { return }
            state = "behind: \(behind), outbox: \(outbox), closes running: \(closing)"
            try await Task.sleep(for: .milliseconds(250))
        }
        throw TestFailure("the workers did not finish within \(limit): \(state); logs in \(logDirectory.path)")
    }

    /// Every message of `topics`, from the beginning to the current end.
    func readAll(
        _ topicNames: [String], within limit: Duration = .seconds(60)
    ) async throws -> [String:
        [KafkaConsumerMessage]]
    {
        let descriptions = try await admin.describeTopics(topicNames)
        let partitions = descriptions.flatMap { topic in
            topic.partitions.map { KafkaTopicPartition(topic: topic.name, partition: $0.id) }
        }
        let ends = try await admin.highWatermarks(partitions)
        let consumer = try KafkaConsumer(
            configuration: KafkaConsumerConfiguration(
                bootstrapServers: cluster.bootstrapServerList, groupID: "reader-\(UUID().uuidString.prefix(8))"),
            logger: Self.logger)
        try consumer.subscribe(topicNames)
        var read: [String: [KafkaConsumerMessage]] = [:]
        var next: [KafkaTopicPartition: KafkaOffset] = [:]
        let deadline = ContinuousClock.now + limit
        func done() -> Bool { ends.allSatisfy { partition, end in (next[partition] ?? 0) >= end } }
        while !done() {
            guard ContinuousClock.now < deadline else {
                throw TestFailure("could not read \(topicNames) to the end within \(limit)")
            }
            for event in try await consumer.poll(timeout: .milliseconds(100)) {
                switch event {
                case .partitionsAssigned(let assigned):
                    try await consumer.startPartitions(
                        Dictionary(uniqueKeysWithValues: assigned.map { ($0, KafkaStartOffset.beginning) }))
                case .messages(let messages):
                    for message in messages {
                        read[message.topicPartition.topic, default: []].append(message)
                        next[message.topicPartition] = message.offset + 1
                    }
                default: break
                }
            }
        }
        await consumer.close()
        return read
    }

    /// Where each request id (`"a-17"`) is in `topic`: partition and offset,
    /// or "not in the log"; with each partition's stored offsets. For failures.
    func locate(_ ids: [String], in topic: String) async throws -> String {
        let messages = try await readAll([topic])[topic] ?? []
        let places = ids.prefix(10).map { id in
            let quoted = Array("\"\(id)\"".utf8)
            let found = messages.filter { $0.value.firstRange(of: quoted) != nil }
            return "\(id): "
                + (found.isEmpty
                    ? "not in the log" : found.map { "\($0.topicPartition)@\($0.offset)" }.joined(separator: ", "))
        }
        let stored = try await database.withClient { client in
            var rows: [String] = []
            for try await (group, partition, next) in try await client.query(
                "SELECT consumer_group, partition, next_offset FROM consumer_offsets WHERE topic = \(topic) ORDER BY 1, 2",
                logger: Self.logger
            ).decode((String, Int, Int64).self) { rows.append("\(group)[\(partition)]=\(next)") }
            return rows
        }
        return "\(places.joined(separator: "; ")); stored offsets \(stored)"
    }

    /// The published outputs, each id once; fails the test if two copies of
    /// one id differ (repeats must be exact).
    func outputs() async throws -> Outputs {
        /// What a topic carries, and for whom.
        enum Carries {
            case results(merchant: String?)
            case bills
            case settlements(merchant: String?)
            case collectionResults
            case payouts(merchant: String?)
            case deadLetters
        }
        var carries: [String: Carries] = [
            topics.lineSystemResults: .results(merchant: nil), topics.lineBills: .bills,
            topics.settlements: .settlements(merchant: nil), topics.collectionResults: .collectionResults,
            topics.payouts: .payouts(merchant: nil), topics.deadLetters: .deadLetters,
        ]
        for merchant in merchants.withLock({ $0 }) {
            carries[topics.merchantResults(merchant)] = .results(merchant: merchant)
            carries[topics.merchantSettlements(merchant)] = .settlements(merchant: merchant)
            carries[topics.merchantPayouts(merchant)] = .payouts(merchant: merchant)
        }
        let all = try await readAll(carries.keys.sorted())
        var outputs = Outputs()
        let decoder = JSONDecoder()
        // Everything published must match the documented contract.
        let resultSchema = try JSONSchema(named: "merchant-results")
        let billSchema = try JSONSchema(named: "line-bills")
        let settlementSchema = try JSONSchema(named: "settlements")
        let deadLetterSchema = try JSONSchema(named: "dead-letters")
        let collectionResultSchema = try JSONSchema(named: "collection-results")
        let payoutSchema = try JSONSchema(named: "payouts")
        var merchantsPayouts: [String: PayoutMessage] = [:]
        var merchantsSettlements: [String: SettlementMessage] = [:]
        for (topic, messages) in all {
            var byID: [String: KafkaConsumerMessage] = [:]
            for message in messages {
                guard let id = message.header("id").map({ String(decoding: $0, as: UTF8.self) }) else {
                    Issue.record("a message on \(topic) has no id header")
                    continue
                }
                outputs.copies += 1
                if let earlier = byID[id] {
                    #expect(
                        earlier.value == message.value && earlier.key == message.key,
                        "two different messages share the id \(id)")
                    outputs.repeats += 1
                    continue
                }
                byID[id] = message
            }
            for (id, message) in byID {
                func check(_ schema: JSONSchema) {
                    let violations = schema.violations(of: message.value)
                    if !violations.isEmpty { Issue.record("\(id) does not match its schema: \(violations)") }
                }
                switch carries[topic]! {
                case .results(let merchant):
                    check(resultSchema)
                    let result = try decoder.decode(MerchantResultMessage.self, from: Data(message.value))
                    // Confidentiality: each result reaches its own sender's topic, and no other.
                    #expect(
                        result.merchantId == merchant,
                        "\(id) of \(result.merchantId ?? "the line system") is on \(topic)")
                    #expect(outputs.results[id] == nil, "\(id) is on two results topics")
                    outputs.results[id] = result
                case .bills:
                    check(billSchema)
                    outputs.bills[id] = try decoder.decode(LineBillMessage.self, from: Data(message.value))
                case .settlements(let merchant?):
                    check(settlementSchema)
                    let settlement = try decoder.decode(SettlementMessage.self, from: Data(message.value))
                    #expect(settlement.merchantId == merchant, "\(id) is on \(topic)")
                    merchantsSettlements[id] = settlement
                case .settlements(nil):
                    check(settlementSchema)
                    outputs.settlements[id] = try decoder.decode(SettlementMessage.self, from: Data(message.value))
                case .collectionResults:
                    check(collectionResultSchema)
                    outputs.collectionResults[id] = try decoder.decode(
                        CollectionResultMessage.self, from: Data(message.value))
                case .payouts(let merchant):
                    check(payoutSchema)
                    let payout = try decoder.decode(PayoutMessage.self, from: Data(message.value))
                    if let merchant {
                        #expect(payout.merchantId == merchant, "\(id) is on \(topic)")
                        merchantsPayouts[id] = payout
                    } else {
                        outputs.payouts[id] = payout
                    }
                case .deadLetters:
                    let violations = deadLetterSchema.violations(
                        ofHeaders: Dictionary(
                            message.headers.map { ($0.name, String(decoding: $0.value ?? [], as: UTF8.self)) }
                        ) { $1 })
                    if !violations.isEmpty { Issue.record("\(id) does not match its schema: \(violations)") }
                    outputs.deadLetters[id] = message
                }
            }
        }
        // Each merchant reads on its own topic exactly the settlements finance reads of it.
        #expect(
            merchantsSettlements.mapValues(ExpectedSettlement.init)
                == outputs.settlements.mapValues(ExpectedSettlement.init),
            "the merchants' own settlements are finance's")
        #expect(merchantsPayouts == outputs.payouts, "the merchants' own payout statements are finance's")
        return outputs
    }

    /// The last lines of every worker log, for a failure message.
    func logTail(lines: Int = 20) -> String {
        workers.withLock { $0 }.map { worker in
            let text = (try? String(contentsOf: worker.log, encoding: .utf8)) ?? ""
            return "== \(worker.log.lastPathComponent)\n"
                + text.split(separator: "\n").suffix(lines).joined(separator: "\n")
        }.joined(separator: "\n")
    }
}

/// A worker process started by a test.
struct WorkerProcess: Sendable {
    let role: TestSystem.Role
    let process: Process
    let log: URL

    /// The port its HTTP endpoints listen on, from its log.
    func httpPort(within limit: Duration = .seconds(30)) async throws -> Int {
        let deadline = ContinuousClock.now + limit
        while ContinuousClock.now < deadline {
            let text = (try? String(contentsOf: log, encoding: .utf8)) ?? ""
            for line in text.split(separator: "\n") where line.contains("HTTP endpoints listening") {
                if let object = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any],
                    let port = (object["http.port"] as? String).flatMap(Int.init)
                {
                    return port
                }
            }
            try await Task.sleep(for: .milliseconds(100))
        }
        throw TestFailure("\(role.rawValue) logged no HTTP port; see \(log.path)")
    }
}

/// What the relays published, each id once.
struct Outputs {
    var results: [String: MerchantResultMessage] = [:]
    var bills: [String: LineBillMessage] = [:]
    var settlements: [String: SettlementMessage] = [:]
    var collectionResults: [String: CollectionResultMessage] = [:]
    var payouts: [String: PayoutMessage] = [:]
    var deadLetters: [String: KafkaConsumerMessage] = [:]
    /// Messages read, repeats included.
    var copies = 0
    /// Exact repeats of an id already seen.
    var repeats = 0

    func bills(of cycle: BillingCycle) -> [String: LineBillMessage] {
        Dictionary(uniqueKeysWithValues: bills.values.filter { $0.cycle == cycle.description }.map { ($0.lineId, $0) })
    }

    func settlements(of cycle: BillingCycle) -> [String: SettlementMessage] {
        Dictionary(
            uniqueKeysWithValues: settlements.values.filter { $0.cycle == cycle.description }.map {
                ($0.merchantId, $0)
            }
        )
    }
}

/// What a merchant's settlement must say, computed here from the fee rule's
/// definition (not by the code under test).
struct ExpectedSettlement: Equatable, CustomStringConvertible {
    var lines: Int64
    var gross: Int64
    var fee: Int64
    var items: Int64
    var credits: Int64

    init(lines: Int64, gross: Int64, items: Int64, credits: Int64 = 0) {
        self.lines = lines
        self.gross = gross
        self.items = items
        self.credits = credits
        if gross <= 0 {
            fee = 0
        } else if gross < 600 * lines {
            fee = 315 * lines / 10  // ¥31.5 a line, rounded down once
        } else {
            fee = gross * 500 / 10_000  // 5%, rounded down once
        }
    }

    init(_ message: SettlementMessage) {
        lines = message.lines
        gross = message.grossAmount
        fee = message.fee
        items = message.itemCount
        credits = message.creditAmount
    }

    var description: String { "lines \(lines) gross \(gross) fee \(fee) items \(items) credits \(credits)" }
}

extension BillingCycle {
    static let september = BillingCycle("2026-09")!
    static let october = BillingCycle("2026-10")!
}

/// The gateway's signing keys for the tests: the current one, and one the
/// workers no longer accept.
enum TestKeys {
    static let currentKey = Curve25519.Signing.PrivateKey()
    static let current = AuthorizationSigner(keyID: "test-2", privateKey: currentKey)
    static var currentPrivateKey: String { currentKey.rawRepresentation.base64EncodedString() }
    static let retired = AuthorizationSigner(keyID: "test-1", privateKey: Curve25519.Signing.PrivateKey())
    static var acceptedKeys: String { "test-2=\(current.publicKey.rawRepresentation.base64EncodedString())" }

    /// The workers' key-encryption key, base64.
    static let keyEncryptionKey = SymmetricKey(size: .bits256).withUnsafeBytes { Data($0) }.base64EncodedString()
    static let sealer = try! SecretSealer(base64: keyEncryptionKey)  // 32 random bytes: always a valid key.

    /// A fresh signing key for `owner`, with an id of the form `matomete` gives.
    static func newSigningKey(for owner: KeyOwner) -> RequestSigner {
        RequestSigner.generate(keyIDPrefix: owner.keyIDPrefix)
    }

    /// A token for exactly this request, valid for an hour (or as told).
    static func token(
        line: String, merchant: String, kind: String, amount: Int64, reference: String,
        expiresIn seconds: Int64 = 3600, signer: AuthorizationSigner = current, tokenID: String = UUID().uuidString
    ) -> String {
        let claims = PurchaseClaims(
            tokenID: tokenID, lineID: line, merchantID: merchant, kind: kind, amount: amount, reference: reference,
            expiresAt: Int64(Date().timeIntervalSince1970) + seconds)
        return try! signer.token(for: claims)  // Signing with an in-memory key cannot fail.
    }
}

/// The JSON of requests, as merchants and the line system send them.
enum Requests {
    static func charge(
        _ merchant: String, _ id: String, line: String, _ amount: Int64, _ description: String = "item",
        authorization: String? = nil
    ) -> (key: String?, value: String) {
        let token =
            authorization
            ?? TestKeys.token(line: line, merchant: merchant, kind: "charge", amount: amount, reference: id)
        return (
            line,
            #"{"type":"charge","merchantId":"\#(merchant)","chargeId":"\#(id)","lineId":"\#(line)","amount":\#(amount),"description":"\#(description)","occurredAt":"2026-09-03T10:15:00+09:00","authorization":"\#(token)"}"#
        )
    }

    static func subscription(
        _ merchant: String, _ id: String, line: String, _ amount: Int64
    ) -> (
        key: String?, value: String
    ) {
        let token = TestKeys.token(line: line, merchant: merchant, kind: "subscription", amount: amount, reference: id)
        return (
            line,
            #"{"type":"subscription","merchantId":"\#(merchant)","subscriptionId":"\#(id)","lineId":"\#(line)","monthlyAmount":\#(amount),"description":"monthly plan","occurredAt":"2026-09-03T10:15:00+09:00","authorization":"\#(token)"}"#
        )
    }

    static func cancelCharge(_ merchant: String, _ id: String, line: String) -> (key: String?, value: String) {
        (
            line,
            #"{"type":"charge-cancel","merchantId":"\#(merchant)","chargeId":"\#(id)","lineId":"\#(line)","occurredAt":"2026-09-04T10:15:00+09:00"}"#
        )
    }

    static func cancelSubscription(_ merchant: String, _ id: String, line: String) -> (key: String?, value: String) {
        (
            line,
            #"{"type":"subscription-cancel","merchantId":"\#(merchant)","subscriptionId":"\#(id)","lineId":"\#(line)","occurredAt":"2026-09-04T10:15:00+09:00"}"#
        )
    }

    static func terminate(line: String) -> (key: String?, value: String) {
        (line, #"{"type":"line-termination","lineId":"\#(line)","occurredAt":"2026-10-05T09:00:00+09:00"}"#)
    }

    static func line(_ number: Int) -> String { "L\(String(format: "%07d", number))" }
}

/// A plain HTTP/1.1 GET on loopback, enough to read a worker's endpoints.
enum HTTP {
    static func get(port: Int, path: String) async throws -> (body: String, status: Int) {
        let url = try #require(URL(string: "http://127.0.0.1:\(port)\(path)"))
        let (data, response) = try await URLSession.shared.data(from: url)
        return (String(decoding: data, as: UTF8.self), (response as? HTTPURLResponse)?.statusCode ?? 0)
    }

    static func post(
        port: Int, path: String, json: [String: Any], headers: [String: String] = [:]
    ) async throws -> (
        body: [String: String], status: Int
    ) {
        var request = URLRequest(url: try #require(URL(string: "http://127.0.0.1:\(port)\(path)")))
        request.httpMethod = "POST"
        request.httpBody = try JSONSerialization.data(withJSONObject: json)
        request.setValue("application/json", forHTTPHeaderField: "Content-Type")
        for (name, value) in headers { request.setValue(value, forHTTPHeaderField: name) }
        let (data, response) = try await URLSession.shared.data(for: request)
        let body = (try? JSONSerialization.jsonObject(with: data) as? [String: String]) ?? [:]
        return (body, (response as? HTTPURLResponse)?.statusCode ?? 0)
    }
}

/// Every worker a test started, killed when the test process exits however the
/// test ended, so no worker outlives the run (a test's own clean-up task may
/// not get to run before the process exits).
enum ChildProcesses {
    private static let all = Mutex<[Process]>([])
    private static let installed = Atomic<Bool>(false)

    static func register(_ process: Process) {
        all.withLock { $0.append(process) }
        if !installed.exchange(true, ordering: .relaxed) {
            atexit { ChildProcesses.killAll() }
        }
    }

    static func killAll() {
        for process in all.withLock({ $0 }) where process.isRunning {
            kill(process.processIdentifier, SIGKILL)
        }
    }
}
