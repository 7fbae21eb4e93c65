import Foundation
import Kafka
import Testing

@Suite("Producing and consuming on the embedded cluster")
struct ProducerConsumerTests {
    let cluster = TestSupport.sharedCluster

    @Test("Keys, values and headers survive a round trip")
    func roundTrip() async throws {
        let topic = TestSupport.uniqueName("round-trip")
        try cluster.createTopic(topic, partitions: 3)
        let producer = try TestSupport.producer(cluster)
        let sent = (0..<50).map { index in
            KafkaProducerMessage(
                topic: topic, key: "line-\(index % 7)", value: "payload \(index) ✓",
                headers: [
                    KafkaHeader(name: "id", text: "msg-\(index)"), KafkaHeader(name: "empty", value: nil),
                    KafkaHeader(name: "bytes", value: [0, 255, UInt8(index)]),
                ])
        }
        let reports = await producer.send(sent)
        let delivered = try reports.map { try $0.get() }
        #expect(Set(delivered.map(\.topicPartition.topic)) == [topic])

        // Two groups read it (joining at once): one with headers, and one that
        // does not read headers and must get the same keys and values, no headers.
        let consumer = try TestSupport.consumer(cluster, group: TestSupport.uniqueName("g"), topics: [topic])
        let headless = try TestSupport.consumer(cluster, group: TestSupport.uniqueName("g"), topics: [topic]) {
            $0.readHeaders = false
        }
        async let reading = consumer.drain { $0.messages.count >= sent.count }
        async let readingWithoutHeaders = headless.drain { $0.messages.count >= sent.count }
        let (consumed, withoutHeaders) = try await (reading, readingWithoutHeaders)
        await consumer.close()
        await headless.close()
        await producer.shutdown()

        #expect(withoutHeaders.messages.count == sent.count)
        #expect(withoutHeaders.messages.allSatisfy { $0.headers.isEmpty })
        #expect(
            Set(withoutHeaders.messages.map { "\($0.keyText ?? "")=\($0.valueText)" })
                == Set(
                    sent.map {
                        "\(String(decoding: $0.key ?? [], as: UTF8.self))=\(String(decoding: $0.value, as: UTF8.self))"
                    }))
        #expect(consumed.messages.count == sent.count)
        let byID = Dictionary(
            uniqueKeysWithValues: consumed.messages.map { (String(decoding: $0.header("id")!, as: UTF8.self), $0) })
        for (index, message) in sent.enumerated() {
            let received = try #require(byID["msg-\(index)"])
            #expect(received.key.map(Array.init) == message.key)
            #expect(Array(received.value) == message.value)
            #expect(received.headers == message.headers)
            #expect(received.timestampMilliseconds != nil)
            let report = delivered[index]
            #expect(received.topicPartition == report.topicPartition)
            #expect(received.offset == report.offset)
        }
    }

    @Test("Messages with the same key keep their order, also with batches queued behind unacknowledged ones")
    func orderingPerKey() async throws {
        let topic = TestSupport.uniqueName("ordering")
        try cluster.createTopic(topic, partitions: 4)
        let producer = try TestSupport.producer(cluster)
        let keys = (0..<10).map { "line-\($0)" }
        var sent: [KafkaProducerMessage] = []
        for sequence in 0..<200 {
            for key in keys { sent.append(KafkaProducerMessage(topic: topic, key: key, value: "\(sequence)")) }
        }
        // Batches queued one behind the other before any is acknowledged, as
        // the relay publishes; their reports read in reverse, the last never.
        let chunks = stride(from: 0, to: sent.count, by: 500).map { Array(sent[$0..<min($0 + 500, sent.count)]) }
        var pending: [KafkaPendingDelivery] = []
        for chunk in chunks { pending.append(await producer.enqueue(chunk)) }
        pending.removeLast()  // dropped unread: its reports must still be safe to deliver
        for delivery in pending.reversed() {
            for result in await delivery.results() { _ = try result.get() }
        }
        try await producer.flush(timeout: .seconds(10))
        let consumer = try TestSupport.consumer(cluster, group: TestSupport.uniqueName("g"), topics: [topic])
        let consumed = try await consumer.drain { $0.messages.count >= sent.count }
        await consumer.close()
        await producer.shutdown()

        #expect(consumed.messages.count == sent.count)
        var sequences: [String: [Int]] = [:]
        var partitionOfKey: [String: KafkaTopicPartition] = [:]
        for message in consumed.messages {
            let key = try #require(message.keyText)
            sequences[key, default: []].append(Int(message.valueText)!)
            if let earlier = partitionOfKey[key] { #expect(earlier == message.topicPartition) }
            partitionOfKey[key] = message.topicPartition
        }
        for key in keys { #expect(sequences[key] == Array(0..<200), "order of \(key)") }
    }

    @Test(
        "A send many times the local queue's size waits for room and delivers every message once, in order",
        .timeLimit(.minutes(1)))
    func sendLargerThanTheLocalQueue() async throws {
        let topic = TestSupport.uniqueName("queue-full")
        try cluster.createTopic(topic, partitions: 3)
        // librdkafka refuses the 501st undelivered message: the send must wait
        // for delivery reports to make room, again and again, from two tasks.
        let producer = try TestSupport.producer(cluster) { $0.queueMessages = 500 }
        let sent = (0..<20_000).map { index in
            KafkaProducerMessage(topic: topic, key: "line-\(index % 30)", value: "\(index)")
        }
        async let firstHalf = producer.send(Array(sent[..<10_000]))
        async let secondHalf = producer.send(Array(sent[10_000...]))
        let reports = try await (Array(firstHalf) + Array(secondHalf)).map { try $0.get() }
        await producer.shutdown()

        #expect(reports.count == sent.count)
        #expect(Set(reports.map { "\($0.topicPartition.partition)@\($0.offset)" }).count == sent.count)
        // Within each half, one key's messages got increasing offsets in send order.
        for half in [0..<10_000, 10_000..<20_000] {
            var lastOffset: [String: KafkaOffset] = [:]
            for index in half {
                let key = "line-\(index % 30)"
                if let last = lastOffset[key] { #expect(reports[index].offset > last, "order of \(key)") }
                lastOffset[key] = reports[index].offset
            }
        }
        let consumer = try TestSupport.consumer(cluster, group: TestSupport.uniqueName("g"), topics: [topic])
        let consumed = try await consumer.drain { $0.messages.count >= sent.count }
        await consumer.close()
        #expect(consumed.messages.count == sent.count)
        #expect(Set(consumed.messages.map(\.valueText)) == Set(sent.indices.map { "\($0)" }))
    }

    @Test("Paused partitions deliver nothing until resumed; lag counts what is left")
    func pauseResumeAndLag() async throws {
        let topic = TestSupport.uniqueName("pause")
        try cluster.createTopic(topic, partitions: 2)
        let producer = try TestSupport.producer(cluster)
        let consumer = try TestSupport.consumer(cluster, group: TestSupport.uniqueName("g"), topics: [topic])
        let first = try await consumer.drain { !$0.assigned.isEmpty }
        #expect(first.assigned.first?.count == 2)

        let paused = KafkaTopicPartition(topic: topic, partition: 0)
        try await consumer.pause([paused])
        for partition in Int32(0)...1 {
            let batch = (0..<20).map {
                KafkaProducerMessage(topic: topic, partition: KafkaPartition(partition), key: nil, value: "v\($0)")
            }
            for result in await producer.send(batch) { _ = try result.get() }
        }
        let whilePaused = try await consumer.drain(deadline: .seconds(3)) { $0.messages.count >= 20 }
        #expect(whilePaused.messages.count == 20)
        #expect(whilePaused.messages.allSatisfy { $0.topicPartition.partition == 1 })

        // Let a fetch of the paused partition's end reach the consumer, then check lag.
        try await consumer.resume([paused])
        let resumed = try await consumer.drain(deadline: .seconds(10)) { $0.messages.count >= 20 }
        #expect(resumed.messages.count == 20)
        #expect(resumed.messages.allSatisfy { $0.topicPartition == paused })
        let lag = consumer.lag()
        #expect(lag.count == 2)
        #expect(lag.allSatisfy { $0.lag == 0 && $0.highWatermark == 20 && $0.position == 20 })
        await consumer.close()
        await producer.shutdown()
    }

    @Test("A bad configuration value gives an error naming the property")
    func badConfiguration() throws {
        let error = #expect(throws: KafkaError.self) {
            _ = try TestSupport.producer(cluster) { $0.client.rawProperties["linger.ms"] = "soon" }
        }
        #expect(error?.code == .invalidArgument)
        #expect(error?.property == "linger.ms")
        #expect(error?.message.contains("linger.ms") == true)

        let unknown = #expect(throws: KafkaError.self) {
            _ = try TestSupport.producer(cluster) { $0.client.rawProperties["linger.msec"] = "5" }
        }
        #expect(unknown?.property == "linger.msec")
        #expect(unknown?.message.contains("unknown configuration property") == true)

    }
}
