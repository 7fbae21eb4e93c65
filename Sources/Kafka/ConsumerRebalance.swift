import CRdKafka
import Synchronization

/// The consumer's rebalance state: a Mutex around a small state machine that
/// the rebalance callback and the application's calls both drive.
final class ConsumerContext: CallbackContext, @unchecked Sendable {
    // @unchecked Sendable: all mutable state is inside `state`'s Mutex.
    private struct State {
        var assigned: Set<KafkaTopicPartition> = []
        var pending: [KafkaTopicPartition]?
        var cooperative = false
        var events: [KafkaConsumerEvent] = []
        /// Partitions revoked whose unassignment waits for the blocking thread.
        var revocation: (partitions: [KafkaTopicPartition], cooperative: Bool)?
        var closing = false
    }

    private let state = Mutex(State())

    var currentAssignment: [KafkaTopicPartition] { state.withLock { $0.assigned.sorted() } }

    func pendingAssignment() -> ([KafkaTopicPartition]?, cooperative: Bool) {
        state.withLock { ($0.pending, $0.cooperative) }
    }

    func started(_ partitions: [KafkaTopicPartition]) {
        state.withLock { state in
            state.assigned.formUnion(partitions)
            state.pending = nil
        }
    }

    var hasPendingRevocation: Bool { state.withLock { $0.revocation != nil } }

    /// The consumer is closing: revocations are completed inside the callback,
    /// which then runs on the blocking thread that closes.
    func closing() {
        state.withLock { $0.closing = true }
    }

    /// Tells librdkafka the revoked partitions are released. A blocking call:
    /// only on the consumer's blocking thread.
    func completeRevocation(_ handle: OpaquePointer) {
        guard
            let revocation = state.withLock({ state in
                defer { state.revocation = nil }
                return state.revocation
            })
        else { return }
        unassign(handle, revocation.partitions, cooperative: revocation.cooperative)
    }

    private func unassign(_ handle: OpaquePointer, _ partitions: [KafkaTopicPartition], cooperative: Bool) {
        if cooperative {
            let list = NativePartitionList(partitions)
            if let error = list.withList({ rd_kafka_incremental_unassign(handle, $0) }) {
                clientError(KafkaError(consuming: error, context: "unassign revoked partitions"))
            }
        } else {
            let err = rd_kafka_assign(handle, nil)
            if err != RD_KAFKA_RESP_ERR_NO_ERROR { clientError(KafkaError(err, context: "unassign")) }
        }
    }

    func takeEvents() -> [KafkaConsumerEvent] {
        state.withLock { state in
            defer { state.events.removeAll() }
            return state.events
        }
    }

    /// Called by librdkafka (on the thread that polls or closes) for every rebalance.
    ///
    /// Assignments wait for the application's starting offsets. Revocations are
    /// recorded here and completed by `poll` on the blocking thread before it
    /// returns (or here, when closing), because releasing partitions is a
    /// blocking call and the callback may run on a cooperative thread.
    func rebalance(
        _ handle: OpaquePointer, _ err: rd_kafka_resp_err_t,
        _ list: UnsafeMutablePointer<rd_kafka_topic_partition_list_t>?
    ) {
        let partitions = NativePartitionList.entries(list).map(\.0).sorted()
        let cooperative = String(cString: rd_kafka_rebalance_protocol(handle)) == "COOPERATIVE"
        switch err {
        case RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS:
            // Deferred: the application starts them with the offsets it chooses.
            state.withLock { state in
                state.cooperative = cooperative
                state.pending = (state.pending ?? []) + partitions
                state.events.append(.partitionsAssigned(partitions))
            }
        case RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS:
            let lost = rd_kafka_assignment_lost(handle) != 0
            let closing = state.withLock { state in
                state.assigned.subtract(partitions)
                state.pending = state.pending?.filter { !partitions.contains($0) }
                if state.pending?.isEmpty == true { state.pending = nil }
                state.events.append(.partitionsRevoked(partitions, lost: lost))
                if !state.closing { state.revocation = (partitions, cooperative) }
                return state.closing
            }
            if closing { unassign(handle, partitions, cooperative: cooperative) }
        default:
            let closing = state.withLock { state in
                let all = state.assigned.sorted()
                state.assigned.removeAll()
                state.pending = nil
                state.events.append(.error(KafkaError(err, context: "rebalance")))
                if !state.closing { state.revocation = (all, false) }
                return state.closing
            }
            if closing { unassign(handle, [], cooperative: false) }
        }
        logger.info(
            "Consumer group rebalance",
            metadata: [
                "kafka.event": "\(String(cString: rd_kafka_err2name(err)))", "kafka.partitions": "\(partitions)",
            ])
        // Return from the current poll so the application sees the event first.
        rd_kafka_yield(handle)
    }
}

let rebalanceCallback:
    @convention(c) (
        OpaquePointer?, rd_kafka_resp_err_t, UnsafeMutablePointer<rd_kafka_topic_partition_list_t>?,
        UnsafeMutableRawPointer?
    ) -> Void = { handle, err, partitions, opaque in
        guard let handle, let context = CallbackContext.from(opaque) as? ConsumerContext else { return }
        context.rebalance(handle, err, partitions)
    }
