import Foundation
import Kafka
import Logging
import Synchronization

/// Reads the benchmark merchant's results topic while a phase runs and notes when each
/// request's first answer arrived. It reads only `requestId` and `status`
/// from each message, without a JSON decoder, to stay light beside the workers.
final class ResultReader: Sendable {
    struct Answers {
        var accepted: [String: ContinuousClock.Instant] = [:]
        /// Per accepted request, in ms since 1970: when the relay produced its
        /// result (the message's timestamp) and when it arrived here.
        var stamps: [String: (published: Int64, arrived: Int64)] = [:]
        /// When the latest new acceptance arrived.
        var last: ContinuousClock.Instant?
        var rejected = 0
        var assigned = false
    }

    private let answers = Mutex(Answers())
    private let consumer: KafkaConsumer
    private let topic: String

    init(bootstrapServers: [String], topic: String, logger: Logger) throws {
        var configuration = KafkaConsumerConfiguration(
            bootstrapServers: bootstrapServers, groupID: "bench-reader-\(UUID().uuidString.prefix(8))")
        configuration.readBatchFill = .milliseconds(1)
        configuration.fetchWait = .milliseconds(5)
        configuration.readHeaders = false  // results carry everything read here in their value
        consumer = try KafkaConsumer(configuration: configuration, logger: logger)
        self.topic = topic
    }

    func run() async throws {
        try consumer.subscribe([topic])
        let clock = ContinuousClock()
        while !Task.isCancelled {
            for event in try await consumer.poll(timeout: .milliseconds(20)) {
                switch event {
                case .partitionsAssigned(let partitions):
                    try await consumer.startPartitions(
                        Dictionary(uniqueKeysWithValues: partitions.map { ($0, KafkaStartOffset.beginning) }))
                    answers.withLock { $0.assigned = true }
                case .messages(let messages):
                    let now = clock.now
                    let wallNow = Int64(Date().timeIntervalSince1970 * 1000)
                    answers.withLock { answers in
                        for message in messages {
                            guard let id = Self.field(Self.requestID, in: message.value) else { continue }
                            if Self.field(Self.status, in: message.value) == "accepted" {
                                if answers.accepted[id] == nil {
                                    answers.accepted[id] = now
                                    answers.stamps[id] = (message.timestampMilliseconds ?? wallNow, wallNow)
                                    answers.last = now
                                }
                            } else {
                                answers.rejected += 1
                            }
                        }
                    }
                default: break
                }
            }
        }
        await consumer.close()
    }

    /// Forgets every answer seen so far (after a warm-up).
    func forget() {
        answers.withLock { answers in
            answers.accepted = [:]
            answers.stamps = [:]
            answers.last = nil
        }
    }

    var isAssigned: Bool { answers.withLock { $0.assigned } }
    var acceptedCount: Int { answers.withLock { $0.accepted.count } }
    var rejectedCount: Int { answers.withLock { $0.rejected } }
    func arrivals() -> [String: ContinuousClock.Instant] { answers.withLock { $0.accepted } }
    func stamps() -> [String: (published: Int64, arrived: Int64)] { answers.withLock { $0.stamps } }

    /// Waits until `count` requests are accepted; returns when the last arrived.
    func waitForAccepted(
        _ count: Int, within limit: Duration, label: String, allowingRejections: Bool = false
    ) async throws -> ContinuousClock.Instant {
        let deadline = ContinuousClock.now + limit
        var lastReport = ContinuousClock.now
        while true {
            let (seen, last, rejected) = answers.withLock { ($0.accepted.count, $0.last, $0.rejected) }
            if seen >= count, let last { return last }
            guard rejected == 0 || allowingRejections else {
                throw BenchError("\(label): \(rejected) charges were rejected")
            }
            guard ContinuousClock.now < deadline else {
                throw BenchError("\(label): only \(seen) of \(count) charges were accepted within \(limit)")
            }
            if ContinuousClock.now - lastReport > .seconds(5) {
                FileHandle.standardError.write(Data("  \(label): \(seen)/\(count) accepted\n".utf8))
                lastReport = ContinuousClock.now
            }
            try await Task.sleep(for: .milliseconds(5))
        }
    }

    private static let requestID = Array(#""requestId":""#.utf8)
    private static let status = Array(#""status":""#.utf8)

    /// The string value after `pattern` (`"name":"`) in a flat JSON object
    /// (ids and statuses hold no escapes).
    static func field(_ pattern: [UInt8], in bytes: ArraySlice<UInt8>) -> String? {
        var index = bytes.startIndex
        let end = bytes.endIndex
        while index + pattern.count <= end {
            if bytes[index] == pattern[0], bytes[index..<index + pattern.count].elementsEqual(pattern) {
                let start = index + pattern.count
                guard let close = bytes[start...].firstIndex(of: UInt8(ascii: "\"")) else { return nil }
                return String(decoding: bytes[start..<close], as: UTF8.self)
            }
            index += 1
        }
        return nil
    }
}
