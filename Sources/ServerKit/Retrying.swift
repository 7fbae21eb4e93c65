import Logging
import Metrics
import ServiceLifecycle

/// Retries with backoff, the one policy every Matomete process follows while
/// a dependency is away.
public enum Retrying {
    /// How long to wait before retrying after `attempt` failures in a row:
    /// 200 ms, doubling, at most 5 s.
    public static func delay(attempt: Int) -> Duration {
        .milliseconds(min(5000, 100 << min(attempt, 6)))
    }

    /// Runs a database operation until it succeeds, backing off while the
    /// database is unreachable and reporting it on the `database` check of
    /// `readiness` meanwhile; throws `CancellationError` if the process is
    /// shutting down. Each failure counts in
    /// `matomete_store_errors_total{operation}` under `what`.
    public static func database<T: Sendable>(
        _ what: String, readiness: Readiness, logger: Logger, _ operation: () async throws -> T
    ) async throws -> T {
        var attempt = 0
        while true {
            do {
                let value = try await operation()
                if attempt > 0 { readiness.set("database", passing: true, "connected") }
                return value
            } catch {
                attempt += 1
                readiness.set("database", passing: false, "cannot \(what)")
                storeErrors(operation: what).increment()
                logger.error(
                    "Database operation failed; retrying",
                    metadata: [
                        "operation": "\(what)", "attempt": "\(attempt)",
                        "error": "\(String(reflecting: error).prefix(500))",
                    ])
                try await Task.sleep(for: delay(attempt: attempt))
                if Task.isShuttingDownGracefully { throw CancellationError() }
            }
        }
    }

    /// `matomete_store_errors_total{operation}`: database operations that failed and were retried.
    public static func storeErrors(operation: String) -> Metrics.Counter {
        Metrics.Counter(label: "matomete_store_errors_total", dimensions: [("operation", operation)])
    }
}

extension Duration {
    /// Whole milliseconds, rounded down.
    public var wholeMilliseconds: Int64 {
        components.seconds * 1000 + components.attoseconds / 1_000_000_000_000_000
    }
}
