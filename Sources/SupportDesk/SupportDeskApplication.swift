import Authorization
import Billing
import Foundation
import HTTPTypes
import Hummingbird
import Logging
import NIOCore
import ServerKit
import SiteKit
import SiteMessages
import Store

/// The carrier's support desk: an agent finds a line and reads its whole story; a few actions, each with the
/// reason the user gave, change it through the store's transactions or the cancellations topic; every lookup and
/// every action is in the desk's audit log, which supervisors read and export.
public enum SupportDeskApplication {
    /// The desk's session settings: its own accounts and cookie, never the merchants' site's.
    public static func settings(plainHTTP: Bool) -> SiteSettings {
        SiteSettings(site: .support, cookieName: "matomete_support", secureCookies: !plainHTTP)
    }

    /// The desk's pages (templates and texts).
    public static func pages() throws -> SitePages {
        try SitePages(
            name: [.en: DeskTexts.all.text("site", .en), .ja: DeskTexts.all.text("site", .ja)],
            texts: DeskTexts.all, templates: DeskTemplates.all)
    }

    /// The router of the desk over the store in `holder`; cancellations on a user's behalf go out through
    /// `cancellations` (without it, no cancel form is offered).
    public static func router(
        holder: StoreHolder, settings: SiteSettings, cancellations: SiteCancellations? = nil, logger: Logger
    ) throws -> Router<SiteContext> {
        let pages = try pages()
        let sessions = StaffSessions(settings: settings, holder: holder, logger: logger)
        let router = Router(context: SiteContext.self)
        router.add(middleware: SiteMiddleware(sessions: sessions, pages: pages))
        sessions.addAccountRoutes(to: router, pages: pages, home: "/lines")
        DeskRoutes(holder: holder, sessions: sessions, pages: pages, cancellations: cancellations, logger: logger)
            .add(to: router)
        return router
    }

    /// The desk served at `address`, with `/healthz`, `/livez` and `/metrics`.
    public static func application(
        holder: StoreHolder, settings: SiteSettings, cancellations: SiteCancellations? = nil, address: HTTPAddress,
        limits: HTTPLimits, readiness: Readiness, logger: Logger
    ) throws -> some ApplicationProtocol {
        HTTPEndpoints.application(
            router: try router(holder: holder, settings: settings, cancellations: cancellations, logger: logger),
            address: address, readiness: readiness, limits: limits, logger: logger)
    }
}

/// The desk's pages and forms.
struct DeskRoutes: Sendable {
    let holder: StoreHolder
    let sessions: StaffSessions
    let pages: SitePages
    let cancellations: SiteCancellations?
    let logger: Logger

    /// How a line may be found, in the search form's order.
    static let searches = ["line", "purchase-id", "charge", "subscription", "bill"]

    /// The actions of a line's page.
    static let actions = [
        "unlock-id", "revoke-id", "set-limit", "clear-limit", "block", "unblock", "cancel-subscription", "dispute",
        "clear-dispute",
    ]

    func add(to router: Router<SiteContext>) {
        router.get("lines") { request, context in try await find(request, context) }
        router.get("lines/:line") { request, context in try await line(request, context) }
        router.post("lines/:line/actions") { request, context in try await act(request, context) }
        router.get("audit") { request, context in try await audit(request, context) }
        router.get("audit.csv") { _, context in try await auditCSV(context) }
    }

    private func page(
        _ template: String, title: String, _ values: [String: Any], _ context: SiteContext, path: String
    ) -> Response {
        var values = values
        values["csrf"] = context.session?.csrfToken ?? ""
        var navigation = [SitePages.NavigationLink("/lines", "nav_lines")]
        if context.session?.account.role == .supervisor { navigation.append(.init("/audit", "nav_audit")) }
        return pages.page(template, title: title, values: values, context: context, navigation: navigation, path: path)
    }

    private func text(_ key: String, _ context: SiteContext) -> String { pages.texts.text(key, context.language) }

    private func staff(_ context: SiteContext) throws -> (StaffSession, BillingStore) {
        let session = try context.requireSession()
        guard session.account.site == .support else { throw HTTPError(.forbidden) }
        return (session, try holder.store())
    }

    private func entry(
        _ session: StaffSession, _ action: String, line: String?, detail: String, _ context: SiteContext
    ) -> AuditEntry {
        AuditEntry(
            site: .support, merchantID: nil, staffLogin: session.account.login, action: action, subject: line,
            detail: detail, address: context.clientAddress)
    }

    private static func linePath(_ line: String) -> String {
        "/lines/" + (line.addingPercentEncoding(withAllowedCharacters: .urlPathAllowed.subtracting(["/"])) ?? "")
    }

    // MARK: Finding a line

    private func find(_ request: Request, _ context: SiteContext) async throws -> Response {
        let (session, store) = try staff(context)
        let query = request.uri.queryParameters
        let by = query["by"].map(String.init) ?? "line"
        let value = (query["value"].map(String.init) ?? "").trimmingCharacters(in: .whitespaces)
        let merchant = (query["merchant"].map(String.init) ?? "").trimmingCharacters(in: .whitespaces)
        var values: [String: Any] = [
            "kinds": Self.searches.map { kind -> [String: Any] in
                let label: String = text("by_" + kind.replacingOccurrences(of: "-", with: "_"), context)
                return ["value": kind, "label": label, "selected": kind == by]
            },
            "value": value, "merchant": merchant,
        ]
        guard !value.isEmpty else { return page("lines", title: "lines_title", values, context, path: "/lines") }
        guard Self.searches.contains(by), value.count <= 128, merchant.count <= 64 else {
            throw HTTPError(.badRequest, message: text("not_found_line", context))
        }
        let lineQuery: LineQuery =
            switch by {
            case "purchase-id": .purchaseID(value)
            case "charge": .charge(merchant: merchant, id: value)
            case "subscription": .subscription(merchant: merchant, id: value)
            case "bill": .bill(value)
            default: .line(value)
            }
        let found = try await store.findLine(lineQuery)
        let what = "by \(by) \(value)" + (by == "charge" || by == "subscription" ? " of \(merchant)" : "")
        try await store.audit(
            entry(session, "lookup", line: found, detail: what + (found == nil ? ": no line" : ""), context))
        guard let found else {
            values["notFound"] = true
            return page("lines", title: "lines_title", values, context, path: "/lines")
        }
        return SitePages.seeOther(Self.linePath(found))
    }

    // MARK: A line's page

    private func line(_ request: Request, _ context: SiteContext) async throws -> Response {
        let (session, store) = try staff(context)
        let lineID = try context.parameters.require("line")
        guard lineID.count <= 64, let story = try await store.lineStory(lineID) else {
            throw HTTPError(.notFound, message: text("not_found_line", context))
        }
        // The line's data is the user's: every look at it is recorded.
        try await store.audit(entry(session, "line_viewed", line: lineID, detail: "", context))
        var values = values(of: story, context)
        if let done = request.uri.queryParameters["done"].map(String.init), Self.actions.contains(done) {
            values["done"] = text("done_" + done, context)
        }
        return page("line", title: "line_title", values, context, path: "/lines")
    }

    // Each part of the page is its own typed statement: one literal of mixed values for all of it takes the
    // type checker most of a minute.
    private func values(of story: LineStory, _ context: SiteContext) -> [String: Any] {
        let line = story.line
        var values: [String: Any] = [:]
        let lineValues: [String: Any] = [
            "lineID": line.lineID, "type": line.type, "fletsNet": line.fletsNet, "eligible": line.eligible,
            "openCycle": line.openCycle,
        ]
        values["line"] = lineValues
        values["linePath"] = Self.linePath(line.lineID)
        values["status"] = text("line_status_" + line.status, context)
        values["limit"] = line.limit.map(Self.yen) ?? text("limit_none", context)
        values["spent"] = Self.yen(line.spentThisMonth)
        values["hasPurchaseIDs"] = !story.purchaseIDs.isEmpty
        values["purchaseIDs"] = story.purchaseIDs.map { purchaseIDRow($0, lineLocked: story.lineLockedUntil != nil) }
        values["hasRequests"] = !story.requests.isEmpty
        values["moreRequests"] = story.moreRequests
        values["requests"] = story.requests.map { requestRow($0, context) }
        values["hasSubscriptions"] = !story.subscriptions.isEmpty
        values["subscriptions"] = story.subscriptions.map(subscriptionRow)
        values["bills"] = story.bills.map { billRow($0, context) }
        if let since = line.billingBlocked { values["blockedSince"] = SiteFormat.time(since) }
        if let user = line.userLimit { values["userLimit"] = Self.yen(user) }
        if let own = line.lineLimit { values["lineLimit"] = own == 0 ? text("limit_none", context) : Self.yen(own) }
        if let locked = story.lineLockedUntil { values["lineLockedUntil"] = SiteFormat.time(locked) }
        return values
    }

    private static func yen(_ amount: Int64) -> String { SiteFormat.yen(Yen(amount)) }

    private func purchaseIDRow(_ id: PurchaseIDState, lineLocked: Bool) -> [String: Any] {
        var row: [String: Any] = [:]
        row["purchaseId"] = id.purchaseID
        row["isActive"] = id.status == "active"
        row["revokedAt"] = id.revokedAt.map(SiteFormat.time) ?? ""
        row["issuedAt"] = SiteFormat.time(id.issuedAt)
        row["failures"] = String(id.failures)
        row["canUnlock"] = id.lockedUntil != nil || id.failures > 0 || lineLocked
        if let locked = id.lockedUntil { row["lockedUntil"] = SiteFormat.time(locked) }
        return row
    }

    private func requestRow(_ request: LineRequest, _ context: SiteContext) -> [String: Any] {
        var row: [String: Any] = [:]
        row["time"] = SiteFormat.time(request.recordedAt)
        row["merchant"] = request.merchantID ?? ""
        row["kind"] = request.requestType
        row["kindLabel"] = text("request_" + request.requestType, context)
        row["requestId"] = request.requestID
        row["accepted"] = request.accepted
        row["reason"] = request.reason ?? ""
        row["amount"] = request.amount.map(Self.yen) ?? ""
        row["description"] = request.purchaseDescription ?? ""
        row["cycle"] = request.cycle ?? ""
        row["state"] = request.state.map { text("state_" + $0, context) } ?? ""
        if let disputed = request.disputed { row["disputed"] = disputed }
        row["canDispute"] = request.state != nil && request.disputed == nil
        return row
    }

    private func subscriptionRow(_ subscription: LineSubscription) -> [String: Any] {
        var row: [String: Any] = [:]
        row["merchant"] = subscription.merchantID
        row["subscriptionId"] = subscription.subscriptionID
        row["description"] = subscription.purchaseDescription
        row["monthly"] = Self.yen(subscription.monthlyAmount)
        row["startCycle"] = subscription.startCycle
        row["lastCycle"] = subscription.lastCycle ?? ""
        row["monthsBilled"] = String(subscription.monthsBilled)
        row["running"] = subscription.lastCycle == nil && cancellations != nil
        return row
    }

    private func billRow(_ bill: LineBillState, _ context: SiteContext) -> [String: Any] {
        var row: [String: Any] = [:]
        row["billId"] = bill.billID
        row["total"] = Self.yen(bill.total)
        row["payment"] = text("payment_" + bill.payment, context)
        row["hasPaid"] = bill.paid > 0
        row["paid"] = Self.yen(bill.paid)
        row["items"] = bill.items.map { item -> [String: String] in
            [
                "merchant": item.merchantID, "kind": item.kind, "reference": item.reference,
                "description": item.itemDescription, "amount": Self.yen(item.amount),
            ]
        }
        return row
    }

    // MARK: Actions

    /// One action on the line, with the reason the user gave: applied, audited, then the line's page again.
    private func act(_ request: Request, _ context: SiteContext) async throws -> Response {
        let form = try await sessions.form(request, context)
        let (session, store) = try staff(context)
        let lineID = try context.parameters.require("line")
        let action = form["action"] ?? ""
        guard Self.actions.contains(action), lineID.count <= 64 else {
            throw HTTPError(.badRequest, message: text("bad_action", context))
        }
        let reason = (form["reason"] ?? "").trimmingCharacters(in: .whitespacesAndNewlines)
        guard !reason.isEmpty, reason.count <= 500,
            !reason.unicodeScalars.contains(where: { $0.properties.generalCategory == .control })
        else { throw HTTPError(.badRequest, message: text("reason_required", context)) }
        func field(_ name: String, max: Int = 128) throws -> String {
            guard let value = form[name], !value.isEmpty, value.count <= max else {
                throw HTTPError(.badRequest, message: text("bad_action", context))
            }
            return value
        }
        let change: SupportAction
        var what: String
        switch action {
        case "unlock-id", "revoke-id":
            let id = try field("purchaseId", max: 64)
            change = action == "unlock-id" ? .unlockPurchaseID(id) : .revokePurchaseID(id)
            what = "purchase ID \(id)"
        case "set-limit":
            guard let yen = Int64(form["limit"] ?? ""), (1...100_000_000).contains(yen) else {
                throw HTTPError(.badRequest, message: text("bad_limit", context))
            }
            change = .setUserLimit(Yen(yen))
            what = "limit ¥\(yen)"
        case "clear-limit":
            change = .setUserLimit(nil)
            what = "the line's limit"
        case "block", "unblock":
            change = .blockBilling(action == "block")
            what = "carrier billing"
        case "dispute", "clear-dispute":
            let (merchant, kind, id) = (
                try field("merchant", max: 64), try field("kind", max: 16), try field("requestId")
            )
            guard kind == "charge" || kind == "subscription" else {
                throw HTTPError(.badRequest, message: text("bad_action", context))
            }
            change =
                action == "dispute"
                ? .markDisputed(merchant: merchant, kind: kind, purchaseID: id, reason: reason)
                : .clearDispute(merchant: merchant, kind: kind, purchaseID: id)
            what = "\(kind) \(id) of \(merchant)"
        default:
            return try await cancelSubscription(form, lineID: lineID, reason: reason, session, store, context)
        }
        do {
            try await store.apply(
                change, line: lineID,
                recordedAs: entry(session, action, line: lineID, detail: "\(what); reason: \(reason)", context))
        } catch let refusal as SupportActionRefusal {
            switch refusal {
            case .notFound: throw HTTPError(.notFound, message: text("not_found", context))
            case .nothingToDo: throw HTTPError(.conflict, message: text("nothing_to_do", context))
            case .invalid: throw HTTPError(.badRequest, message: text("bad_action", context))
            }
        }
        return SitePages.seeOther(Self.linePath(lineID) + "?done=\(action)")
    }

    /// A running subscription of the line, cancelled on its user's behalf: sent to the cancellations topic signed
    /// as the merchant's own (the merchant gets the result), then audited.
    private func cancelSubscription(
        _ form: PostedForm, lineID: String, reason: String, _ session: StaffSession, _ store: BillingStore,
        _ context: SiteContext
    ) async throws -> Response {
        let merchant = form["merchant"] ?? ""
        let id = form["subscriptionId"] ?? ""
        guard merchant.count <= 64, id.count <= 128, let story = try await store.lineStory(lineID) else {
            throw HTTPError(.notFound, message: text("not_found", context))
        }
        guard
            story.subscriptions.contains(where: {
                $0.merchantID == merchant && $0.subscriptionID == id && $0.lastCycle == nil
            })
        else { throw HTTPError(.conflict, message: text("cancel_not_active", context)) }
        guard let cancellations else {
            throw HTTPError(.serviceUnavailable, message: text("cancel_not_sent", context))
        }
        do {
            try await cancellations.send(
                .subscription, id: id, merchant: MerchantID(rawValue: merchant), line: LineID(rawValue: lineID),
                store: store)
        } catch .noSigningKey {
            throw HTTPError(.conflict, message: text("cancel_no_key", context))
        } catch .notDelivered {
            throw HTTPError(.serviceUnavailable, message: text("cancel_not_sent", context))
        }
        try await store.audit(
            entry(
                session, "cancel-subscription", line: lineID,
                detail: "subscription \(id) of \(merchant); reason: \(reason)", context))
        return SitePages.seeOther(Self.linePath(lineID) + "?done=cancel-subscription")
    }

    // MARK: The audit log

    private func supervisor(_ context: SiteContext) throws -> (StaffSession, BillingStore) {
        let (session, store) = try staff(context)
        guard session.account.role == .supervisor else {
            throw HTTPError(.forbidden, message: text("supervisors_only", context))
        }
        return (session, store)
    }

    private func audit(_ request: Request, _ context: SiteContext) async throws -> Response {
        let (_, store) = try supervisor(context)
        let line = (request.uri.queryParameters["line"].map(String.init) ?? "").trimmingCharacters(in: .whitespaces)
        guard line.count <= 64 else { throw HTTPError(.badRequest, message: text("not_found_line", context)) }
        let entries = try await store.auditLog(
            site: .support, merchant: nil, subject: line.isEmpty ? nil : line, limit: 200)
        return page(
            "audit", title: "audit_title",
            [
                "line": line,
                "rows": entries.map { entry in
                    [
                        "time": entry.at.map(SiteFormat.time) ?? "", "who": entry.staffLogin, "action": entry.action,
                        "subject": entry.subject ?? "", "detail": entry.detail, "address": entry.address ?? "",
                    ]
                },
            ], context, path: "/audit")
    }

    /// The whole log, oldest first, streamed in chunks (constant memory); the export itself is recorded first.
    private func auditCSV(_ context: SiteContext) async throws -> Response {
        let (session, store) = try supervisor(context)
        try await store.audit(entry(session, "export", line: nil, detail: "audit log", context))
        let body = ResponseBody { writer in
            try await writer.write(ByteBuffer(string: "number,time,who,action,subject,detail,address\r\n"))
            var after: Int64 = 0
            while true {
                let rows = try await store.auditEntries(site: .support, after: after)
                guard let last = rows.last else { break }
                var chunk = ByteBuffer()
                for (number, entry) in rows {
                    let fields = [
                        entry.at.map { $0.formatted(.iso8601) } ?? "", entry.staffLogin, entry.action,
                        entry.subject ?? "", entry.detail, entry.address ?? "",
                    ]
                    chunk.writeString("\(number)," + fields.map(CSVField.escape).joined(separator: ",") + "\r\n")
                }
                try await writer.write(chunk)
                after = last.number
            }
            try await writer.finish(nil)
        }
        return Response(
            status: .ok,
            headers: [
                .contentType: "text/csv; charset=utf-8",
                HTTPField.Name("Content-Disposition")!: "attachment; filename=\"support-audit.csv\"",
            ], body: body)
    }
}
