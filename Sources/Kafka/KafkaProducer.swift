import CRdKafka
import Foundation
import Logging
import ServiceLifecycle
import Synchronization

/// Produces messages and reports, for every one of them, where it was written
/// or why it was not. Nothing is dropped silently: a message either gets a
/// delivery report or its `send` returns an error.
///
/// Idempotent by default, so librdkafka's internal retries never duplicate or
/// reorder a message. Delivery reports are served by a dedicated thread; `send`
/// suspends without blocking Swift's cooperative threads.
///
/// As a `Service`, the producer runs until graceful shutdown, then flushes what
/// is queued.
public final class KafkaProducer: Service, Sendable {
    private let handle: KafkaHandle
    private let context: ProducerContext
    private let topics = Mutex<[String: TopicHandle]>([:])
    private let pollThread: PollThread
    private let room: RoomSignal
    private let blocking: BlockingExecutor
    private let closed = Atomic<Bool>(false)

    /// Creates a producer. Throws ``KafkaError`` naming the property when the
    /// configuration is invalid.
    public init(configuration: KafkaProducerConfiguration, logger: Logger) throws(KafkaError) {
        let context = ProducerContext(logger: logger)
        handle = try KafkaHandle(type: RD_KAFKA_PRODUCER, properties: configuration.properties, context: context) {
            rd_kafka_conf_set_dr_msg_cb($0, deliveryReportCallback)
        }
        self.context = context
        blocking = BlockingExecutor(label: "matomete.kafka.producer.blocking")
        let room = RoomSignal()
        self.room = room
        pollThread = PollThread(handle: handle, name: "kafka-producer-poll") { room.wakeAll() }
    }

    deinit {
        topics.withLock { $0.removeAll() }
        pollThread.stop()
    }

    /// Messages not yet acknowledged by the brokers, queued or in flight.
    public var outstandingMessages: Int { Int(rd_kafka_outq_len(handle.pointer)) }

    /// Produces one message and waits for its delivery report.
    public func send(_ message: KafkaProducerMessage) async throws(KafkaError) -> KafkaDeliveryReport {
        try await send([message])[0].get()
    }

    /// Produces messages in order and waits for every delivery report.
    ///
    /// - Returns: one result per message, in the order given: where it was
    ///   written, or the error that stopped it.
    public func send(_ messages: [KafkaProducerMessage]) async -> KafkaDeliveryResults {
        await enqueue(messages).results()
    }

    /// Hands messages to librdkafka in order and returns once it holds all of
    /// them (or refused some), without waiting for the brokers: a caller can
    /// queue its next messages behind these, keeping their order, while the
    /// brokers acknowledge these. Dropping the returned value is safe; the
    /// reports still arrive, unread.
    public func enqueue(_ messages: [KafkaProducerMessage]) async -> KafkaPendingDelivery {
        let batch = DeliveryBatch(count: messages.count)
        var next = 0
        while next < messages.count {
            next = enqueue(messages, from: next, into: batch)
            guard next < messages.count else { break }
            // The local queue is full: wait until the poll thread has served
            // delivery reports (which make room), or its next idle turn.
            await room.wait()
        }
        return KafkaPendingDelivery(messages: messages, batch: batch)
    }

    /// Waits until every queued message has been delivered or has failed.
    public func flush(timeout: Duration) async throws(KafkaError) {
        let handle = self.handle
        try await blocking.run { () throws(KafkaError) in
            try rd_kafka_flush(handle.pointer, Int32(timeout.milliseconds)).check("flush")
        }
    }

    /// Flushes for up to `timeout`, then fails whatever is still undelivered
    /// (each waiting `send` gets a purge error) and stops. Idempotent.
    public func shutdown(timeout: Duration = .seconds(10)) async {
        guard !closed.exchange(true, ordering: .acquiringAndReleasing) else { return }
        do {
            try await flush(timeout: timeout)
        } catch {
            context.logger.warning(
                "Producer shutdown: undelivered messages are failed",
                metadata: ["kafka.outstanding": "\(outstandingMessages)", "kafka.error": "\(error)"])
            let handle = self.handle
            _ = try? await blocking.run {
                rd_kafka_purge(handle.pointer, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT)
                rd_kafka_flush(handle.pointer, 1000)
            }
        }
    }

    /// Runs until graceful shutdown, then flushes.
    public func run() async throws {
        try? await gracefulShutdown()
        await shutdown()
    }

    /// Hands messages to librdkafka from `start` on, until all are queued or
    /// the local queue is full. Returns the index of the first message not queued.
    private func enqueue(_ messages: [KafkaProducerMessage], from start: Int, into batch: DeliveryBatch) -> Int {
        var topic: TopicHandle?
        for index in start..<messages.count {
            let message = messages[index]
            if closed.load(ordering: .acquiring) {
                batch.fail(index, KafkaError(code: .destroyed, message: "the producer is shut down"))
                continue
            }
            if topic?.name != message.topic { topic = topicHandle(message.topic) }
            guard let error = produce(message, topic: topic!.pointer, opaque: batch.slot(index)) else { continue }
            if KafkaError.Code(rd_kafka_error_code(error)) == .queueFull {
                rd_kafka_error_destroy(error)
                return index
            }
            batch.fail(index, KafkaError(consuming: error, context: "produce to \(message.topic)"))
        }
        return messages.count
    }

    /// Hands one message to librdkafka, copying key, value and headers.
    /// Returns the error (to destroy) when it was not accepted.
    private func produce(
        _ message: KafkaProducerMessage, topic: OpaquePointer, opaque: UnsafeMutableRawPointer
    )
        -> OpaquePointer?
    {
        message.value.withUnsafeBytes { value in
            withOptionalBytes(message.key) { key in
                withUnsafeTemporaryAllocation(of: rd_kafka_vu_t.self, capacity: 7) { vus in
                    var count = 0
                    func add(_ type: rd_kafka_vtype_t, _ set: (inout rd_kafka_vu_t) -> Void) {
                        var vu = rd_kafka_vu_t()
                        vu.vtype = type
                        set(&vu)
                        vus[count] = vu
                        count += 1
                    }
                    add(RD_KAFKA_VTYPE_RKT) { $0.u.rkt = topic }
                    // -1 is RD_KAFKA_PARTITION_UA: the partitioner chooses.
                    add(RD_KAFKA_VTYPE_PARTITION) { $0.u.i32 = message.partition?.rawValue ?? -1 }
                    add(RD_KAFKA_VTYPE_VALUE) {
                        $0.u.mem.ptr = UnsafeMutableRawPointer(mutating: value.baseAddress)
                        $0.u.mem.size = value.count
                    }
                    if let key {
                        add(RD_KAFKA_VTYPE_KEY) {
                            $0.u.mem.ptr = UnsafeMutableRawPointer(mutating: key.baseAddress)
                            $0.u.mem.size = key.count
                        }
                    }
                    add(RD_KAFKA_VTYPE_MSGFLAGS) { $0.u.i = RD_KAFKA_MSG_F_COPY }
                    add(RD_KAFKA_VTYPE_OPAQUE) { $0.u.ptr = opaque }
                    let headers = makeHeaders(message.headers)
                    if let headers { add(RD_KAFKA_VTYPE_HEADERS) { $0.u.headers = headers } }
                    let error = rd_kafka_produceva(handle.pointer, vus.baseAddress, count)
                    // On success librdkafka owns the headers; on failure they are ours.
                    if error != nil, let headers { rd_kafka_headers_destroy(headers) }
                    return error
                }
            }
        }
    }

    private func topicHandle(_ name: String) -> TopicHandle {
        topics.withLock { topics in
            if let existing = topics[name] { return existing }
            let created = TopicHandle(producer: handle, name: name)
            topics[name] = created
            return created
        }
    }
}

/// Native headers for a message, or `nil` when it has none.
private func makeHeaders(_ headers: [KafkaHeader]) -> OpaquePointer? {
    guard !headers.isEmpty else { return nil }
    let native = rd_kafka_headers_new(headers.count)!
    for header in headers {
        header.name.withCString { name in
            withOptionalBytes(header.value) { value in
                _ = rd_kafka_header_add(native, name, -1, value?.baseAddress, value?.count ?? 0)
            }
        }
    }
    return native
}

/// Calls `body` with the bytes of `array`, or with `nil`.
func withOptionalBytes<R>(_ array: [UInt8]?, _ body: (UnsafeRawBufferPointer?) -> R) -> R {
    guard let array else { return body(nil) }
    return array.withUnsafeBytes { body($0) }
}

/// Owns an `rd_kafka_topic_t` and destroys it in `deinit`.
final class TopicHandle: @unchecked Sendable {
    // @unchecked Sendable: librdkafka topic handles are thread-safe; `pointer`
    // never changes. `producer` keeps the client alive as long as the topic.
    let pointer: OpaquePointer
    let name: String
    private let producer: KafkaHandle

    init(producer: KafkaHandle, name: String) {
        self.producer = producer
        self.name = name
        self.pointer = rd_kafka_topic_new(producer.pointer, name, nil)
    }

    deinit { rd_kafka_topic_destroy(pointer) }
}

final class ProducerContext: CallbackContext, @unchecked Sendable {}

/// Messages queued by ``KafkaProducer/enqueue(_:)``, on their way to the brokers.
public struct KafkaPendingDelivery: Sendable {
    let messages: [KafkaProducerMessage]
    let batch: DeliveryBatch

    /// Waits for every message's delivery report.
    public func results() async -> KafkaDeliveryResults {
        await batch.waitForAll()
        return KafkaDeliveryResults(messages: messages, batch: batch)
    }
}

/// The outcome of one ``KafkaProducer/send(_:)-([KafkaProducerMessage])`` call:
/// for each message, in order, where it was written or why it was not.
public struct KafkaDeliveryResults: RandomAccessCollection, Sendable {
    private let messages: [KafkaProducerMessage]
    private let batch: DeliveryBatch

    init(messages: [KafkaProducerMessage], batch: DeliveryBatch) {
        self.messages = messages
        self.batch = batch
    }

    /// Always 0: results are indexed like the messages that were sent.
    public var startIndex: Int { 0 }
    /// The number of messages sent.
    public var endIndex: Int { messages.count }

    /// Where message `index` was written, or the error that stopped it.
    public subscript(index: Int) -> Result<KafkaDeliveryReport, KafkaError> {
        if let error = batch.failure(index) { return .failure(error) }
        let (partition, offset) = batch.position(index)
        return .success(
            KafkaDeliveryReport(
                topicPartition: KafkaTopicPartition(topic: messages[index].topic, partition: KafkaPartition(partition)),
                offset: KafkaOffset(offset))
        )
    }

    /// The messages that were not delivered, by index, in order.
    public var failures: [(index: Int, error: KafkaError)] { batch.failures }

    /// Whether every message was delivered.
    public var allDelivered: Bool { batch.failures.isEmpty }

    /// Throws the first failure, if any message was not delivered.
    public func throwIfAnyFailed() throws(KafkaError) {
        if let first = batch.failures.first { throw first.error }
    }
}

/// The delivery reports of one `send` call: one slot per message, whose
/// address travels through librdkafka as the message's opaque pointer.
///
/// A successful report writes only its own slot, without a lock; failures,
/// which are rare, go to a dictionary behind a Mutex. The last report to
/// arrive resumes the waiting `send`. The batch keeps itself alive until that
/// last report, so librdkafka never reports into a freed batch, however early
/// its caller lets go.
final class DeliveryBatch: @unchecked Sendable {
    // @unchecked Sendable: each slot is written by exactly one delivery report
    // (on the poll thread) before `remaining` is decremented with release
    // ordering, and read only after `waitForAll` observed it reach zero.
    /// A message's place in the batch is where its slot lies in `slots`.
    private struct Slot {
        var batch: Unmanaged<DeliveryBatch>
        var partition: Int32
        var offset: Int64
    }

    private struct State {
        var failures: [Int: KafkaError] = [:]
        var waiter: CheckedContinuation<Void, Never>?
        var finished = false
    }

    private let slots: UnsafeMutablePointer<Slot>
    private let count: Int
    private let remaining: Atomic<Int>
    private let state = Mutex(State())

    init(count: Int) {
        self.count = count
        remaining = Atomic(count)
        slots = .allocate(capacity: max(count, 1))
        let unmanaged = Unmanaged.passUnretained(self)
        slots.initialize(repeating: Slot(batch: unmanaged, partition: -1, offset: -1), count: count)
        if count == 0 {
            state.withLock { $0.finished = true }
        } else {
            _ = unmanaged.retain()  // released after the last report
        }
    }

    deinit {
        slots.deinitialize(count: count)
        slots.deallocate()
    }

    func slot(_ index: Int) -> UnsafeMutableRawPointer { UnsafeMutableRawPointer(slots + index) }

    func position(_ index: Int) -> (Int32, Int64) { (slots[index].partition, slots[index].offset) }

    func failure(_ index: Int) -> KafkaError? { state.withLock { $0.failures[index] } }

    var failures: [(index: Int, error: KafkaError)] {
        state.withLock { $0.failures.sorted { $0.key < $1.key }.map { ($0.key, $0.value) } }
    }

    /// Records that message `index` failed (the caller holds the batch).
    func fail(_ index: Int, _ error: KafkaError) {
        if recordFailure(index, error) { Unmanaged.passUnretained(self).release() }
    }

    /// Records a failure; returns whether it was the last report.
    private func recordFailure(_ index: Int, _ error: KafkaError) -> Bool {
        state.withLock { $0.failures[index] = error }
        return countDown()
    }

    /// Counts one report. After the last it resumes the waiter and returns
    /// `true`: the caller then drops the batch's hold on itself.
    private func countDown() -> Bool {
        guard remaining.wrappingSubtract(1, ordering: .acquiringAndReleasing).oldValue == 1 else { return false }
        let waiter = state.withLock { state in
            state.finished = true
            defer { state.waiter = nil }
            return state.waiter
        }
        waiter?.resume()
        return true
    }

    /// Waits for every report.
    func waitForAll() async {
        await withCheckedContinuation { continuation in
            let finished = state.withLock { state in
                if !state.finished { state.waiter = continuation }
                return state.finished
            }
            if finished { continuation.resume() }
        }
        _ = remaining.load(ordering: .acquiring)
    }

    /// Routes a delivery report to the slot its opaque pointer names.
    static func deliver(_ message: UnsafePointer<rd_kafka_message_t>) {
        let slot = message.pointee._private.assumingMemoryBound(to: Slot.self)
        let unmanaged = slot.pointee.batch
        // The batch holds itself until its last report, so no reference is
        // counted per report; after the last one, that hold is dropped here,
        // once nothing touches the batch (or its slots) any more.
        let last = unmanaged._withUnsafeGuaranteedRef { batch in
            guard message.pointee.err == RD_KAFKA_RESP_ERR_NO_ERROR else {
                return batch.recordFailure(
                    slot - batch.slots, KafkaError(message.pointee.err, context: "delivery failed"))
            }
            slot.pointee.partition = message.pointee.partition
            slot.pointee.offset = message.pointee.offset
            return batch.countDown()
        }
        if last { unmanaged.release() }
    }
}

private let deliveryReportCallback:
    @convention(c) (OpaquePointer?, UnsafePointer<rd_kafka_message_t>?, UnsafeMutableRawPointer?) -> Void = {
        _, message, _ in
        guard let message, message.pointee._private != nil else { return }
        DeliveryBatch.deliver(message)
    }

/// Producers waiting for room in librdkafka's local queue, woken each time
/// the poll thread has served delivery reports (each one served frees its
/// message's place) or has waited a whole poll interval.
///
/// A waiter that registers just after a wake-up waits for the next one: at
/// most one poll interval, and with the queue full, reports keep coming.
final class RoomSignal: Sendable {
    private let waiters = Mutex<[CheckedContinuation<Void, Never>]>([])

    func wait() async {
        await withCheckedContinuation { continuation in waiters.withLock { $0.append(continuation) } }
    }

    func wakeAll() {
        let woken = waiters.withLock { waiters in
            defer { waiters = [] }
            return waiters
        }
        for waiter in woken { waiter.resume() }
    }
}

/// A thread that serves a client's callbacks (`rd_kafka_poll`) until stopped,
/// calling `afterPoll` after each poll (served events or waited its interval).
final class PollThread: Sendable {
    private let running = Atomic<Bool>(true)
    private let finished = DispatchSemaphore(value: 0)

    init(handle: KafkaHandle, name: String, afterPoll: @escaping @Sendable () -> Void) {
        let thread = Thread { [self] in
            while running.load(ordering: .acquiring) {
                rd_kafka_poll(handle.pointer, 100)
                afterPoll()
            }
            rd_kafka_poll(handle.pointer, 0)
            afterPoll()
            finished.signal()
        }
        thread.name = name
        thread.start()
    }

    /// Stops the thread and waits for it (at most one poll interval).
    func stop() {
        guard running.exchange(false, ordering: .acquiringAndReleasing) else { return }
        finished.wait()
    }
}
