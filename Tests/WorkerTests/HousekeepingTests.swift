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
    @Test("Expired used authorizations and results past their retention are forgotten on schedule; the rest stays")
    func forgetsOnSchedule() async throws {
        let database = try await TestDatabase.create(partitions: 4)
        try await database.withStore { store in
            let logger = TestServer.logger
            try await store.client.query(
                """
                INSERT INTO used_authorizations (line_id, token_id, merchant_id, request_kind, reference, accepted, expires_at)
                VALUES ('L1', 'expired-long-ago', 'm', 'charge', 'c-1', true, now() - interval '3 days'),
                       ('L2', 'expired-an-hour-ago', 'm', 'charge', 'c-2', true, now() - interval '1 hour'),
                       ('L3', 'still-valid', 'm', 'charge', 'c-3', true, now() + interval '10 minutes')
                """, logger: logger)
            try await store.client.query(
                """
                INSERT INTO request_results (line_id, merchant_id, request_type, request_id, result_id, accepted, recorded_at)
                VALUES ('L1', 'm', 'charge', 'c-old', 'r-old', true, now() - interval '14 months'),
                       ('L1', 'm', 'charge', 'c-kept', 'r-kept', true, now() - interval '12 months'),
                       ('L2', 'm', 'charge', 'c-new', 'r-new', false, now())
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
            // A day after expiry: one that expired an hour ago may still be presented late and refused as reused.
            #expect(tokens == ["expired-an-hour-ago", "still-valid"])
            #expect(results == ["r-kept", "r-new"])
            running.cancel()
            await running.value
            // Another round forgets nothing more.
            #expect(
                try await store.housekeep(resultRetentionMonths: 13)
                    == HousekeepingReport(usedAuthorizations: 0, results: 0))
        }
    }
}
