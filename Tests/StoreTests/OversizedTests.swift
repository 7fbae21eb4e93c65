import Billing
import Consuming
import Contract
import Crypto
import Foundation
import Kafka
import MatometeTestSupport
import Processing
import Store
import Testing

/// Nothing a sender writes makes an outgoing message too large to publish
/// (the relay publishes at most 1,000,000 bytes).
@Suite("Oversized input on a real PostgreSQL")
struct OversizedTests {
    @Test("A 1,040,000-byte message is dead-lettered as a marked 512 KiB prefix; a huge id is echoed cut to 64 bytes")
    func boundedOutputs() async throws {
        let database = try await TestDatabase.create(partitions: 4)
        try await database.withStore { store in
            let applier = RequestApplier(
                processor: RequestProcessor(store: store), group: "g", accepts: [.charge, .subscription],
                signatures: nil)
            let partition = KafkaTopicPartition(topic: "matomete.charges", partition: 0)
            let huge = [UInt8](repeating: UInt8(ascii: "Z"), count: 1_040_000)
            let longID = String(repeating: "é", count: 300_000)
            let refusedJSON =
                #"{"type":"charge","merchantId":"m1","chargeId":"\#(longID)","lineId":"\#(longID)","amount":5,"description":"d"}"#
            let messages = [
                KafkaConsumerMessage(topicPartition: partition, offset: 0, key: ArraySlice("X".utf8), value: huge[...]),
                KafkaConsumerMessage(
                    topicPartition: partition, offset: 1, key: ArraySlice(longID.utf8),
                    value: ArraySlice(refusedJSON.utf8)),
            ]
            let batch = PreparedBatch(
                partition: partition, messages: messages.map { ($0, applier.prepare($0)) }, expectedOffset: nil)
            #expect(try await applier.apply([batch]) == [2])

            let letter = try #require(try await store.outboxMessages(topic: "matomete.dead-letters").first)
            #expect(letter.payload.count == DeadLetterHeaders.maximumValueBytes)
            #expect(letter.headers[DeadLetterHeaders.truncated] == "true")
            #expect(letter.headers[DeadLetterHeaders.originalSize] == "1040000")
            #expect(
                letter.headers[DeadLetterHeaders.originalSHA256]
                    == SHA256.hash(data: huge).map { String(format: "%02x", $0) }.joined())
            let result = try #require(try await store.outboxMessages(topic: "matomete.merchant.m1.results").first)
            #expect(result.payload.count < 1_000)
            let decoded = try JSONDecoder().decode(MerchantResultMessage.self, from: Data(result.payload))
            #expect(decoded.requestId == String(repeating: "é", count: 32) && decoded.lineId == decoded.requestId)
            #expect(decoded.reason == "invalid_request")
        }
    }
}
