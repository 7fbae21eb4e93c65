import Authorization
import Billing
import Contract
import Foundation
import Kafka
import MatometeTestSupport
import Store
import Testing

extension ScenarioTests {
    /// An operator's month with the `matomete` tool against running workers:
    /// load lines and merchants, watch status, list and replay a dead letter,
    /// close the month and read the settlements, with the exit codes scripts see.
    @Test("Operator commands: lines, merchants, status, dead letters, cycle close, settlements, exit codes")
    func operatorCommands() async throws {
        let system = try await TestSystem.start("operator")
        defer { Task { await system.shutDown() } }
        let tool = Tool(system: system)
        try system.launch(.charges)
        try system.launch(.cancellations)
        try system.launch(.billingCycles, arguments: ["--allow-early-close"])
        try system.launch(.relay)

        // Lines: a file in two chunks' worth is not needed; one bad row stops the import with 65.
        let csv = system.logDirectory.appendingPathComponent("lines.csv")
        let rows = (0..<40).map { "\(Requests.line($0)),\($0 == 39 ? "adsl,false" : "hikari-next,true")" }
        // As a spreadsheet writes it: CRLF line ends.
        try (["line_id,line_type,flets_net"] + rows).joined(separator: "\r\n").write(
            to: csv, atomically: true, encoding: .utf8)
        let imported = try await tool.run(["lines", "import", csv.path])
        #expect(imported.status == 0, "\(imported)")
        #expect(imported.output.contains("Imported 40 lines"))
        let bad = system.logDirectory.appendingPathComponent("bad.csv")
        try "line_id,line_type\nL9999999,b-flets\nL9999998\n".write(to: bad, atomically: true, encoding: .utf8)
        let refused = try await tool.run(["lines", "import", bad.path])
        #expect(refused.status == 65, "bad input data")
        #expect(refused.errors.contains("CSV line 3"))
        // flets_net is true or false, nothing else.
        try "line_id,line_type,flets_net\nL9999997,adsl,maybe\n".write(to: bad, atomically: true, encoding: .utf8)
        let maybe = try await tool.run(["lines", "import", bad.path])
        #expect(maybe.status == 65 && maybe.errors.contains("CSV line 2: flets_net must be true or false"), "\(maybe)")
        // CSV as RFC 4180 writes it: quotes understood, columns and fields counted, line types the carrier sells.
        for (text, why) in [
            (
                "line_id,line_type\nL9999995,\"b-flets,\"\"x\"\"\"\n",
                "CSV line 2: line_type must be hikari-next, hikari-light, b-flets, adsl, not b-flets,\"x\""
            ),
            ("line_id,line_type\n\"L9999995,b-flets\n", "CSV line 2: a quote is never closed"),
            ("line_id,line_type\nL9999995,b\"flets\n", "CSV line 2: a quote inside a field"),
            ("line_id,line_type,colour\nL9999995,b-flets,red\n", "the CSV header names \"colour\""),
            ("line_id,line_type,line_type\nL9999995,b-flets,adsl\n", "names line_type twice"),
            ("line_id,line_type\nL9999995,b-flets,extra\n", "CSV line 2: 3 fields, but the header names 2"),
            ("line_id,line_type\n\nL9999995,fiber-max\n", "CSV line 3: line_type must be hikari-next"),
        ] {
            try text.write(to: bad, atomically: true, encoding: .utf8)
            let result = try await tool.run(["lines", "import", bad.path])
            #expect(result.status == 65 && result.errors.contains(why), "\(text): \(result)")
        }
        // Purchase IDs: a line that exists, an ID the gateway can take, a password of 8 characters or more.
        for (arguments, input, status, why) in [
            (["--line", "L0000001", "--purchase-id", "P-short"], "short", 64, "8 to 256 bytes"),
            (["--line", "L9999999", "--purchase-id", "P-none"], "long enough 1", 65, "no such line: L9999999"),
            (["--line", "L0000001", "--purchase-id", "P\tT"], "long enough 1", 64, "1 to 64 printable ASCII"),
            (["--line", "L0000001", "--purchase-id", "Ｐ１"], "long enough 1", 64, "1 to 64 printable ASCII"),
        ] {
            let result = try await tool.run(
                ["credentials", "issue", "--password-stdin"] + arguments, input: input)
            #expect(result.status == status && result.errors.contains(why), "\(arguments): \(result)")
        }
        // One line's story, found by the purchase ID issued for it: never its password; each look audited.
        let issued = try await tool.run(
            ["credentials", "issue", "--password-stdin", "--line", Requests.line(1), "--purchase-id", "P-show-1"],
            input: "long enough 1")
        #expect(issued.status == 0, "\(issued)")
        let lineShown = try await tool.run(["lines", "show", "--purchase-id", "P-show-1"])
        #expect(lineShown.status == 0 && lineShown.output.contains("Line \(Requests.line(1))"), "\(lineShown)")
        #expect(lineShown.output.contains("P-show-1") && lineShown.output.contains("hikari-next with Flets.net"))
        #expect(lineShown.output.contains("allowed") && !lineShown.output.contains("long enough 1"))
        let story = try await tool.json(["lines", "show", Requests.line(1), "--json"]) as? [String: Any] ?? [:]
        #expect((story["line"] as? [String: Any])?["lineID"] as? String == Requests.line(1), "\(story)")
        #expect((story["purchaseIDs"] as? [[String: Any]])?.first?["purchaseID"] as? String == "P-show-1")
        #expect(try await tool.run(["lines", "show", "L9999990"]).status == 1)
        #expect(try await tool.run(["lines", "show"]).status == 64)
        #expect(
            try await tool.run(["lines", "show", "--charge", "c-1"]).status == 64, "a charge id needs its merchant")
        let views = try await system.database.withStore {
            try await $0.auditLog(site: .support, merchant: nil, subject: Requests.line(1))
        }
        #expect(views.filter { $0.action == "line_viewed" }.count == 2, "\(views)")
        #expect(
            views.filter { $0.action == "lookup" }.map(\.detail) == ["by purchase-id P-show-1 (matomete lines show)"])
        let missed = try await system.database.withStore {
            try await $0.auditLog(site: .support, merchant: nil, limit: 20)
        }
        #expect(missed.contains { $0.action == "lookup" && $0.subject == nil } == false, "a line id is not a search")
        // New lines start in --cycle: this month by default (nothing closed yet); never a month not begun.
        let thisMonth = BillingCycle(containing: Int64(Date().timeIntervalSince1970))
        let later = try await tool.run(["lines", "import", "--cycle", thisMonth.next.description, csv.path])
        #expect(later.status == 65 && later.errors.contains("has not begun"), "\(later)")

        // The default spending limit: shown, set (0 for none), shown again.
        let limit = try await tool.run(["lines", "default-limit"])
        #expect(limit.status == 0 && limit.output.contains("¥50,000"), "\(limit)")
        #expect(try await tool.run(["lines", "default-limit", "60000"]).output.contains("set: ¥60,000"))
        let negative = try await tool.run(["lines", "default-limit", "--", "-5"])
        #expect(negative.status == 64 && negative.errors.contains("0 (none) or more yen"), "\(negative)")
        #expect(try await tool.run(["lines", "default-limit"]).output.contains("¥60,000"))

        // Merchants: one on the launch tariff, one with its own; a taken id is exit 1.
        #expect(try await tool.run(["merchants", "add", "--id", "m-shop", "--name", "Points Shop"]).status == 0)
        let custom = try await tool.run([
            "merchants", "add", "--id", "m-video", "--name", "Video", "--rate-percent", "4.5", "--per-line-fee", "30",
        ])
        #expect(custom.status == 0, "\(custom)")
        #expect(try await tool.run(["merchants", "add", "--id", "m-shop", "--name", "Again"]).status == 1)
        // A name is printed on settlements: 1 to 100 characters, no control characters.
        for name in ["Tab\there", String(repeating: "x", count: 101), "   "] {
            let result = try await tool.run(["merchants", "add", "--id", "m-named", "--name", name])
            #expect(result.status == 64 && result.errors.contains("1 to 100 characters"), "\(result)")
        }
        #expect(
            try await tool.run(["merchants", "update", "--id", "m-shop", "--name", "Line\nbreak"]).status == 64)
        #expect(
            try await tool.run(["merchants", "add", "--id", "m-x", "--name", "X", "--rate-percent", "5.555"]).status
                == 64)
        #expect(try await tool.run(["merchants", "add", "--id", "m-game", "--name", "Game"]).status == 0)
        let dotted = try await tool.run(["merchants", "add", "--id", "m-a.x", "--name", "Dotted"])
        #expect(dotted.status == 64 && dotted.errors.contains("letters, digits"), "\(dotted)")
        #expect(try await tool.run(["merchants", "update", "--id", "m-game", "--status", "suspended"]).status == 0)

        // Message-signing keys: created with a secret shown once and kept sealed; two valid at once; revoked.
        let encryption = ["MATOMETE_KEY_ENCRYPTION_KEY": TestKeys.keyEncryptionKey]
        var secrets: [String: String] = [:]
        for _ in 0..<2 {
            let created = try await tool.run(
                ["merchants", "keys", "create", "--merchant", "m-shop"], environment: encryption)
            #expect(created.status == 0, "\(created)")
            let fields = created.output.split(separator: "\n").map {
                $0.split(separator: " ", omittingEmptySubsequences: true)
            }
            let keyID = try #require(fields.first { $0.first == "key" }?.last.map(String.init))
            let secret = try #require(fields.first { $0.first == "secret" }?[1]).description
            #expect(secret.count == 64)
            secrets[keyID] = secret
        }
        let third = try await tool.run(
            ["merchants", "keys", "create", "--merchant", "m-shop"], environment: encryption)
        #expect(third.status == 65 && third.errors.contains("already holds 2 valid keys"), "\(third)")
        let unknown = try await tool.run(
            ["merchants", "keys", "create", "--merchant", "m-none"], environment: encryption)
        #expect(unknown.status == 65 && unknown.errors.contains("no such merchant: m-none"), "\(unknown)")
        let noKEK = try await tool.run(["merchants", "keys", "create", "--merchant", "m-video"])
        #expect(noKEK.status == 64 && noKEK.errors.contains("key-encryption key"), "\(noKEK)")
        let stored = try await system.database.withClient { client in
            try await client.query(
                "SELECT encode(sealed_secret, 'hex') FROM message_signing_keys", logger: TestSystem.logger
            ).collect().map { try $0.decode(String.self) }
        }
        #expect(stored.count == 2)
        for secret in secrets.values {
            #expect(!stored.contains { $0.contains(secret) }, "a secret is stored in the clear")
        }
        let revokedKey = try #require(secrets.keys.sorted().first)
        #expect(
            try await tool.run(["merchants", "keys", "revoke", "--merchant", "m-shop", "--key-id", revokedKey]).status
                == 0)
        #expect(
            try await tool.run(["merchants", "keys", "revoke", "--merchant", "m-shop", "--key-id", revokedKey]).status
                == 1)
        #expect(
            try await tool.run([
                "merchants", "keys", "revoke", "--merchant", "m-video", "--key-id", secrets.keys.sorted().last!,
            ]).status == 1)
        let keyList =
            try await tool.json(["merchants", "keys", "list", "m-shop", "--json"]) as? [[String: Any]]
            ?? []
        #expect(keyList.count == 2)
        #expect(keyList.filter { $0["valid"] as? Bool == true }.count == 1)
        #expect(try await tool.run(["merchants", "keys", "list", "m-shop", "--merchant", "m-video"]).status == 64)
        // Staff of the merchants' site: added, disabled, enabled, unlocked, given a new password; each in the
        // merchant's audit log, as are the key changes above.
        let staffAdded = try await tool.run(
            ["merchants", "staff", "add", "m-shop", "--login", "Boss@Shop.example", "--role", "admin"])
        #expect(staffAdded.status == 0 && staffAdded.output.contains("boss@shop.example"), "\(staffAdded)")
        for command in ["disable", "enable", "unlock"] {
            let changed = try await tool.run(
                ["merchants", "staff", command, "m-shop", "--login", "boss@shop.example"])
            #expect(changed.status == 0, "\(command): \(changed)")
        }
        let reset = try await tool.run(
            ["merchants", "staff", "reset-password", "m-shop", "--login", "boss@shop.example"])
        #expect(reset.status == 0 && reset.output.contains("(shown once)"), "\(reset)")
        let elsewhere = try await tool.run(
            ["merchants", "staff", "disable", "m-video", "--login", "boss@shop.example"])
        #expect(elsewhere.status == 1 && elsewhere.errors.contains("No account boss@shop.example"), "\(elsewhere)")
        let audited = try await system.database.withStore {
            try await $0.auditLog(site: .merchant, merchant: MerchantID(rawValue: "m-shop"), limit: 50)
        }
        #expect(
            Set(audited.map(\.action)).isSuperset(of: [
                "staff_added", "staff_disabled", "staff_enabled", "staff_unlocked", "staff_password_reset",
                "key_created", "key_revoked",
            ]), "\(audited.map(\.action))")
        #expect(audited.allSatisfy { $0.staffLogin.hasPrefix("operator ") })
        let lineSystem = try await tool.run(["line-system", "keys", "create"], environment: encryption)
        #expect(lineSystem.status == 0 && lineSystem.output.contains("lk-"), "\(lineSystem)")
        #expect(try await tool.run(["merchants", "update", "--id", "m-none", "--status", "suspended"]).status == 1)
        let listed = try await tool.json(["merchants", "list", "--json"]) as? [[String: Any]] ?? []
        let video = listed.first { $0["id"] as? String == "m-video" }
        #expect(video?["rateBasisPoints"] as? Int == 450 && video?["perLineFeeTenths"] as? Int == 300)
        #expect(listed.first { $0["id"] as? String == "m-game" }?["status"] as? String == "suspended")

        // Tariff files: a banded schedule with tax added, checked whole before anything changes.
        let files = FileManager.default.temporaryDirectory.appendingPathComponent("tariffs-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: files, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: files) }
        func tariffFile(_ name: String, _ text: String) throws -> String {
            let url = files.appendingPathComponent(name)
            try text.write(to: url, atomically: true, encoding: .utf8)
            return url.path
        }
        let banded = try tariffFile(
            "banded.json",
            #"{"tariffs":[{"merchant":"m-game","from":"2030-01","tax":"added","bands":[{"from":0,"perLine":"25"},{"from":901,"perLine":"45.5"},{"from":1501,"percent":"3"}]}]}"#
        )
        let applied = try await tool.run(["merchants", "tariffs", banded])
        #expect(applied.status == 0 && applied.output.contains("¥45.5 a line from ¥901"), "\(applied)")
        let badBand = try tariffFile(
            "bad.json",
            #"{"tariffs":[{"merchant":"m-game","from":"2031-01","tax":"added","bands":[{"from":0,"perLine":"25"},{"from":0,"percent":"3"}]}]}"#
        )
        let badFile = try await tool.run(["merchants", "tariffs", badBand])
        #expect(badFile.status == 65 && badFile.errors.contains("band 2 (from ¥0) does not start above band 1"))
        let noOne = try tariffFile(
            "nobody.json",
            #"{"tariffs":[{"merchant":"m-nobody","from":"2031-01","tax":"added","bands":[{"from":0,"percent":"3"}]}]}"#)
        #expect(try await tool.run(["merchants", "tariffs", noOne]).status == 1)
        let shown = try await tool.json(["merchants", "show", "m-game", "--json"]) as? [String: Any] ?? [:]
        let schedules = shown["schedules"] as? [[String: Any]] ?? []
        // The launch tariff before anything, the one `merchants add` gave this month, then the file's.
        #expect(
            schedules.compactMap { $0["from"] as? String }
                == [BillingCycle(containing: Int64(Date().timeIntervalSince1970)).description, "2030-01"], "\(shown)")
        #expect(
            (schedules.last?["description"] as? String)
                == "¥25 a line from ¥0, ¥45.5 a line from ¥901, 3% of gross from ¥1501; tax added")
        #expect(try await tool.run(["merchants", "show", "m-nobody"]).status == 1)
        // A banded tariff is not changed part by part: its bands and tax would be lost.
        let partly = try await tool.run([
            "merchants", "update", "--id", "m-game", "--rate-percent", "4", "--from", "2030-02",
        ])
        #expect(partly.status == 64 && partly.errors.contains("matomete merchants tariffs FILE"), "\(partly)")
        #expect(
            try await tool.run(["merchants", "update", "--id", "m-game", "--per-line-fee", "1000000.1"]).status == 64)

        // m-shop signs with the key the tool made and did not revoke; the others with keys of the test's.
        let shopKey = try #require(secrets.keys.sorted().last)
        system.useSigningKey(
            RequestSigner(keyID: shopKey, secret: try #require(MessageSignature.bytes(hex: secrets[shopKey]!))),
            for: .merchant("m-shop"))
        try await system.addSigningKeys(for: [.merchant("m-video"), .merchant("m-game"), .lineSystem])

        // Traffic: accepted charges, one refused (suspended merchant) and one unreadable message.
        var charges = (0..<30).map {
            Requests.charge($0 % 2 == 0 ? "m-shop" : "m-video", "c-\($0)", line: Requests.line($0), 400)
        }
        charges.append(Requests.charge("m-game", "c-game", line: Requests.line(1), 100))
        try await system.produce(system.topics.charges, charges)
        let poison = try await system.produce(system.topics.charges, [(Requests.line(2), "{not json")])[0]
        try await system.waitUntilIdle()

        let status = try await tool.json(["status", "--json"]) as? [String: Any] ?? [:]
        let lag = status["lag"] as? [[String: Any]] ?? []
        #expect(!lag.isEmpty && lag.allSatisfy { $0["lag"] as? Int == 0 }, "every group has applied everything")
        #expect(lag.contains { $0["group"] as? String == "matomete-charge-worker" && $0["appliedUpTo"] != nil })
        #expect(status["deadLetters"] as? Int == 1)
        #expect((status["outbox"] as? [Any])?.isEmpty == true)
        let readable = try await tool.run(["status", "--partitions"])
        #expect(readable.status == 0 && readable.output.contains("Dead letters: 1 on matomete.dead-letters"))

        // Dead letters: listed with the original bytes, replayed to where they came from.
        let letters = try await tool.json(["dead-letters", "list", "--json"]) as? [[String: Any]] ?? []
        let letterID = "dead-letter-\(system.topics.charges)-\(poison.topicPartition.partition)-\(poison.offset)"
        #expect(letters.count == 1, "\(letters.map { $0["reason"] ?? $0 })")
        #expect(letters.first?["id"] as? String == letterID)
        #expect(letters.first?["value"] as? String == "{not json")
        #expect(letters.first?["key"] as? String == Requests.line(2))
        #expect(try await tool.run(["dead-letters", "replay", "--id", "dead-letter-nowhere-0-0"]).status == 1)
        #expect(try await tool.run(["dead-letters", "replay", "--all", "--id", letterID]).status == 64)
        // Forged dead letters: one naming an output topic, one whose id does not match its headers, one a close.
        func forged(_ id: String, source: String, offset: Int64 = 7) -> KafkaProducerMessage {
            KafkaProducerMessage(
                topic: system.topics.deadLetters, key: "L0000001",
                value: #"{"id":"bill-L0000001-2026-11","total":-99999}"#,
                headers: [
                    KafkaHeader(name: "id", text: id), KafkaHeader(name: DeadLetterHeaders.sourceTopic, text: source),
                    KafkaHeader(name: DeadLetterHeaders.sourcePartition, text: "0"),
                    KafkaHeader(name: DeadLetterHeaders.sourceOffset, text: "\(offset)"),
                    KafkaHeader(name: DeadLetterHeaders.error, text: "forged"),
                ])
        }
        try await system.send([
            forged("dead-letter-\(system.topics.lineBills)-0-7", source: system.topics.lineBills),
            forged("dead-letter-\(system.topics.charges)-0-8", source: system.topics.charges),
            forged("dead-letter-\(system.topics.billingCycles)-0-7", source: system.topics.billingCycles),
        ])
        for (id, why) in [
            ("dead-letter-\(system.topics.lineBills)-0-7", "takes no replays"),
            ("dead-letter-\(system.topics.charges)-0-8", "does not match"),
            ("dead-letter-\(system.topics.billingCycles)-0-7", "without --allow-billing-cycles"),
        ] {
            for dry in [false, true] {
                let refusedReplay = try await tool.run(
                    ["dead-letters", "replay", "--id", id] + (dry ? ["--dry-run"] : []))
                #expect(refusedReplay.status == 1 && refusedReplay.errors.contains(why), "\(refusedReplay)")
            }
        }
        let closeReplay = try await tool.run([
            "dead-letters", "replay", "--id", "dead-letter-\(system.topics.billingCycles)-0-7",
            "--allow-billing-cycles",
            "--dry-run",
        ])
        #expect(closeReplay.status == 0 && closeReplay.output.contains(system.topics.billingCycles), "\(closeReplay)")
        let replayed = try await tool.run(["dead-letters", "replay", "--id", letterID])
        #expect(replayed.status == 0, "\(replayed)")
        try await system.waitUntilIdle()
        let again = (try await tool.json(["dead-letters", "list", "--json"]) as? [[String: Any]] ?? []).filter {
            $0["reason"] as? String != "forged"
        }
        #expect(again.count == 2, "still unreadable: dead-lettered again, from its new offset")
        #expect(again.last?["value"] as? String == "{not json" && again.last?["id"] as? String != letterID)

        // The close: refused without --early while the month runs, then followed to its settlements.
        let cycle = BillingCycle(containing: Int64(Date().timeIntervalSince1970))
        #expect(try await tool.run(["cycle", "close", cycle.description]).status == 64)
        #expect(try await tool.run(["cycle", "close", cycle.next.description, "--early"]).status == 64)
        let closed = try await tool.run(["cycle", "close", cycle.description, "--early", "--wait", "--timeout", "120"])
        #expect(closed.status == 0, "\(closed)")
        try await system.waitUntilIdle()
        let outputs = try await system.outputs()
        let published = outputs.settlements(of: cycle)
        #expect(published.count == 2, "the suspended merchant charged nothing")
        let settled = try await tool.json(["settlements", cycle.description, "--json"]) as? [[String: Any]] ?? []
        for row in settled {
            let merchant = row["merchantId"] as? String ?? ""
            #expect(row["grossAmount"] as? Int == published[merchant].map { Int($0.grossAmount) })
            #expect(row["fee"] as? Int == published[merchant].map { Int($0.fee) })
        }
        // 15 charges of ¥400 each: 15 lines at ¥400 is below ¥600 a line, so the per-line fee.
        #expect(published["m-shop"]?.grossAmount == 6_000 && published["m-shop"]?.fee == 472)
        #expect(published["m-video"]?.grossAmount == 6_000 && published["m-video"]?.fee == 450)
        let total = published.values.reduce(0) { $0 + $1.grossAmount }
        #expect(closed.output.contains(total.formatted()), "the table --wait prints has the total gross")
        #expect(outputs.bills(of: cycle).count == 40)
        #expect(outputs.bills(of: cycle).values.reduce(0) { $0 + $1.total } == total)
        let after = try await tool.json(["status", "--json"]) as? [String: Any] ?? [:]
        let close = (after["closes"] as? [[String: Any]])?.first
        #expect(close?["status"] as? String == "closed" && close?["linesClosed"] as? Int == 40)
        #expect(try await tool.run(["settlements", cycle.next.description]).status == 1, "not closed")
        // This month is closed now: new lines can start next month at the earliest.
        let closedAlready = try await tool.run(["lines", "import", "--cycle", cycle.description, csv.path])
        #expect(closedAlready.status == 65 && closedAlready.errors.contains("closed already"), "\(closedAlready)")

        // A reader that has gone (`matomete status | head -1`): a quiet end with 141, as for SIGPIPE, not a crash.
        let reader = try tool.process(["status"])
        let gone = Pipe()
        reader.standardOutput = gone
        reader.standardError = FileHandle.nullDevice
        try gone.fileHandleForReading.close()
        try reader.run()
        #expect(try await Processes.waitForExit(reader, within: .seconds(60)))
        #expect(reader.terminationReason == .exit && reader.terminationStatus == 141)

        // A key pair written to a file is its owner's alone, and never over an existing file.
        let keys = system.logDirectory.appendingPathComponent("keys-\(UUID().uuidString.prefix(8)).env")
        let generated = try await tool.run(["keys", "generate", "--output", keys.path])
        #expect(generated.status == 0, "\(generated)")
        let keyMode = try FileManager.default.attributesOfItem(atPath: keys.path)[.posixPermissions] as? Int
        #expect(keyMode == 0o600)
        let generatedKeys = try String(contentsOf: keys, encoding: .utf8)
        #expect(
            generatedKeys.contains("MATOMETE_SIGNING_KEY=") && generatedKeys.contains("MATOMETE_KEY_ENCRYPTION_KEY="))
        #expect(try await tool.run(["keys", "generate", "--output", keys.path]).status == 1)

        // PostgreSQL not reachable: 69, so a script can tell it from a refusal.
        let unreachable = try await tool.run(
            ["merchants", "list"], environment: ["MATOMETE_DATABASE_URL": "postgres://nobody@127.0.0.1:1/none"])
        #expect(unreachable.status == 69, "\(unreachable)")
    }
}

/// Runs `matomete` against a test system, as an operator's script would.
struct Tool {
    let system: TestSystem

    struct Result: CustomStringConvertible {
        var status: Int32
        var output: String
        var errors: String
        var description: String { "exit \(status)\n\(output)\n\(errors)" }
    }

    /// `matomete` with `arguments`, set up for the test system, not started.
    func process(_ arguments: [String], environment extra: [String: String] = [:]) throws -> Process {
        let process = Process()
        process.executableURL = try Processes.builtExecutable("matomete")
        process.arguments = arguments
        var environment = ProcessInfo.processInfo.environment
        environment["MATOMETE_BOOTSTRAP_SERVERS"] = system.cluster.bootstrapServers
        environment["MATOMETE_DATABASE_URL"] = system.database.configuration.url
        environment.merge(extra) { $1 }
        process.environment = environment
        return process
    }

    func run(
        _ arguments: [String], environment extra: [String: String] = [:], input: String? = nil
    ) async throws -> Result {
        let process = try process(arguments, environment: extra)
        let output = Pipe()
        let stdin = Pipe()
        process.standardInput = stdin
        // Standard error to a file: reading two pipes one after the other could block on the second.
        let errors = system.logDirectory.appendingPathComponent("matomete-\(UUID().uuidString.prefix(8)).err")
        _ = FileManager.default.createFile(atPath: errors.path, contents: nil)
        process.standardOutput = output
        process.standardError = try FileHandle(forWritingTo: errors)
        try process.run()
        if let input { stdin.fileHandleForWriting.write(Data((input + "\n").utf8)) }
        try stdin.fileHandleForWriting.close()
        let text = String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        guard try await Processes.waitForExit(process, within: .seconds(180)) else {
            throw TestFailure("matomete \(arguments.joined(separator: " ")) did not exit")
        }
        return Result(
            status: process.terminationStatus, output: text,
            errors: (try? String(contentsOf: errors, encoding: .utf8)) ?? "")
    }

    /// Runs a `--json` command that must succeed and parses what it prints.
    func json(_ arguments: [String]) async throws -> Any {
        let result = try await run(arguments)
        #expect(result.status == 0, "\(arguments.joined(separator: " ")): \(result)")
        return try JSONSerialization.jsonObject(with: Data(result.output.utf8))
    }
}
