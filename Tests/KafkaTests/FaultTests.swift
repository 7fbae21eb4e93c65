import Foundation
import Kafka
import Testing

/// Each test here owns its cluster: the faults it injects must not reach other tests.
@Suite("Broker faults lose nothing")
struct FaultTests {
    @Test("A broker taken down and brought back mid-stream loses nothing")
    func brokerDownAndBack() async throws {
        let cluster = try TestSupport.privateCluster()
        let topic = TestSupport.uniqueName("broker-down")
        try cluster.createTopic(topic, partitions: 6, replicationFactor: 3)
        let producer = try TestSupport.producer(cluster)
        let consumer = try TestSupport.consumer(cluster, group: TestSupport.uniqueName("g"), topics: [topic])
        let total = 3000

        // Broker 2 goes down for two seconds while messages are produced in
        // steps and consumed. The mock cluster elects no new leader, so its
        // partitions wait for it: nothing may be lost or fail meanwhile.
        let outage = Task {
            try await Task.sleep(for: .milliseconds(300))
            try cluster.setBrokerDown(2)
            try await Task.sleep(for: .seconds(2))
            try cluster.setBrokerUp(2)
        }
        async let produced: [Result<KafkaDeliveryReport, KafkaError>] = {
            var results: [Result<KafkaDeliveryReport, KafkaError>] = []
            for step in 0..<30 {
                let batch = (step * 100..<(step + 1) * 100).map {
                    KafkaProducerMessage(topic: topic, key: "key-\($0 % 37)", value: "m\($0)")
                }
                results += await producer.send(batch)
            }
            return results
        }()
        let consumed = try await consumer.drain(deadline: .seconds(60)) { $0.messages.count >= total }
        let reports = await produced
        try await outage.value
        await consumer.close()
        await producer.shutdown()

        #expect(reports.allSatisfy { (try? $0.get()) != nil }, "every message delivered")
        let values = consumed.messages.map(\.valueText)
        #expect(values.count == total)
        #expect(Set((0..<total).map { "m\($0)" }).subtracting(values).isEmpty, "no message lost")
    }

    @Test("A partition leader moved mid-stream loses nothing")
    func leaderMoved() async throws {
        let cluster = try TestSupport.privateCluster()
        let topic = TestSupport.uniqueName("leader-move")
        try cluster.createTopic(topic, partitions: 2, replicationFactor: 3)
        let producer = try TestSupport.producer(cluster)
        var results = Array(
            await producer.send(
                (0..<500).map { KafkaProducerMessage(topic: topic, key: "k\($0)", value: "m\($0)") })
        )
        try cluster.moveLeader(topic: topic, partition: 0, to: 3)
        try cluster.moveLeader(topic: topic, partition: 1, to: 1)
        results += await producer.send(
            (500..<1000).map { KafkaProducerMessage(topic: topic, key: "k\($0)", value: "m\($0)") })
        let consumer = try TestSupport.consumer(cluster, group: TestSupport.uniqueName("g"), topics: [topic])
        let consumed = try await consumer.drain { $0.messages.count >= 1000 }
        await consumer.close()
        await producer.shutdown()
        #expect(results.allSatisfy { (try? $0.get()) != nil })
        #expect(Set((0..<1000).map { "m\($0)" }).subtracting(consumed.messages.map(\.valueText)).isEmpty)
        #expect(consumed.messages.count == 1000)
    }

    @Test("Injected retriable produce errors are retried: every message arrives once")
    func retriableProduceErrors() async throws {
        let cluster = try TestSupport.privateCluster()
        let topic = TestSupport.uniqueName("retriable")
        try cluster.createTopic(topic, partitions: 3)
        let producer = try TestSupport.producer(cluster)
        // Warm up metadata and the idempotent producer id, then inject.
        _ = try await producer.send(KafkaProducerMessage(topic: topic, key: "warm", value: "warm"))
        cluster.injectErrors(
            [.notLeaderForPartition, .requestTimedOut, .notEnoughReplicas, .notLeaderForPartition, .notEnoughReplicas],
            on: .produce)
        let results = await producer.send(
            (0..<1000).map { KafkaProducerMessage(topic: topic, key: "k\($0 % 11)", value: "m\($0)") })
        let consumer = try TestSupport.consumer(cluster, group: TestSupport.uniqueName("g"), topics: [topic])
        let consumed = try await consumer.drain { $0.messages.count >= 1001 }
        await consumer.close()
        await producer.shutdown()

        #expect(results.allSatisfy { (try? $0.get()) != nil })
        let values = consumed.messages.map(\.valueText).filter { $0 != "warm" }
        #expect(values.count == 1000, "no duplicates from the retries")
        #expect(Set((0..<1000).map { "m\($0)" }).subtracting(values).isEmpty, "no message lost")
    }

    @Test("An injected permanent produce error is surfaced to the caller, never lost")
    func permanentProduceErrorSurfaced() async throws {
        let cluster = try TestSupport.privateCluster()
        let topic = TestSupport.uniqueName("permanent")
        try cluster.createTopic(topic, partitions: 1)
        let producer = try TestSupport.producer(cluster) { $0.linger = .milliseconds(0) }
        _ = try await producer.send(KafkaProducerMessage(topic: topic, partition: 0, key: nil, value: "warm"))
        cluster.injectErrors([.messageTooLarge], on: .produce)
        let failed = await #expect(throws: KafkaError.self) {
            _ = try await producer.send(KafkaProducerMessage(topic: topic, partition: 0, key: nil, value: "refused"))
        }
        #expect(failed?.code == .messageTooLarge)

        // Every later message is either delivered or reported failed; the
        // delivered ones are exactly the ones a consumer reads.
        let later = await producer.send(
            (0..<200).map { KafkaProducerMessage(topic: topic, partition: 0, key: nil, value: "m\($0)") })
        let delivered = later.enumerated().compactMap { (try? $1.get()) != nil ? "m\($0)" : nil }
        let consumer = try TestSupport.consumer(cluster, group: TestSupport.uniqueName("g"), topics: [topic])
        let consumed = try await consumer.drain(deadline: .seconds(20)) { $0.messages.count >= delivered.count + 1 }
        await consumer.close()
        await producer.shutdown()
        #expect(!delivered.isEmpty)
        #expect(consumed.messages.map(\.valueText) == ["warm"] + delivered)
    }
}
