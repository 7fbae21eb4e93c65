import Authorization
import Billing
import Contract
import Foundation
import HummingbirdTesting
import Kafka
import Logging
import MatometeTestSupport
import MerchantSite
import PostgresNIO
import ServerKit
import SiteKit
import SiteMessages
import Store
import SupportDesk
import Synchronization
import Testing

/// The support desk in process, over a real PostgreSQL with the merchant site's seed: shop-a's line LA1 with a
/// purchase ID, a subscription and a bill; an agent and a supervisor.
@Suite("Support desk")
struct SupportDeskTests {
    static let password = MerchantSiteTests.password

    static func seeded(_ body: @Sendable (BillingStore) async throws -> Void) async throws {
        try await MerchantSiteTests.seeded { store in
            let hash = try PasswordHash.make(password: password, logRounds: 10)
            for (login, role) in [("agent@desk.example", StaffRole.agent), ("super@desk.example", .supervisor)] {
                try await store.addStaff(
                    StaffAccount(
                        site: .support, login: login, merchantID: nil, role: role, displayName: login,
                        passwordHash: hash.hash, passwordSalt: hash.salt,
                        scrypt: (hash.logRounds, hash.blockSize, hash.parallelism)))
            }
            for line in ["LA1", "LB1"] {
                try await store.client.query(
                    """
                    INSERT INTO lines (line_id, line_type, flets_net, status, open_cycle, open_spend_yen)
                    VALUES (\(line), 'b-flets', false, 'active', '2026-11', 700)
                    """, logger: TestServer.logger)
            }
            try await store.client.query(
                """
                INSERT INTO purchase_ids (merchant_id, kind, purchase_id, line_id)
                VALUES ('shop-a', 'subscription', 'a-charge-1-sub', 'LA1')
                """, logger: TestServer.logger)
            try await store.issueCredential(
                purchaseID: "P-LA1", lineID: "LA1", hash: hash.hash, salt: hash.salt, logRounds: hash.logRounds,
                blockSize: hash.blockSize, parallelism: hash.parallelism)
            try await store.client.query(
                """
                INSERT INTO purchase_id_lockouts (purchase_id, line_id, failed_attempts, locked_until)
                VALUES ('P-LA1', 'LA1', 5, now() + interval '15 minutes')
                """, logger: TestServer.logger)
            try await body(store)
        }
    }

    static func withDesk(
        _ store: BillingStore, cancellations: SiteCancellations? = nil,
        _ body: @Sendable (SiteBrowser) async throws -> Void
    ) async throws {
        let app = try SupportDeskApplication.application(
            holder: StoreHolder(store), settings: SupportDeskApplication.settings(plainHTTP: true),
            cancellations: cancellations, address: try HTTPAddress("127.0.0.1:0"), limits: HTTPLimits(),
            readiness: Readiness([]), logger: Logger(label: "test"))
        try await app.test(.router) { client in try await body(SiteBrowser(client: client)) }
    }

    /// A session's CSRF token, from the search page.
    static func token(_ session: SiteBrowser.Session) async throws -> String {
        let page = try await session.get("/lines")
        guard let range = page.text.range(of: #"name="csrf" value=""#) else {
            throw TestFailureMessage("no CSRF token on /lines (\(page.status))")
        }
        return String(page.text[range.upperBound...].prefix { $0 != "\"" })
    }

    @Test("an agent finds a line by each of its keys; each lookup and look is audited; supervisors alone read the log")
    func finding() async throws {
        try await Self.seeded { store in
            try await Self.withDesk(store) { desk in
                let agent = desk.session()
                agent.acceptLanguage = "en"
                try await agent.logIn("agent@desk.example", Self.password)
                for query in [
                    "by=line&value=LA1", "by=purchase-id&value=P-LA1", "by=charge&value=a-charge-1&merchant=shop-a",
                    "by=subscription&value=a-charge-1-sub&merchant=shop-a", "by=bill&value=bill-LA1-2026-10",
                ] {
                    let found = try await agent.get("/lines?" + query)
                    #expect(found.status == .seeOther && found.location == "/lines/LA1", "\(query): \(found.status)")
                }
                let missing = try await agent.get("/lines?by=charge&value=a-charge-1&merchant=shop-b")
                #expect(missing.status == .ok && missing.text.contains("id=\"not-found\""))
                let page = try await agent.get("/lines/LA1")
                #expect(page.status == .ok)
                for shown in [
                    "P-LA1", "spending_limit_exceeded", "a-charge-1-sub", "bill-LA1-2026-10", "locked until",
                ] {
                    #expect(page.text.contains(shown), "the line's page shows \(shown)")
                }
                #expect(!page.text.contains("LB1"), "another line's story is not on it")
                #expect(try await agent.get("/lines/NOLINE").status == .notFound)
                #expect(try await agent.get("/audit").status == .forbidden, "an agent cannot read the audit log")
                #expect(try await agent.get("/audit.csv").status == .forbidden)

                let supervisor = desk.session()
                try await supervisor.logIn("super@desk.example", Self.password)
                let audit = try await supervisor.get("/audit?line=LA1")
                #expect(audit.status == .ok && audit.text.contains("line_viewed"))
                let csv = try await supervisor.get("/audit.csv")
                #expect(csv.status == .ok && csv.headers[.contentType]?.hasPrefix("text/csv") == true)
                let log = try await store.auditLog(site: .support, merchant: nil, limit: 100)
                #expect(log.filter { $0.action == "lookup" }.count == 6)
                #expect(log.contains { $0.action == "lookup" && $0.subject == nil && $0.detail.hasSuffix(": no line") })
                #expect(log.contains { $0.action == "line_viewed" && $0.subject == "LA1" })
                #expect(log.contains { $0.action == "export" && $0.staffLogin == "super@desk.example" })
                #expect(csv.text.contains("line_viewed") && csv.text.contains("agent@desk.example"))
            }
        }
    }

    @Test(
        "every action needs the user's reason; each changes the line once through the store and is audited; the merchant sees a dispute; a subscription is cancelled signed as the merchant's own"
    )
    func actions() async throws {
        try await Self.seeded { store in
            let (cluster, topics, producer, cancellations, _) = try await MerchantSiteTests.cancellationRig(store)
            try await Self.withDesk(store, cancellations: cancellations) { desk in
                let agent = desk.session()
                try await agent.logIn("agent@desk.example", Self.password)
                let token = try await Self.token(agent)
                let path = "/lines/LA1/actions"
                let actions: [(fields: [String: String], done: String)] = [
                    (["action": "unlock-id", "purchaseId": "P-LA1"], "unlock-id"),
                    (["action": "set-limit", "limit": "3000"], "set-limit"),
                    (["action": "block"], "block"),
                    (
                        ["action": "dispute", "merchant": "shop-a", "kind": "charge", "requestId": "a-charge-1"],
                        "dispute"
                    ),
                    (
                        ["action": "cancel-subscription", "merchant": "shop-a", "subscriptionId": "a-charge-1-sub"],
                        "cancel-subscription"
                    ),
                    (["action": "revoke-id", "purchaseId": "P-LA1"], "revoke-id"),
                ]
                for (fields, done) in actions {
                    var unreasoned = fields
                    unreasoned["csrf"] = token
                    #expect(
                        try await agent.post(path, fields: unreasoned).status == .badRequest, "\(done) without a reason"
                    )
                    unreasoned["reason"] = "   "
                    #expect(try await agent.post(path, fields: unreasoned).status == .badRequest)
                    var noToken = fields
                    noToken["reason"] = "The user called"
                    #expect(try await agent.post(path, fields: noToken).status == .forbidden, "\(done) without CSRF")
                    var complete = noToken
                    complete["csrf"] = token
                    let answer = try await agent.post(path, fields: complete)
                    #expect(
                        answer.status == .seeOther && answer.location == "/lines/LA1?done=\(done)",
                        "\(done): \(answer.status) \(answer.text.prefix(300))")
                }
                // Again: nothing more to do, and nothing recorded.
                for fields in [
                    ["action": "block"], ["action": "revoke-id", "purchaseId": "P-LA1"],
                    ["action": "unlock-id", "purchaseId": "P-LA1"],
                ] {
                    #expect(
                        try await agent.post(path, fields: fields.merging(["csrf": token, "reason": "again"]) { $1 })
                            .status == .conflict, "\(fields)")
                }
                #expect(
                    try await agent.post(
                        path, fields: ["csrf": token, "reason": "x", "action": "revoke-id", "purchaseId": "P-LB1"]
                    ).status == .notFound, "a purchase ID of another line")
                #expect(
                    try await agent.post(
                        path, fields: ["csrf": token, "reason": "x", "action": "set-limit", "limit": "0"]
                    )
                    .status == .badRequest, "a limit of 0 is the stop's job")
                #expect(
                    try await agent.post(
                        "/lines/LB1/actions",
                        fields: [
                            "csrf": token, "reason": "x", "action": "dispute", "merchant": "shop-a", "kind": "charge",
                            "requestId": "a-charge-1",
                        ]
                    ).status == .notFound, "a purchase of another line")

                let story = try #require(try await store.lineStory("LA1"))
                #expect(story.line.billingBlocked != nil && story.line.userLimit == 3000 && story.line.limit == 3000)
                #expect(story.purchaseIDs.first?.status == "revoked" && story.purchaseIDs.first?.lockedUntil == nil)
                #expect(story.requests.contains { $0.requestID == "a-charge-1" && $0.disputed == "The user called" })
                let log = try await store.auditLog(site: .support, merchant: nil, subject: "LA1", limit: 100)
                for (_, done) in actions {
                    #expect(
                        log.filter { $0.action == done }.count == 1
                            && log.contains { $0.action == done && $0.detail.hasSuffix("reason: The user called") },
                        "\(done) recorded once, with its reason")
                }
                // The merchant sees the dispute on its site.
                try await MerchantSiteTests.withSite(store) { site in
                    let admin = site.session()
                    try await admin.logIn("admin@a.example", Self.password)
                    let history = try await admin.get("/purchases/charge/a-charge-1?line=LA1")
                    #expect(history.text.contains("id=\"disputed\"") && history.text.contains("The user called"))
                }
            }
            let messages = try await MerchantSiteTests.readAll(cluster, topics.cancellations)
            #expect(messages.count == 1)
            let object = try #require(
                try JSONSerialization.jsonObject(with: Data(messages[0].value)) as? [String: String])
            #expect(
                object == [
                    "type": "subscription-cancel", "merchantId": "shop-a", "subscriptionId": "a-charge-1-sub",
                    "lineId": "LA1",
                ])
            await producer.shutdown()
        }
    }

    @Test(
        "a merchant-site session is refused at the desk, and a desk session at the merchant site; accounts log in to their own site only"
    )
    func separateSites() async throws {
        try await Self.seeded { store in
            let cookies = Mutex<(merchant: String, desk: String)>(("", ""))
            try await MerchantSiteTests.withSite(store) { site in
                let admin = site.session()
                try await admin.logIn("admin@a.example", Self.password)
                cookies.withLock { $0.merchant = admin.cookies["matomete_merchant"] ?? "" }
                #expect(try await site.session().logIn("agent@desk.example", Self.password, expect: false))
            }
            let merchantCookie = cookies.withLock { $0.merchant }
            try await Self.withDesk(store) { desk in
                #expect(try await desk.session().logIn("admin@a.example", Self.password, expect: false))
                let stranger = desk.session()
                stranger.cookies["matomete_support"] = merchantCookie
                stranger.cookies["matomete_merchant"] = merchantCookie
                #expect(try await stranger.get("/lines/LA1").status == .seeOther, "to the login page")
                let agent = desk.session()
                try await agent.logIn("agent@desk.example", Self.password)
                cookies.withLock { $0.desk = agent.cookies["matomete_support"] ?? "" }
            }
            let deskCookie = cookies.withLock { $0.desk }
            try await MerchantSiteTests.withSite(store) { site in
                let stranger = site.session()
                stranger.cookies["matomete_merchant"] = deskCookie
                let answer = try await stranger.get("/overview")
                #expect(answer.status == .seeOther)
            }
            let views = try await store.auditLog(site: .support, merchant: nil, subject: "LA1")
            #expect(views.isEmpty, "nothing of the line was shown to the merchant's session")
        }
    }
}
