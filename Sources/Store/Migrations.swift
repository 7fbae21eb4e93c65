import Logging
import PostgresNIO

/// One numbered schema change. Statements may depend on the number of line
/// partitions, which is fixed when the database is initialised.
struct Migration: Sendable {
    var version: Int
    var name: String
    var statements: @Sendable (_ partitions: Int) -> [String]
}

/// Tables holding per-line state, hash-partitioned by `line_id`. Their child
/// tables are `<name>_p<k>`; child k of every table holds the same lines, so a
/// shard of a cycle close is one child of each.
let perLineTables = ["lines", "charges", "subscriptions", "credits", "line_bills"]

/// The schema, in order. Applied by ``Migrator``; never edit a released one: add a new one.
let migrations: [Migration] = [
    Migration(version: 1, name: "initial schema") { partitions in
        var statements = [
            """
            CREATE TABLE matomete_settings (
                key text PRIMARY KEY,
                value text NOT NULL)
            """,
            "INSERT INTO matomete_settings (key, value) VALUES ('line_partitions', '\(partitions)')",
            """
            CREATE TABLE merchants (
                merchant_id text PRIMARY KEY,
                name text NOT NULL,
                status text NOT NULL CHECK (status IN ('active', 'suspended')),
                created_at timestamptz NOT NULL DEFAULT now(),
                updated_at timestamptz NOT NULL DEFAULT now())
            """,
            """
            CREATE TABLE merchant_tariffs (
                merchant_id text NOT NULL REFERENCES merchants (merchant_id),
                effective_from text NOT NULL,
                rate_basis_points bigint NOT NULL CHECK (rate_basis_points BETWEEN 0 AND 10000),
                per_line_threshold_yen bigint NOT NULL CHECK (per_line_threshold_yen >= 0),
                per_line_fee_tenths bigint NOT NULL CHECK (per_line_fee_tenths >= 0),
                PRIMARY KEY (merchant_id, effective_from))
            """,
            """
            CREATE TABLE lines (
                line_id text NOT NULL,
                line_type text NOT NULL,
                flets_net boolean NOT NULL DEFAULT false,
                status text NOT NULL CHECK (status IN ('active', 'suspended', 'terminated')),
                spending_limit_yen bigint CHECK (spending_limit_yen >= 0),
                open_cycle text NOT NULL,
                open_spend_yen bigint NOT NULL DEFAULT 0,
                updated_at timestamptz NOT NULL DEFAULT now(),
                PRIMARY KEY (line_id)) PARTITION BY HASH (line_id)
            """,
            """
            CREATE TABLE charges (
                line_id text NOT NULL,
                merchant_id text NOT NULL,
                charge_id text NOT NULL,
                amount_yen bigint NOT NULL,
                description text NOT NULL,
                cycle text NOT NULL,
                status text NOT NULL CHECK (status IN ('active', 'cancelled', 'credited')),
                cancelled_in text,
                applied_at timestamptz NOT NULL DEFAULT now(),
                cancelled_at timestamptz,
                PRIMARY KEY (line_id, merchant_id, charge_id)) PARTITION BY HASH (line_id)
            """,
            "CREATE INDEX charges_by_merchant ON charges (merchant_id, applied_at)",
            """
            CREATE TABLE subscriptions (
                line_id text NOT NULL,
                merchant_id text NOT NULL,
                subscription_id text NOT NULL,
                monthly_amount_yen bigint NOT NULL,
                description text NOT NULL,
                start_cycle text NOT NULL,
                last_cycle text,
                started_at timestamptz NOT NULL DEFAULT now(),
                ended_at timestamptz,
                PRIMARY KEY (line_id, merchant_id, subscription_id)) PARTITION BY HASH (line_id)
            """,
            "CREATE INDEX subscriptions_by_merchant ON subscriptions (merchant_id, started_at)",
            """
            CREATE TABLE credits (
                line_id text NOT NULL,
                merchant_id text NOT NULL,
                charge_id text NOT NULL,
                description text NOT NULL,
                amount_yen bigint NOT NULL CHECK (amount_yen < 0),
                cycle text NOT NULL,
                created_at timestamptz NOT NULL DEFAULT now(),
                PRIMARY KEY (line_id, merchant_id, charge_id)) PARTITION BY HASH (line_id)
            """,
            """
            CREATE TABLE line_bills (
                line_id text NOT NULL,
                cycle text NOT NULL,
                total_yen bigint NOT NULL,
                items jsonb NOT NULL,
                closed_at timestamptz NOT NULL DEFAULT now(),
                PRIMARY KEY (line_id, cycle)) PARTITION BY HASH (line_id)
            """,
            """
            CREATE TABLE consumer_offsets (
                consumer_group text NOT NULL,
                topic text NOT NULL,
                partition integer NOT NULL,
                next_offset bigint NOT NULL,
                updated_at timestamptz NOT NULL DEFAULT now(),
                PRIMARY KEY (consumer_group, topic, partition))
            """,
            """
            CREATE TABLE outbox (
                id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
                topic text NOT NULL,
                message_key text,
                message_id text NOT NULL,
                payload bytea NOT NULL,
                headers jsonb NOT NULL DEFAULT '{}',
                claimed_until timestamptz,
                created_at timestamptz NOT NULL DEFAULT now())
            """,
            """
            CREATE TABLE cycle_closes (
                cycle text PRIMARY KEY,
                shard_count integer NOT NULL,
                shards_done integer NOT NULL DEFAULT 0,
                status text NOT NULL CHECK (status IN ('closing', 'closed')),
                requested_at timestamptz NOT NULL DEFAULT now(),
                closed_at timestamptz)
            """,
            """
            CREATE TABLE cycle_close_shards (
                cycle text NOT NULL REFERENCES cycle_closes (cycle),
                shard integer NOT NULL,
                cursor_line_id text NOT NULL DEFAULT '',
                lines_closed bigint NOT NULL DEFAULT 0,
                done boolean NOT NULL DEFAULT false,
                updated_at timestamptz NOT NULL DEFAULT now(),
                PRIMARY KEY (cycle, shard))
            """,
            """
            CREATE TABLE merchant_partials (
                cycle text NOT NULL,
                shard integer NOT NULL,
                merchant_id text NOT NULL,
                lines bigint NOT NULL,
                gross_yen bigint NOT NULL,
                item_count bigint NOT NULL,
                credit_yen bigint NOT NULL,
                PRIMARY KEY (cycle, shard, merchant_id))
            """,
            """
            CREATE TABLE settlements (
                merchant_id text NOT NULL,
                cycle text NOT NULL,
                lines bigint NOT NULL,
                gross_yen bigint NOT NULL,
                average_per_line_yen bigint NOT NULL,
                fee_rule text NOT NULL,
                rate_basis_points bigint NOT NULL,
                per_line_threshold_yen bigint NOT NULL,
                per_line_fee_tenths bigint NOT NULL,
                fee_yen bigint NOT NULL,
                net_yen bigint NOT NULL,
                item_count bigint NOT NULL,
                credit_yen bigint NOT NULL,
                settled_at timestamptz NOT NULL DEFAULT now(),
                PRIMARY KEY (merchant_id, cycle))
            """,
        ]
        for table in perLineTables {
            for k in 0..<partitions {
                statements.append(
                    "CREATE TABLE \(table)_p\(k) PARTITION OF \(table) FOR VALUES WITH (MODULUS \(partitions), REMAINDER \(k))"
                )
            }
        }
        return statements
    },
    Migration(version: 2, name: "purchase authentication") { partitions in
        var statements = [
            """
            CREATE TABLE purchase_credentials (
                purchase_id text PRIMARY KEY,
                line_id text NOT NULL,
                password_hash bytea NOT NULL,
                password_salt bytea NOT NULL,
                scrypt_log_rounds integer NOT NULL,
                scrypt_block_size integer NOT NULL,
                scrypt_parallelism integer NOT NULL,
                status text NOT NULL CHECK (status IN ('active', 'revoked')),
                failed_attempts integer NOT NULL DEFAULT 0,
                locked_until timestamptz,
                created_at timestamptz NOT NULL DEFAULT now(),
                updated_at timestamptz NOT NULL DEFAULT now(),
                revoked_at timestamptz)
            """,
            "CREATE INDEX purchase_credentials_line ON purchase_credentials (line_id)",
            """
            CREATE TABLE line_lockouts (
                line_id text PRIMARY KEY,
                failed_attempts integer NOT NULL DEFAULT 0,
                locked_until timestamptz,
                updated_at timestamptz NOT NULL DEFAULT now())
            """,
            """
            CREATE TABLE line_addresses (
                line_id text NOT NULL,
                prefix inet NOT NULL,
                assigned_at timestamptz NOT NULL DEFAULT now(),
                PRIMARY KEY (line_id, prefix))
            """,
            "CREATE INDEX line_addresses_prefix ON line_addresses USING gist (prefix inet_ops)",
            """
            CREATE TABLE used_authorizations (
                line_id text NOT NULL,
                token_id text NOT NULL,
                merchant_id text NOT NULL,
                request_kind text NOT NULL,
                reference text NOT NULL,
                accepted boolean NOT NULL,
                expires_at timestamptz NOT NULL,
                used_at timestamptz NOT NULL DEFAULT now(),
                PRIMARY KEY (line_id, token_id)) PARTITION BY HASH (line_id)
            """,
        ]
        for k in 0..<partitions {
            statements.append(
                "CREATE TABLE used_authorizations_p\(k) PARTITION OF used_authorizations FOR VALUES WITH (MODULUS \(partitions), REMAINDER \(k))"
            )
        }
        return statements
    },
    Migration(version: 3, name: "outbox notifications") { _ in
        [
            // Every statement that adds to the outbox wakes the relays listening on
            // `outboxChannel` when its transaction commits (PostgreSQL sends one
            // notification per transaction and channel, however many statements).
            """
            CREATE FUNCTION notify_outbox() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
                PERFORM pg_notify('\(outboxChannel)', '');
                RETURN NULL;
            END $$
            """,
            """
            CREATE TRIGGER outbox_notify AFTER INSERT ON outbox
            FOR EACH STATEMENT EXECUTE FUNCTION notify_outbox()
            """,
        ]
    },
    Migration(version: 4, name: "line bill items kept as written") { _ in
        [
            // A bill's items are written once by the close and read back whole
            // (`items::text`), never queried inside: `json` checks the text and
            // keeps it, where `jsonb` also parsed it into a tree on every insert
            // (a tenth of PostgreSQL's time in a close).
            "ALTER TABLE line_bills ALTER COLUMN items TYPE json USING items::json"
        ]
    },
    Migration(version: 5, name: "lines keep room for their next version") { partitions in
        // A close moves every line of a page to the next cycle in one
        // transaction, and every charge updates its line's spend. With half of
        // each page free, the new version fits beside the old one (a HOT update:
        // no new index entry, and the old version is pruned in place later).
        // Applies to pages written from now on; `VACUUM FULL lines` rewrites
        // existing ones.
        (0..<partitions).map { "ALTER TABLE lines_p\($0) SET (fillfactor = 50)" }
    },
    Migration(version: 6, name: "request results kept") { partitions in
        // Every result a merchant is told, accepted or refused with its reason,
        // kept for the support desk (by line) and the merchants' site (by
        // merchant) until the retention purges it. Hash-partitioned by line
        // like every per-line table; written in time order, so a BRIN index
        // finds what the purge deletes at almost no cost to each insert.
        var statements = [
            """
            CREATE TABLE request_results (
                line_id text NOT NULL,
                merchant_id text,
                request_type text NOT NULL,
                request_id text NOT NULL,
                result_id text NOT NULL,
                accepted boolean NOT NULL,
                reason text,
                cycle text,
                recorded_at timestamptz NOT NULL DEFAULT now()) PARTITION BY HASH (line_id)
            """
        ]
        for k in 0..<partitions {
            statements.append(
                "CREATE TABLE request_results_p\(k) PARTITION OF request_results FOR VALUES WITH (MODULUS \(partitions), REMAINDER \(k))"
            )
        }
        statements += [
            "CREATE INDEX request_results_by_line ON request_results (line_id, recorded_at)",
            "CREATE INDEX request_results_by_merchant ON request_results (merchant_id, recorded_at)",
            "CREATE INDEX request_results_by_time ON request_results USING brin (recorded_at)",
        ]
        return statements
    },
    Migration(version: 7, name: "settlement as a phase of its own") { _ in
        [
            // A close bills every line (`closing`), then settles every merchant
            // once (`settling`), then is `closed`.
            "ALTER TABLE cycle_closes DROP CONSTRAINT cycle_closes_status_check",
            "ALTER TABLE cycle_closes ADD CONSTRAINT cycle_closes_status_check CHECK (status IN ('closing', 'settling', 'closed'))",
        ]
    },
    Migration(version: 8, name: "a merchant's purchase id names one line") { partitions in
        // Which line holds each merchant's charge and subscription id, keyed and
        // partitioned by merchant: the batch that adds a purchase claims its id
        // here in the same transaction, so the same id cannot be accepted on two
        // lines, even by two workers at once. Existing purchases are claimed by
        // their line; were an id already on several lines, the first line in id
        // order keeps it.
        var statements = [
            """
            CREATE TABLE purchase_ids (
                merchant_id text NOT NULL,
                kind text NOT NULL CHECK (kind IN ('charge', 'subscription')),
                purchase_id text NOT NULL,
                line_id text NOT NULL,
                claimed_at timestamptz NOT NULL DEFAULT now(),
                PRIMARY KEY (merchant_id, kind, purchase_id)) PARTITION BY HASH (merchant_id)
            """
        ]
        for k in 0..<partitions {
            statements.append(
                "CREATE TABLE purchase_ids_p\(k) PARTITION OF purchase_ids FOR VALUES WITH (MODULUS \(partitions), REMAINDER \(k))"
            )
        }
        statements += [
            """
            INSERT INTO purchase_ids (merchant_id, kind, purchase_id, line_id, claimed_at)
            SELECT DISTINCT ON (merchant_id, charge_id) merchant_id, 'charge', charge_id, line_id, applied_at
            FROM charges ORDER BY merchant_id, charge_id, line_id
            """,
            """
            INSERT INTO purchase_ids (merchant_id, kind, purchase_id, line_id, claimed_at)
            SELECT DISTINCT ON (merchant_id, subscription_id) merchant_id, 'subscription', subscription_id, line_id, started_at
            FROM subscriptions ORDER BY merchant_id, subscription_id, line_id
            """,
            // A repeat of a request is answered as the first one was: its
            // authorization's use keeps that answer, as long as results are
            // kept (housekeeping deletes by the time of use).
            "ALTER TABLE used_authorizations ADD COLUMN reason text, ADD COLUMN cycle text",
            "CREATE INDEX used_authorizations_by_time ON used_authorizations USING brin (used_at)",
        ]
        return statements
    },
    Migration(version: 9, name: "outbox messages Kafka will never take are set aside") { _ in
        [
            // A message Kafka refuses for good (too large, an invalid record) is
            // moved here by the relay, with the error, so it holds up nothing
            // behind it; `matomete status` counts them and an alert fires.
            """
            CREATE TABLE outbox_parked (
                id bigint PRIMARY KEY,
                topic text NOT NULL,
                message_key text,
                message_id text NOT NULL,
                payload bytea NOT NULL,
                headers jsonb NOT NULL,
                created_at timestamptz NOT NULL,
                error text NOT NULL,
                parked_at timestamptz NOT NULL DEFAULT now())
            """
        ]
    },
    Migration(version: 10, name: "a purchase ID's failures are counted per line of origin") { _ in
        [
            // Counted per (purchase ID, line the attempts came from), for IDs that
            // exist and IDs that do not alike: attempts from one line lock the ID
            // for that line only, never for its own line's user, and an unknown
            // ID locks like a known one (nothing tells which IDs exist). Running
            // locks of the old per-ID count are forgotten.
            """
            CREATE TABLE purchase_id_lockouts (
                purchase_id text NOT NULL,
                line_id text NOT NULL,
                failed_attempts integer NOT NULL,
                locked_until timestamptz,
                updated_at timestamptz NOT NULL DEFAULT now(),
                PRIMARY KEY (purchase_id, line_id))
            """,
            "CREATE INDEX purchase_id_lockouts_line ON purchase_id_lockouts (line_id)",
            "ALTER TABLE purchase_credentials DROP COLUMN failed_attempts, DROP COLUMN locked_until",
        ]
    },
    Migration(version: 11, name: "message-signing keys, sealed") { _ in
        [
            // The secrets merchants and the line system sign their requests
            // with, each sealed (AES-256-GCM) under a key-encryption key the
            // database never holds: a copy of this table reveals none.
            """
            CREATE TABLE message_signing_keys (
                key_id text PRIMARY KEY,
                owner_kind text NOT NULL CHECK (owner_kind IN ('merchant', 'line-system')),
                owner_id text NOT NULL,
                sealed_secret bytea NOT NULL,
                created_at timestamptz NOT NULL DEFAULT now(),
                revoked_at timestamptz)
            """,
            "CREATE INDEX message_signing_keys_owner ON message_signing_keys (owner_kind, owner_id)",
        ]
    },
    Migration(version: 12, name: "merchant ids name their own Kafka topics") { _ in
        [
            // A merchant id is part of its topics' names and of the prefix its Kafka principal may read:
            // letters, digits, - and _ only (no '.', so no prefix covers another merchant's). An id from
            // before must be changed first; the migration stops, naming them.
            """
            DO $$
            DECLARE unfit text;
            BEGIN
                SELECT string_agg(merchant_id, ', ' ORDER BY merchant_id) INTO unfit
                FROM merchants WHERE merchant_id !~ '^[A-Za-z0-9_-]{1,64}$';
                IF unfit IS NOT NULL THEN
                    RAISE EXCEPTION 'merchant ids that cannot name Kafka topics (letters, digits, - and _ only): %', unfit;
                END IF;
            END $$
            """,
            "ALTER TABLE merchants ADD CONSTRAINT merchant_id_names_topics CHECK (merchant_id ~ '^[A-Za-z0-9_-]{1,64}$')",
        ]
    },
    Migration(version: 13, name: "tariffs by bands, with consumption tax") { _ in
        [
            // A tariff is its bands and its tax treatment (JSON, as BandedTariff reads it). The three
            // numbers stay, written as the tariff's summary, for readers of the launch's shape.
            """
            DO $$
            BEGIN
                IF EXISTS (SELECT 1 FROM merchant_tariffs WHERE per_line_fee_tenths > 10000000) THEN
                    RAISE EXCEPTION 'tariffs with a fee per line over 1,000,000 yen cannot be bands: %',
                        (SELECT string_agg(merchant_id || ' from ' || effective_from, ', ')
                         FROM merchant_tariffs WHERE per_line_fee_tenths > 10000000);
                END IF;
            END $$
            """,
            "ALTER TABLE merchant_tariffs ADD COLUMN tariff jsonb",
            """
            UPDATE merchant_tariffs SET tariff = jsonb_build_object(
                'tax', 'included',
                'bands', CASE WHEN per_line_threshold_yen > 0 THEN jsonb_build_array(
                        jsonb_build_object('from', 0, 'perLineSen', per_line_fee_tenths * 10),
                        jsonb_build_object('from', per_line_threshold_yen, 'percentBasisPoints', rate_basis_points))
                    ELSE jsonb_build_array(jsonb_build_object('from', 0, 'percentBasisPoints', rate_basis_points))
                    END)
            """,
            "ALTER TABLE merchant_tariffs ALTER COLUMN tariff SET NOT NULL",
            // A settlement keeps the tariff it used, the band, the fee before tax, the tax and its rate
            // (NULL tariff and band: settled before this version, tax included).
            """
            ALTER TABLE settlements ADD COLUMN tariff jsonb, ADD COLUMN band integer,
                ADD COLUMN fee_before_tax_yen bigint, ADD COLUMN tax_yen bigint NOT NULL DEFAULT 0,
                ADD COLUMN tax_rate_basis_points bigint NOT NULL DEFAULT 0
            """,
        ]
    },
    Migration(version: 14, name: "collection of line bills") { partitions in
        // What the billing system reports after a bill is sent: each payment (its shares are its
        // `payment` entries), each bill's write-off, and the ledger of every merchant's amounts moved,
        // booked into the payout period that pays them. Per line, partitioned like the bills.
        var statements = [
            "ALTER TABLE line_bills ADD COLUMN written_off_on date",
            """
            CREATE TABLE payments (
                line_id text NOT NULL,
                payment_id text NOT NULL,
                cycle text NOT NULL,
                amount_yen bigint NOT NULL CHECK (amount_yen > 0),
                received_on date NOT NULL,
                reversed_on date,
                recorded_at timestamptz NOT NULL DEFAULT now(),
                PRIMARY KEY (line_id, payment_id)) PARTITION BY HASH (line_id)
            """,
            """
            CREATE TABLE collection_entries (
                line_id text NOT NULL,
                cycle text NOT NULL,
                merchant_id text NOT NULL,
                kind text NOT NULL CHECK (kind IN ('payment', 'reversal', 'write-off')),
                reference text NOT NULL,
                amount_yen bigint NOT NULL,
                entry_date date NOT NULL,
                period text NOT NULL,
                recorded_at timestamptz NOT NULL DEFAULT now(),
                PRIMARY KEY (line_id, cycle, kind, reference, merchant_id)) PARTITION BY HASH (line_id)
            """,
        ]
        for table in ["payments", "collection_entries"] {
            for k in 0..<partitions {
                statements.append(
                    "CREATE TABLE \(table)_p\(k) PARTITION OF \(table) FOR VALUES WITH (MODULUS \(partitions), REMAINDER \(k))"
                )
            }
        }
        statements += [
            // A payout run sums one period's entries per merchant and billed month.
            "CREATE INDEX collection_entries_by_period ON collection_entries (period, merchant_id, cycle)",
            // The last payout period paid out: a collection batch books into a later one, and reads this row
            // FOR SHARE, so a payout run (which updates it) and the batches it would miss never overlap.
            """
            CREATE TABLE payout_progress (
                singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
                last_paid_period text)
            """,
            "INSERT INTO payout_progress (last_paid_period) VALUES (NULL)",
            // Each merchant's billed month as paid out so far: collected, written off, fee taken.
            """
            CREATE TABLE payout_positions (
                merchant_id text NOT NULL,
                cycle text NOT NULL,
                collected_yen bigint NOT NULL,
                written_off_yen bigint NOT NULL,
                fee_taken_yen bigint NOT NULL,
                PRIMARY KEY (merchant_id, cycle))
            """,
            // Each merchant's statement per period, as published.
            """
            CREATE TABLE payouts (
                merchant_id text NOT NULL,
                period text NOT NULL,
                payable_on date NOT NULL,
                lines jsonb NOT NULL,
                carried_in_yen bigint NOT NULL,
                amount_payable_yen bigint NOT NULL CHECK (amount_payable_yen >= 0),
                carried_out_yen bigint NOT NULL CHECK (carried_out_yen <= 0),
                created_at timestamptz NOT NULL DEFAULT now(),
                PRIMARY KEY (merchant_id, period))
            """,
            // The months whose bills of zero or less were counted as settled on the bill, and the index that
            // finds those few bills without reading the rest.
            "CREATE TABLE payout_settled_bills (cycle text PRIMARY KEY, period text NOT NULL)",
            "CREATE INDEX line_bills_not_positive ON line_bills (cycle) WHERE total_yen <= 0",
        ]
        return statements
    },
    Migration(version: 15, name: "staff of the merchants' site and the support desk") { _ in
        [
            // People who log in to a site: a merchant's staff (admin or viewer, one merchant each) or the
            // carrier's support centre (agent or supervisor, no merchant). A password is kept as a scrypt hash;
            // a second factor as its TOTP secret. Failures lock the account for a while.
            """
            CREATE TABLE site_staff (
                staff_id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
                site text NOT NULL CHECK (site IN ('merchant', 'support')),
                login text NOT NULL CHECK (login ~ '^[a-z0-9._%+-]+@[a-z0-9.-]+$' AND length(login) <= 254),
                merchant_id text REFERENCES merchants (merchant_id),
                role text NOT NULL CHECK (role IN ('admin', 'viewer', 'agent', 'supervisor')),
                display_name text NOT NULL,
                password_hash bytea NOT NULL,
                password_salt bytea NOT NULL,
                scrypt_log_rounds integer NOT NULL,
                scrypt_block_size integer NOT NULL,
                scrypt_parallelism integer NOT NULL,
                totp_secret bytea,
                failed_attempts integer NOT NULL DEFAULT 0,
                locked_until timestamptz,
                status text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'disabled')),
                created_at timestamptz NOT NULL DEFAULT now(),
                UNIQUE (site, login),
                CHECK ((site = 'merchant') = (merchant_id IS NOT NULL)),
                CHECK ((site = 'merchant') = (role IN ('admin', 'viewer'))))
            """,
            // A logged-in session: only the SHA-256 of its cookie's token is kept, so a copy of this table
            // opens no session. Its CSRF token goes in every form.
            """
            CREATE TABLE site_sessions (
                token_hash bytea PRIMARY KEY,
                staff_id bigint NOT NULL REFERENCES site_staff (staff_id) ON DELETE CASCADE,
                csrf_token text NOT NULL,
                created_at timestamptz NOT NULL DEFAULT now(),
                last_seen_at timestamptz NOT NULL DEFAULT now())
            """,
            "CREATE INDEX site_sessions_by_staff ON site_sessions (staff_id)",
            // What staff did, and every login attempt: appended, never changed (the trigger refuses).
            """
            CREATE TABLE site_audit (
                id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
                site text NOT NULL,
                merchant_id text,
                staff_login text NOT NULL,
                action text NOT NULL,
                subject text,
                detail text NOT NULL DEFAULT '',
                address text,
                at timestamptz NOT NULL DEFAULT now())
            """,
            "CREATE INDEX site_audit_by_merchant ON site_audit (site, merchant_id, at)",
            """
            CREATE FUNCTION site_audit_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
                RAISE EXCEPTION 'the audit log is append-only';
            END $$
            """,
            """
            CREATE TRIGGER site_audit_append_only BEFORE UPDATE OR DELETE ON site_audit
            FOR EACH STATEMENT EXECUTE FUNCTION site_audit_append_only()
            """,
        ]
    },
    Migration(version: 16, name: "the dead letters a merchant signed, for its site") { _ in
        [
            // A message signed with a merchant's key that was not a request it may send: kept beside its dead
            // letter, in the batch that read it, so that the merchant's developers see it on the site. Once per
            // source position; at most 4 KiB of its value.
            """
            CREATE TABLE merchant_dead_letters (
                source_topic text NOT NULL,
                source_partition integer NOT NULL,
                source_offset bigint NOT NULL,
                merchant_id text NOT NULL,
                reason text NOT NULL,
                message_key text,
                value bytea NOT NULL,
                value_size integer NOT NULL,
                recorded_at timestamptz NOT NULL DEFAULT now(),
                PRIMARY KEY (source_topic, source_partition, source_offset))
            """,
            "CREATE INDEX merchant_dead_letters_by_merchant ON merchant_dead_letters (merchant_id, recorded_at)",
        ]
    },
    Migration(version: 17, name: "every billed item by merchant, for statements; refusals by merchant") { _ in
        [
            // The items of the line bills again, keyed by merchant and month: a merchant's statement is one range
            // of one index instead of a pass over every line's bill. Written by the close in the transaction
            // that writes the bills, from the same JSON; filled here from the bills closed before.
            """
            CREATE TABLE merchant_bill_items (
                merchant_id text NOT NULL,
                cycle text NOT NULL,
                line_id text NOT NULL,
                n bigint NOT NULL,
                kind text NOT NULL,
                reference text NOT NULL,
                description text NOT NULL,
                amount_yen bigint NOT NULL,
                PRIMARY KEY (merchant_id, cycle, line_id, n))
            """,
            """
            INSERT INTO merchant_bill_items (merchant_id, cycle, line_id, n, kind, reference, description, amount_yen)
            SELECT i.item->>'merchantId', b.cycle, b.line_id, i.n, i.item->>'kind', i.item->>'reference',
                   i.item->>'description', (i.item->>'amount')::bigint
            FROM line_bills b, json_array_elements(b.items) WITH ORDINALITY AS i(item, n)
            """,
            // The site's search pages newest first, ties by result id: in the index's own order, so that each
            // line partition's index is read from the newest and the first page stops after its rows, however
            // many the merchant has. Then its refusals, without reading its accepted requests, by status and by
            // reason code (a reason that matched nothing would otherwise read every refusal).
            "DROP INDEX request_results_by_merchant",
            "CREATE INDEX request_results_by_merchant ON request_results (merchant_id, recorded_at, result_id)",
            """
            CREATE INDEX request_results_refused_by_merchant ON request_results (merchant_id, recorded_at, result_id)
            WHERE NOT accepted
            """,
            """
            CREATE INDEX request_results_refused_by_reason
            ON request_results (merchant_id, reason, recorded_at, result_id) WHERE NOT accepted
            """,
        ]
    },
    Migration(version: 18, name: "the support desk: a line user's own stop and limit, disputed purchases") { _ in
        [
            // Set by the support desk, never by the line system's import: the user's stop of carrier billing
            // (since when), and a lower monthly limit the user asked for.
            """
            ALTER TABLE lines ADD COLUMN billing_blocked_since timestamptz,
                ADD COLUMN user_limit_yen bigint CHECK (user_limit_yen >= 1)
            """,
            // A purchase the line's user disputes with the support centre: it stays billed; the merchant sees
            // the mark. One mark per purchase; cleared marks are deleted (the audit log keeps the story).
            """
            CREATE TABLE purchase_disputes (
                merchant_id text NOT NULL,
                kind text NOT NULL CHECK (kind IN ('charge', 'subscription')),
                purchase_id text NOT NULL,
                line_id text NOT NULL,
                reason text NOT NULL,
                marked_by text NOT NULL,
                marked_at timestamptz NOT NULL DEFAULT now(),
                PRIMARY KEY (merchant_id, kind, purchase_id))
            """,
            "CREATE INDEX purchase_disputes_by_line ON purchase_disputes (line_id)",
        ]
    },
]

/// The channel on which PostgreSQL announces new outbox messages.
let outboxChannel = "matomete_outbox"

/// Applies pending migrations, one transaction for all, under an advisory lock
/// so that processes starting together do not race.
public struct Migrator: Sendable {
    /// The newest schema version this program knows.
    public static var latestVersion: Int { migrations.map(\.version).max() ?? 0 }

    /// A migrator for the migrations this program knows, up to ``latestVersion``.
    public init() {}

    /// Brings the schema up to date. `partitions` is used only when the
    /// database is initialised. Returns the versions applied.
    @discardableResult
    public func migrate(_ client: PostgresClient, partitions: Int, logger: Logger) async throws -> [Int] {
        guard (1...1024).contains(partitions) else {
            throw StoreError(.invalidInput, "line partitions must be between 1 and 1024, not \(partitions)")
        }
        return try await client.storeTransaction(logger: logger) { connection in
            try await connection.query("SELECT pg_advisory_xact_lock(7267261720)", logger: logger)
            try await connection.query(
                """
                CREATE TABLE IF NOT EXISTS schema_migrations (
                    version integer PRIMARY KEY,
                    name text NOT NULL,
                    applied_at timestamptz NOT NULL DEFAULT now())
                """, logger: logger)
            var applied = Set<Int>()
            for try await version in try await connection.query(
                "SELECT version FROM schema_migrations", logger: logger
            ).decode(Int.self) {
                applied.insert(version)
            }
            if let newest = applied.max(), newest > Self.latestVersion {
                throw StoreError(
                    .schemaMismatch,
                    "the database has schema version \(newest); this program knows \(Self.latestVersion)")
            }
            var done: [Int] = []
            var partitions = partitions
            for migration in migrations.sorted(by: { $0.version < $1.version })
            where !applied.contains(migration.version) {
                // Later migrations partition like the database was initialised.
                if migration.version > 1 {
                    let stored = try await connection.fetch(
                        "SELECT value FROM matomete_settings WHERE key = 'line_partitions'", String.self, logger: logger
                    )
                    partitions = stored.first.flatMap(Int.init) ?? partitions
                }
                for statement in migration.statements(partitions) {
                    // DDL cannot take bound parameters; these statements are
                    // built from constants and an integer, never from input.
                    try await connection.query(PostgresQuery(unsafeSQL: statement), logger: logger)
                }
                try await connection.query(
                    "INSERT INTO schema_migrations (version, name) VALUES (\(migration.version), \(migration.name))",
                    logger: logger)
                logger.info("Applied migration", metadata: ["migration": "\(migration.version) \(migration.name)"])
                done.append(migration.version)
            }
            return done
        }
    }
}
