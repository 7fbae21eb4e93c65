import Foundation
import Kafka
import MatometeTestSupport
import Testing

@Suite("The stand-alone embedded broker process")
struct BrokerProcessTests {
    @Test(
        "matomete-broker creates Matomete's topics, prints its bootstrap string, serves other processes (`matomete topics create` among them) and stops on SIGTERM"
    )
    func brokerProcess() async throws {
        let executable = try Processes.builtExecutable("matomete-broker")
        let process = Process()
        process.executableURL = executable
        process.arguments = [
            "--brokers", "3", "--partitions", "6", "--topic", "process-test:4", "--topic", "matomete.settlements:2",
            "--log-level", "error",
        ]
        let output = Pipe()
        process.standardOutput = output
        try process.run()
        defer { if process.isRunning { process.terminate() } }

        let firstLine = try #require(await TestSupport.firstLine(of: output, from: process, within: .seconds(20)))
        let servers = firstLine.split(separator: ",").map(String.init)
        #expect(servers.count == 3)
        #expect(servers.allSatisfy { $0.hasPrefix("127.0.0.1:") })

        // A client in this process talks to the brokers in the other one.
        var configuration = KafkaProducerConfiguration(bootstrapServers: servers)
        configuration.linger = .milliseconds(1)
        let producer = try KafkaProducer(configuration: configuration, logger: TestSupport.logger)
        let report = try await producer.send(KafkaProducerMessage(topic: "process-test", key: "k", value: "hello"))
        #expect((0..<4).contains(report.topicPartition.partition))
        await producer.shutdown()
        let admin = try KafkaAdmin(settings: KafkaClientSettings(bootstrapServers: servers), logger: TestSupport.logger)
        #expect(try await admin.describeTopics(["process-test"]).first?.partitions.count == 4)
        // Every topic Matomete uses, with --partitions; a --topic naming one of them wins.
        let matomete = [
            "matomete.charges", "matomete.cancellations", "matomete.billing-cycles", "matomete.line-system.results",
            "matomete.line-bills", "matomete.settlements", "matomete.dead-letters",
        ]
        #expect(try await admin.describeTopics(matomete).map(\.partitions.count) == [6, 6, 1, 6, 6, 2, 3])

        // As the operations guide says to: the topics exist, so this succeeds at once.
        let create = Process()
        create.executableURL = try Processes.builtExecutable("matomete")
        create.arguments = [
            "topics", "create", "--bootstrap-servers", firstLine, "--partitions", "48", "--replication-factor", "3",
        ]
        let createOutput = Pipe()
        create.standardOutput = createOutput
        try create.run()
        #expect(try await Processes.waitForExit(create, within: .seconds(30)))
        #expect(create.terminationStatus == 0)
        let said = String(decoding: createOutput.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        #expect(said.contains("Created 0 topics"))

        process.terminate()  // SIGTERM
        let exited = try await Processes.waitForExit(process, within: .seconds(15))
        #expect(exited)
        #expect(process.terminationStatus == 0)
    }
}

@Suite("Delivery failures reach the caller")
struct DeliveryFailureTests {
    @Test("With every broker down, send fails with a timeout once message.timeout.ms passes")
    func undeliverableMessageFails() async throws {
        let cluster = try TestSupport.privateCluster()
        let topic = TestSupport.uniqueName("undeliverable")
        try cluster.createTopic(topic, partitions: 1)
        let producer = try TestSupport.producer(cluster) { $0.messageTimeout = .seconds(2) }
        _ = try await producer.send(KafkaProducerMessage(topic: topic, partition: 0, key: nil, value: "warm"))
        for broker in Int32(1)...3 { try cluster.setBrokerDown(broker) }
        let results = await producer.send(
            (0..<20).map { KafkaProducerMessage(topic: topic, partition: 0, key: nil, value: "lost-\($0)") })
        #expect(results.failures.count == 20)
        #expect(results.failures.allSatisfy { $0.error.code == .messageTimedOut })
        #expect(!results.allDelivered)
        #expect(throws: KafkaError.self) { try results.throwIfAnyFailed() }
        for broker in Int32(1)...3 { try cluster.setBrokerUp(broker) }
        await producer.shutdown()
    }
}
