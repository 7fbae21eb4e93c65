import ArgumentParser
import Foundation
import Logging

extension Options {
    /// A text setting: the flag, else the environment variable, each only when not empty.
    public static func text(
        _ flag: String?, _ variable: String, environment: [String: String] = ProcessInfo.processInfo.environment
    ) -> String? {
        if let flag, !flag.isEmpty { return flag }
        if let value = environment[variable], !value.isEmpty { return value }
        return nil
    }
}

/// How a Matomete process reaches Kafka: the same flags and variables in every
/// worker, site and the operators' tool.
public struct KafkaClientOptions: ParsableArguments {
    @Option(
        name: .customLong("bootstrap-servers"),
        help: ArgumentHelp(
            "Kafka brokers to start from, comma-separated host:port. [env: MATOMETE_BOOTSTRAP_SERVERS]",
            valueName: "servers"))
    var bootstrapServers: String?

    @Option(
        name: .customLong("topic-prefix"),
        help: ArgumentHelp(
            "Prefix of every topic name, as in <prefix>.charges. [env: MATOMETE_TOPIC_PREFIX] (default: matomete)",
            valueName: "prefix"))
    var topicPrefix: String?

    @Option(
        name: .customLong("kafka"),
        help: ArgumentHelp(
            "A librdkafka property passed through as it is, for example --kafka security.protocol=ssl. Repeatable; applied after Matomete's own settings. [env: MATOMETE_KAFKA_PROPERTIES, separated by ';']",
            valueName: "key=value"))
    var kafkaProperties: [String] = []

    /// Every option unset.
    public init() {}

    /// The topic prefix alone, for commands that never connect (default `matomete`).
    public func prefix(environment: [String: String] = ProcessInfo.processInfo.environment) -> String {
        Options.text(topicPrefix, "MATOMETE_TOPIC_PREFIX", environment: environment) ?? "matomete"
    }

    /// The options with the environment filled in and checked.
    public func resolve(
        environment: [String: String] = ProcessInfo.processInfo.environment
    ) throws -> KafkaConnection {
        guard let servers = Options.text(bootstrapServers, "MATOMETE_BOOTSTRAP_SERVERS", environment: environment)
        else {
            throw ValidationError("Give the Kafka brokers with --bootstrap-servers or MATOMETE_BOOTSTRAP_SERVERS.")
        }
        return KafkaConnection(
            bootstrapServers: servers.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) },
            topicPrefix: prefix(environment: environment),
            properties: try Options.keyValues(
                kafkaProperties, "MATOMETE_KAFKA_PROPERTIES", what: "A Kafka property", environment: environment))
    }
}

/// Where the Kafka cluster is and how to talk to it, resolved.
public struct KafkaConnection: Sendable, Equatable {
    /// The brokers to start from, `host:port` each.
    public var bootstrapServers: [String]
    /// The start of every topic name.
    public var topicPrefix: String
    /// librdkafka properties by name, applied after Matomete's own settings.
    public var properties: [String: String]

    /// A connection to `bootstrapServers`.
    public init(bootstrapServers: [String], topicPrefix: String = "matomete", properties: [String: String] = [:]) {
        self.bootstrapServers = bootstrapServers
        self.topicPrefix = topicPrefix
        self.properties = properties
    }
}

/// How a process logs: the level and the format, from flags or the environment.
public struct LoggingOptions: ParsableArguments {
    @Option(
        name: .customLong("log-level"),
        help: ArgumentHelp(
            "trace, debug, info, notice, warning, error or critical. [env: MATOMETE_LOG_LEVEL] (default: info)",
            valueName: "level"))
    var logLevel: String?

    @Option(
        name: .customLong("log-format"),
        help: ArgumentHelp(
            "json (one object per line, for log collectors) or text. [env: MATOMETE_LOG_FORMAT] (default: json)",
            valueName: "format"))
    var logFormat: String?

    /// Every option unset.
    public init() {}

    /// The level and format, checked.
    public func resolve(
        environment: [String: String] = ProcessInfo.processInfo.environment
    ) throws -> (level: Logger.Level, format: LogFormat) {
        let levelText = Options.text(logLevel, "MATOMETE_LOG_LEVEL", environment: environment) ?? "info"
        guard let level = Logger.Level(rawValue: levelText) else {
            throw ValidationError(
                "Unknown log level \(levelText): use trace, debug, info, notice, warning, error or critical.")
        }
        let formatText = Options.text(logFormat, "MATOMETE_LOG_FORMAT", environment: environment) ?? "json"
        guard let format = LogFormat(rawValue: formatText) else {
            throw ValidationError("Unknown log format \(formatText): use json or text.")
        }
        return (level, format)
    }
}
