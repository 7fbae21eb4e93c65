import Contract
import Foundation
import MatometeTestSupport
import Synchronization
import Testing

/// A merchant's admin walks the merchant site in a real browser (headless chromium over WebDriver): logs in,
/// searches a purchase, opens its history, cancels it and sees the worker's answer, downloads the month's statement and checks it against the
/// settlement on the topic, changes the language, logs out. Screenshots of the pages are kept in
/// `.build/test-artifacts/merchant-site/` when a step fails.
enum MerchantSiteWalk {
    /// The site's address and the demo login, as `matomete demo` prints them.
    struct Site {
        var address: String
        var login: String
        var password: String
        /// The port in ``address``.
        var port: Int { Int(address.split(separator: ":").last ?? "") ?? 0 }

        init?(demoOutput: String) {
            guard let line = demoOutput.split(separator: "\n").first(where: { $0.hasPrefix("Merchant site: ") }) else {
                return nil
            }
            let words = line.split(separator: " ").map(String.init)
            guard words.count > 8, let address = words.first(where: { $0.hasPrefix("http://") }),
                let loginIndex = words.firstIndex(of: "as"), let passwordIndex = words.firstIndex(of: "password")
            else { return nil }
            self.address = address.hasSuffix("/") ? String(address.dropLast()) : address
            login = words[loginIndex + 1].trimmingCharacters(in: CharacterSet(charactersIn: ","))
            password = words[passwordIndex + 1]
        }
    }

    static func walk(_ site: Site, settlement: SettlementMessage) async throws {
        try await BrowserWalk.run(artifacts: "merchant-site") { browser, check in
            // Logging in.
            try await browser.open(site.address + "/overview")
            check(try await browser.showsURL(endingWith: "/login"), "not logged in: the login page")
            check(try await browser.source().contains("<html lang=\"en\">"), "the browser's language, English")
            try await browser.screenshot("login")
            try await browser.element("#login").type(site.login)
            try await browser.element("#password").type(site.password)
            try await browser.element("#submit").click()
            check(try await browser.showsURL(endingWith: "/overview"), "after login, the overview")
            check(try await browser.element("#who").text().contains("Demo admin"), "who is logged in")
            check(try await browser.element("#chart").attribute("id") == "chart", "the chart")
            try await browser.screenshot("overview")

            // Searching an accepted purchase of the billed month, and opening its history.
            try await browser.open(site.address + "/purchases?from=\(settlement.cycle)-01&status=accepted")
            let first = try await browser.element("a.purchase")
            let id = try await first.text()
            try await browser.element("#search-id").type(id)
            try await browser.element("#search").click()
            // The answer's page, not the one it replaces: its address holds the search.
            check(await browser.becomes { try await browser.currentURL().contains("&id=") }, "the search's answer")
            let found = try await browser.elements("a.purchase")
            check(!found.isEmpty, "the search finds \(id)")
            for link in found { check(try await link.text() == id, "only \(id) is found") }
            try await browser.screenshot("purchases")
            try await found.first?.click()
            check(
                await browser.becomes { try await browser.element("#history").text().contains("Accepted") },
                "its history: accepted")
            check(
                try await browser.element("#bills").text().contains("bill-"), "its history: on which bill")
            try await browser.screenshot("history")

            // Cancelling it, with a reason: sent to the cancellations topic, applied by the line's worker, and
            // shown on the page once stored (the month is closed, so it is refunded as a credit).
            try await browser.element("#cancel-reason").type("The customer asked by phone (browser test)")
            try await browser.element("#cancel-submit").click()
            check(try await browser.showsURL(endingWith: "cancel=sent"), "after the cancellation, its purchase")
            check(try await browser.element("#cancel-sent").text().contains("sent"), "the page says it was sent")
            let historyURL = try await browser.currentURL()
            var answered = false
            for _ in 0..<100 where !answered {
                try await browser.open(historyURL)
                answered = try await browser.element("#history").text().contains("cancellation")
                if !answered { try await Task.sleep(for: .milliseconds(200)) }
            }
            check(answered, "the worker's answer to the cancellation shows in the history")
            let state = try await browser.element("#state").text()
            check(["refunded", "cancelled", "ended"].contains(state), "no longer active: \(state)")
            check((try? await browser.element("#cancel")) == nil, "nothing left to cancel")
            try await browser.screenshot("cancelled")
            try await browser.open(site.address + "/audit")
            let audit = try await browser.element("#audit").text()
            check(audit.contains("The customer asked by phone (browser test)"), "the cancellation is in the audit log")

            // The month's statement: the page, and the CSV against the settlement on the topic.
            try await browser.open(site.address + "/settlements/\(settlement.cycle)")
            let gross = try await browser.element("#statement-gross").text()
            check(gross == yen(settlement.grossAmount), "the page's gross \(gross) is the topic's")
            check(
                try await browser.element("#statement-net").text() == yen(settlement.netAmount),
                "the page's net is the topic's")
            try await browser.screenshot("statement")
            let csvLink = try await browser.element("#statement-csv").attribute("href") ?? ""
            let csvPath = csvLink.hasPrefix(site.address) ? String(csvLink.dropFirst(site.address.count)) : csvLink
            let (status, csv) = try await download(
                port: site.port, path: csvPath, cookie: try await browser.cookieHeader())
            check(status == 200, "the CSV downloads (\(status))")
            let rows = String(decoding: csv, as: UTF8.self).split(separator: "\r\n").dropFirst()
            let amounts = rows.compactMap { $0.split(separator: ",").last.flatMap { Int64($0) } }
            check(amounts.count == rows.count && rows.count == Int(settlement.itemCount), "one row per billed item")
            check(amounts.reduce(0, +) == settlement.grossAmount, "the CSV adds up to the settlement's gross")

            // Japanese, then logging out.
            try await browser.element("#language").click()
            check(
                await browser.becomes { try await browser.source().contains("<html lang=\"ja\">") },
                "switched to Japanese")
            check(try await browser.source().contains("精算明細書"), "the statement's title in Japanese")
            try await browser.screenshot("statement-ja")
            try await browser.element("#logout").click()
            check(try await browser.showsURL(endingWith: "/login"), "logged out: the login page")
            try await browser.open(site.address + "/settlements")
            check(try await browser.showsURL(endingWith: "/login"), "after logout, pages ask for a login")
        }
    }

    /// `¥1,234` as the site writes it.
    static func yen(_ amount: Int64) -> String {
        let formatter = NumberFormatter()
        formatter.numberStyle = .decimal
        formatter.groupingSeparator = ","
        formatter.usesGroupingSeparator = true
        return (amount < 0 ? "-¥" : "¥") + (formatter.string(from: NSNumber(value: amount.magnitude)) ?? "")
    }
}

/// Reads a process's output as it comes.
final class OutputReader: Sendable {
    private let collected = Mutex("")

    init(_ handle: FileHandle) {
        let thread = Thread { [self] in
            while true {
                let data = handle.availableData
                if data.isEmpty { return }
                self.collected.withLock { $0 += String(decoding: data, as: UTF8.self) }
            }
        }
        thread.start()
    }

    /// Everything read so far.
    var text: String { collected.withLock { $0 } }

    /// Waits until the output holds `marker` (true), or `stopped` says it never will, or `limit` passes (false).
    func wait(for marker: String, within limit: Duration, stopped: () -> Bool) async throws -> Bool {
        let deadline = ContinuousClock.now + limit
        while ContinuousClock.now < deadline {
            if text.contains(marker) { return true }
            if stopped() {
                try await Task.sleep(for: .milliseconds(200))
                return text.contains(marker)
            }
            try await Task.sleep(for: .milliseconds(200))
        }
        return false
    }
}

/// A walk through a site in a real browser (headless chromium over WebDriver). A failed check is recorded and the
/// walk goes on; when anything failed, the screenshots taken (and one of the page at the end) are kept in
/// `.build/test-artifacts/<artifacts>/`.
enum BrowserWalk {
    static func run(
        artifacts: String, language: String = "en-US",
        _ body: (Browser, _ check: (Bool, String) -> Void) async throws -> Void,
        sourceLocation: SourceLocation = #_sourceLocation
    ) async throws {
        let browser = try await Browser.start(language: language)
        let failed = Mutex(false)
        func check(_ condition: Bool, _ message: String) {
            if !condition {
                failed.withLock { $0 = true }
                Issue.record(Comment(rawValue: message), sourceLocation: sourceLocation)
            }
        }
        do {
            try await body(browser, check)
        } catch {
            failed.withLock { $0 = true }
            Issue.record(error, sourceLocation: sourceLocation)
        }
        if failed.withLock({ $0 }) {
            try? await browser.screenshot("failed")
            let directory = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
                .deletingLastPathComponent().appendingPathComponent(".build/test-artifacts/\(artifacts)")
            let kept = (try? browser.keepScreenshots(in: directory)) ?? []
            Issue.record(
                Comment(rawValue: "Screenshots: \(kept.joined(separator: ", "))"), sourceLocation: sourceLocation)
        }
        await browser.quit()
    }
}
