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
            // Dead letters kept for a merchant's site: one past the retention (forgotten), one recent.
            try await store.client.query(
                """
                INSERT INTO merchant_dead_letters (source_topic, source_partition, source_offset, merchant_id, reason,
                    value, value_size, recorded_at)
                VALUES ('matomete.charges', 0, 1, 'm', 'old', '\\x00', 1, now() - interval '14 months'),
                       ('matomete.charges', 0, 2, 'm', 'new', '\\x00', 1, now())
                """, logger: logger)
            // Staff sessions: one unused for two days and one begun eight days ago (no setting accepts either),
            // one in use.
            try await store.client.query(
                """
                WITH staff AS (
                    INSERT INTO site_staff (site, login, role, display_name, password_hash, password_salt,
                        scrypt_log_rounds, scrypt_block_size, scrypt_parallelism)
                    VALUES ('support', 'a@desk.example', 'agent', 'A', '\\x00', '\\x00', 10, 8, 1) RETURNING staff_id
                )
                INSERT INTO site_sessions (token_hash, staff_id, csrf_token, created_at, last_seen_at)
                SELECT t.hash, staff_id, 'csrf', t.created, t.seen FROM staff,
                    (VALUES ('\\x01'::bytea, now() - interval '3 days', now() - interval '2 days'),
                            ('\\x02'::bytea, now() - interval '8 days', now()),
                            ('\\x03'::bytea, now() - interval '1 hour', now())) AS t(hash, created, seen)
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
            let letters = try await store.client.fetch(
                "SELECT reason FROM merchant_dead_letters", String.self, logger: logger)
            #expect(letters == ["new"])
            let sessions = try await store.client.fetch(
                "SELECT encode(token_hash, 'hex') FROM site_sessions", String.self, logger: logger)
            #expect(sessions == ["03"])
            running.cancel()
            await running.value
            // Another round forgets nothing more.
            #expect(
                try await store.housekeep(resultRetentionMonths: 13)
                    == HousekeepingReport(usedAuthorizations: 0, results: 0))
        }
    }
}
