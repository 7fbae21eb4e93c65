import Kafka
import Store
import Testing

@testable import Workers

/// How a worker keeps each partition's messages: once, in order, and never
/// past a gap in the offsets it was handed.
@Suite("Partition reading") struct PartitionStateTests {
    static let partition = KafkaTopicPartition(topic: "matomete.charges", partition: 3)

    static func message(_ offset: Int64) -> KafkaConsumerMessage {
        KafkaConsumerMessage(topicPartition: partition, offset: offset, value: ArraySlice("m\(offset)".utf8))
    }

    static func receive(_ offsets: [Int64], into state: inout PartitionState) {
        for offset in offsets { state.receive(message(offset)) }
    }

    @Test("Messages from the stored offset are kept once, in order; repeats and applied ones are not")
    func inOrder() {
        var state = PartitionState(starting: 10)
        Self.receive([8, 9, 10, 11, 11, 12, 10, 13], into: &state)
        #expect(state.backlog.map(\.offset) == [10, 11, 12, 13])
        #expect(state.gap == nil && state.missingInLog == nil)
        #expect(state.frontier == 14)
    }

    @Test("From the beginning the first message sets where the partition starts")
    func fromBeginning() {
        var state = PartitionState(starting: nil)
        Self.receive([4, 5, 6], into: &state)
        #expect(state.backlog.map(\.offset) == [4, 5, 6])
        #expect(state.missingInLog == nil)
    }

    @Test("A skipped offset stops the partition until it is read again; then nothing is lost")
    func gapIsReadAgain() {
        var state = PartitionState(starting: 0)
        Self.receive([0, 1, 2, 5, 6, 7], into: &state)
        #expect(state.backlog.map(\.offset) == [0, 1, 2], "nothing past the gap is kept")
        #expect(state.gap?.expected == 3 && state.gap?.received == 5)

        state.reread()  // the worker sought the partition back to offset 3
        Self.receive([3, 4, 5, 6, 7], into: &state)
        #expect(state.backlog.map(\.offset) == [0, 1, 2, 3, 4, 5, 6, 7])
        #expect(state.gap == nil && state.missingInLog == nil)
    }

    @Test("A gap that a fresh read finds again is in the log itself: reported, and reading goes on")
    func gapInTheLog() {
        var state = PartitionState(starting: 0)
        Self.receive([0, 1, 4], into: &state)
        state.reread()
        Self.receive([4, 5], into: &state)
        #expect(state.backlog.map(\.offset) == [0, 1, 4, 5])
        #expect(state.missingInLog == 2..<4)
        Self.receive([7], into: &state)
        #expect(state.gap?.expected == 6, "only the first message of a fresh read may jump")
    }

    @Test("Applied messages leave the backlog; the frontier stays where reading is")
    func appliedLeaveTheBacklog() {
        var state = PartitionState(starting: 0)
        Self.receive([0, 1, 2, 3], into: &state)
        let job = BatchJob(
            cursor: PartitionCursor(consumerGroup: "g", topic: Self.partition.topic, partition: 3), next: 0,
            resync: false, runsAlone: false, messages: state.backlog.prefix(3))
        state.absorb(BatchResult(job, next: 3, kind: .applied(count: 3)), waitRetry: .zero, logger: .init(label: "t"))
        #expect(state.backlog.map(\.offset) == [3])
        Self.receive([2, 3, 4], into: &state)
        #expect(state.backlog.map(\.offset) == [3, 4])
    }
}
