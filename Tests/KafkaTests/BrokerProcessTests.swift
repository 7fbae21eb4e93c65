import Foundation
import Kafka
import MatometeTestSupport
import Testing

@Suite("The stand-alone embedded broker process")
struct BrokerProcessTests {
    @Test("matomete-broker prints its bootstrap string, serves other processes and stops on SIGTERM")
    func brokerProcess() async throws {
        let executable = try Processes.builtExecutable("matomete-broker")
        let process = Process()
        process.executableURL = executable
        process.arguments = ["--brokers", "3", "--topic", "process-test:4", "--log-level", "error"]
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
