import CRdKafka

/// An error from Kafka: from librdkafka, from a broker, or from this module.
///
/// Match on ``code``; ``message`` is for people. ``isRetriable`` says that the
/// same operation may succeed if tried again; ``isFatal`` says that the client
/// instance can no longer be used and must be recreated.
public struct KafkaError: Error, Sendable, Hashable, CustomStringConvertible {
    /// A stable error code: librdkafka's `rd_kafka_resp_err_t` value.
    ///
    /// Negative values are client-side errors, positive values are broker errors
    /// as defined by the Kafka protocol.
    public struct Code: RawRepresentable, Sendable, Hashable, CustomStringConvertible {
        /// The numeric `rd_kafka_resp_err_t` value: negative for client-side errors, positive for broker errors.
        public var rawValue: Int32
        /// Wraps a numeric librdkafka error code, known to this module or not.
        public init(rawValue: Int32) { self.rawValue = rawValue }
        init(_ err: rd_kafka_resp_err_t) { self.rawValue = err.rawValue }

        /// librdkafka's symbolic name, such as `_QUEUE_FULL` or `NOT_LEADER_FOR_PARTITION`.
        public var name: String { String(cString: rd_kafka_err2name(rd_kafka_resp_err_t(rawValue))) }
        /// The code's librdkafka name, for example `_QUEUE_FULL`.
        public var description: String { name }

        /// Local: the producer queue is full.
        public static let queueFull = Code(RD_KAFKA_RESP_ERR__QUEUE_FULL)
        /// Local: a message was not delivered within `message.timeout.ms`.
        public static let messageTimedOut = Code(RD_KAFKA_RESP_ERR__MSG_TIMED_OUT)
        /// Local: a message was purged from the queue at shutdown before delivery.
        public static let purgedFromQueue = Code(RD_KAFKA_RESP_ERR__PURGE_QUEUE)
        /// Local: a message was purged while in flight at shutdown.
        public static let purgedInFlight = Code(RD_KAFKA_RESP_ERR__PURGE_INFLIGHT)
        /// Local: an operation timed out.
        public static let timedOut = Code(RD_KAFKA_RESP_ERR__TIMED_OUT)
        /// Local: the connection to a broker failed.
        public static let transport = Code(RD_KAFKA_RESP_ERR__TRANSPORT)
        /// Local: no broker can be reached.
        public static let allBrokersDown = Code(RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN)
        /// Local: an invalid argument, or an unknown or invalid configuration
        /// property (``KafkaError/property`` names it).
        public static let invalidArgument = Code(RD_KAFKA_RESP_ERR__INVALID_ARG)
        /// Local: the operation needs a state the client is not in (for example,
        /// starting partitions when no assignment is pending).
        public static let invalidState = Code(RD_KAFKA_RESP_ERR__STATE)
        /// Local: the client raised a fatal error and must be recreated.
        public static let fatal = Code(RD_KAFKA_RESP_ERR__FATAL)
        /// Local: the broker or cluster does not support the request.
        public static let unsupportedFeature = Code(RD_KAFKA_RESP_ERR__UNSUPPORTED_FEATURE)
        /// Local: the client is being destroyed.
        public static let destroyed = Code(RD_KAFKA_RESP_ERR__DESTROY)
        /// Broker: the topic or partition does not exist.
        public static let unknownTopicOrPartition = Code(RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART)
        /// Broker: this broker is not the leader of the partition.
        public static let notLeaderForPartition = Code(RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION)
        /// Broker: the request timed out on the broker.
        public static let requestTimedOut = Code(RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT)
        /// Broker: not enough in-sync replicas.
        public static let notEnoughReplicas = Code(RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS)
        /// Broker: the message is larger than the broker accepts.
        public static let messageTooLarge = Code(RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE)
        /// Broker: the topic already exists (treated as success by `createTopics`).
        public static let topicAlreadyExists = Code(RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS)
        /// Broker: the record is invalid.
        public static let invalidRecord = Code(RD_KAFKA_RESP_ERR_INVALID_RECORD)
        /// Broker: the client is not authorized to write to or read from the topic.
        public static let topicAuthorizationFailed = Code(RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED)
    }

    /// What went wrong, as a code callers can match on.
    public var code: Code
    /// A sentence for people. Never contains credentials.
    public var message: String
    /// The same operation may succeed if retried.
    public var isRetriable: Bool
    /// The client instance is unusable and must be recreated.
    public var isFatal: Bool
    /// The configuration property at fault, for configuration errors.
    public var property: String?

    /// Creates an error.
    public init(code: Code, message: String, isRetriable: Bool = false, isFatal: Bool = false, property: String? = nil)
    {
        self.code = code
        self.message = message
        self.isRetriable = isRetriable
        self.isFatal = isFatal
        self.property = property
    }

    /// `Kafka error <name>: <message>`, followed by `(fatal)` or `(retriable)` when either holds.
    public var description: String {
        var text = "Kafka error \(code.name): \(message)"
        if isFatal { text += " (fatal)" } else if isRetriable { text += " (retriable)" }
        return text
    }

    /// An error from a bare response code, with librdkafka's description.
    init(_ err: rd_kafka_resp_err_t, context: String? = nil) {
        let text = String(cString: rd_kafka_err2str(err))
        self.init(
            code: Code(err),
            message: context.map { "\($0): \(text)" } ?? text,
            isRetriable: Self.retriableCodes.contains(err.rawValue),
            isFatal: err == RD_KAFKA_RESP_ERR__FATAL
        )
    }

    /// Takes ownership of an `rd_kafka_error_t` and destroys it.
    init(consuming error: OpaquePointer, context: String? = nil) {
        defer { rd_kafka_error_destroy(error) }
        let text = String(cString: rd_kafka_error_string(error))
        self.init(
            code: Code(rd_kafka_error_code(error)),
            message: context.map { "\($0): \(text)" } ?? text,
            isRetriable: rd_kafka_error_is_retriable(error) != 0,
            isFatal: rd_kafka_error_is_fatal(error) != 0
        )
    }

    /// Broker and client codes that a retry may cure when librdkafka gives only a code.
    private static let retriableCodes: Set<Int32> = [
        RD_KAFKA_RESP_ERR__TRANSPORT, RD_KAFKA_RESP_ERR__TIMED_OUT, RD_KAFKA_RESP_ERR__MSG_TIMED_OUT,
        RD_KAFKA_RESP_ERR__QUEUE_FULL, RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN, RD_KAFKA_RESP_ERR__WAIT_COORD,
        RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION, RD_KAFKA_RESP_ERR_LEADER_NOT_AVAILABLE,
        RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT, RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS,
        RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS_AFTER_APPEND, RD_KAFKA_RESP_ERR_NETWORK_EXCEPTION,
        RD_KAFKA_RESP_ERR_COORDINATOR_LOAD_IN_PROGRESS, RD_KAFKA_RESP_ERR_COORDINATOR_NOT_AVAILABLE,
        RD_KAFKA_RESP_ERR_NOT_COORDINATOR, RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART,
        RD_KAFKA_RESP_ERR_REBALANCE_IN_PROGRESS,
    ].reduce(into: Set<Int32>()) { $0.insert($1.rawValue) }
}

extension rd_kafka_resp_err_t {
    /// Throws unless this is `RD_KAFKA_RESP_ERR_NO_ERROR`.
    func check(_ context: @autoclosure () -> String) throws(KafkaError) {
        if self != RD_KAFKA_RESP_ERR_NO_ERROR { throw KafkaError(self, context: context()) }
    }
}
