import Kafka
import Testing

@testable import Consuming

/// Every path a partition can take, step by step, without Kafka or a
/// database: the machine is told what was read and how each batch ended, and
/// the test checks what it plans next.
@Suite("Partition state machine") struct ConsumerStateMachineTests {
    typealias Machine = ConsumerStateMachine<String>
    typealias Received = PartitionMachine<String>.Received
    typealias Finished = PartitionMachine<String>.Finished

    /// A batch as planned: its partition, offsets, and how it runs.
    struct Planned: Equatable, CustomStringConvertible {
        var partition: KafkaPartition
        var offsets: [KafkaOffset]
        var resync = false
        var deadLetter: String?
        var expected: KafkaOffset?

        var description: String {
            "p\(partition)\(offsets)\(resync ? " resync" : "")\(deadLetter.map { " dead-letter(\($0))" } ?? "")"
                + " from \(expected.map(String.init) ?? "nil")"
        }
    }

    /// One step of a scenario. Times are milliseconds after the scenario's start.
    enum Step {
        case assign(KafkaPartition, stored: KafkaOffset?)
        case revoke(KafkaPartition)
        /// Messages read, and what each showed (all `.kept` when `nil`).
        case receive(KafkaPartition, [KafkaOffset], showing: [Received]? = nil)
        /// The round planned at `at`: its jobs, each with its batches.
        case round(at: Int = 0, [[Planned]])
        /// The last planned batch of the partition ended so; what the machine says of it.
        case finish(KafkaPartition, BatchOutcome, at: Int = 0, showing: Finished?)
        case rereads([KafkaPartition: KafkaOffset])
        case readingAgain(KafkaPartition)
        case backlog(KafkaPartition, [KafkaOffset])
        case flow(pause: [KafkaPartition], resume: [KafkaPartition])
        case uncommitted([KafkaPartition: KafkaOffset])
        case committed([KafkaPartition: KafkaOffset])
    }

    struct Scenario: CustomTestStringConvertible, Sendable {
        var name: String
        var batchSize = 8
        var appliesTogether = true
        var steps: @Sendable () -> [Step]
        var testDescription: String { name }
    }

    static func message(_ partition: KafkaPartition, _ offset: KafkaOffset) -> KafkaConsumerMessage {
        KafkaConsumerMessage(
            topicPartition: KafkaTopicPartition(topic: "matomete.charges", partition: partition), offset: offset,
            value: ArraySlice("m\(offset)".utf8))
    }

    static let scenarios: [Scenario] = [
        Scenario(name: "read in order from the stored offset; repeats and applied ones are not kept") {
            [
                .assign(3, stored: 10),
                .receive(
                    3, [8, 9, 10, 11, 11, 12, 10, 13],
                    showing: [.ignored, .ignored, .kept, .kept, .ignored, .kept, .ignored, .kept]),
                .backlog(3, [10, 11, 12, 13]),
                .round([[Planned(partition: 3, offsets: [10, 11, 12, 13], expected: 10)]]),
                .round([]),
                .finish(3, .applied(stored: 14, waiting: false), showing: .applied),
                .backlog(3, []),
                .uncommitted([3: 14]), .committed([3: 14]), .uncommitted([:]),
            ]
        },
        Scenario(name: "from the beginning the first message sets where the partition starts") {
            [
                .assign(0, stored: nil),
                .receive(0, [4, 5, 6]),
                .round([[Planned(partition: 0, offsets: [4, 5, 6], expected: nil)]]),
                .finish(0, .applied(stored: 7, waiting: false), showing: .applied),
                .receive(0, [6, 7], showing: [.ignored, .kept]),
                .backlog(0, [7]),
            ]
        },
        Scenario(name: "stale offset: the batch is dropped, the stored offset re-read before the next, alone") {
            [
                .assign(1, stored: 0), .assign(2, stored: 0),
                .receive(1, [0, 1, 2]), .receive(2, [0]),
                .round([
                    [
                        Planned(partition: 1, offsets: [0, 1, 2], expected: 0),
                        Planned(partition: 2, offsets: [0], expected: 0),
                    ]
                ]),
                .finish(1, .rolledBackTogether, showing: .rolledBackTogether),
                .finish(2, .applied(stored: 1, waiting: false), showing: .applied),
                // Rolled back with partition 2's batch: alone next, from the stored offset.
                .round([[Planned(partition: 1, offsets: [0, 1, 2], resync: true, expected: 0)]]),
                .finish(1, .failed(.staleOffset), showing: .staleOffset),
                .round([[Planned(partition: 1, offsets: [0, 1, 2], resync: true, expected: 0)]]),
                // The re-read found another worker had applied through offset 1.
                .finish(1, .applied(stored: 3, waiting: false), showing: .applied),
                .backlog(1, []),
                .receive(1, [3]),
                .round([[Planned(partition: 1, offsets: [3], expected: 3)]]),
            ]
        },
        Scenario(name: "a batch that raced another transaction runs again at once, without re-reading or backing off") {
            [
                .assign(0, stored: 0),
                .receive(0, [0, 1]),
                .round([[Planned(partition: 0, offsets: [0, 1], expected: 0)]]),
                .finish(0, .failed(.raced), showing: .raced),
                .round([[Planned(partition: 0, offsets: [0, 1], expected: 0)]]),
                .finish(0, .applied(stored: 2, waiting: false), showing: .applied),
                .backlog(0, []),
            ]
        },
        Scenario(name: "another worker applied past what was read: reading goes on after its stored offset") {
            [
                .assign(0, stored: 0),
                .receive(0, [0, 1]),
                .round([[Planned(partition: 0, offsets: [0, 1], expected: 0)]]),
                .finish(0, .failed(.staleOffset), showing: .staleOffset),
                .round([[Planned(partition: 0, offsets: [0, 1], resync: true, expected: 0)]]),
                .finish(0, .applied(stored: 5, waiting: false), showing: .applied),
                .receive(0, [2, 3, 4, 5, 6], showing: [.ignored, .ignored, .ignored, .kept, .kept]),
                .backlog(0, [5, 6]),
            ]
        },
        Scenario(name: "a refused message is isolated by halving, then dead-lettered, and the partition goes on") {
            [
                .assign(0, stored: 0),
                .receive(0, Array(0...9)),
                .round([[Planned(partition: 0, offsets: Array(0...7), expected: 0)]]),
                .finish(0, .failed(.refusedContent(reason: "bad")), showing: .isolating(through: 7, size: 4)),
                .round([[Planned(partition: 0, offsets: [0, 1, 2, 3], expected: 0)]]),
                .finish(0, .applied(stored: 4, waiting: false), showing: .applied),
                .round([[Planned(partition: 0, offsets: [4, 5, 6, 7], expected: 4)]]),
                .finish(0, .failed(.refusedContent(reason: "bad")), showing: .isolating(through: 7, size: 2)),
                .round([[Planned(partition: 0, offsets: [4, 5], expected: 4)]]),
                .finish(0, .failed(.refusedContent(reason: "bad")), showing: .isolating(through: 7, size: 1)),
                .round([[Planned(partition: 0, offsets: [4], expected: 4)]]),
                .finish(0, .applied(stored: 5, waiting: false), showing: .applied),
                .round([[Planned(partition: 0, offsets: [5], expected: 5)]]),
                .finish(0, .failed(.refusedContent(reason: "value too long")), showing: .deadLettering(offset: 5)),
                .round([[Planned(partition: 0, offsets: [5], deadLetter: "value too long", expected: 5)]]),
                .finish(0, .applied(stored: 6, waiting: false), showing: .applied),
                // Still one at a time through offset 7, then whole batches again.
                .round([[Planned(partition: 0, offsets: [6], expected: 6)]]),
                .finish(0, .applied(stored: 7, waiting: false), showing: .applied),
                .round([[Planned(partition: 0, offsets: [7], expected: 7)]]),
                .finish(0, .applied(stored: 8, waiting: false), showing: .applied),
                .round([[Planned(partition: 0, offsets: [8, 9], expected: 8)]]),
            ]
        },
        Scenario(name: "a dead letter that fails is retried after a re-read, and not written when already past") {
            [
                .assign(0, stored: 0),
                .receive(0, [0, 1]),
                .round([[Planned(partition: 0, offsets: [0, 1], expected: 0)]]),
                .finish(0, .failed(.refusedContent(reason: "r")), showing: .isolating(through: 1, size: 1)),
                .round([[Planned(partition: 0, offsets: [0], expected: 0)]]),
                .finish(0, .failed(.refusedContent(reason: "r")), showing: .deadLettering(offset: 0)),
                .round([[Planned(partition: 0, offsets: [0], deadLetter: "r", expected: 0)]]),
                .finish(0, .failed(.transient), showing: .failed(attempt: 1, retryIn: .milliseconds(200))),
                .round(at: 100, []),
                .round(at: 200, [[Planned(partition: 0, offsets: [0], resync: true, deadLetter: "r", expected: 0)]]),
                .finish(
                    0, .failed(.refusedContent(reason: "r")), at: 200,
                    showing: .failed(attempt: 2, retryIn: .milliseconds(400))),
                .round(at: 600, [[Planned(partition: 0, offsets: [0], resync: true, deadLetter: "r", expected: 0)]]),
                // The re-read found the dead letter written (its commit's answer was lost).
                .finish(0, .applied(stored: 1, waiting: false), at: 600, showing: .applied),
                .round(at: 600, [[Planned(partition: 0, offsets: [1], expected: 1)]]),
            ]
        },
        Scenario(name: "a failed transaction is retried with growing backoff, after re-reading the stored offset") {
            [
                .assign(5, stored: 20),
                .receive(5, [20, 21]),
                .round([[Planned(partition: 5, offsets: [20, 21], expected: 20)]]),
                .finish(5, .failed(.transient), showing: .failed(attempt: 1, retryIn: .milliseconds(200))),
                .receive(5, [22]),
                .round(at: 199, []),
                .round(at: 200, [[Planned(partition: 5, offsets: [20, 21, 22], resync: true, expected: 20)]]),
                .finish(5, .failed(.transient), at: 200, showing: .failed(attempt: 2, retryIn: .milliseconds(400))),
                .round(at: 599, []),
                .round(at: 600, [[Planned(partition: 5, offsets: [20, 21, 22], resync: true, expected: 20)]]),
                .finish(5, .applied(stored: 23, waiting: false), at: 600, showing: .applied),
                .receive(5, [23]),
                .round(at: 600, [[Planned(partition: 5, offsets: [23], expected: 23)]]),
                .finish(5, .failed(.transient), at: 600, showing: .failed(attempt: 1, retryIn: .milliseconds(200))),
            ]
        },
        Scenario(
            name:
                "an unexpected database error is retried five times, then isolated and dead-lettered; the rest goes on"
        ) {
            [
                .assign(0, stored: 0),
                .receive(0, [0, 1, 2]),
                .round([[Planned(partition: 0, offsets: [0, 1, 2], expected: 0)]]),
                .finish(
                    0, .failed(.unexpected(reason: "P0001", code: "P0001")),
                    showing: .failed(attempt: 1, retryIn: .milliseconds(200))),
                .round(at: 200, [[Planned(partition: 0, offsets: [0, 1, 2], resync: true, expected: 0)]]),
                .finish(
                    0, .failed(.unexpected(reason: "P0001", code: "P0001")), at: 200,
                    showing: .failed(attempt: 2, retryIn: .milliseconds(400))),
                .round(at: 600, [[Planned(partition: 0, offsets: [0, 1, 2], resync: true, expected: 0)]]),
                .finish(
                    0, .failed(.unexpected(reason: "P0001", code: "P0001")), at: 600,
                    showing: .failed(attempt: 3, retryIn: .milliseconds(800))),
                .round(at: 1400, [[Planned(partition: 0, offsets: [0, 1, 2], resync: true, expected: 0)]]),
                .finish(
                    0, .failed(.unexpected(reason: "P0001", code: "P0001")), at: 1400,
                    showing: .failed(attempt: 4, retryIn: .milliseconds(1600))),
                .round(at: 2999, []),
                .round(at: 3000, [[Planned(partition: 0, offsets: [0, 1, 2], resync: true, expected: 0)]]),
                // The fifth: as if its content were refused.
                .finish(
                    0, .failed(.unexpected(reason: "P0001", code: "P0001")), at: 3000,
                    showing: .isolating(through: 2, size: 1)),
                .round(at: 3000, [[Planned(partition: 0, offsets: [0], resync: true, expected: 0)]]),
                .finish(
                    0, .failed(.unexpected(reason: "P0001", code: "P0001")), at: 3000,
                    showing: .deadLettering(offset: 0)),
                .round(
                    at: 3000, [[Planned(partition: 0, offsets: [0], resync: true, deadLetter: "P0001", expected: 0)]]),
                .finish(0, .applied(stored: 1, waiting: false), at: 3000, showing: .applied),
                .round(at: 3000, [[Planned(partition: 0, offsets: [1], expected: 1)]]),
                .finish(0, .applied(stored: 2, waiting: false), at: 3000, showing: .applied),
                .round(at: 3000, [[Planned(partition: 0, offsets: [2], expected: 2)]]),
            ]
        },
        Scenario(
            name:
                "the same unexpected error from the next message right after its dead letter is waited out, not dead-lettered"
        ) {
            [
                .assign(0, stored: 0),
                .receive(0, [0, 1]),
                .round([[Planned(partition: 0, offsets: [0, 1], expected: 0)]]),
                .finish(
                    0, .failed(.unexpected(reason: "r", code: "XX000")),
                    showing: .failed(attempt: 1, retryIn: .milliseconds(200))),
                .round(at: 200, [[Planned(partition: 0, offsets: [0, 1], resync: true, expected: 0)]]),
                .finish(
                    0, .failed(.unexpected(reason: "r", code: "XX000")), at: 200,
                    showing: .failed(attempt: 2, retryIn: .milliseconds(400))),
                .round(at: 600, [[Planned(partition: 0, offsets: [0, 1], resync: true, expected: 0)]]),
                .finish(
                    0, .failed(.unexpected(reason: "r", code: "XX000")), at: 600,
                    showing: .failed(attempt: 3, retryIn: .milliseconds(800))),
                .round(at: 1400, [[Planned(partition: 0, offsets: [0, 1], resync: true, expected: 0)]]),
                .finish(
                    0, .failed(.unexpected(reason: "r", code: "XX000")), at: 1400,
                    showing: .failed(attempt: 4, retryIn: .milliseconds(1600))),
                .round(at: 3000, [[Planned(partition: 0, offsets: [0, 1], resync: true, expected: 0)]]),
                .finish(
                    0, .failed(.unexpected(reason: "r", code: "XX000")), at: 3000,
                    showing: .isolating(through: 1, size: 1)),
                .round(at: 3000, [[Planned(partition: 0, offsets: [0], resync: true, expected: 0)]]),
                .finish(
                    0, .failed(.unexpected(reason: "r", code: "XX000")), at: 3000, showing: .deadLettering(offset: 0)),
                .round(at: 3000, [[Planned(partition: 0, offsets: [0], resync: true, deadLetter: "r", expected: 0)]]),
                .finish(0, .applied(stored: 1, waiting: false), at: 3000, showing: .applied),
                .round(at: 3000, [[Planned(partition: 0, offsets: [1], expected: 1)]]),
                // The database, not the message: backed off, however long it lasts.
                .finish(
                    0, .failed(.unexpected(reason: "r", code: "XX000")), at: 3000,
                    showing: .failed(attempt: 1, retryIn: .milliseconds(200))),
                .round(at: 3200, [[Planned(partition: 0, offsets: [1], resync: true, expected: 1)]]),
                .finish(
                    0, .failed(.unexpected(reason: "r", code: "XX000")), at: 3200,
                    showing: .failed(attempt: 2, retryIn: .milliseconds(400))),
                .round(at: 3600, [[Planned(partition: 0, offsets: [1], resync: true, expected: 1)]]),
                .finish(0, .applied(stored: 2, waiting: false), at: 3600, showing: .applied),
            ]
        },
        Scenario(name: "a skipped offset stops the partition until it is read again; nothing is lost") {
            [
                .assign(0, stored: 0),
                .receive(
                    0, [0, 1, 2, 5, 6], showing: [.kept, .kept, .kept, .gap(expected: 3, received: 5), .ignored]),
                .backlog(0, [0, 1, 2]),
                .rereads([0: 3]),
                // What was read before the gap is applied meanwhile.
                .round([[Planned(partition: 0, offsets: [0, 1, 2], expected: 0)]]),
                .finish(0, .applied(stored: 3, waiting: false), showing: .applied),
                .rereads([0: 3]),
                .readingAgain(0),
                .rereads([:]),
                .receive(0, [3, 4, 5, 6]),
                .backlog(0, [3, 4, 5, 6]),
            ]
        },
        Scenario(name: "a gap found again by a fresh read is in the log itself: reported, and reading goes on") {
            [
                .assign(0, stored: 0),
                .receive(0, [0, 1, 4], showing: [.kept, .kept, .gap(expected: 2, received: 4)]),
                .readingAgain(0),
                .receive(0, [4, 5], showing: [.missingInLog(2..<4), .kept]),
                .receive(0, [7], showing: [.gap(expected: 6, received: 7)]),
                .backlog(0, [0, 1, 4, 5]),
            ]
        },
        Scenario(name: "a revoke in the middle of a batch: its end counts for nothing, even if assigned again") {
            [
                .assign(2, stored: 0),
                .receive(2, [0, 1]),
                .round([[Planned(partition: 2, offsets: [0, 1], expected: 0)]]),
                .revoke(2),
                .assign(2, stored: 0),
                .finish(2, .applied(stored: 2, waiting: false), showing: nil),
                .uncommitted([2: 0]),
                .receive(2, [0, 1]),
                .round([[Planned(partition: 2, offsets: [0, 1], expected: 0)]]),
                .finish(2, .applied(stored: 2, waiting: false), showing: .applied),
                .uncommitted([2: 2]),
            ]
        },
        Scenario(name: "small batches share a transaction up to the batch size; after a rollback each runs alone") {
            [
                .assign(0, stored: 0), .assign(1, stored: 0), .assign(2, stored: 0),
                .receive(0, [0, 1, 2]), .receive(1, [0, 1, 2]), .receive(2, [0, 1, 2]),
                .round([
                    [
                        Planned(partition: 0, offsets: [0, 1, 2], expected: 0),
                        Planned(partition: 1, offsets: [0, 1, 2], expected: 0),
                    ],
                    [Planned(partition: 2, offsets: [0, 1, 2], expected: 0)],
                ]),
                .finish(0, .rolledBackTogether, showing: .rolledBackTogether),
                .finish(1, .rolledBackTogether, showing: .rolledBackTogether),
                .finish(2, .applied(stored: 3, waiting: false), showing: .applied),
                .receive(2, [3]),
                .round([
                    [Planned(partition: 0, offsets: [0, 1, 2], resync: true, expected: 0)],
                    [Planned(partition: 1, offsets: [0, 1, 2], resync: true, expected: 0)],
                    [Planned(partition: 2, offsets: [3], expected: 3)],
                ]),
                .finish(0, .applied(stored: 3, waiting: false), showing: .applied),
                .finish(1, .failed(.refusedContent(reason: "r")), showing: .isolating(through: 2, size: 1)),
                .finish(2, .applied(stored: 4, waiting: false), showing: .applied),
                .receive(0, [3]), .receive(2, [4]),
                .round([
                    [Planned(partition: 1, offsets: [0], resync: true, expected: 0)],
                    [
                        Planned(partition: 0, offsets: [3], expected: 3),
                        Planned(partition: 2, offsets: [4], expected: 4),
                    ],
                ]),
            ]
        },
        Scenario(name: "an applier that takes one partition at a time gets every batch alone", appliesTogether: false) {
            [
                .assign(0, stored: 0), .assign(1, stored: 0),
                .receive(0, [0]), .receive(1, [0]),
                .round([
                    [Planned(partition: 0, offsets: [0], expected: 0)],
                    [Planned(partition: 1, offsets: [0], expected: 0)],
                ]),
            ]
        },
        Scenario(name: "a message that has to wait is offered again after the wait, with those behind it") {
            [
                .assign(0, stored: 0),
                .receive(0, [0, 1, 2]),
                .round([[Planned(partition: 0, offsets: [0, 1, 2], expected: 0)]]),
                .finish(0, .applied(stored: 1, waiting: true), showing: .applied),
                .round(at: 499, []),
                .round(at: 500, [[Planned(partition: 0, offsets: [1, 2], expected: 1)]]),
            ]
        },
        Scenario(name: "a long backlog pauses fetching, and fetching resumes once it drains", batchSize: 2) {
            [
                .assign(0, stored: 0), .assign(1, stored: 0),
                .receive(0, [0, 1, 2, 3, 4, 5, 6, 7]), .receive(1, [0]),
                .flow(pause: [0], resume: []),
                .flow(pause: [], resume: []),
                .round([
                    [Planned(partition: 0, offsets: [0, 1], expected: 0)],
                    [Planned(partition: 1, offsets: [0], expected: 0)],
                ]),
                .finish(0, .applied(stored: 7, waiting: false), showing: .applied),
                .flow(pause: [], resume: [0]),
            ]
        },
    ]

    @Test("Scenario", arguments: scenarios)
    func scenario(_ scenario: Scenario) {
        var machine = Machine(
            batchSize: scenario.batchSize, appliesTogether: scenario.appliesTogether, waitRetry: .milliseconds(500))
        let start = ContinuousClock.now
        var planned: [KafkaPartition: ConsumerBatch<String>] = [:]
        for (index, step) in scenario.steps().enumerated() {
            let at = "step \(index + 1)"
            switch step {
            case .assign(let partition, let stored):
                machine.assigned(partition, stored: stored)
            case .revoke(let partition):
                machine.revoked(partition)
            case .receive(let partition, let offsets, let showing):
                let shown = offsets.map { machine.receive(Self.message(partition, $0)) }
                #expect(shown == (showing ?? offsets.map { _ in .kept }), "\(at)")
            case .round(let time, let expected):
                let jobs = machine.nextRound(now: start + .milliseconds(time))
                let got = jobs.map { job in
                    job.batches.map {
                        Planned(
                            partition: $0.partition, offsets: $0.work.messages.map(\.offset), resync: $0.work.resync,
                            deadLetter: $0.work.deadLetter, expected: $0.work.expectedOffset)
                    }
                }
                #expect(got == expected, "\(at)")
                for batch in jobs.flatMap(\.batches) { planned[batch.partition] = batch }
            case .finish(let partition, let outcome, let time, let showing):
                guard let batch = planned[partition] else {
                    Issue.record("\(at): no batch of partition \(partition) was planned")
                    continue
                }
                let finished = machine.finished(batch, outcome, prepared: nil, now: start + .milliseconds(time))
                #expect(finished == showing, "\(at)")
            case .rereads(let expected):
                #expect(
                    Dictionary(uniqueKeysWithValues: machine.rereads.map { ($0.partition, $0.from) }) == expected,
                    "\(at)")
            case .readingAgain(let partition):
                machine.readingAgain(partition)
            case .backlog(let partition, let offsets):
                #expect(machine.partitions[partition]?.backlog.map(\.offset) == offsets, "\(at)")
            case .flow(let pause, let resume):
                let flow = machine.flowControl()
                #expect(flow.pause == pause && flow.resume == resume, "\(at)")
            case .uncommitted(let offsets):
                #expect(machine.uncommitted == offsets, "\(at)")
            case .committed(let offsets):
                machine.committed(offsets)
            }
        }
    }

    @Test("What a message was prepared into is kept across retries and splits, never made again")
    func preparedOnce() {
        var machine = Machine(batchSize: 4, appliesTogether: true, waitRetry: .zero)
        machine.assigned(0, stored: 0)
        for offset in 0..<4 { _ = machine.receive(Self.message(0, KafkaOffset(Int64(offset)))) }
        let first = machine.nextRound(now: .now)[0].batches[0]
        #expect(first.work.messages.allSatisfy { $0.prepared == nil })
        _ = machine.finished(
            first, .failed(.refusedContent(reason: "r")), prepared: ["a", "b", "c", "d"], now: .now)
        let half = machine.nextRound(now: .now)[0].batches[0]
        #expect(half.work.messages.map(\.prepared) == ["a", "b"])
        _ = machine.finished(half, .applied(stored: 2, waiting: false), prepared: ["x", "y"], now: .now)
        let rest = machine.nextRound(now: .now)[0].batches[0]
        #expect(rest.work.messages.map(\.prepared) == ["c", "d"], "kept, not replaced")
    }
}
