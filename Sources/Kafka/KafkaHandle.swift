import CRdKafka
import Dispatch
import Foundation
import Logging
import Synchronization

/// Owns one `rd_kafka_t` and destroys it in `deinit`.
///
/// Also owns the ``CallbackContext`` whose address librdkafka passes back to
/// every C callback, so the context outlives every callback.
final class KafkaHandle: @unchecked Sendable {
    // @unchecked Sendable: `pointer` is set once and librdkafka's handle is
    // thread-safe for every call this module makes on it.
    let pointer: OpaquePointer
    let context: CallbackContext

    /// Creates a client of `type` from `properties`.
    init(
        type: rd_kafka_type_t, properties: [(String, String)], context: CallbackContext,
        configure: (OpaquePointer) -> Void = { _ in }
    ) throws(KafkaError) {
        let conf = try makeNativeConfiguration(properties)
        rd_kafka_conf_set_opaque(conf, Unmanaged.passUnretained(context).toOpaque())
        rd_kafka_conf_set_log_cb(conf, kafkaLogCallback)
        rd_kafka_conf_set_error_cb(conf, kafkaErrorCallback)
        configure(conf)
        var errorText = [CChar](repeating: 0, count: 512)
        guard let handle = rd_kafka_new(type, conf, &errorText, errorText.count) else {
            rd_kafka_conf_destroy(conf)
            let reason = errorText.withUnsafeBufferPointer { String(cString: $0.baseAddress!) }
            throw KafkaError(code: .invalidArgument, message: "cannot create Kafka client: \(reason)")
        }
        self.pointer = handle
        self.context = context
    }

    deinit {
        rd_kafka_destroy(pointer)
    }

    /// The fatal error raised by librdkafka, if any.
    var fatalError: KafkaError? {
        var errorText = [CChar](repeating: 0, count: 512)
        let code = rd_kafka_fatal_error(pointer, &errorText, errorText.count)
        guard code != RD_KAFKA_RESP_ERR_NO_ERROR else { return nil }
        let reason = errorText.withUnsafeBufferPointer { String(cString: $0.baseAddress!) }
        return KafkaError(code: KafkaError.Code(code), message: reason, isFatal: true)
    }
}

/// State the C callbacks reach through librdkafka's opaque pointer.
///
/// Callbacks do no more than hand their event to this object.
class CallbackContext: @unchecked Sendable {
    // @unchecked Sendable: `logger` is immutable; subclasses guard their own
    // mutable state with a Mutex.
    let logger: Logger

    init(logger: Logger) {
        self.logger = logger
    }

    /// An error librdkafka reports outside any request (broker down, fatal state).
    func clientError(_ error: KafkaError) {
        if error.isFatal {
            logger.error("Kafka client fatal error", metadata: ["kafka.error": "\(error)"])
        } else {
            logger.warning("Kafka client error", metadata: ["kafka.error": "\(error)"])
        }
    }

    static func from(_ opaque: UnsafeMutableRawPointer?) -> CallbackContext {
        Unmanaged<CallbackContext>.fromOpaque(opaque!).takeUnretainedValue()
    }
}

private let kafkaLogCallback:
    @convention(c) (OpaquePointer?, Int32, UnsafePointer<CChar>?, UnsafePointer<CChar>?) -> Void = {
        handle, level, facility, text in
        guard let handle, let opaque = rd_kafka_opaque(handle) else { return }
        let context = CallbackContext.from(opaque)
        let logLevel: Logger.Level =
            switch level {
            case ...3: .error
            case 4: .warning
            case 5, 6: .info
            default: .debug
            }
        context.logger.log(
            level: logLevel, "\(text.map { String(cString: $0) } ?? "")",
            metadata: ["kafka.facility": "\(facility.map { String(cString: $0) } ?? "")"])
    }

private let kafkaErrorCallback:
    @convention(c) (OpaquePointer?, Int32, UnsafePointer<CChar>?, UnsafeMutableRawPointer?) -> Void = {
        handle, code, reason, opaque in
        let context = CallbackContext.from(opaque)
        let err = rd_kafka_resp_err_t(code)
        var error = KafkaError(err, context: reason.map { String(cString: $0) })
        if err == RD_KAFKA_RESP_ERR__FATAL, let handle {
            var text = [CChar](repeating: 0, count: 512)
            let fatal = rd_kafka_fatal_error(handle, &text, text.count)
            let reason = text.withUnsafeBufferPointer { String(cString: $0.baseAddress!) }
            error = KafkaError(code: KafkaError.Code(fatal), message: reason, isFatal: true)
        }
        context.clientError(error)
    }

/// A dedicated thread for blocking librdkafka calls, kept off Swift's
/// cooperative thread pool. Work runs in submission order.
final class BlockingExecutor: Sendable {
    private let queue: DispatchQueue

    init(label: String) {
        queue = DispatchQueue(label: label, qos: .userInitiated)
    }

    /// Runs `work` on the executor's thread and returns its result.
    func run<T: Sendable>(_ work: @escaping @Sendable () throws(KafkaError) -> T) async throws(KafkaError) -> T {
        let result: Result<T, KafkaError> = await withCheckedContinuation { continuation in
            queue.async {
                do throws(KafkaError) {
                    continuation.resume(returning: .success(try work()))
                } catch {
                    continuation.resume(returning: .failure(error))
                }
            }
        }
        return try result.get()
    }

    /// Runs `work` and waits for it from a thread that is allowed to block.
    func runAndWait<T>(_ work: () -> T) -> T {
        queue.sync(execute: work)
    }
}
