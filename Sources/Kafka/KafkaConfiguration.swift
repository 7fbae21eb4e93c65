import CRdKafka

/// Settings every Kafka client shares.
public struct KafkaClientSettings: Sendable {
    /// Brokers to bootstrap from, as `host:port`.
    public var bootstrapServers: [String]
    /// The client id sent to brokers, shown in their logs and quotas. Default `matomete`.
    public var clientID: String = "matomete"
    /// librdkafka debug contexts (`broker`, `cgrp`, `topic`, `msg`, …). Default none.
    public var debugContexts: [String] = []
    /// How long a broker request may take before it is retried. Default 30 s.
    public var socketTimeout: Duration = .seconds(30)
    /// Raw librdkafka properties, applied after (and overriding) the typed settings.
    ///
    /// The one escape hatch for what the typed settings do not cover, such as
    /// `security.protocol`, `sasl.*` and `ssl.*`. See librdkafka's CONFIGURATION.md.
    /// Values here are never logged: they may hold credentials.
    public var rawProperties: [String: String] = [:]

    /// Settings for a cluster reached at `bootstrapServers`.
    public init(bootstrapServers: [String]) {
        self.bootstrapServers = bootstrapServers
    }

    /// The shared properties, then `specific`, then the raw escape hatch, which
    /// overrides both.
    func properties(_ specific: [(String, String)]) -> [(String, String)] {
        var result: [(String, String)] = [
            ("bootstrap.servers", bootstrapServers.joined(separator: ",")),
            ("client.id", clientID),
            ("socket.timeout.ms", String(socketTimeout.milliseconds)),
        ]
        if !debugContexts.isEmpty { result.append(("debug", debugContexts.joined(separator: ","))) }
        return result + specific + rawProperties.sorted { $0.key < $1.key }
    }
}

/// Configuration of a ``KafkaProducer``.
public struct KafkaProducerConfiguration: Sendable {
    /// Which replicas must have a message before it counts as delivered.
    public enum Acknowledgements: String, Sendable {
        /// Every in-sync replica (`acks=all`): required for idempotence.
        case all = "all"
        /// The partition leader only.
        case leader = "1"
    }

    /// Compression of message batches.
    public enum Compression: String, Sendable {
        /// `none` sends batches uncompressed (the default); the others name librdkafka's `compression.codec`.
        case none, gzip, snappy, lz4, zstd
    }

    /// Shared client settings.
    public var client: KafkaClientSettings
    /// Idempotent producer: no duplicates or reordering from internal retries.
    /// Default `true`.
    public var idempotence: Bool = true
    /// Default ``Acknowledgements/all``.
    public var acknowledgements: Acknowledgements = .all
    /// How long to wait for more messages to fill a batch. Default 5 ms.
    public var linger: Duration = .milliseconds(5)
    /// Largest batch sent to one partition, in bytes. Default 1 MiB.
    public var batchBytes: Int = 1_048_576
    /// Most messages waiting in the local queue; `send` waits when it is full.
    /// Default 100,000.
    public var queueMessages: Int = 100_000
    /// How long librdkafka keeps retrying a message before reporting it failed.
    /// Default 5 minutes.
    public var messageTimeout: Duration = .seconds(300)
    /// Default ``Compression/none``.
    public var compression: Compression = .none

    /// A producer for the cluster reached at `bootstrapServers`.
    public init(bootstrapServers: [String]) {
        self.client = KafkaClientSettings(bootstrapServers: bootstrapServers)
    }

    var properties: [(String, String)] {
        client.properties([
            ("enable.idempotence", String(idempotence)),
            ("acks", acknowledgements.rawValue),
            ("linger.ms", String(linger.milliseconds)),
            ("batch.size", String(batchBytes)),
            ("queue.buffering.max.messages", String(queueMessages)),
            ("message.timeout.ms", String(messageTimeout.milliseconds)),
            ("compression.codec", compression.rawValue),
        ])
    }
}

/// Configuration of a ``KafkaConsumer``.
///
/// Offsets are never committed automatically: the application commits what it
/// has processed (``KafkaConsumer/commit(_:)``), or keeps offsets elsewhere and
/// chooses where each assigned partition starts.
public struct KafkaConsumerConfiguration: Sendable {
    /// How the group divides partitions among its members.
    public enum AssignmentStrategy: String, Sendable {
        /// Eager: every rebalance revokes all partitions, then assigns anew.
        case range
        /// Eager, spreading partitions of all topics evenly. The default.
        case roundRobin = "roundrobin"
        /// Incremental: only the partitions that move are revoked.
        case cooperativeSticky = "cooperative-sticky"
    }

    /// Where a partition with no committed offset starts.
    public enum OffsetReset: String, Sendable {
        /// `earliest`: the first message still in the partition; `latest`: only messages written from then on.
        case earliest, latest
    }

    /// Shared client settings.
    public var client: KafkaClientSettings
    /// The consumer group.
    public var groupID: String
    /// Default ``AssignmentStrategy/roundRobin``.
    public var assignmentStrategy: AssignmentStrategy = .roundRobin
    /// A member silent for this long leaves the group. Default 10 s.
    public var sessionTimeout: Duration = .seconds(10)
    /// Heartbeat interval. Default 1 s.
    public var heartbeatInterval: Duration = .seconds(1)
    /// Longest time between polls before the member is considered stuck. Default 5 min.
    public var maxPollInterval: Duration = .seconds(300)
    /// Default ``OffsetReset/earliest``.
    public var offsetReset: OffsetReset = .earliest
    /// Prefetched data kept per consumer, in KiB: bounds memory. Default 16 MiB.
    ///
    /// With librdkafka 2.0.2, once the prefetched messages reach this or
    /// ``queuedMessages``, fetching stops and resumes only when a broker
    /// thread next wakes, up to 1 s later. A consumer that empties the whole
    /// prefetch in less than that waits out the rest: size both limits to
    /// about a second of the rate it reads at (see docs/kafka.md).
    public var queuedKilobytes: Int = 16_384
    /// Prefetched messages kept per consumer (`queued.min.messages`, which
    /// librdkafka 2.0.2 counts over the consumer's whole queue). Default 100,000.
    public var queuedMessages: Int = 100_000
    /// Longest a broker holds a fetch waiting for data. Default 100 ms.
    public var fetchWait: Duration = .milliseconds(100)
    /// Whether ``KafkaConsumerMessage/headers`` holds each message's headers.
    /// Default `true`. librdkafka 2.0.2 parses a consumed message's headers
    /// only when asked, and asking allocates and frees a read buffer even for a
    /// message without headers (about 0.1 µs a message, as much as reading the
    /// message itself): a consumer that never looks at headers turns it off,
    /// and its messages come with none.
    public var readHeaders = true
    /// Most messages one ``KafkaConsumer/poll(timeout:)`` returns. Default 1,000.
    public var readBatchMessages: Int = 1000
    /// When fewer than a full batch are queued, how long `poll` waits after the
    /// first message for the batch to fill: the latency it adds at most.
    /// Default 5 ms.
    public var readBatchFill: Duration = .milliseconds(5)

    /// A consumer in `groupID` on the cluster reached at `bootstrapServers`.
    public init(bootstrapServers: [String], groupID: String) {
        self.client = KafkaClientSettings(bootstrapServers: bootstrapServers)
        self.groupID = groupID
    }

    var properties: [(String, String)] {
        client.properties([
            ("group.id", groupID),
            ("partition.assignment.strategy", assignmentStrategy.rawValue),
            ("session.timeout.ms", String(sessionTimeout.milliseconds)),
            ("heartbeat.interval.ms", String(heartbeatInterval.milliseconds)),
            ("max.poll.interval.ms", String(maxPollInterval.milliseconds)),
            ("auto.offset.reset", offsetReset.rawValue),
            ("queued.max.messages.kbytes", String(queuedKilobytes)),
            ("queued.min.messages", String(queuedMessages)),
            ("fetch.wait.max.ms", String(fetchWait.milliseconds)),
            ("enable.auto.commit", "false"),
            ("enable.auto.offset.store", "false"),
            ("enable.partition.eof", "false"),
        ])
    }
}

extension Duration {
    /// Whole milliseconds, rounded down.
    var milliseconds: Int64 {
        let (seconds, attoseconds) = components
        return seconds * 1000 + attoseconds / 1_000_000_000_000_000
    }
}

/// Builds an `rd_kafka_conf_t` from key/value pairs: the one place where typed
/// configuration becomes librdkafka's string properties.
///
/// - Returns: a configuration the caller must hand to `rd_kafka_new` or destroy.
func makeNativeConfiguration(_ properties: [(String, String)]) throws(KafkaError) -> OpaquePointer {
    let conf = rd_kafka_conf_new()!
    var errorText = [CChar](repeating: 0, count: 512)
    for (key, value) in properties {
        let result = rd_kafka_conf_set(conf, key, value, &errorText, errorText.count)
        guard result == RD_KAFKA_CONF_OK else {
            rd_kafka_conf_destroy(conf)
            // librdkafka quotes the rejected value; a secret's value must not reach a log.
            let reason =
                isSensitiveProperty(key)
                ? "value rejected (not shown: the property holds a secret)"
                : errorText.withUnsafeBufferPointer { String(cString: $0.baseAddress!) }
            let kind =
                result == RD_KAFKA_CONF_UNKNOWN ? "unknown configuration property" : "invalid configuration value"
            throw KafkaError(
                code: .invalidArgument, message: "\(kind) \"\(key)\": \(reason)", property: key)
        }
    }
    return conf
}

/// Whether a librdkafka property holds a credential whose value must never be shown.
func isSensitiveProperty(_ key: String) -> Bool {
    let lowered = key.lowercased()
    return ["password", "secret", "token", "sasl.jaas", ".pem", "key"].contains { lowered.contains($0) }
        && lowered != "ssl.key.location"
}
