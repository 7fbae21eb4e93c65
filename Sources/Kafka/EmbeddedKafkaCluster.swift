import CRdKafka
import Logging
import ServiceLifecycle

/// Kafka protocol requests, for fault injection (the protocol's API keys).
public enum KafkaRequest: Int16, Sendable, CaseIterable {
    /// Produce: a producer writes messages to partitions.
    case produce = 0
    /// Fetch: a consumer reads messages from partitions.
    case fetch = 1
    /// ListOffsets: a client asks for a partition's offsets, such as its start or end.
    case listOffsets = 2
    /// Metadata: a client asks for the brokers, topics, partitions and their leaders.
    case metadata = 3
    /// OffsetCommit: a consumer commits its group's offsets.
    case offsetCommit = 8
    /// OffsetFetch: a consumer reads its group's committed offsets.
    case offsetFetch = 9
    /// FindCoordinator: a client asks which broker coordinates its group (or transactions).
    case findCoordinator = 10
    /// JoinGroup: a consumer joins its group, or rejoins it during a rebalance.
    case joinGroup = 11
    /// Heartbeat: a group member says it is alive.
    case heartbeat = 12
    /// LeaveGroup: a consumer leaves its group.
    case leaveGroup = 13
    /// SyncGroup: the group's members receive their assigned partitions.
    case syncGroup = 14
    /// InitProducerId: an idempotent producer gets its producer id and epoch.
    case initProducerID = 22
}

/// librdkafka's built-in mock cluster: real Kafka-protocol brokers on loopback,
/// in this process, with fault injection for tests.
///
/// It is the embedded default for tests and for `matomete dev`. It keeps data
/// in memory only, and at most about 5 MiB (or 100,000 message sets) per
/// partition: older data beyond that is dropped, so size topics with enough
/// partitions or consume while producing. It does not support the CreateTopics
/// request; create topics with ``createTopic(_:partitions:replicationFactor:)``.
/// Broker ids run from 1 to the broker count.
public final class EmbeddedKafkaCluster: Service, @unchecked Sendable {
    // @unchecked Sendable: every property is set once in init; the mock
    // cluster's API is thread-safe (each call is handed to the cluster's thread).
    private let handle: KafkaHandle
    private let cluster: OpaquePointer
    /// How many brokers run.
    public let brokerCount: Int
    /// The bootstrap string clients connect with (`127.0.0.1:port,…`).
    public let bootstrapServers: String

    /// Starts `brokers` brokers on loopback.
    public init(brokers: Int = 3, logger: Logger) throws(KafkaError) {
        handle = try KafkaHandle(
            type: RD_KAFKA_PRODUCER, properties: [("client.id", "matomete-embedded-cluster")],
            context: CallbackContext(logger: logger))
        guard let cluster = rd_kafka_mock_cluster_new(handle.pointer, Int32(brokers)) else {
            throw KafkaError(code: .invalidState, message: "cannot start the embedded Kafka cluster")
        }
        self.cluster = cluster
        brokerCount = brokers
        bootstrapServers = String(cString: rd_kafka_mock_cluster_bootstraps(cluster))
    }

    deinit {
        rd_kafka_mock_cluster_destroy(cluster)
    }

    /// Bootstrap servers as a list, for client configurations.
    public var bootstrapServerList: [String] { bootstrapServers.split(separator: ",").map(String.init) }

    /// Creates a topic; creating an existing topic changes nothing.
    public func createTopic(_ name: String, partitions: Int, replicationFactor: Int? = nil) throws(KafkaError) {
        let replicas = replicationFactor ?? min(3, brokerCount)
        let err = rd_kafka_mock_topic_create(cluster, name, Int32(partitions), Int32(replicas))
        guard err == RD_KAFKA_RESP_ERR_NO_ERROR || err == RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS else {
            throw KafkaError(err, context: "create topic \(name)")
        }
    }

    /// Creates every topic in `topics`.
    public func createTopics(_ topics: [KafkaTopicSpecification]) throws(KafkaError) {
        for topic in topics {
            try createTopic(topic.name, partitions: topic.partitions, replicationFactor: topic.replicationFactor)
        }
    }

    /// Takes a broker down: its connections close and it accepts none until ``setBrokerUp(_:)``.
    public func setBrokerDown(_ broker: Int32) throws(KafkaError) {
        try rd_kafka_mock_broker_set_down(cluster, broker).check("take broker \(broker) down")
    }

    /// Brings a broker back.
    public func setBrokerUp(_ broker: Int32) throws(KafkaError) {
        try rd_kafka_mock_broker_set_up(cluster, broker).check("bring broker \(broker) up")
    }

    /// Moves the leadership of one partition to `broker`.
    public func moveLeader(topic: String, partition: KafkaPartition, to broker: Int32) throws(KafkaError) {
        try rd_kafka_mock_partition_set_leader(cluster, topic, partition.rawValue, broker).check(
            "move leader of \(topic)[\(partition)]")
    }

    /// Makes the next requests of kind `request`, on any broker, fail with
    /// `errors`, one error per request, in order.
    public func injectErrors(_ errors: [KafkaError.Code], on request: KafkaRequest) {
        var natives = errors.map { rd_kafka_resp_err_t($0.rawValue) }
        rd_kafka_mock_push_request_errors_array(cluster, request.rawValue, natives.count, &natives)
    }

    /// Removes errors still waiting to be injected for `request`.
    public func clearInjectedErrors(on request: KafkaRequest) {
        rd_kafka_mock_clear_request_errors(cluster, request.rawValue)
    }

    /// Delays every response of `broker` by `delay`.
    public func setRoundTripTime(_ delay: Duration, broker: Int32) throws(KafkaError) {
        try rd_kafka_mock_broker_set_rtt(cluster, broker, Int32(delay.milliseconds)).check(
            "set round-trip time of broker \(broker)")
    }

    /// Serves until graceful shutdown; the brokers stop when the cluster is released.
    public func run() async throws {
        try? await gracefulShutdown()
    }
}
