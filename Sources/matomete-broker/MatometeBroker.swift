import ArgumentParser
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
            Starts N Kafka-protocol brokers on 127.0.0.1, creates the topics given with
            --topic, prints the bootstrap string on standard output and serves until
            SIGTERM or SIGINT. Data is kept in memory only, at most about 5 MiB (or
            100,000 message sets) per partition; older data beyond that is dropped.
            For development and tests, never for production.
            """)

    @Option(name: .long, help: "Number of brokers.")
    var brokers = 3

    @Option(
        name: .long,
        help: ArgumentHelp(
            "A topic to create, as NAME:PARTITIONS (repeatable).", valueName: "name:partitions"))
    var topic: [String] = []

    @Option(name: .long, help: "Also write the bootstrap string to this file (for scripts).")
    var bootstrapFile: String?

    @Option(name: .long, help: "Log level: trace, debug, info, notice, warning, error, critical.")
    var logLevel: Logger.Level = .info

    mutating func validate() throws {
        guard (1...16).contains(brokers) else { throw ValidationError("--brokers must be between 1 and 16.") }
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
        for option in topic.compactMap(TopicOption.init) {
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

    init?(_ spec: String) {
        guard let colon = spec.lastIndex(of: ":"), let count = Int(spec[spec.index(after: colon)...]), count > 0
        else { return nil }
        name = String(spec[..<colon])
        partitions = count
        if name.isEmpty { return nil }
    }
}

extension Logger.Level: @retroactive ExpressibleByArgument {}
