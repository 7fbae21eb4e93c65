import Authorization
import Billing
import Contract
import Foundation
import MatometeTestSupport
import Store
import Testing

#if canImport(FoundationNetworking)
    import FoundationNetworking
#endif

extension ScenarioTests {
    /// The support desk as a process over the workers', walked in a real browser: an agent finds a line by its
    /// purchase ID, reads why a purchase was refused, unlocks the ID and stops carrier billing; a charge sent
    /// afterwards is refused with `line_billing_blocked` by the charge worker; the supervisor reads every step in
    /// the audit log. Screenshots go to `.build/test-artifacts/support-desk/` when a step fails.
    @Test(
        "support desk: an agent unlocks a purchase ID and stops billing; the next charge is refused line_billing_blocked; the supervisor sees it all"
    )
    func supportDesk() async throws {
        let system = try await TestSystem.start("support-desk", inputPartitions: 2, outputPartitions: 2)
        defer { Task { await system.shutDown() } }
        let line = "L0000001"
        let merchant = "m-video"
        try await system.setUp(
            merchants: [Merchant(id: MerchantID(rawValue: merchant), name: "Video")],
            lines: [Line(id: LineID(rawValue: line), type: .bFlets, spendingLimit: 1_000)], openCycle: .september)
        let password = "desk password 1"
        let hash = try PasswordHash.make(password: password, logRounds: 10)
        try await system.database.withStore { store in
            for (login, role) in [("agent@desk.example", StaffRole.agent), ("super@desk.example", .supervisor)] {
                try await store.addStaff(
                    StaffAccount(
                        site: .support, login: login, merchantID: nil, role: role, displayName: login,
                        passwordHash: hash.hash, passwordSalt: hash.salt,
                        scrypt: (hash.logRounds, hash.blockSize, hash.parallelism)))
            }
            try await store.issueCredential(
                purchaseID: "P-USER-1", lineID: line, hash: hash.hash, salt: hash.salt, logRounds: hash.logRounds,
                blockSize: hash.blockSize, parallelism: hash.parallelism)
            // Locked, as five wrong passwords at the gateway leave it.
            try await store.client.query(
                """
                INSERT INTO purchase_id_lockouts (purchase_id, line_id, failed_attempts, locked_until)
                VALUES ('P-USER-1', \(line), 0, now() + interval '15 minutes')
                """, logger: TestSystem.logger)
        }
        _ = try system.launch(.charges)
        _ = try system.launch(.relay)
        // Over the line's limit of ¥1,000: refused.
        _ = try await system.produce(system.topics.charges, [Requests.charge(merchant, "c-big", line: line, 5_000)])
        try await system.waitUntilIdle()

        let port = try EmbeddedPostgres.freePort()
        let desk = Process()
        desk.executableURL = try Processes.builtExecutable("support-desk")
        var environment = ProcessInfo.processInfo.environment
        environment["MATOMETE_BOOTSTRAP_SERVERS"] = system.cluster.bootstrapServers
        environment["MATOMETE_DATABASE_URL"] = system.database.configuration.url
        environment["MATOMETE_HTTP_ADDRESS"] = "127.0.0.1:\(port)"
        environment["MATOMETE_KEY_ENCRYPTION_KEY"] = TestKeys.keyEncryptionKey
        environment["MATOMETE_PLAIN_HTTP"] = "1"
        // As behind the support centre's proxy: its X-Forwarded-For names the person's address.
        environment["MATOMETE_TRUSTED_PROXIES"] = "127.0.0.1/32"
        desk.environment = environment
        desk.standardOutput = FileHandle.nullDevice
        desk.standardError = FileHandle.nullDevice
        try desk.run()
        ChildProcesses.register(desk)
        defer { desk.terminate() }
        let address = "http://127.0.0.1:\(port)"
        var ready = false
        for _ in 0..<100 where !ready {
            ready = (try? await HTTP.get(port: port, path: "/healthz"))?.status == 200
            if !ready { try await Task.sleep(for: .milliseconds(100)) }
        }
        try #require(ready, "the support desk never became ready")

        try await BrowserWalk.run(artifacts: "support-desk") { browser, check in
            // The agent finds the line by the purchase ID the user reads out.
            try await browser.open(address + "/lines")
            check(try await browser.showsURL(endingWith: "/login"), "not logged in: the login page")
            try await browser.element("#login").type("agent@desk.example")
            try await browser.element("#password").type(password)
            try await browser.element("#submit").click()
            check(try await browser.showsURL(endingWith: "/lines"), "after login, the search")
            try await browser.element("#find-by option[value='purchase-id']").click()
            try await browser.element("#find-value").type("P-USER-1")
            try await browser.element("#find-submit").click()
            check(try await browser.showsURL(endingWith: "/lines/\(line)"), "the line of the purchase ID")
            try await browser.screenshot("line")
            // Why the purchase was refused.
            let refused = try await browser.element("tr[data-request='c-big'] .reason-code").text()
            check(refused == "spending_limit_exceeded", "the refused purchase's reason: \(refused)")
            check(
                try await browser.element("tr[data-purchase-id='P-USER-1'] .lock").text().contains("locked until"),
                "the ID is locked")

            // Unlocking the ID: an action without a reason is not even sent (the field is required); with one, done.
            try await browser.element("tr[data-purchase-id='P-USER-1'] button.unlock-id").click()
            check(try await browser.showsURL(endingWith: "/lines/\(line)"), "no reason: nothing sent")
            try await browser.element("tr[data-purchase-id='P-USER-1'] form:first-of-type input.reason").type(
                "User called: forgot the password, identity checked")
            try await browser.element("tr[data-purchase-id='P-USER-1'] button.unlock-id").click()
            check(
                await browser.becomes { try await browser.currentURL().hasSuffix("?done=unlock-id") },
                "the ID unlocked")
            check(
                try await browser.element("tr[data-purchase-id='P-USER-1'] .lock").text().isEmpty,
                "no lock shown any more")

            // Stopping carrier billing on the line.
            try await browser.element(".actions form:first-of-type input.reason").type(
                "User asked to stop all purchases on the line")
            try await browser.element("button.block").click()
            check(
                await browser.becomes { try await browser.currentURL().hasSuffix("?done=block") }, "billing stopped")
            check(
                try await browser.element("#billing").text().contains("STOPPED"), "the line's page says it is stopped")
            try await browser.screenshot("blocked")
        }

        // A charge sent afterwards, with a valid authorization, is refused with the new reason.
        _ = try await system.produce(system.topics.charges, [Requests.charge(merchant, "c-after", line: line, 500)])
        try await system.waitUntilIdle()
        let results = try await system.database.withStore { try await $0.results(line: LineID(rawValue: line)) }
        let after = try #require(results.first { $0.requestID == "c-after" })
        #expect(!after.accepted && after.reason == "line_billing_blocked", "\(after)")

        try await BrowserWalk.run(artifacts: "support-desk") { browser, check in
            try await browser.open(address + "/login")
            try await browser.element("#login").type("super@desk.example")
            try await browser.element("#password").type(password)
            try await browser.element("#submit").click()
            check(try await browser.showsURL(endingWith: "/lines"), "the supervisor is logged in")
            try await browser.open(address + "/audit?line=\(line)")
            let actions = try await browser.elements("#audit td.action")
            var seen: [String] = []
            for cell in actions { seen.append(try await cell.text()) }
            for step in ["lookup", "line_viewed", "unlock-id", "block"] {
                check(seen.contains(step), "the audit log shows \(step): \(seen)")
            }
            let details = try await browser.element("#audit").text()
            check(details.contains("agent@desk.example"), "who did it")
            check(details.contains("User asked to stop all purchases on the line"), "why")
            try await browser.screenshot("audit")
        }

        // Through a trusted proxy, the audit log names the address it forwarded for.
        let configuration = URLSessionConfiguration.ephemeral
        configuration.httpShouldSetCookies = false
        let client = URLSession(configuration: configuration)
        let (form, formResponse) = try await client.data(from: try #require(URL(string: address + "/login")))
        let cookie = try #require(
            ((formResponse as? HTTPURLResponse)?.value(forHTTPHeaderField: "Set-Cookie"))?.split(separator: ";").first)
        let page = String(decoding: form, as: UTF8.self)
        let token = try #require(page.range(of: #"name="csrf" value=""#)).upperBound
        var login = URLRequest(url: try #require(URL(string: address + "/login")))
        login.httpMethod = "POST"
        login.setValue(String(cookie), forHTTPHeaderField: "Cookie")
        login.setValue("198.51.100.7, 203.0.113.9", forHTTPHeaderField: "X-Forwarded-For")
        login.setValue("application/x-www-form-urlencoded", forHTTPHeaderField: "Content-Type")
        login.httpBody = Data(
            "csrf=\(page[token...].prefix { $0 != "\"" })&login=agent%40desk.example&password=wrong".utf8)
        _ = try await client.data(for: login)
        let failures = try await system.database.withStore {
            try await $0.auditLog(site: .support, merchant: nil, limit: 50)
        }.filter { $0.action == "login_failed" }
        #expect(failures.map(\.address) == ["203.0.113.9"], "the forwarded address, not the proxy's")
        let views = try await system.database.withStore {
            try await $0.auditLog(site: .support, merchant: nil, subject: line)
        }
        #expect(!views.isEmpty && views.allSatisfy { $0.address == "127.0.0.1" }, "the browser's own address")
    }
}
