import Authorization
import Billing
import Foundation
import Hummingbird
import SiteKit
import Store

/// An admin's pages: the merchant's staff (add, disable, enable, unlock, reset a password, change a role) and its
/// signing keys (create, revoke). Every change is checked against the session's merchant, carries the session's
/// CSRF token, and is recorded in the audit log in the same transaction as the change itself.
extension MerchantRoutes {
    func addAdministration(to router: Router<SiteContext>) {
        router.get("staff") { request, context in try await staff(request, context) }
        router.post("staff") { request, context in try await addStaff(request, context) }
        router.post("staff/change") { request, context in try await changeStaff(request, context) }
        router.get("keys") { request, context in try await keys(request, context) }
        router.post("keys") { request, context in try await createKey(request, context) }
        router.post("keys/revoke") { request, context in try await revokeKey(request, context) }
    }

    /// The session's merchant, for an admin only; with `form`, the form posted, its CSRF token checked first.
    private func admin(_ context: SiteContext) throws -> (MerchantID, StaffSession, BillingStore) {
        let (merchant, session, store) = try merchant(context)
        guard session.account.role == .admin else { throw HTTPError(.forbidden, message: text("admins_only", context)) }
        return (merchant, session, store)
    }

    private func entry(
        _ action: String, _ session: StaffSession, _ merchant: MerchantID, subject: String, detail: String = "",
        _ context: SiteContext
    ) -> AuditEntry {
        AuditEntry(
            site: .merchant, merchantID: merchant, staffLogin: session.account.login, action: action,
            subject: subject, detail: detail, address: context.clientAddress)
    }

    // MARK: Staff

    private static let changes: [String: String] = [
        "disable": "staff_disabled", "enable": "staff_enabled", "unlock": "staff_unlocked",
        "reset-password": "staff_password_reset", "role": "staff_role_changed",
    ]

    private func staff(_ request: Request, _ context: SiteContext) async throws -> Response {
        let (merchant, session, store) = try admin(context)
        let accounts = try await store.staffAccounts(site: .merchant, merchant: merchant)
        let now = Date()
        var values: [String: Any] = [
            "rows": accounts.map { account -> [String: Any] in
                let locked = account.lockedUntil.flatMap { $0 > now ? $0 : nil }
                let state =
                    !account.isActive
                    ? text("staff_disabled", context)
                    : locked.map { "\(text("staff_locked_until", context)) \(SiteFormat.time($0))" }
                        ?? text("staff_active", context)
                return [
                    "login": account.login, "name": account.displayName,
                    "role": text("role_" + account.role.rawValue, context), "totp": account.totpSecret != nil,
                    "state": state, "active": account.isActive, "locked": locked != nil,
                    "self": account.login == session.account.login,
                    "otherRole": account.role == .admin ? "viewer" : "admin",
                    "otherRoleLabel": text(account.role == .admin ? "make_viewer" : "make_admin", context),
                ]
            },
            "roles": ["viewer", "admin"].map { ["value": $0, "label": text("role_" + $0, context)] },
        ]
        if let done = request.uri.queryParameters["done"].map(String.init), Self.changes[done] != nil {
            values["done"] = text("done_" + done.replacingOccurrences(of: "-", with: "_"), context)
        }
        return page("staff", title: "staff_title", values, context, path: "/staff")
    }

    /// A new account of the merchant with a generated password, shown once on the answer page.
    private func addStaff(_ request: Request, _ context: SiteContext) async throws -> Response {
        let form = try await sessions.form(request, context)
        let (merchant, session, store) = try admin(context)
        let login = (form["login"] ?? "").trimmingCharacters(in: .whitespaces).lowercased()
        let name = (form["name"] ?? "").trimmingCharacters(in: .whitespaces)
        guard StaffAccount.isValidLogin(login) else {
            throw HTTPError(.badRequest, message: text("staff_bad_login", context))
        }
        guard let role = StaffRole(rawValue: form["role"] ?? ""), role.site == .merchant else {
            throw HTTPError(.badRequest, message: text("staff_bad_role", context))
        }
        guard name.count <= 100, !name.unicodeScalars.contains(where: { $0.properties.generalCategory == .control })
        else { throw HTTPError(.badRequest, message: text("staff_bad_name", context)) }
        let password = StaffCredentials.generatePassword()
        let account = try await StaffCredentials.account(
            site: .merchant, login: login, merchant: merchant, role: role, displayName: name.isEmpty ? login : name,
            password: password, secondFactor: form["totp"] == "on")
        do {
            try await store.addStaff(account, addedBy: session.account.login, address: context.clientAddress)
        } catch let error as StoreError where error.code == .invalidInput {
            throw HTTPError(.conflict, message: text("staff_taken", context))
        }
        return credentials(
            heading: "staff_added_title", login: login, password: password, totp: account.totpSecret, context)
    }

    private func credentials(
        heading: String, login: String, password: String, totp: [UInt8]?, _ context: SiteContext
    ) -> Response {
        var values: [String: Any] = ["heading": text(heading, context), "login": login, "password": password]
        if let totp {
            values["totp"] = [
                "secret": TOTP.base32(totp),
                "uri": TOTP.provisioningURI(secret: totp, account: login, issuer: "Matomete"),
            ]
        }
        return page("staff_credentials", title: heading, values, context, path: "/staff")
    }

    /// Disable, enable, unlock, reset the password of, or change the role of another account of the merchant.
    private func changeStaff(_ request: Request, _ context: SiteContext) async throws -> Response {
        let form = try await sessions.form(request, context)
        let (merchant, session, store) = try admin(context)
        let login = form["login"] ?? ""
        let action = form["action"] ?? ""
        guard let auditAction = Self.changes[action], login.count <= 254 else {
            throw HTTPError(.badRequest, message: text("staff_bad_change", context))
        }
        // An admin never locks themselves out, so a merchant always keeps an admin who can act.
        guard login != session.account.login else {
            throw HTTPError(.conflict, message: text("staff_not_self", context))
        }
        let change: StaffChange
        var detail = ""
        var password: String?
        switch action {
        case "disable": change = .disable
        case "enable": change = .enable
        case "unlock": change = .unlock
        case "reset-password":
            password = StaffCredentials.generatePassword()
            change = try await StaffCredentials.passwordChange(password!)
        default:
            guard let role = StaffRole(rawValue: form["role"] ?? ""), role.site == .merchant else {
                throw HTTPError(.badRequest, message: text("staff_bad_role", context))
            }
            change = .role(role)
            detail = "role \(role.rawValue)"
        }
        guard
            try await store.changeStaff(
                site: .merchant, merchant: merchant, login: login, change,
                recordedAs: entry(auditAction, session, merchant, subject: login, detail: detail, context))
        else { throw HTTPError(.notFound, message: text("not_found", context)) }
        if let password {
            return credentials(
                heading: "staff_password_title", login: login, password: password, totp: nil, context)
        }
        return SitePages.seeOther("/staff?done=\(action)")
    }

    // MARK: Signing keys

    private func keys(_ request: Request, _ context: SiteContext) async throws -> Response {
        let (merchant, _, store) = try admin(context)
        let keys = try await store.signingKeys(of: .merchant(merchant.rawValue))
        let valid = keys.filter { $0.revokedAt == nil }.count
        var values: [String: Any] = [
            "hasRows": !keys.isEmpty,
            "rows": keys.reversed().map { key -> [String: Any] in
                [
                    "id": key.keyID, "created": SiteFormat.time(key.createdAt),
                    "revoked": key.revokedAt.map(SiteFormat.time) ?? "", "valid": key.revokedAt == nil,
                ]
            },
            "canCreate": sealer != nil && valid < KeyOwner.activeKeysAtMost,
            "atMost": KeyOwner.activeKeysAtMost,
        ]
        if request.uri.queryParameters["done"] == "revoked" { values["done"] = text("done_key_revoked", context) }
        return page("keys", title: "keys_title", values, context, path: "/keys")
    }

    /// A new signing key for the merchant: its secret is shown once on the answer page; only a sealed copy is kept.
    private func createKey(_ request: Request, _ context: SiteContext) async throws -> Response {
        _ = try await sessions.form(request, context)
        let (merchant, session, store) = try admin(context)
        guard let sealer else { throw HTTPError(.serviceUnavailable, message: text("keys_no_sealer", context)) }
        let owner = KeyOwner.merchant(merchant.rawValue)
        let key = RequestSigner.generate(keyIDPrefix: owner.keyIDPrefix)
        let sealed = try sealer.seal(key.secret, boundTo: owner.sealingContext(keyID: key.keyID))
        do {
            try await store.addSigningKey(
                keyID: key.keyID, owner: owner, sealedSecret: sealed,
                recordedAs: entry("key_created", session, merchant, subject: key.keyID, context))
        } catch let error as StoreError where error.code == .invalidInput {
            throw HTTPError(.conflict, message: text("keys_too_many", context))
        }
        return page(
            "key_secret", title: "key_created_title",
            ["keyID": key.keyID, "secret": MessageSignature.hex(key.secret)], context, path: "/keys")
    }

    private func revokeKey(_ request: Request, _ context: SiteContext) async throws -> Response {
        let form = try await sessions.form(request, context)
        let (merchant, session, store) = try admin(context)
        let keyID = form["keyId"] ?? ""
        guard keyID.count <= 64,
            try await store.revokeSigningKey(
                keyID: keyID, of: .merchant(merchant.rawValue),
                recordedAs: entry("key_revoked", session, merchant, subject: keyID, context))
        else { throw HTTPError(.notFound, message: text("not_found", context)) }
        return SitePages.seeOther("/keys?done=revoked")
    }
}
