import Logging
import ServerKit
import ServiceLifecycle
import Store

/// Forgets, on a schedule, what the store keeps only for a while: the
/// results history and the used purchase authorizations (with the answer
/// each got, for repeats) past their retention. Every charge and cancellation worker runs it; one at a
/// time does the work (the others find it taken and wait for the next round).
struct Housekeeping: Sendable {
    var store: BillingStore
    /// Between rounds.
    var interval: Duration
    /// Results and used authorizations older than this many months are forgotten.
    var resultRetentionMonths: Int
    var readiness: Readiness
    var logger: Logger

    func run() async {
        while !Task.isShuttingDownGracefully, !Task.isCancelled {
            do {
                let report = try await Retrying.database("housekeep", readiness: readiness, logger: logger) {
                    try await store.housekeep(resultRetentionMonths: resultRetentionMonths)
                }
                if let report,
                    report.usedAuthorizations + report.results + report.lockouts + report.merchantDeadLetters
                        + report.staffSessions > 0
                {
                    logger.info(
                        "Housekeeping",
                        metadata: [
                            "used_authorizations.forgotten": "\(report.usedAuthorizations)",
                            "results.forgotten": "\(report.results)",
                            "lockouts.forgotten": "\(report.lockouts)",
                            "merchant_dead_letters.forgotten": "\(report.merchantDeadLetters)",
                            "staff_sessions.forgotten": "\(report.staffSessions)",
                        ])
                }
                try await Task.sleep(for: interval)
            } catch {
                return  // shutting down
            }
        }
    }
}
