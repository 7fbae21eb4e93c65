import Authorization
import Billing
import Contract
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Kafka
import Logging
import MatometeTestSupport
import MerchantSite
import NIOCore
import PostgresNIO
import ServerKit
import SiteKit
import SiteMessages
import Store
import Synchronization
import Testing

/// The merchant site in process, over a real PostgreSQL: two merchants' data, and what each one's staff can
/// reach of it, its forms and its sessions.
@Suite("Merchant site")
struct MerchantSiteTests {
    static let password = "correct horse battery"

    /// Two merchants with a purchase, a refusal, a settled month and a payout each; an admin and a viewer of
    /// shop-a, an admin of shop-b.
    static func seeded(_ body: @Sendable (BillingStore) async throws -> Void) async throws {
        let database = try await TestDatabase.create(partitions: 4)
        try await database.withStore { store in
            for (merchant, name) in [("shop-a", "Shop A"), ("shop-b", "Shop B")] {
                try await store.upsertMerchant(Merchant(id: MerchantID(rawValue: merchant), name: name))
            }
            let hash = try PasswordHash.make(password: password, logRounds: 10)
            for (login, merchant, role) in [
                ("admin@a.example", "shop-a", StaffRole.admin), ("viewer@a.example", "shop-a", .viewer),
                ("admin@b.example", "shop-b", .admin),
            ] {
                try await store.addStaff(
                    StaffAccount(
                        site: .merchant, login: login, merchantID: MerchantID(rawValue: merchant), role: role,
                        displayName: login, passwordHash: hash.hash, passwordSalt: hash.salt,
                        scrypt: (hash.logRounds, hash.blockSize, hash.parallelism)))
            }
            // shop-a bought on line LA1 in 2026-10 (billed, settled, paid out) and was refused once; shop-b on LB1.
            for (merchant, line, charge, amount, cycle) in [
                ("shop-a", "LA1", "a-charge-1", Int64(700), "2026-10"), ("shop-b", "LB1", "b-charge-1", 900, "2026-09"),
            ] {
                try await store.client.query(
                    """
                    INSERT INTO charges (line_id, merchant_id, charge_id, amount_yen, description, cycle, status)
                    VALUES (\(line), \(merchant), \(charge), \(amount), 'song', \(cycle), 'active')
                    """, logger: TestServer.logger)
                try await store.client.query(
                    """
                    INSERT INTO request_results (line_id, merchant_id, request_type, request_id, result_id, accepted,
                        reason, cycle, recorded_at)
                    VALUES (\(line), \(merchant), 'charge', \(charge), \("r-" + charge), true, NULL, \(cycle),
                            (\(cycle) || '-15')::timestamptz),
                           (\(line), \(merchant), 'charge', \(charge + "-refused"), \("r2-" + charge), false,
                            'spending_limit_exceeded', NULL, (\(cycle) || '-16')::timestamptz)
                    """, logger: TestServer.logger)
                // A message it signed that was not a request.
                try await store.client.query(
                    """
                    INSERT INTO merchant_dead_letters (source_topic, source_partition, source_offset, merchant_id,
                        reason, message_key, value, value_size)
                    VALUES ('matomete.charges', 0, \(amount), \(merchant), 'wrong type for field amount', \(line),
                            convert_to(\("{\"chargeId\":\"" + charge + "-bad\",\"amount\":\"x\"}"), 'UTF8'), 40)
                    """, logger: TestServer.logger)
                // A subscription (billed in its month), and a cancellation refused: nothing of the name.
                try await store.client.query(
                    """
                    INSERT INTO subscriptions (line_id, merchant_id, subscription_id, monthly_amount_yen, description,
                        start_cycle, started_at)
                    VALUES (\(line), \(merchant), \(charge + "-sub"), 300, 'magazine', \(cycle),
                            (\(cycle) || '-02')::timestamptz)
                    """, logger: TestServer.logger)
                try await store.client.query(
                    """
                    INSERT INTO request_results (line_id, merchant_id, request_type, request_id, result_id, accepted,
                        reason, cycle, recorded_at)
                    VALUES (\(line), \(merchant), 'charge-cancel', \(charge + "-unknown"), \("r3-" + charge), false,
                            'unknown_charge', NULL, (\(cycle) || '-17')::timestamptz)
                    """, logger: TestServer.logger)
                try await store.client.query(
                    """
                    INSERT INTO purchase_ids (merchant_id, kind, purchase_id, line_id)
                    VALUES (\(merchant), 'charge', \(charge), \(line))
                    """, logger: TestServer.logger)
                let items =
                    #"[{"merchantId":"\#(merchant)","kind":"charge","reference":"\#(charge)","description":"song","amount":\#(amount)},"#
                    + #"{"merchantId":"\#(merchant)","kind":"subscription","reference":"\#(charge)-sub","description":"magazine","amount":300}]"#
                try await store.client.query(
                    """
                    INSERT INTO line_bills (line_id, cycle, total_yen, items)
                    VALUES (\(line), \(cycle), \(amount), \(items)::json)
                    """, logger: TestServer.logger)
                // As the close writes them: the same items by merchant.
                try await store.client.query(
                    """
                    INSERT INTO merchant_bill_items (merchant_id, cycle, line_id, n, kind, reference, description,
                        amount_yen)
                    SELECT i.item->>'merchantId', b.cycle, b.line_id, i.n, i.item->>'kind', i.item->>'reference',
                           i.item->>'description', (i.item->>'amount')::bigint
                    FROM line_bills b, json_array_elements(b.items) WITH ORDINALITY AS i(item, n)
                    WHERE b.line_id = \(line)
                    """, logger: TestServer.logger)
                try await store.client.query(
                    """
                    INSERT INTO settlements (merchant_id, cycle, lines, gross_yen, average_per_line_yen, fee_rule,
                        rate_basis_points, per_line_threshold_yen, per_line_fee_tenths, fee_yen, net_yen, item_count,
                        credit_yen)
                    VALUES (\(merchant), \(cycle), 1, \(amount), \(amount), 'percentage', 500, 600, 315,
                            \(amount / 20), \(amount - amount / 20), 1, 0)
                    """, logger: TestServer.logger)
                try await store.client.query(
                    """
                    INSERT INTO payouts (merchant_id, period, payable_on, lines, carried_in_yen, amount_payable_yen,
                        carried_out_yen)
                    VALUES (\(merchant), \(cycle), '2027-01-31', '[]', 0, \(amount - amount / 20), 0)
                    """, logger: TestServer.logger)
            }
            try await body(store)
        }
    }

    /// Runs `body` with a client of the site over `store`.
    static func withSite(
        _ store: BillingStore, settings: SiteSettings = MerchantSiteApplication.settings(plainHTTP: true),
        cancellations: SiteCancellations? = nil, sealer: SecretSealer? = nil, logger: Logger = Logger(label: "test"),
        _ body: @Sendable (SiteBrowser) async throws -> Void
    ) async throws {
        let app = try MerchantSiteApplication.application(
            holder: StoreHolder(store), settings: settings, cancellations: cancellations, sealer: sealer,
            address: try HTTPAddress("127.0.0.1:0"), limits: HTTPLimits(), readiness: Readiness([]), logger: logger)
        try await app.test(.router) { client in try await body(SiteBrowser(client: client)) }
    }

    @Test("staff of one merchant reach nothing of another's, by any page, search, export or address")
    func isolation() async throws {
        try await Self.seeded { store in
            try await Self.withSite(store) { site in
                // What shop-a's own admin sees, so that the same requests by shop-b prove something.
                let a = site.session()
                try await a.logIn("admin@a.example", Self.password)
                let probes = [
                    "/purchases?from=2026-01-01&to=2026-12-31",
                    "/purchases?from=2026-01-01&to=2026-12-31&id=a-charge-1",
                    "/purchases?from=2026-01-01&to=2026-12-31&line=LA1",
                    "/purchases/charge/a-charge-1", "/purchases/charge/a-charge-1?line=LA1",
                    "/purchases/charge/a-charge-1-refused?line=LA1", "/settlements", "/settlements/2026-10",
                    "/settlements/2026-10/statement.csv", "/payouts", "/overview", "/audit", "/subscriptions",
                    "/subscriptions?status=active", "/cancellations?from=2026-01-01&to=2026-12-31", "/dead-letters",
                ]
                for path in probes {
                    let page = try await a.get(path)
                    #expect(page.status == .ok, "\(path): \(page.status)")
                }
                #expect(try await a.get("/purchases/charge/a-charge-1").text.contains("bill-LA1-2026-10"))
                let subscriptions = try await a.get("/subscriptions").text
                #expect(subscriptions.contains("a-charge-1-sub") && subscriptions.contains("¥300"))
                #expect(
                    subscriptions.contains(#"<td class="num">1</td>"#), "billed in one closed month: \(subscriptions)")
                #expect(!(try await a.get("/subscriptions?status=ended").text.contains("a-charge-1-sub")))
                let cancellations = try await a.get("/cancellations?from=2026-01-01&to=2026-12-31").text
                #expect(cancellations.contains("a-charge-1-unknown") && cancellations.contains("unknown_charge"))
                let deadLetters = try await a.get("/dead-letters").text
                #expect(deadLetters.contains("a-charge-1-bad") && deadLetters.contains("wrong type for field amount"))
                #expect(
                    try await a.get("/settlements/2026-10/statement.csv").text.contains(
                        "LA1,charge,a-charge-1,song,700"))

                let b = site.session()
                try await b.logIn("admin@b.example", Self.password)
                for path in probes {
                    let page = try await b.get(path)
                    // The search form and the language switch's way back show what was asked; everything else
                    // must hold nothing of shop-a's.
                    var text = page.text
                    for (start, stop) in [(#"<form class="search""#, "</form>"), (#"<a id="language""#, "</a>")] {
                        if let from = text.range(of: start),
                            let end = text.range(of: stop, range: from.upperBound..<text.endIndex)
                        {
                            text.removeSubrange(from.lowerBound..<end.upperBound)
                        }
                    }
                    #expect(
                        !text.contains("a-charge-1") && !text.contains("LA1") && !text.contains("¥700"),
                        "\(path) shows shop-a's data to shop-b")
                    #expect(page.status == .ok || page.status == .notFound, "\(path): \(page.status)")
                }
                #expect(try await b.get("/purchases/charge/a-charge-1?line=LA1").status == .notFound)
                #expect(try await b.get("/settlements/2026-10/statement.csv").status == .notFound)
                // shop-b's own month is there for shop-b.
                #expect(try await b.get("/settlements/2026-09/statement.csv").text.contains("b-charge-1"))
            }
        }
    }

    @Test(
        "a cancellation: an admin's, with its token and a reason, of the merchant's own active purchase only; sent signed as the merchant's own, and audited"
    )
    func cancellation() async throws {
        try await Self.seeded { store in
            let (cluster, topics, producer, cancellations, signer) = try await Self.cancellationRig(store)
            try await Self.withSite(store, cancellations: cancellations) { site in
                let path = "/purchases/charge/a-charge-1/cancel"
                let reason = "The customer called: bought by mistake"
                let viewer = site.session()
                try await viewer.logIn("viewer@a.example", Self.password)
                #expect(!(try await viewer.get("/purchases/charge/a-charge-1?line=LA1").text.contains("id=\"cancel\"")))
                let asViewer = try await viewer.post(
                    path, fields: ["csrf": try await viewer.csrf(), "line": "LA1", "reason": reason])
                #expect(asViewer.status == .forbidden, "a viewer cannot cancel")
                let b = site.session()
                try await b.logIn("admin@b.example", Self.password)
                let asOther = try await b.post(
                    path, fields: ["csrf": try await b.csrf(), "line": "LA1", "reason": reason])
                #expect(asOther.status == .notFound, "another merchant's charge is not found")
                let noKey = try await b.post(
                    "/purchases/charge/b-charge-1/cancel",
                    fields: ["csrf": try await b.csrf(), "line": "LB1", "reason": reason])
                #expect(noKey.status == .conflict, "shop-b holds no signing key: nothing can be sent as it")
                let a = site.session()
                try await a.logIn("admin@a.example", Self.password)
                #expect(try await a.get("/purchases/charge/a-charge-1?line=LA1").text.contains("id=\"cancel\""))
                #expect(try await a.post(path, fields: ["line": "LA1", "reason": reason]).status == .forbidden)
                let token = try await a.csrf()
                #expect(try await a.post(path, fields: ["csrf": token, "line": "LA1"]).status == .badRequest)
                #expect(
                    try await a.post(path, fields: ["csrf": token, "line": "LA1", "reason": " "]).status == .badRequest)
                #expect(
                    try await a.post(path, fields: ["csrf": token, "line": "LB1", "reason": reason]).status
                        == .notFound,
                    "the line must be the purchase's")
                #expect(
                    try await a.post(
                        "/purchases/charge/a-charge-1-refused/cancel",
                        fields: ["csrf": token, "line": "LA1", "reason": reason]
                    ).status == .conflict, "a refused purchase has nothing to cancel")
                let sent = try await a.post(path, fields: ["csrf": token, "line": "LA1", "reason": reason])
                #expect(sent.status == .seeOther)
                #expect(sent.location == "/purchases/charge/a-charge-1?line=LA1&cancel=sent")
                let audit = try await store.auditLog(
                    site: .merchant, merchant: MerchantID(rawValue: "shop-a"), limit: 50)
                #expect(
                    audit.contains {
                        $0.action == "cancel" && $0.detail == reason && $0.staffLogin == "admin@a.example"
                    })
                #expect(
                    audit.contains {
                        $0.action == "staff_added" && $0.subject == "viewer@a.example" && $0.detail == "role viewer"
                    }, "creating an account is recorded")
            }
            // Exactly one message reached the topic: the one cancellation, signed with shop-a's key.
            let messages = try await Self.readAll(cluster, topics.cancellations)
            #expect(messages.count == 1)
            let message = try #require(messages.first)
            #expect(message.key.map { Array($0) } == Array("LA1".utf8))
            let object = try #require(try JSONSerialization.jsonObject(with: Data(message.value)) as? [String: String])
            #expect(
                object == ["type": "charge-cancel", "merchantId": "shop-a", "chargeId": "a-charge-1", "lineId": "LA1"])
            func header(_ name: String) -> String {
                message.headers.first { $0.name == name }.flatMap { $0.value }.map {
                    String(decoding: $0, as: UTF8.self)
                }
                    ?? ""
            }
            #expect(header(MessageSignature.Header.keyID) == signer.keyID)
            #expect(
                MessageSignature.isValid(
                    header(MessageSignature.Header.signature), secret: signer.secret, topic: topics.cancellations,
                    timestamp: Int64(header(MessageSignature.Header.timestamp)) ?? 0, keyID: signer.keyID,
                    key: message.key, value: message.value))
            await producer.shutdown()
        }
    }

    /// What sending a site's cancellations needs: shop-a's signing key stored sealed, a one-broker cluster with
    /// the cancellations topic, and a producer and the cancellations over them (shut the producer down at the end).
    static func cancellationRig(
        _ store: BillingStore
    ) async throws -> (
        cluster: EmbeddedKafkaCluster, topics: Topics, producer: KafkaProducer, cancellations: SiteCancellations,
        signer: RequestSigner
    ) {
        let sealer = try SecretSealer(keyEncryptionKey: Array(repeating: 9, count: 32))
        let owner = KeyOwner.merchant("shop-a")
        let signer = RequestSigner.generate(keyIDPrefix: owner.keyIDPrefix)
        try await store.addSigningKey(
            keyID: signer.keyID, owner: owner,
            sealedSecret: try sealer.seal(signer.secret, boundTo: owner.sealingContext(keyID: signer.keyID)))
        let cluster = try EmbeddedKafkaCluster(brokers: 1, logger: TestServer.logger)
        let topics = Topics()
        try cluster.createTopic(topics.cancellations, partitions: 1)
        var configuration = KafkaProducerConfiguration(bootstrapServers: cluster.bootstrapServerList)
        configuration.linger = .milliseconds(1)
        let producer = try KafkaProducer(configuration: configuration, logger: TestServer.logger)
        return (
            cluster, topics, producer,
            SiteCancellations(producer: producer, topics: topics, sealer: sealer, logger: TestServer.logger), signer
        )
    }

    /// Every message on partition 0 of `topic`.
    static func readAll(_ cluster: EmbeddedKafkaCluster, _ topic: String) async throws -> [KafkaConsumerMessage] {
        let partition = KafkaTopicPartition(topic: topic, partition: 0)
        let admin = try KafkaAdmin(
            settings: KafkaClientSettings(bootstrapServers: cluster.bootstrapServerList), logger: TestServer.logger)
        let end = try await admin.highWatermarks([partition])[partition] ?? 0
        var configuration = KafkaConsumerConfiguration(
            bootstrapServers: cluster.bootstrapServerList, groupID: "site-test")
        configuration.readBatchFill = .milliseconds(1)
        let consumer = try KafkaConsumer(configuration: configuration, logger: TestServer.logger)
        try await consumer.assign([partition: .beginning])
        var messages: [KafkaConsumerMessage] = []
        let deadline = ContinuousClock.now + .seconds(20)
        while KafkaOffset(rawValue: Int64(messages.count)) < end, ContinuousClock.now < deadline {
            for case .messages(let batch) in try await consumer.poll(timeout: .milliseconds(100)) {
                messages += batch
            }
        }
        await consumer.close()
        return messages
    }

    @Test("a merchant's text is never markup on a page nor a formula in a CSV; the audit log cannot be changed")
    func escaping() async throws {
        try await Self.seeded { store in
            let description = #"=1+1,"<script>alert(1)</script>""#
            try await store.client.query(
                """
                INSERT INTO charges (line_id, merchant_id, charge_id, amount_yen, description, cycle, status)
                VALUES ('LA2', 'shop-a', 'a-evil', 100, \(description), '2026-10', 'active')
                """, logger: TestServer.logger)
            try await store.client.query(
                """
                INSERT INTO request_results (line_id, merchant_id, request_type, request_id, result_id, accepted,
                    reason, cycle, recorded_at)
                VALUES ('LA2', 'shop-a', 'charge', 'a-evil', 'r-evil', true, NULL, '2026-10', '2026-10-20')
                """, logger: TestServer.logger)
            try await store.client.query(
                """
                INSERT INTO merchant_bill_items (merchant_id, cycle, line_id, n, kind, reference, description,
                    amount_yen)
                VALUES ('shop-a', '2026-10', 'LA2', 1, 'charge', 'a-evil', \(description), 100)
                """, logger: TestServer.logger)
            try await Self.withSite(store) { site in
                let a = site.session()
                try await a.logIn("admin@a.example", Self.password)
                let page = try await a.get("/purchases/charge/a-evil?line=LA2").text
                #expect(!page.contains("<script>"), "markup in a description is escaped")
                #expect(page.contains("&lt;script&gt;alert(1)&lt;/script&gt;"))
                let csv = try await a.get("/settlements/2026-10/statement.csv").text
                #expect(
                    csv.contains(#"LA2,charge,a-evil,"'=1+1,""<script>alert(1)</script>""",100"# + "\r\n"),
                    "a formula is defused, a comma and quotes quoted: \(csv)")
            }
            // Append-only: neither an update nor a delete of the audit log goes through.
            await #expect(throws: (any Error).self) {
                try await store.client.query("UPDATE site_audit SET detail = 'nothing'", logger: TestServer.logger)
            }
            await #expect(throws: (any Error).self) {
                try await store.client.query("DELETE FROM site_audit", logger: TestServer.logger)
            }
            let entries = try await store.auditLog(site: .merchant, merchant: "shop-a", limit: 200)
            #expect(entries.contains { $0.action == "export" && $0.subject == "statement 2026-10" })
        }
    }

    @Test("a form without its session's CSRF token is refused; the login form needs its own token")
    func csrf() async throws {
        try await Self.seeded { store in
            try await Self.withSite(store) { site in
                let a = site.session()
                try await a.logIn("admin@a.example", Self.password)
                let refused = try await a.post("/logout", fields: [:])
                #expect(refused.status == .forbidden)
                let forged = try await a.post("/logout", fields: ["csrf": SiteTokens.make()])
                #expect(forged.status == .forbidden)
                #expect(try await a.get("/overview").status == .ok, "a refused logout must leave the session")
                // A login posted from elsewhere: no login cookie to match.
                let stranger = site.session()
                let login = try await stranger.post(
                    "/login",
                    fields: ["csrf": SiteTokens.make(), "login": "admin@a.example", "password": Self.password])
                #expect(login.status == .forbidden)
                #expect(try await a.post("/logout", fields: ["csrf": try await a.csrf()]).status == .seeOther)
                #expect(try await a.get("/overview").status == .seeOther, "logged out")
            }
        }
    }

    @Test("a session id planted before login is never the one after it")
    func sessionFixation() async throws {
        try await Self.seeded { store in
            try await Self.withSite(store) { site in
                let victim = site.session()
                let planted = SiteTokens.make()
                victim.cookies["matomete_merchant"] = planted
                try await victim.logIn("admin@a.example", Self.password)
                #expect(victim.cookies["matomete_merchant"] != planted)
                let attacker = site.session()
                attacker.cookies["matomete_merchant"] = planted
                #expect(try await attacker.get("/overview").status == .seeOther)
            }
        }
    }

    @Test("five failures in a row lock the account, the right password included, and the log says so")
    func lockout() async throws {
        try await Self.seeded { store in
            try await Self.withSite(store) { site in
                let guesser = site.session()
                for attempt in 1...5 {
                    #expect(try await guesser.logIn("admin@a.example", "wrong \(attempt)", expect: false))
                }
                #expect(try await guesser.logIn("admin@a.example", Self.password, expect: false))
                let log = try await store.auditLog(site: .merchant, merchant: MerchantID(rawValue: "shop-a"))
                #expect(log.filter { $0.action == "login_failed" }.count == 6)
                #expect(log.contains { $0.detail.contains("locked until") })
                // Another account is not locked by it.
                try await site.session().logIn("viewer@a.example", Self.password)
            }
        }
    }

    @Test("a viewer cannot read the audit log; the site's headers forbid framing, sniffing and inline scripts")
    func rolesAndHeaders() async throws {
        try await Self.seeded { store in
            try await Self.withSite(store) { site in
                let viewer = site.session()
                try await viewer.logIn("viewer@a.example", Self.password)
                #expect(try await viewer.get("/audit").status == .forbidden)
                for page in [try await viewer.get("/overview"), try await viewer.get("/no-such-page")] {
                    let policy = page.headers[.contentSecurityPolicy] ?? ""
                    #expect(policy.contains("frame-ancestors 'none'") && policy.contains("script-src 'self'"))
                    #expect(page.headers[HTTPField.Name("X-Content-Type-Options")!] == "nosniff")
                }
                let login = try await site.session().get("/login")
                let cookie = login.headers[values: .setCookie].joined()
                #expect(cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"))
            }
        }
    }

    @Test("sessions end when idle too long, and on logout everywhere")
    func timeouts() async throws {
        try await Self.seeded { store in
            var settings = MerchantSiteApplication.settings(plainHTTP: false)
            settings.idleTimeout = .seconds(1)
            try await Self.withSite(store, settings: settings) { site in
                let a = site.session()
                try await a.logIn("admin@a.example", Self.password)
                #expect(a.setCookies.contains { $0.contains("matomete_merchant=") && $0.contains("Secure") })
                try await Task.sleep(for: .milliseconds(2200))
                #expect(try await a.get("/overview").status == .seeOther)
            }
            try await Self.withSite(store) { site in
                let phone = site.session()
                let desktop = site.session()
                try await phone.logIn("admin@a.example", Self.password)
                try await desktop.logIn("admin@a.example", Self.password)
                #expect(
                    try await desktop.post("/logout-everywhere", fields: ["csrf": try await desktop.csrf()]).status
                        == .seeOther)
                #expect(try await phone.get("/overview").status == .seeOther)
            }
        }
    }

    @Test("a second factor: the password alone is not enough")
    func secondFactor() async throws {
        try await Self.seeded { store in
            let secret = TOTP.makeSecret()
            let hash = try PasswordHash.make(password: Self.password, logRounds: 10)
            try await store.addStaff(
                StaffAccount(
                    site: .merchant, login: "totp@a.example", merchantID: MerchantID(rawValue: "shop-a"), role: .viewer,
                    displayName: "T", passwordHash: hash.hash, passwordSalt: hash.salt,
                    scrypt: (hash.logRounds, hash.blockSize, hash.parallelism), totpSecret: secret))
            try await Self.withSite(store) { site in
                #expect(try await site.session().logIn("totp@a.example", Self.password, expect: false))
                #expect(try await site.session().logIn("totp@a.example", Self.password, code: "000000", expect: false))
                try await site.session().logIn(
                    "totp@a.example", Self.password, code: TOTP.code(secret: secret, at: Date()))
            }
        }
    }

    @Test("no password, session id or token reaches the logs")
    func noSecretsInLogs() async throws {
        try await Self.seeded { store in
            let lines = LogLines()
            let logger = Logger(label: "site") { _ in lines.handler() }
            try await Self.withSite(store, logger: logger) { site in
                let a = site.session()
                try await a.logIn("admin@a.example", Self.password)
                _ = try await a.logIn("admin@a.example", "a wrong password", expect: false)
                _ = try await a.get("/purchases?from=2026-13-45")
                _ = try await a.get("/settlements/2026-10/statement.csv")
                let session = a.cookies["matomete_merchant"] ?? "none"
                let csrf = try await a.csrf()
                for line in lines.all {
                    #expect(!line.contains(Self.password) && !line.contains("a wrong password"))
                    #expect(!line.contains(session) && !line.contains(csrf))
                }
            }
        }
    }

    @Test("the page's language: the browser's, unless chosen on the site")
    func language() async throws {
        try await Self.seeded { store in
            try await Self.withSite(store) { site in
                let english = site.session()
                english.acceptLanguage = "en-GB,en;q=0.9,ja;q=0.5"
                #expect(try await english.get("/login").text.contains("<html lang=\"en\">"))
                let switched = try await english.get("/language?to=ja&back=/login")
                #expect(switched.status == .seeOther && switched.headers[.location] == "/login")
                #expect(try await english.get("/login").text.contains("ログイン"))
                // Only paths of the site are gone back to.
                #expect(try await english.get("/language?to=en&back=//evil.example/").headers[.location] == "/")
            }
        }
    }

    @Test(
        "TOTP codes as RFC 6238 gives them",
        arguments: [(59, "287082"), (1_111_111_109, "081804"), (2_000_000_000, "279037")])
    func totpVectors(seconds: Int, code: String) {
        let secret = Array("12345678901234567890".utf8)
        #expect(TOTP.code(secret: secret, at: Date(timeIntervalSince1970: TimeInterval(seconds))) == code)
    }

    @Test("forms are read strictly", arguments: ["a=1&a=2", "a=%zz", "a=%E3%81"])
    func strictForms(body: String) {
        #expect(throws: HTTPError.self) { try PostedForm(body: ByteBuffer(string: body)) }
    }
}

/// Log lines kept in memory.
final class LogLines: Sendable {
    private let lines = Mutex<[String]>([])

    var all: [String] { lines.withLock { $0 } }

    func handler() -> some LogHandler { Handler(lines: self) }

    private struct Handler: LogHandler {
        let lines: LogLines
        var metadata: Logger.Metadata = [:]
        var logLevel: Logger.Level = .trace

        subscript(metadataKey key: String) -> Logger.Metadata.Value? {
            get { metadata[key] }
            set { metadata[key] = newValue }
        }

        func log(event: LogEvent) {
            let text = "\(event.message) \(metadata.merging(event.metadata ?? [:]) { $1 })"
            lines.lines.withLock { $0.append(text) }
        }
    }
}
