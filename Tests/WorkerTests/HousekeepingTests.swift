import Billing
import Logging
import MatometeTestSupport
import PostgresNIO
import ServerKit
import Store
import Testing

@testable import Workers

/// What the store keeps only for a while is forgotten on schedule, and
/// nothing else is.
@Suite("Housekeeping") struct HousekeepingTests {
    @Test("Used authorizations and results past their retention are forgotten on schedule; the rest stays")
    func forgetsOnSchedule() async throws {
        let database = try await TestDatabase.create(partitions: 4)
        try await database.withStore { store in
            let logger = TestServer.logger
            try await store.client.query(
                """
                INSERT INTO used_authorizations (line_id, token_id, merchant_id, request_kind, reference, accepted, expires_at, used_at)
                VALUES ('L1', 'used-14-months-ago', 'm', 'charge', 'c-1', true, now() - interval '14 months', now() - interval '14 months'),
                       ('L2', 'used-12-months-ago', 'm', 'charge', 'c-2', false, now() - interval '12 months', now() - interval '12 months'),
                       ('L3', 'still-valid', 'm', 'charge', 'c-3', true, now() + interval '10 minutes', now())
                """, logger: logger)
            try await store.client.query(
                """
                INSERT INTO request_results (line_id, merchant_id, request_type, request_id, result_id, accepted, recorded_at)
                VALUES ('L1', 'm', 'charge', 'c-old', 'r-old', true, now() - interval '14 months'),
                       ('L1', 'm', 'charge', 'c-kept', 'r-kept', true, now() - interval '12 months'),
                       ('L2', 'm', 'charge', 'c-new', 'r-new', false, now())
                """, logger: logger)
            // Failure counts: one a week old and unlocked (forgotten), one recent, one still locked.
            try await store.client.query(
                """
                INSERT INTO purchase_id_lockouts (purchase_id, line_id, failed_attempts, locked_until, updated_at)
                VALUES ('P-stale', 'L1', 2, NULL, now() - interval '8 days'),
                       ('P-recent', 'L1', 2, NULL, now() - interval '1 day'),
                       ('P-locked', 'L1', 5, now() + interval '1 hour', now() - interval '8 days')
                """, logger: logger)
            let housekeeping = Housekeeping(
                store: store, interval: .milliseconds(50), resultRetentionMonths: 13,
                readiness: Readiness(["database"]), logger: logger)
            let running = Task { await housekeeping.run() }
            defer { running.cancel() }
            let deadline = ContinuousClock.now + .seconds(20)
            var tokens: [String] = []
            var results: [String] = []
            repeat {
                try await Task.sleep(for: .milliseconds(50))
                tokens = try await store.client.fetch(
                    "SELECT token_id FROM used_authorizations ORDER BY token_id", String.self, logger: logger)
                results = try await store.client.fetch(
                    "SELECT result_id FROM request_results ORDER BY result_id", String.self, logger: logger)
            } while tokens.count != 2 && ContinuousClock.now < deadline
            // Kept as long as results: a repeat within the retention gets its first answer.
            #expect(tokens == ["still-valid", "used-12-months-ago"])
            #expect(results == ["r-kept", "r-new"])
            let counted = try await store.client.fetch(
                "SELECT purchase_id FROM purchase_id_lockouts ORDER BY 1", String.self, logger: logger)
            #expect(counted == ["P-locked", "P-recent"])
            running.cancel()
            await running.value
            // Another round forgets nothing more.
            #expect(
                try await store.housekeep(resultRetentionMonths: 13)
                    == HousekeepingReport(usedAuthorizations: 0, results: 0))
        }
    }
}
