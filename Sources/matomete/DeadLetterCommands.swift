import ArgumentParser
import Contract
import Foundation
import Kafka

struct DeadLetterCommands: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "dead-letters",
        abstract: "Messages the workers could not read as requests, kept with their original bytes.",
        subcommands: [List.self, Replay.self])

    struct Selection: ParsableArguments {
        @Option(help: "Only dead letters read from this topic.") var sourceTopic: String?
        @Option(help: "Only dead letters whose reason contains this text.") var reason: String?

        func filter(_ letters: [DeadLetter]) -> [DeadLetter] {
            letters.filter { letter in
                (sourceTopic.map { letter.sourceTopic == $0 } ?? true)
                    && (reason.map { letter.reason.localizedCaseInsensitiveContains($0) } ?? true)
            }
        }
    }

    /// What `list --json` prints for each dead letter.
    struct Entry: Encodable {
        var id: String
        var deadLetterPartition: Int32
        var deadLetterOffset: Int64
        var at: Date?
        var sourceTopic: String
        var sourcePartition: Int32?
        var sourceOffset: Int64?
        var reason: String
        /// The original key and value: as text when they are UTF-8, otherwise base64 in the *Base64 field.
        var key: String?
        var keyBase64: String?
        var value: String?
        var valueBase64: String?

        init(_ letter: DeadLetter) {
            id = letter.id
            deadLetterPartition = letter.partition
            deadLetterOffset = letter.offset
            at = letter.timestamp
            sourceTopic = letter.sourceTopic
            sourcePartition = letter.sourcePartition
            sourceOffset = letter.sourceOffset
            reason = letter.reason
            (key, keyBase64) = letter.key.map(Self.text) ?? (nil, nil)
            (value, valueBase64) = Self.text(letter.value)
        }

        static func text(_ bytes: [UInt8]) -> (String?, String?) {
            if let text = String(validating: bytes, as: UTF8.self) { return (text, nil) }
            return (nil, Data(bytes).base64EncodedString())
        }
    }

    static func read(_ cluster: ClusterOptions) async throws -> [DeadLetter] {
        try await cluster.readAll(cluster.topics.deadLetters).compactMap(DeadLetter.init)
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "List dead letters, oldest first: where each came from, why, and its bytes.",
            discussion:
                "Reads the dead-letter topic without joining a consumer group; exits 0 even when there are none.")
        @OptionGroup var cluster: ClusterOptions
        @OptionGroup var selection: Selection
        @OptionGroup var output: OutputOptions
        @Option(help: "Show at most this many (the newest).") var limit = 50

        func run() async throws {
            try await Exit.mapping {
                let letters = selection.filter(try await DeadLetterCommands.read(cluster))
                let shown = letters.suffix(max(0, limit))
                if output.json { return try output.print(shown.map(Entry.init)) }
                if letters.isEmpty { return say("No dead letters on \(cluster.topics.deadLetters).") }
                printTable(
                    header: ["id", "from", "reason", "value"],
                    rows: shown.map { letter in
                        [
                            letter.id,
                            "\(letter.sourceTopic)/\(letter.sourcePartition.map(String.init) ?? "?")@\(letter.sourceOffset.map(String.init) ?? "?")",
                            clip(letter.reason, 60),
                            clip(Entry.text(letter.value).0 ?? "(\(letter.value.count) bytes, not UTF-8)", 50),
                        ]
                    })
                if shown.count < letters.count {
                    say("(\(letters.count - shown.count) older not shown; --limit shows more, --json shows them whole)")
                }
            }
        }
    }

    struct Replay: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Send dead letters' original bytes again to the topic they came from.",
            discussion: """
                For after a fix: a merchant corrected its encoder, or a worker bug was fixed. Each \
                message goes back with its original key and value and a matomete-replayed-from header. \
                Requests carry their own ids, so replaying one that was applied after all is answered \
                again, never billed twice; one still unreadable is dead-lettered again. Only the input \
                topics take replays: charges and cancellations, and billing-cycles with \
                --allow-billing-cycles (a close). A dead letter naming any other topic, or whose id does \
                not match where it says it was read (not written by a worker), is refused. Exits 1 if an \
                --id is not found or any chosen dead letter is refused (nothing is sent then, also with \
                --dry-run).
                """)
        @OptionGroup var cluster: ClusterOptions
        @OptionGroup var selection: Selection
        @Option(help: "A dead letter's id (repeatable).") var id: [String] = []
        @Flag(help: "Replay every dead letter the selection matches.") var all = false
        @Flag(help: "Show what would be sent, send nothing.") var dryRun = false
        @Flag(help: "Also replay close commands to the billing-cycles topic.") var allowBillingCycles = false

        func validate() throws {
            guard all != !id.isEmpty else { throw ValidationError("Give --id (one or more) or --all, not both.") }
        }

        func run() async throws {
            try await Exit.mapping {
                let letters = selection.filter(try await DeadLetterCommands.read(cluster))
                var chosen = letters
                if !all {
                    let byID = Dictionary(letters.map { ($0.id, $0) }) { first, _ in first }
                    let missing = id.filter { byID[$0] == nil }
                    guard missing.isEmpty else {
                        Exit.complain("no dead letter \(missing.joined(separator: ", ")); nothing was sent")
                        throw ExitCode.failure
                    }
                    chosen = id.compactMap { byID[$0] }
                }
                guard !chosen.isEmpty else { return say("Nothing to replay.") }
                let topics = cluster.topics
                var inputs = [topics.charges, topics.cancellations]
                if allowBillingCycles { inputs.append(topics.billingCycles) }
                let refused = chosen.compactMap { letter -> String? in
                    guard inputs.contains(letter.sourceTopic) else {
                        let hint = letter.sourceTopic == topics.billingCycles ? " without --allow-billing-cycles" : ""
                        return "\(letter.id): \(letter.sourceTopic) takes no replays\(hint)"
                    }
                    if let size = letter.truncatedFrom {
                        return
                            "\(letter.id): only a prefix of its \(size) bytes was kept; the original is at \(letter.sourceTopic)/\(letter.sourcePartition.map(String.init) ?? "?")@\(letter.sourceOffset.map(String.init) ?? "?")"
                    }
                    guard letter.isConsistent else {
                        return
                            "\(letter.id): its id does not match where it says it was read; not a worker's dead letter"
                    }
                    return nil
                }
                guard refused.isEmpty else {
                    Exit.complain("refused, nothing was sent: \(refused.joined(separator: "; "))")
                    throw ExitCode.failure
                }
                if dryRun {
                    printTable(header: ["would send", "to"], rows: chosen.map { [$0.id, $0.sourceTopic] })
                    return
                }
                let producer = try cluster.producer()
                let results = await producer.send(chosen.map { $0.replay() })
                await producer.shutdown()
                try results.throwIfAnyFailed()
                printTable(header: ["replayed", "to"], rows: chosen.map { [$0.id, $0.sourceTopic] })
                say("Sent \(chosen.count) messages again; their answers arrive as usual.")
            }
        }
    }
}

private func clip(_ text: String, _ width: Int) -> String {
    let flat = text.replacingOccurrences(of: "\n", with: " ")
    return flat.count <= width ? flat : String(flat.prefix(width - 1)) + "…"
}

extension DeadLetter {
    /// Reads a message of the dead-letter topic; `nil` when Matomete did not put it there.
    init?(_ message: KafkaConsumerMessage) {
        self.init(
            header: message.header, key: message.key.map(Array.init), value: Array(message.value),
            partition: message.topicPartition.partition.rawValue, offset: message.offset.rawValue,
            timestamp: message.timestampMilliseconds.map { Date(timeIntervalSince1970: Double($0) / 1000) })
    }

    /// Whether its id is the one a worker gives the dead letter of the
    /// message at its source topic, partition and offset.
    var isConsistent: Bool {
        guard let sourcePartition, let sourceOffset else { return false }
        return id == DeadLetterHeaders.id(topic: sourceTopic, partition: sourcePartition, offset: sourceOffset)
    }

    /// The original message again, for its source topic (or `topic`), with
    /// its signature as it was, marked with the dead letter it came from.
    /// Requests carry their own ids, so a replay of a message that was
    /// applied after all is answered, not applied twice. Its signature is
    /// judged like any other: past the window it is refused as stale, and
    /// only its sender can sign it afresh.
    func replay(to topic: String? = nil) -> KafkaProducerMessage {
        KafkaProducerMessage(
            topic: topic ?? sourceTopic, key: key, value: value,
            headers: originalHeaders.map { KafkaHeader(name: $0.name, text: $0.value) }
                + [KafkaHeader(name: DeadLetterHeaders.replayedFrom, text: id)])
    }
}
