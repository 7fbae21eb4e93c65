import Billing
import Contract
import Foundation
import JSON
import Kafka
import MatometeTestSupport
import Store
import Testing

#if canImport(FoundationNetworking)
    import FoundationNetworking
#endif

extension ScenarioTests {
    /// Runs `matomete` with the test database; returns its output and exit status.
    static func matomete(
        _ system: TestSystem, _ arguments: [String], input: String? = nil
    ) async throws -> (
        String, Int32
    ) {
        let process = Process()
        process.executableURL = try Processes.builtExecutable("matomete")
        process.arguments = arguments
        process.environment = ["MATOMETE_DATABASE_URL": system.database.configuration.url]
        let output = Pipe()
        let stdin = Pipe()
        process.standardOutput = output
        process.standardError = output
        process.standardInput = stdin
        try process.run()
        if let input { stdin.fileHandleForWriting.write(Data((input + "\n").utf8)) }
        try stdin.fileHandleForWriting.close()
        let text = String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        _ = try await Processes.waitForExit(process, within: .seconds(30))
        return (text, process.terminationStatus)
    }

    /// Starts an auth gateway signing with the tests' current key; its log goes next to the workers'.
    static func gateway(
        _ system: TestSystem, trustedProxies: String?, port: Int, arguments: [String] = []
    ) throws -> (Process, URL) {
        let log = system.logDirectory.appendingPathComponent("auth-gateway-\(port).log")
        _ = FileManager.default.createFile(atPath: log.path, contents: nil)
        let process = Process()
        process.executableURL = try Processes.builtExecutable("auth-gateway")
        process.arguments = ["--max-failures-per-id", "3", "--lockout-seconds", "60"] + arguments
        var environment = [
            "MATOMETE_DATABASE_URL": system.database.configuration.url,
            "MATOMETE_HTTP_ADDRESS": "127.0.0.1:\(port)",
            "MATOMETE_SIGNING_KEY": TestKeys.currentPrivateKey, "MATOMETE_SIGNING_KEY_ID": TestKeys.current.keyID,
            "MATOMETE_LOG_LEVEL": "debug",
        ]
        if let trustedProxies { environment["MATOMETE_TRUSTED_PROXIES"] = trustedProxies }
        process.environment = environment
        process.standardError = try FileHandle(forWritingTo: log)
        process.standardOutput = FileHandle.nullDevice
        try process.run()
        ChildProcesses.register(process)
        return (process, log)
    }

    static func waitUntilServing(port: Int) async throws {
        for _ in 0..<100 {
            if (try? await HTTP.get(port: port, path: "/healthz"))?.status == 200 { return }
            try await Task.sleep(for: .milliseconds(100))
        }
        throw TestFailure("the gateway on port \(port) did not become ready")
    }

    @Test("Purchase authentication: right password from the right line buys; anything else is refused")
    func purchaseAuthentication() async throws {
        let system = try await TestSystem.start("gateway")
        defer { Task { await system.shutDown() } }
        let lines = [
            Line(id: LineID(rawValue: "L0000000"), type: .hikariNext),
            Line(id: LineID(rawValue: "L0000001"), type: .hikariNext),
            Line(id: LineID(rawValue: "L0000002"), type: .adsl),
        ]
        try await system.setUp(
            merchants: [Merchant(id: MerchantID(rawValue: "m-shop"), name: "Shop")], lines: lines,
            openCycle: .september)
        // The line system's addresses, and credentials issued with the command-line tool.
        let addresses = FileManager.default.temporaryDirectory.appendingPathComponent("addresses-\(UUID()).csv")
        try "line_id,prefixes\nL0000000,10.0.0.0/24\nL0000001,10.0.1.0/24,2001:db8:1::/48\nL0000002,10.0.2.0/24\n"
            .write(to: addresses, atomically: true, encoding: .utf8)
        #expect(try await Self.matomete(system, ["addresses", "import", addresses.path]).1 == 0)
        // Refused whole, naming the row or line: too wide, overlapping another line, unknown line, malformed.
        for (csv, why) in [
            ("L0000002,0.0.0.0/0\n", "wider than a line may hold"),
            ("L0000002,10.0.0.128/25\n", "overlaps 10.0.0.0/24 of line L0000000"),
            ("L9999999,10.9.0.0/24\n", "no such line: L9999999"),
            ("L0000002,10.0.2.0/24\nL0000002,10.0.3.0/24\n", "listed twice"),
            ("L0000002,10.0.2.300\n", "row 1: 10.0.2.300 is not an IPv4 or IPv6 address"),
        ] {
            try csv.write(to: addresses, atomically: true, encoding: .utf8)
            let (output, status) = try await Self.matomete(system, ["addresses", "import", addresses.path])
            #expect(status == 65 && output.contains(why), "\(csv): \(output)")
        }
        let passwords = ["P-0": "first secret 1", "P-1": "second secret 2", "P-gone": "third secret 3"]
        for (id, line) in [("P-0", "L0000000"), ("P-1", "L0000001"), ("P-gone", "L0000000")] {
            let (output, status) = try await Self.matomete(
                system, ["credentials", "issue", "--line", line, "--purchase-id", id, "--password-stdin"],
                input: passwords[id])
            #expect(status == 0, "\(output)")
        }
        #expect(try await Self.matomete(system, ["credentials", "revoke", "--purchase-id", "P-gone"]).1 == 0)
        #expect(try await Self.matomete(system, ["credentials", "revoke", "--purchase-id", "P-none"]).1 == 1)

        let port = try EmbeddedPostgres.freePort()
        let (gateway, gatewayLog) = try Self.gateway(system, trustedProxies: "127.0.0.1/32", port: port)
        defer { gateway.terminate() }
        try system.launch(.charges)
        try system.launch(.relay)
        try await Self.waitUntilServing(port: port)

        func authorize(
            _ id: String, _ password: String, from address: String, amount: Int = 500, reference: String
        )
            async throws -> ([String: String], Int)
        {
            try await HTTP.post(
                port: port, path: "/v1/authorizations",
                json: [
                    "purchaseId": id, "password": password, "merchantId": "m-shop", "kind": "charge", "amount": amount,
                    "reference": reference,
                ],
                headers: ["X-Forwarded-For": address])
        }

        // The right password from the right line: a charge accepted end to end.
        let (granted, grantedStatus) = try await authorize(
            "P-0", passwords["P-0"]!, from: "10.0.0.7", reference: "c-ok")
        #expect(grantedStatus == 201)
        let token = try #require(granted["authorization"])
        #expect(granted["lineId"] == "L0000000")
        // When it expires, as RFC 3339 like every time in the contract: about five minutes from now.
        let expiresAt = try #require(granted["expiresAt"])
        #expect(RFC3339.isDateTime(expiresAt))
        let expiry = try Date(expiresAt, strategy: .iso8601)
        #expect(abs(expiry.timeIntervalSinceNow - 300) < 30)
        let reports = try await system.produce(
            system.topics.charges, [Requests.charge("m-shop", "c-ok", line: "L0000000", 500, authorization: token)])
        // From IPv6 too, for the line that holds that prefix.
        #expect(try await authorize("P-1", passwords["P-1"]!, from: "2001:db8:1::42", reference: "c-v6").1 == 201)
        // The line's user stopped carrier billing at the support desk: authenticated, then refused with the stop's
        // code; allowed again, authorized again.
        func stop(_ block: Bool) async throws {
            try await system.database.withStore { store in
                try await store.apply(
                    .blockBilling(block), line: "L0000001",
                    recordedAs: AuditEntry(
                        site: .support, merchantID: nil, staffLogin: "agent@desk.example",
                        action: block ? "block" : "unblock", subject: "L0000001", detail: "reason: test"))
            }
        }
        try await stop(true)
        #expect(
            try await authorize("P-1", passwords["P-1"]!, from: "2001:db8:1::42", reference: "c-v6-stop") == (
                ["error": "line_billing_blocked"], 403
            ))
        try await stop(false)
        #expect(
            try await authorize("P-1", passwords["P-1"]!, from: "2001:db8:1::42", reference: "c-v6-again").1 == 201)

        // Right password, another line: refused, without saying why.
        let (otherLine, otherStatus) = try await authorize("P-0", passwords["P-0"]!, from: "10.0.1.9", reference: "c-2")
        #expect(otherStatus == 403)
        #expect(otherLine["error"] == "authentication_failed")
        // A revoked ID and an unknown one: the same answer.
        #expect(
            try await authorize("P-gone", passwords["P-gone"]!, from: "10.0.0.7", reference: "c-3").0["error"]
                == "authentication_failed")
        #expect(try await authorize("P-unknown", "whatever", from: "10.0.0.7", reference: "c-4").1 == 403)
        // A purchase ID no id can be (a NUL, a tab): invalid, answered before the database is asked.
        #expect(
            try await authorize("P\u{0}0", "whatever", from: "10.0.0.7", reference: "c-4") == (
                ["error": "invalid_request"], 400
            ))
        #expect(try await authorize("P\t0", "whatever", from: "10.0.0.7", reference: "c-4").1 == 400)
        // Only JSON: a form post or plain text, which any web page can make a browser send, is refused unread.
        for contentType in ["application/x-www-form-urlencoded", "text/plain", "multipart/form-data; boundary=x"] {
            var form = URLRequest(url: try #require(URL(string: "http://127.0.0.1:\(port)/v1/authorizations")))
            form.httpMethod = "POST"
            form.setValue(contentType, forHTTPHeaderField: "Content-Type")
            form.setValue("10.0.0.7", forHTTPHeaderField: "X-Forwarded-For")
            form.httpBody = Data(
                #"{"purchaseId":"P-0","password":"x","merchantId":"m-shop","kind":"charge","amount":500,"reference":"c-f"}"#
                    .utf8)
            let (data, response) = try await URLSession.shared.data(for: form)
            #expect((response as? HTTPURLResponse)?.statusCode == 415, "\(contentType)")
            #expect(String(decoding: data, as: UTF8.self) == #"{"error":"unsupported_media_type"}"#)
        }
        // JSON that readers could read differently: a key twice, an amount as 5e2, UTF-16, a BOM. Refused unread.
        let strictCases: [Data] = [
            Data(
                #"{"purchaseId":"P-0","password":"x","merchantId":"m-shop","kind":"charge","amount":500,"amount":1,"reference":"c-j"}"#
                    .utf8),
            Data(
                #"{"purchaseId":"P-0","password":"x","merchantId":"m-shop","kind":"charge","amount":5e2,"reference":"c-j"}"#
                    .utf8),
            Data([0xEF, 0xBB, 0xBF])
                + Data(
                    #"{"purchaseId":"P-0","password":"x","merchantId":"m-shop","kind":"charge","amount":500,"reference":"c-j"}"#
                        .utf8),
            #"{"purchaseId":"P-0","password":"x","merchantId":"m-shop","kind":"charge","amount":500,"reference":"c-j"}"#
                .data(using: .utf16LittleEndian)!,
        ]
        for body in strictCases {
            var raw = URLRequest(url: try #require(URL(string: "http://127.0.0.1:\(port)/v1/authorizations")))
            raw.httpMethod = "POST"
            raw.setValue("application/json", forHTTPHeaderField: "Content-Type")
            raw.setValue("10.0.0.7", forHTTPHeaderField: "X-Forwarded-For")
            raw.httpBody = body
            let (data, response) = try await URLSession.shared.data(for: raw)
            #expect((response as? HTTPURLResponse)?.statusCode == 400)
            #expect(String(decoding: data, as: UTF8.self) == #"{"error":"invalid_request"}"#)
        }
        // The right line but an ineligible one (ADSL without Flets.net) cannot buy: no such credential anyway.
        // Wrong passwords lock the ID after three; then even the right one is refused.
        for attempt in 0..<2 {
            #expect(try await authorize("P-1", "wrong \(attempt)", from: "10.0.1.9", reference: "c-5").1 == 403)
        }
        let (lockedAnswer, lockedStatus) = try await authorize("P-1", "wrong 2", from: "10.0.1.9", reference: "c-5")
        #expect(lockedStatus == 429)
        #expect(lockedAnswer["error"] == "locked")
        #expect(try await authorize("P-1", passwords["P-1"]!, from: "10.0.1.9", reference: "c-6").1 == 429)
        // Support lifts the lock: the right password works again; a second unlock has nothing to clear.
        #expect(try await Self.matomete(system, ["credentials", "unlock", "--purchase-id", "P-1"]).1 == 0)
        #expect(try await authorize("P-1", passwords["P-1"]!, from: "10.0.1.9", reference: "c-u").1 == 201)
        #expect(try await Self.matomete(system, ["credentials", "unlock", "--purchase-id", "P-1"]).1 == 1)
        for attempt in 0..<3 {
            _ = try await authorize("P-1", "wrong again \(attempt)", from: "10.0.1.9", reference: "c-5")
        }
        // The user changes the password (which also lifts the lock): the new one works, the old one not.
        let changed = try await Self.matomete(
            system, ["credentials", "change-password", "--purchase-id", "P-1"], input: "a new secret 4")
        #expect(changed.1 == 0, "\(changed.0)")
        #expect(try await authorize("P-1", passwords["P-1"]!, from: "10.0.1.9", reference: "c-6").1 == 403)
        #expect(try await authorize("P-1", "a new secret 4", from: "10.0.1.9", reference: "c-6").1 == 201)
        let metrics = try await HTTP.get(port: port, path: "/metrics").body
        #expect(metrics.contains("matomete_authorization_lockouts_total 2"), "locked, unlocked, locked again")
        #expect(metrics.contains(#"matomete_authorizations_total{outcome="locked"}"#))

        // From an address no line holds: refused before any password work, counted against nothing,
        // however many times; the ID's owner is not locked out by it.
        for attempt in 0..<5 {
            #expect(try await authorize("P-0", "guess \(attempt)", from: "10.9.9.9", reference: "c-8").1 == 403)
        }
        #expect(try await authorize("P-0", passwords["P-0"]!, from: "10.0.0.7", reference: "c-9").1 == 201)
        // From another line: an ID that exists and one that does not lock alike, on the third failure,
        // for that line only. The owner, on their own line, still buys.
        for id in ["P-0", "P-nobody"] {
            var answers: [Int] = []
            for attempt in 0..<4 {
                answers.append(try await authorize(id, "guess \(attempt)", from: "10.0.2.5", reference: "c-10").1)
            }
            #expect(answers == [403, 403, 429, 429], "\(id)")
        }
        #expect(try await authorize("P-0", passwords["P-0"]!, from: "10.0.0.7", reference: "c-11").1 == 201)
        let lockouts = try await system.database.withStore { store in
            try await store.lockouts(purchaseID: "P-0")
        }
        // Counted for the lines the attempts came from (one earlier from line 1), none for the address of no line.
        #expect(lockouts.map(\.lineID) == ["L0000001", "L0000002"])

        // A gateway that trusts no proxy ignores the header: the request comes
        // from 127.0.0.1, which no line holds, whatever the header claims.
        let plainPort = try EmbeddedPostgres.freePort()
        let (plain, plainLog) = try Self.gateway(system, trustedProxies: nil, port: plainPort)
        defer { plain.terminate() }
        try await Self.waitUntilServing(port: plainPort)
        let (_, spoofed) = try await HTTP.post(
            port: plainPort, path: "/v1/authorizations",
            json: [
                "purchaseId": "P-0", "password": passwords["P-0"]!, "merchantId": "m-shop", "kind": "charge",
                "amount": 500, "reference": "c-7",
            ],
            headers: ["X-Forwarded-For": "10.0.0.7"])
        #expect(spoofed == 403)

        try await system.waitUntilIdle()
        let outputs = try await system.outputs()
        let report = try #require(reports.first)
        let result = outputs.results[
            "result-\(report.topicPartition.topic)-\(report.topicPartition.partition)-\(report.offset)"]
        #expect(result?.status == "accepted")

        // No password, password hash or authorization in any log line.
        gateway.terminate()
        plain.terminate()
        _ = try await Processes.waitForExit(gateway, within: .seconds(10))
        #expect(gateway.terminationStatus == 0)
        let hashes = try await system.database.withClient { client in
            try await client.fetch(
                "SELECT encode(password_hash, 'hex'), encode(password_hash, 'base64') FROM purchase_credentials",
                (String, String).self, logger: TestSystem.logger)
        }
        var logs = [gatewayLog, plainLog].compactMap { try? String(contentsOf: $0, encoding: .utf8) }.joined()
        logs += system.logTail(lines: 100_000)
        #expect(logs.contains("Purchase authorized"), "the gateway logs its decisions")
        for secret in Array(passwords.values) + ["a new secret 4", token] + hashes.flatMap({ [$0.0, $0.1] }) {
            #expect(!logs.contains(secret), "a secret appears in the logs")
        }
    }
}
