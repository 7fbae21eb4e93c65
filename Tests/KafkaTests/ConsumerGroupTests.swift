import Foundation
import Kafka
import Testing

@Suite("Consumer groups: sharing, takeover and application-chosen offsets")
struct ConsumerGroupTests {
    let cluster = TestSupport.sharedCluster

    @Test("Two consumers split the partitions, and one takes over when the other leaves")
    func splitAndTakeOver() async throws {
        let topic = TestSupport.uniqueName("split")
        try cluster.createTopic(topic, partitions: 6)
        let group = TestSupport.uniqueName("g")
        let producer = try TestSupport.producer(cluster)
        let first = try TestSupport.consumer(cluster, group: group, topics: [topic])
        let second = try TestSupport.consumer(cluster, group: group, topics: [topic])

        // Both join; both keep polling (so both take part in every rebalance)
        // until each holds half of the topic.
        let joined = Flag()
        let split: @Sendable () -> Bool = { first.assignment.count == 3 && second.assignment.count == 3 }
        async let firstJoin = first.drain(deadline: .seconds(30)) { _ in joined.set(when: split()) }
        async let secondJoin = second.drain(deadline: .seconds(30)) { _ in joined.set(when: split()) }
        _ = try await (firstJoin, secondJoin)
        let firstPartitions = Set(first.assignment)
        let secondPartitions = Set(second.assignment)
        #expect(firstPartitions.count == 3)
        #expect(secondPartitions.count == 3)
        #expect(firstPartitions.isDisjoint(with: secondPartitions))
        #expect(firstPartitions.union(secondPartitions).count == 6)

        // Traffic on every partition reaches whichever consumer owns it.
        let batch = (0..<60).map {
            KafkaProducerMessage(topic: topic, partition: KafkaPartition(Int32($0 % 6)), key: nil, value: "a\($0)")
        }
        for result in await producer.send(batch) { _ = try result.get() }
        let readCount = Counter()
        async let firstRead = first.drain(deadline: .seconds(15)) { readCount.total(of: 0, $0.messages.count) >= 60 }
        async let secondRead = second.drain(deadline: .seconds(15)) { readCount.total(of: 1, $0.messages.count) >= 60 }
        let (readByFirst, readBySecond) = try await (firstRead, secondRead)
        #expect(readByFirst.messages.count + readBySecond.messages.count == 60)
        #expect(readByFirst.messages.allSatisfy { firstPartitions.contains($0.topicPartition) })
        #expect(readBySecond.messages.allSatisfy { secondPartitions.contains($0.topicPartition) })
        var committed: [KafkaTopicPartition: KafkaOffset] = [:]
        for message in readByFirst.messages { committed[message.topicPartition] = message.offset + 1 }
        try await first.commit(committed)
        committed = [:]
        for message in readBySecond.messages { committed[message.topicPartition] = message.offset + 1 }
        try await second.commit(committed)

        // The second leaves; the first gets all six and reads the new traffic
        // of the second's partitions from the group's committed offsets.
        await second.close()
        let more = (0..<60).map {
            KafkaProducerMessage(topic: topic, partition: KafkaPartition(Int32($0 % 6)), key: nil, value: "b\($0)")
        }
        for result in await producer.send(more) { _ = try result.get() }
        let takeover = try await first.drain(
            deadline: .seconds(30),
            start: { partitions in Dictionary(uniqueKeysWithValues: partitions.map { ($0, .committed) }) }
        ) {
            Set($0.messages.map(\.valueText)).count >= 60 && first.assignment.count == 6
        }
        #expect(first.assignment.count == 6)
        #expect(takeover.revoked.count >= 1)
        // Messages read before the rebalance and not committed are read again
        // after it (at least once); the set of messages is exactly the new traffic.
        #expect(Set(takeover.messages.map { "\($0.topicPartition)@\($0.offset)" }).count == 60)
        #expect(Set(takeover.messages.map(\.valueText)) == Set((0..<60).map { "b\($0)" }))
        await first.close()
        await producer.shutdown()
    }

    @Test("Each assigned partition starts at the offset the application chooses, after every rebalance")
    func applicationChosenOffsets() async throws {
        let topic = TestSupport.uniqueName("offsets")
        try cluster.createTopic(topic, partitions: 1)
        let group = TestSupport.uniqueName("g")
        let producer = try TestSupport.producer(cluster)
        let batch = (0..<100).map { KafkaProducerMessage(topic: topic, partition: 0, key: nil, value: "\($0)") }
        for result in await producer.send(batch) { _ = try result.get() }
        let partition = KafkaTopicPartition(topic: topic, partition: 0)

        // The application keeps its own offsets (here: 40) and starts there.
        let consumer = try TestSupport.consumer(cluster, group: group, topics: [topic])
        let firstRun = try await consumer.drain(start: { _ in [partition: .offset(40)] }) { $0.messages.count >= 60 }
        #expect(firstRun.messages.first?.offset == 40)
        #expect(firstRun.messages.map(\.valueText) == (40..<100).map(String.init))
        // It commits nothing to Kafka, so the group's Kafka offset is not what decides.

        // Within the assignment it can read again from an earlier offset.
        // A seek that times out waiting for the fetcher (seen once under load)
        // is asked again, as the workers do on their next round.
        var attempts = 1
        while true {
            do {
                try await consumer.seek([partition: 55])
                break
            } catch {
                guard error.code == .timedOut, attempts < 3 else { throw error }
                attempts += 1
            }
        }
        let reread = try await consumer.drain { $0.messages.count >= 45 }
        #expect(reread.messages.map(\.offset) == Array(55..<100), "a seek reads again from exactly there")

        // A second member joins: a rebalance. Wherever the partition lands, the
        // application chooses again (70), and reading starts exactly there.
        let other = try TestSupport.consumer(cluster, group: group, topics: [topic])
        let done = Flag()
        async let a = consumer.drain(deadline: .seconds(60), start: { _ in [partition: .offset(70)] }) {
            done.set(when: $0.messages.count >= 30)
        }
        async let b = other.drain(deadline: .seconds(60), start: { _ in [partition: .offset(70)] }) {
            done.set(when: $0.messages.count >= 30)
        }
        let (afterA, afterB) = try await (a, b)
        let resumed = afterA.messages + afterB.messages
        #expect(!(afterA.revoked.isEmpty))
        #expect(resumed.first?.offset == 70)
        #expect(resumed.map(\.valueText) == (70..<100).map(String.init))
        await other.close()
        await consumer.close()
        await producer.shutdown()
    }
}

@Suite("Administration on the embedded cluster")
struct AdminTests {
    let cluster = TestSupport.sharedCluster

    @Test("Describe topics, read committed offsets, high watermarks and group lag")
    func describeOffsetsAndLag() async throws {
        let topic = TestSupport.uniqueName("admin")
        try cluster.createTopic(topic, partitions: 3, replicationFactor: 3)
        let admin = try KafkaAdmin(
            settings: KafkaClientSettings(bootstrapServers: cluster.bootstrapServerList), logger: TestSupport.logger)
        let description = try #require(try await admin.describeTopics([topic]).first)
        #expect(description.partitions.map(\.id) == [0, 1, 2])
        #expect(description.partitions.allSatisfy { $0.replicas.count == 3 && (1...3).contains($0.leader) })
        await #expect(throws: KafkaError.self) {
            _ = try await admin.describeTopics([TestSupport.uniqueName("absent")])
        }

        let producer = try TestSupport.producer(cluster)
        let batch = (0..<30).map {
            KafkaProducerMessage(topic: topic, partition: KafkaPartition(Int32($0 % 3)), key: nil, value: "\($0)")
        }
        for result in await producer.send(batch) { _ = try result.get() }
        let partitions = (Int32(0)..<3).map { KafkaTopicPartition(topic: topic, partition: KafkaPartition($0)) }
        let ends = try await admin.highWatermarks(partitions)
        #expect(partitions.allSatisfy { ends[$0] == 10 })

        let group = TestSupport.uniqueName("g")
        let consumer = try TestSupport.consumer(cluster, group: group, topics: [topic])
        _ = try await consumer.drain { $0.messages.count >= 30 }
        try await consumer.commit([partitions[0]: 10, partitions[1]: 4])
        let committed = try await admin.committedOffsets(group: group, partitions: partitions)
        #expect(committed == [partitions[0]: 10, partitions[1]: 4])
        let lag = try await admin.groupLag(group: group, topics: [topic])
        #expect(lag.map(\.lag) == [0, 6, 10])
        await consumer.close()
        await producer.shutdown()
    }
}
