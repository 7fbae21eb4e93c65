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

/// The merchants' data-management site: every page reads only the logged-in staff member's merchant's data,
/// whatever ids the address names.
public enum MerchantSiteApplication {
    /// The site's settings as `merchant-site` runs it: cookie `matomete_merchant`, Secure unless `plainHTTP`.
    public static func settings(plainHTTP: Bool) -> SiteSettings {
        SiteSettings(site: .merchant, cookieName: "matomete_merchant", secureCookies: !plainHTTP)
    }

    /// The site's pages (templates and texts).
    public static func pages() throws -> SitePages {
        try SitePages(
            name: [.en: MerchantTexts.all.text("site", .en), .ja: MerchantTexts.all.text("site", .ja)],
            texts: MerchantTexts.all, templates: MerchantTemplates.all)
    }

    /// The router of the site, reading the store in `holder`, with sessions kept by `settings`; admins' cancellations
    /// go out through `cancellations` (without it, as in tests of the pages alone, no cancel form is offered), and
    /// the signing keys admins create are sealed with `sealer` (without it, keys are listed and revoked only).
    public static func router(
        holder: StoreHolder, settings: SiteSettings, cancellations: SiteCancellations? = nil,
        sealer: SecretSealer? = nil, logger: Logger
    ) throws -> Router<SiteContext> {
        let pages = try pages()
        let sessions = StaffSessions(settings: settings, holder: holder, logger: logger)
        let router = Router(context: SiteContext.self)
        router.add(middleware: SiteMiddleware(sessions: sessions, pages: pages))
        MerchantRoutes(
            holder: holder, sessions: sessions, pages: pages, cancellations: cancellations, sealer: sealer,
            logger: logger
        ).add(to: router)
        return router
    }

    /// The site served at `address`, with `/healthz`, `/livez` and `/metrics`.
    public static func application(
        holder: StoreHolder, settings: SiteSettings, cancellations: SiteCancellations? = nil,
        sealer: SecretSealer? = nil, address: HTTPAddress, limits: HTTPLimits, readiness: Readiness, logger: Logger
    ) throws -> some ApplicationProtocol {
        HTTPEndpoints.application(
            router: try router(
                holder: holder, settings: settings, cancellations: cancellations, sealer: sealer, logger: logger),
            address: address, readiness: readiness, limits: limits, logger: logger)
    }
}

/// The pages and forms of the site.
struct MerchantRoutes: Sendable {
    let holder: StoreHolder
    let sessions: StaffSessions
    let pages: SitePages
    let cancellations: SiteCancellations?
    let sealer: SecretSealer?
    let logger: Logger

    static let navigation = [
        SitePages.NavigationLink("/overview", "nav_overview"),
        SitePages.NavigationLink("/purchases", "nav_purchases"),
        SitePages.NavigationLink("/subscriptions", "nav_subscriptions"),
        SitePages.NavigationLink("/cancellations", "nav_cancellations"),
        SitePages.NavigationLink("/dead-letters", "nav_dead_letters"),
        SitePages.NavigationLink("/settlements", "nav_settlements"),
        SitePages.NavigationLink("/payouts", "nav_payouts"),
    ]

    func add(to router: Router<SiteContext>) {
        sessions.addAccountRoutes(to: router, pages: pages, home: "/overview")
        router.get("overview") { _, context in try await overview(context) }
        router.get("purchases") { request, context in try await purchases(request, context, cancellations: false) }
        router.get("cancellations") { request, context in
            try await purchases(request, context, cancellations: true)
        }
        router.get("subscriptions") { request, context in try await subscriptions(request, context) }
        router.get("dead-letters") { request, context in try await deadLetters(request, context) }
        router.get("purchases/:kind/:id") { request, context in try await history(request, context) }
        router.post("purchases/:kind/:id/cancel") { request, context in try await cancel(request, context) }
        router.get("settlements") { _, context in try await settlements(context) }
        router.get("settlements/:cycle") { _, context in try await statement(context) }
        router.get("settlements/:cycle/statement.csv") { _, context in try await statementCSV(context) }
        router.get("payouts") { _, context in try await payouts(context) }
        router.get("audit") { _, context in try await audit(context) }
        addAdministration(to: router)
    }

    /// The logged-in merchant's id, and the store.
    func merchant(_ context: SiteContext) throws -> (MerchantID, StaffSession, BillingStore) {
        let session = try context.requireSession()
        guard let merchant = session.account.merchantID else { throw HTTPError(.forbidden) }
        return (merchant, session, try holder.store())
    }

    func page(
        _ template: String, title: String, _ values: [String: Any], _ context: SiteContext, path: String
    ) -> Response {
        var values = values
        values["csrf"] = context.session?.csrfToken ?? ""
        var navigation = Self.navigation
        if context.session?.account.role == .admin {
            navigation += [.init("/staff", "nav_staff"), .init("/keys", "nav_keys"), .init("/audit", "nav_audit")]
        }
        return pages.page(template, title: title, values: values, context: context, navigation: navigation, path: path)
    }

    func text(_ key: String, _ context: SiteContext) -> String { pages.texts.text(key, context.language) }

    // MARK: Overview

    private func overview(_ context: SiteContext) async throws -> Response {
        let (merchant, _, store) = try merchant(context)
        let now = Date()
        let month = SiteFormat.cycle(containing: now)
        let summary = try await store.monthSummary(merchant: merchant, cycle: month)
        let settled = try await store.settlements(merchant: merchant, limit: 12)
        var bars = settled.reversed().map { (month: $0.cycle.description, gross: $0.totals.gross.amount) }
        bars.append((month.description + "*", summary.gross.amount))
        let reasons = summary.refusedByReason.sorted { ($0.value, $1.key) > ($1.value, $0.key) }
        return page(
            "overview", title: "overview_title",
            [
                "month": month.description, "accepted": summary.accepted,
                "refused": summary.refusedByReason.values.reduce(0, +), "cancelled": summary.cancelled,
                "gross": SiteFormat.yen(summary.gross), "hasReasons": !reasons.isEmpty,
                "reasons": reasons.map { ["code": $0.key, "count": $0.value, "from": "\(month.description)-01"] },
                "chart": Chart.bars(bars.suffix(13).map { ($0.month, $0.gross) }),
            ], context, path: "/overview")
    }

    // MARK: Purchases

    /// The purchase search; with `cancellations`, the same over the cancellation requests (each with the state of
    /// what it cancelled: cancelled, or refunded as a credit when the month was already closed).
    private func purchases(_ request: Request, _ context: SiteContext, cancellations: Bool) async throws -> Response {
        let (merchant, _, store) = try merchant(context)
        let query = request.uri.queryParameters
        func field(_ name: String, max: Int) throws -> String? {
            guard let value = query[Substring(name)].map(String.init)?.trimmingCharacters(in: .whitespaces),
                !value.isEmpty
            else { return nil }
            guard value.count <= max else { throw HTTPError(.badRequest, message: "\(name) is too long.") }
            return value
        }
        let today = SiteFormat.day(Date())
        let fromDay = try field("from", max: 10) ?? (SiteFormat.cycle(containing: Date()).description + "-01")
        let toDay = try field("to", max: 10) ?? today
        guard let from = SiteFormat.startOf(day: fromDay), let toStart = SiteFormat.startOf(day: toDay) else {
            throw HTTPError(.badRequest, message: "\(text("bad_search", context)): from/to (YYYY-MM-DD)")
        }
        let status = try field("status", max: 16)
        let statuses = cancellations ? ["accepted", "refused"] : PurchaseSearch.statuses
        if let status, !statuses.contains(status) {
            throw HTTPError(.badRequest, message: "\(text("bad_search", context)): status")
        }
        let page = max(0, min(Int(query["page"].map(String.init) ?? "0") ?? 0, 1000))
        var search = PurchaseSearch(from: from, to: toStart.addingTimeInterval(86_400))
        search.lineID = try field("line", max: 64)
        search.purchaseID = try field("id", max: 128)
        search.status = status
        search.reason = try field("reason", max: 64)
        search.cancellations = cancellations
        search.offset = page * 50
        search.limit = 51
        let rows = try await store.purchases(merchant: merchant, search)
        let disputes = try await store.disputes(
            merchant: merchant,
            purchases: rows.prefix(50).filter { !$0.kind.hasSuffix("-cancel") }.map { ($0.kind, $0.purchaseID) })
        var parameters: [(String, String)] = [("from", fromDay), ("to", toDay)]
        for (name, value) in [
            ("line", search.lineID), ("id", search.purchaseID), ("status", status), ("reason", search.reason),
        ] {
            if let value { parameters.append((name, value)) }
        }
        let path = cancellations ? "/cancellations" : "/purchases"
        func link(page: Int) -> String {
            var components = URLComponents()
            components.path = path
            components.queryItems = (parameters + [("page", "\(page)")]).map { URLQueryItem(name: $0.0, value: $0.1) }
            return components.string ?? "/purchases"
        }
        return self.page(
            "purchases", title: cancellations ? "cancellations_title" : "purchases_title",
            [
                "heading": text(cancellations ? "cancellations_title" : "purchases_title", context),
                "explained": text(cancellations ? "cancellations_explained" : "purchases_explained", context),
                "action": path,
                "search": [
                    "from": fromDay, "to": toDay, "line": search.lineID ?? "", "id": search.purchaseID ?? "",
                    "reason": search.reason ?? "",
                ],
                "statuses": statuses.map {
                    ["value": $0, "label": text("status_" + $0, context), "selected": $0 == status]
                },
                "hasRows": !rows.isEmpty,
                "rows": rows.prefix(50).map { row in
                    purchaseRow(row, context).merging(
                        ["disputed": disputes["\(row.kind)/\(row.purchaseID)"] != nil], uniquingKeysWith: { $1 })
                },
            ].merging(
                [
                    ("older", rows.count > 50 ? link(page: page + 1) : nil),
                    ("newer", page > 0 ? link(page: page - 1) : nil),
                ]
                .compactMap { name, value in value.map { (name, $0 as Any) } },
                uniquingKeysWith: { first, _ in first }), context, path: path)
    }

    private func subscriptions(_ request: Request, _ context: SiteContext) async throws -> Response {
        let (merchant, _, store) = try merchant(context)
        let status = request.uri.queryParameters["status"].map(String.init).flatMap { $0.isEmpty ? nil : $0 }
        guard status == nil || status == "active" || status == "ended" else {
            throw HTTPError(.badRequest, message: "\(text("bad_search", context)): status")
        }
        let page = max(0, min(Int(request.uri.queryParameters["page"].map(String.init) ?? "0") ?? 0, 1000))
        let rows = try await store.subscriptions(merchant: merchant, status: status, offset: page * 50, limit: 51)
        func link(page: Int) -> String {
            var components = URLComponents()
            components.path = "/subscriptions"
            components.queryItems =
                (status.map { [URLQueryItem(name: "status", value: $0)] } ?? [])
                + [URLQueryItem(name: "page", value: "\(page)")]
            return components.string ?? "/subscriptions"
        }
        var values: [String: Any] = [
            "statuses": ["active", "ended"].map {
                ["value": $0, "label": text("state_" + $0, context), "selected": $0 == status]
            },
            "hasRows": !rows.isEmpty,
            "rows": rows.prefix(50).map { row -> [String: Any] in
                var href = URLComponents()
                href.path = "/purchases/subscription/\(row.subscriptionID)"
                href.queryItems = [URLQueryItem(name: "line", value: row.lineID)]
                return [
                    "id": row.subscriptionID, "href": href.string ?? "/subscriptions", "line": row.lineID,
                    "description": row.description, "monthly": SiteFormat.yen(row.monthlyAmount),
                    "started": SiteFormat.time(row.startedAt), "startCycle": row.startCycle,
                    "state": text(row.lastCycle == nil ? "state_active" : "state_ended", context),
                    "ended": row.endedAt.map(SiteFormat.time) ?? "", "lastCycle": row.lastCycle ?? "",
                    "months": "\(row.monthsBilled)",
                ]
            },
        ]
        if rows.count > 50 { values["older"] = link(page: page + 1) }
        if page > 0 { values["newer"] = link(page: page - 1) }
        return self.page("subscriptions", title: "subscriptions_title", values, context, path: "/subscriptions")
    }

    /// The messages signed with the merchant's key that were not requests (its developers' to fix), newest first.
    private func deadLetters(_ request: Request, _ context: SiteContext) async throws -> Response {
        let (merchant, _, store) = try merchant(context)
        let page = max(0, min(Int(request.uri.queryParameters["page"].map(String.init) ?? "0") ?? 0, 1000))
        let letters = try await store.merchantDeadLetters(merchant: merchant, offset: page * 50, limit: 51)
        var values: [String: Any] = [
            "hasRows": !letters.isEmpty,
            "rows": letters.prefix(50).map { letter -> [String: Any] in
                let text = String(validating: letter.value, as: UTF8.self)
                return [
                    "time": letter.recordedAt.map(SiteFormat.time) ?? "",
                    "source": "\(letter.sourceTopic) [\(letter.sourcePartition)] @\(letter.sourceOffset)",
                    "reason": letter.reason, "key": letter.key ?? "",
                    "value": text ?? Data(letter.value).base64EncodedString(), "base64": text == nil,
                    "cut": letter.valueSize > letter.value.count, "size": "\(letter.valueSize)",
                ]
            },
        ]
        if letters.count > 50 { values["older"] = "/dead-letters?page=\(page + 1)" }
        if page > 0 { values["newer"] = "/dead-letters?page=\(page - 1)" }
        return self.page("dead_letters", title: "dead_letters_title", values, context, path: "/dead-letters")
    }

    private func purchaseRow(_ row: PurchaseRow, _ context: SiteContext) -> [String: Any] {
        // A cancellation's row leads to what it cancelled.
        let cancellation = row.kind.hasSuffix("-cancel")
        var href = URLComponents()
        href.path = "/purchases/\(cancellation ? String(row.kind.dropLast(7)) : row.kind)/\(row.purchaseID)"
        href.queryItems = [URLQueryItem(name: "line", value: row.lineID)]
        return [
            "time": SiteFormat.time(row.recordedAt),
            "kind": text((cancellation ? "request_" : "kind_") + row.kind, context), "id": row.purchaseID,
            "href": href.string ?? "/purchases", "line": row.lineID, "amount": row.amount.map(SiteFormat.yen) ?? "",
            "accepted": row.accepted, "reason": row.reason ?? "",
            "state": row.state.map { text("state_" + $0, context) } ?? "",
            "cycle": row.cycle ?? "",
        ]
    }

    private func history(_ request: Request, _ context: SiteContext) async throws -> Response {
        let (merchant, session, store) = try merchant(context)
        let kind = try context.parameters.require("kind")
        let id = try context.parameters.require("id")
        let line = request.uri.queryParameters["line"].map(String.init)
        guard id.count <= 128, (line?.count ?? 0) <= 64,
            let history = try await store.purchaseHistory(merchant: merchant, kind: kind, purchaseID: id, lineID: line)
        else { throw HTTPError(.notFound, message: text("not_found", context)) }
        var values: [String: Any] = [
            "id": history.purchaseID, "kind": text("kind_" + history.kind, context), "line": history.lineID,
            "results": history.results.map { result in
                [
                    "time": result.recordedAt.map(SiteFormat.time) ?? "",
                    "type": text("request_" + result.requestType, context), "accepted": result.accepted,
                    "reason": result.reason ?? "", "cycle": result.cycle?.description ?? "",
                ] as [String: Any]
            },
            "hasBills": !history.bills.isEmpty,
            "bills": history.bills.map { ["cycle": $0.cycle, "billID": $0.billID] },
        ]
        if let creditedIn = history.creditedIn { values["creditedIn"] = creditedIn }
        if let reason = try await store.disputes(merchant: merchant, purchases: [(history.kind, history.purchaseID)])
            .values.first
        {
            values["disputed"] = reason
        }
        // Admins cancel what is still active; once sent, the page says so until the worker's answer is stored.
        if cancellations != nil, session.account.role == .admin, history.accepted?.state == "active" {
            values["canCancel"] = true
            values["cancelAction"] = "/purchases/\(kind)/\(id)/cancel"
        }
        let cancelType = kind == "charge" ? RequestKind.chargeCancellation : RequestKind.subscriptionCancellation
        if request.uri.queryParameters["cancel"] == "sent" {
            values["cancelSent"] = true
            if !history.results.contains(where: { $0.requestType == cancelType.rawValue }) {
                values["cancelPending"] = true
            }
        }
        if let accepted = history.accepted {
            values["accepted"] = [
                "description": accepted.description ?? "", "amount": accepted.amount.map(SiteFormat.yen) ?? "",
                "cycle": accepted.cycle ?? "", "state": accepted.state.map { text("state_" + $0, context) } ?? "",
            ]
        }
        return page("history", title: "history_title", values, context, path: "/purchases")
    }

    /// An admin's cancellation of an active charge or subscription, with a reason: signed and sent as the merchant's
    /// own, recorded in the audit log, then the purchase's page (which shows the worker's answer once stored).
    private func cancel(_ request: Request, _ context: SiteContext) async throws -> Response {
        let (merchant, session, store) = try merchant(context)
        let form = try await sessions.form(request, context)
        guard session.account.role == .admin else { throw HTTPError(.forbidden, message: text("admins_only", context)) }
        let kind = try context.parameters.require("kind")
        let id = try context.parameters.require("id")
        let line = form["line"] ?? ""
        let reason = (form["reason"] ?? "").trimmingCharacters(in: .whitespacesAndNewlines)
        guard !reason.isEmpty, reason.count <= 500, !reason.contains("\u{0}") else {
            throw HTTPError(.badRequest, message: text("cancel_reason_required", context))
        }
        // The purchase must be this merchant's, on this line, and still active: ids are never taken on trust.
        guard let target = SiteCancellations.Target(rawValue: kind), id.count <= 128, line.count <= 64,
            let history = try await store.purchaseHistory(
                merchant: merchant, kind: kind, purchaseID: id, lineID: line),
            history.lineID == line
        else { throw HTTPError(.notFound, message: text("not_found", context)) }
        guard history.accepted?.state == "active" else {
            throw HTTPError(.conflict, message: text("cancel_not_active", context))
        }
        guard let cancellations else {
            throw HTTPError(.serviceUnavailable, message: text("cancel_not_sent", context))
        }
        do {
            try await cancellations.send(
                target, id: history.purchaseID, merchant: merchant, line: LineID(rawValue: line), store: store)
        } catch .noSigningKey {
            throw HTTPError(.conflict, message: text("cancel_no_key", context))
        } catch .notDelivered {
            throw HTTPError(.serviceUnavailable, message: text("cancel_not_sent", context))
        }
        try await store.audit(
            AuditEntry(
                site: .merchant, merchantID: merchant, staffLogin: session.account.login, action: "cancel",
                subject: "\(kind) \(history.purchaseID) (line \(line))", detail: reason, address: context.clientAddress)
        )
        var back = URLComponents()
        back.path = "/purchases/\(kind)/\(history.purchaseID)"
        back.queryItems = [URLQueryItem(name: "line", value: line), URLQueryItem(name: "cancel", value: "sent")]
        return SitePages.seeOther(back.string ?? "/purchases")
    }

    // MARK: Settlements and payouts

    private func settlementValues(_ settlement: Settlement) -> [String: Any] {
        let rule = "\(settlement.feeRule.rawValue) (band \(settlement.feeDetail.band + 1))"
        return [
            "cycle": settlement.cycle.description, "lines": settlement.totals.lines,
            "items": settlement.totals.itemCount, "credits": SiteFormat.yen(settlement.totals.creditAmount),
            "gross": SiteFormat.yen(settlement.totals.gross), "average": SiteFormat.yen(settlement.averagePerLine),
            "rule": rule, "feeBeforeTax": SiteFormat.yen(settlement.feeDetail.beforeTax),
            "tax": SiteFormat.yen(settlement.feeDetail.tax),
            "taxRate": "\(Double(settlement.feeDetail.taxRate) / 100)%", "fee": SiteFormat.yen(settlement.fee),
            "net": SiteFormat.yen(settlement.net),
        ]
    }

    private func settlements(_ context: SiteContext) async throws -> Response {
        let (merchant, _, store) = try merchant(context)
        let rows = try await store.settlements(merchant: merchant)
        return page(
            "settlements", title: "settlements_title",
            ["hasRows": !rows.isEmpty, "rows": rows.map(settlementValues)], context, path: "/settlements")
    }

    private func settlement(_ context: SiteContext) async throws -> (MerchantID, StaffSession, BillingStore, Settlement)
    {
        let (merchant, session, store) = try merchant(context)
        guard let cycle = BillingCycle(try context.parameters.require("cycle")),
            let settlement = try await store.settlements(merchant: merchant).first(where: { $0.cycle == cycle })
        else { throw HTTPError(.notFound, message: text("not_found", context)) }
        return (merchant, session, store, settlement)
    }

    private func statement(_ context: SiteContext) async throws -> Response {
        let (merchant, _, store, settlement) = try await settlement(context)
        var values = settlementValues(settlement)
        values["merchant"] = merchant.rawValue
        values["merchantName"] = try await store.merchants()[merchant]?.name ?? ""
        return page("statement", title: "statement_title", values, context, path: "/settlements")
    }

    /// One row per billed item, streamed in chunks: a statement of any size takes constant memory.
    private func statementCSV(_ context: SiteContext) async throws -> Response {
        let (merchant, session, store, settlement) = try await settlement(context)
        try await store.audit(
            AuditEntry(
                site: .merchant, merchantID: merchant, staffLogin: session.account.login, action: "export",
                subject: "statement \(settlement.cycle)", address: context.clientAddress))
        let cycle = settlement.cycle
        let body = ResponseBody { writer in
            try await writer.write(ByteBuffer(string: "line_id,kind,reference,description,amount_yen\r\n"))
            var position: StatementItem.Position?
            while true {
                let items = try await store.statementItems(merchant: merchant, cycle: cycle, after: position)
                guard let last = items.last else { break }
                var chunk = ByteBuffer()
                for item in items {
                    chunk.writeString(
                        [item.lineID, item.kind, item.reference, item.description].map(CSVField.escape)
                            .joined(separator: ",") + ",\(item.amount.amount)\r\n")
                }
                try await writer.write(chunk)
                position = last.position
            }
            try await writer.finish(nil)
        }
        return Response(
            status: .ok,
            headers: [
                .contentType: "text/csv; charset=utf-8",
                .contentDisposition: "attachment; filename=\"statement-\(merchant.rawValue)-\(cycle).csv\"",
            ], body: body)
    }

    private func payouts(_ context: SiteContext) async throws -> Response {
        let (merchant, _, store) = try merchant(context)
        let statements = try await store.payouts(merchant: merchant)
        return page(
            "payouts", title: "payouts_title",
            [
                "rows": statements.map { statement, payableOn in
                    [
                        "period": statement.period.description, "payableOn": payableOn.description,
                        "carriedIn": SiteFormat.yen(statement.carriedIn),
                        "payable": SiteFormat.yen(statement.amountPayable),
                        "carriedOut": SiteFormat.yen(statement.carriedOut),
                        "lines": statement.lines.map { line in
                            [
                                "cycle": line.cycle.description, "collected": SiteFormat.yen(line.collected),
                                "reversed": SiteFormat.yen(line.reversed),
                                "writtenOff": SiteFormat.yen(line.writtenOff),
                                "fee": SiteFormat.yen(line.fee), "payable": SiteFormat.yen(line.payable),
                            ]
                        },
                    ] as [String: Any]
                }
            ], context, path: "/payouts")
    }

    // MARK: Audit

    private func audit(_ context: SiteContext) async throws -> Response {
        let (merchant, session, store) = try merchant(context)
        guard session.account.role == .admin else { throw HTTPError(.forbidden, message: text("admins_only", context)) }
        let entries = try await store.auditLog(site: .merchant, merchant: merchant, limit: 200)
        return page(
            "audit", title: "audit_title",
            [
                "rows": entries.map { entry in
                    [
                        "time": entry.at.map(SiteFormat.time) ?? "", "who": entry.staffLogin, "action": entry.action,
                        "subject": entry.subject ?? "", "detail": entry.detail, "address": entry.address ?? "",
                    ]
                }
            ], context, path: "/audit")
    }
}

extension HTTPField.Name {
    static let contentDisposition = Self("Content-Disposition")!
}
