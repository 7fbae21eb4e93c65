import ArgumentParser
import Billing
import Foundation
import SiteKit
import Store

/// `matomete lines show`: one line's whole story in a terminal, as the support desk shows it.
struct ShowLine: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "show",
        abstract:
            "One line's whole story: the line, its purchase IDs, every request and its answer, subscriptions, bills.",
        discussion: """
            Name the line, or find it by a purchase ID, a merchant's charge or subscription id, or a bill id. \
            Prints the line (type, eligibility, status, the user's stop of carrier billing, limits and what is \
            spent this month), its purchase IDs (issued, revoked, locked and until when; never a password), \
            the newest 200 requests with their answers, the subscriptions with the months billed, and each \
            bill with its items and what was collected. Times are Japan time. The line's data is personal: \
            each look is recorded in the support desk's audit log (line_viewed, by operator <user>), and a \
            search by anything but the line id as a lookup, found or not. \
            Exits 1 when no line is found, 64 for bad usage.
            """)
    @OptionGroup var database: DatabaseOptions
    @OptionGroup var output: OutputOptions
    @Argument(help: "The line id.") var line: String?
    @Option(help: "Find the line by a purchase ID issued for it.") var purchaseId: String?
    @Option(help: "Find the line by a charge id (with --merchant).") var charge: String?
    @Option(help: "Find the line by a subscription id (with --merchant).") var subscription: String?
    @Option(help: "The merchant of --charge or --subscription.") var merchant: String?
    @Option(help: "Find the line by a bill id, bill-<line>-<YYYY-MM>.") var bill: String?

    func query() throws -> LineQuery {
        var queries: [LineQuery] = []
        if let line { queries.append(.line(line)) }
        if let purchaseId { queries.append(.purchaseID(purchaseId)) }
        if let bill { queries.append(.bill(bill)) }
        if charge != nil || subscription != nil {
            guard let merchant else { throw ValidationError("--charge and --subscription need --merchant.") }
            if let charge { queries.append(.charge(merchant: merchant, id: charge)) }
            if let subscription { queries.append(.subscription(merchant: merchant, id: subscription)) }
        }
        guard queries.count == 1, let query = queries.first else {
            throw ValidationError(
                "Name one line: LINE, --purchase-id, --charge or --subscription with --merchant, or --bill.")
        }
        return query
    }

    func run() async throws {
        let query = try query()
        let story = try await Exit.mapping {
            try await database.withStore { store -> LineStory? in
                let found = try await store.findLine(query)
                // As the desk records its searches: what was looked for, and what was found.
                if line == nil {
                    try await store.audit(
                        AuditEntry(
                            site: .support, merchantID: nil, staffLogin: StaffActions.operatorName, action: "lookup",
                            subject: found,
                            detail: "\(query.summary) (matomete lines show)" + (found == nil ? ": no line" : "")))
                }
                guard let found, let story = try await store.lineStory(found) else { return nil }
                try await store.audit(
                    AuditEntry(
                        site: .support, merchantID: nil, staffLogin: StaffActions.operatorName, action: "line_viewed",
                        subject: found, detail: "matomete lines show"))
                return story
            }
        }
        guard let story else {
            Exit.complain("No line found \(query.summary).")
            throw ExitCode.failure
        }
        if output.json { return try output.print(story) }
        Self.printStory(story)
    }

    static func printStory(_ story: LineStory) {
        let line = story.line
        func yen(_ amount: Int64?) -> String { amount.map { SiteFormat.yen(Yen($0)) } ?? "" }
        say("Line \(line.lineID)")
        printTable(
            header: ["", ""],
            rows: [
                ["type", "\(line.type)\(line.fletsNet ? " with Flets.net" : "")"],
                ["eligible", line.eligible ? "yes" : "no"],
                ["status", line.status],
                [
                    "carrier billing",
                    line.billingBlocked.map { "STOPPED by the user since \(SiteFormat.time($0))" } ?? "allowed",
                ],
                [
                    "monthly limit",
                    (line.limit.map(yen) ?? "none")
                        + (line.userLimit.map { " (the user's own: \(yen($0)))" } ?? "")
                        + (line.lineLimit.map { " (the line's: \($0 == 0 ? "none" : yen($0)))" } ?? ""),
                ],
                ["this month", "\(line.openCycle): \(yen(line.spentThisMonth)) so far"],
                ["line lock", story.lineLockedUntil.map { "locked until \(SiteFormat.time($0))" } ?? "none"],
            ])
        say("\nPurchase IDs")
        if story.purchaseIDs.isEmpty { say("  none") }
        printTable(
            header: ["purchase ID", "status", "issued", "lock", "failures"],
            rows: story.purchaseIDs.map {
                [
                    $0.purchaseID, $0.status + ($0.revokedAt.map { " \(SiteFormat.time($0))" } ?? ""),
                    SiteFormat.time($0.issuedAt), $0.lockedUntil.map { "until \(SiteFormat.time($0))" } ?? "",
                    "\($0.failures)",
                ]
            })
        say("\nRequests, newest first\(story.moreRequests ? " (the newest \(LineStory.requestsAtMost))" : "")")
        printTable(
            header: ["time", "merchant", "type", "id", "answer", "amount", "description", "month", "now"],
            rows: story.requests.map {
                [
                    SiteFormat.time($0.recordedAt), $0.merchantID ?? "", $0.requestType, $0.requestID,
                    $0.accepted ? "accepted" : "refused: \($0.reason ?? "")", yen($0.amount),
                    $0.purchaseDescription ?? "", $0.cycle ?? "",
                    ($0.state ?? "") + ($0.disputed.map { " DISPUTED: \($0)" } ?? ""),
                ]
            })
        say("\nSubscriptions")
        printTable(
            header: ["merchant", "id", "description", "monthly", "from", "to", "months billed"],
            rows: story.subscriptions.map {
                [
                    $0.merchantID, $0.subscriptionID, $0.purchaseDescription, yen($0.monthlyAmount), $0.startCycle,
                    $0.lastCycle ?? "running", "\($0.monthsBilled)",
                ]
            })
        for bill in story.bills {
            say(
                "\nBill \(bill.billID): \(yen(bill.total)), \(bill.payment.replacingOccurrences(of: "_", with: " "))"
                    + (bill.paid > 0 ? " (paid \(yen(bill.paid)))" : ""))
            printTable(
                header: ["merchant", "kind", "reference", "description", "amount"],
                rows: bill.items.map { [$0.merchantID, $0.kind, $0.reference, $0.itemDescription, yen($0.amount)] })
        }
    }
}

extension LineQuery {
    /// What was looked for, as the audit log and messages say it: `by purchase-id P-1`.
    var summary: String {
        switch self {
        case .line(let id): "by line \(id)"
        case .purchaseID(let id): "by purchase-id \(id)"
        case .charge(let merchant, let id): "by charge \(id) of \(merchant)"
        case .subscription(let merchant, let id): "by subscription \(id) of \(merchant)"
        case .bill(let id): "by bill \(id)"
        }
    }
}
