import ArgumentParser
import Contract
import Foundation
import Kafka
import Logging
import ServiceLifecycle

/// Hosts librdkafka's mock cluster as a stand-alone broker that other processes connect to.
@main
struct MatometeBroker: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "matomete-broker",
        abstract: "Run an embedded Kafka cluster (librdkafka's mock brokers) on loopback.",
        discussion: """
            Starts N Kafka-protocol brokers on 127.0.0.1, creates every topic Matomete
            uses (under --topic-prefix, with --partitions; `matomete topics list` shows
            them) and the topics given with --topic, prints the bootstrap string on
            standard output and serves until SIGTERM or SIGINT.

            These brokers cannot create topics when a client asks (they have no
            controller for CreateTopics): every topic must be made here, at start.
            `matomete topics create` against them succeeds when the topics exist
            already, and fails after its timeout otherwise.

            Data is kept in memory only, at most about 5 MiB (or 100,000 message sets)
            per partition; older data beyond that is dropped. For development and tests,
            never for production.
            """)

    @Option(name: .long, help: "Number of brokers.")
    var brokers = 3

    @Option(
        name: .long,
        help: ArgumentHelp(
            "A topic to create, as NAME:PARTITIONS (repeatable).", valueName: "name:partitions"))
    var topic: [String] = []

    @Option(
        help: ArgumentHelp(
            "Partitions of Matomete's request topics and the output topics keyed by line or merchant (as `matomete topics create --partitions`).",
            valueName: "count"))
    var partitions = 12

    @Option(
        help: ArgumentHelp(
            "The prefix of Matomete's topic names (as the workers' --topic-prefix).", valueName: "prefix"))
    var topicPrefix = "matomete"

    @Flag(help: "Create only the topics given with --topic, none of Matomete's.")
    var noMatometeTopics = false

    @Option(name: .long, help: "Also write the bootstrap string to this file (for scripts).")
    var bootstrapFile: String?

    @Option(name: .long, help: "Log level: trace, debug, info, notice, warning, error, critical.")
    var logLevel: Logger.Level = .info

    mutating func validate() throws {
        guard (1...16).contains(brokers) else { throw ValidationError("--brokers must be between 1 and 16.") }
        guard (1...1_000).contains(partitions) else {
            throw ValidationError("--partitions must be between 1 and 1000.")
        }
        guard !topicPrefix.isEmpty else { throw ValidationError("--topic-prefix must not be empty.") }
        for spec in topic where TopicOption(spec) == nil {
            throw ValidationError("--topic \(spec): expected NAME:PARTITIONS, for example matomete.charges:12.")
        }
    }

    func run() async throws {
        let level = logLevel
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = level
            return handler
        }
        let logger = Logger(label: "matomete.broker")
        let cluster = try EmbeddedKafkaCluster(brokers: brokers, logger: logger)
        // A topic given with --topic takes its partitions from there.
        let explicit = topic.compactMap(TopicOption.init)
        let matomete =
            noMatometeTopics
            ? []
            : Topics(prefix: topicPrefix).layout(partitions: partitions)
                .filter { layout in !explicit.contains { $0.name == layout.name } }
                .map { TopicOption(name: $0.name, partitions: $0.partitions) }
        for option in matomete + explicit {
            try cluster.createTopic(option.name, partitions: option.partitions)
            logger.info("Created topic", metadata: ["topic": "\(option.name)", "partitions": "\(option.partitions)"])
        }
        if let bootstrapFile {
            try Data((cluster.bootstrapServers + "\n").utf8).write(to: URL(fileURLWithPath: bootstrapFile))
        }
        FileHandle.standardOutput.write(Data((cluster.bootstrapServers + "\n").utf8))
        let group = ServiceGroup(
            configuration: .init(
                services: [cluster], gracefulShutdownSignals: [.sigterm, .sigint], logger: logger))
        try await group.run()
        logger.info("Embedded Kafka cluster stopped")
    }
}

struct TopicOption {
    var name: String
    var partitions: Int

    init(name: String, partitions: Int) {
        self.name = name
        self.partitions = partitions
    }

    init?(_ spec: String) {
        guard let colon = spec.lastIndex(of: ":"), let count = Int(spec[spec.index(after: colon)...]), count > 0
        else { return nil }
        name = String(spec[..<colon])
        partitions = count
        if name.isEmpty { return nil }
    }
}

extension Logger.Level: @retroactive ExpressibleByArgument {}
