import Authorization
import Billing
import Foundation
import MatometeTestSupport
import SiteKit
import Store
import Testing

/// An admin's management of the merchant's staff and signing keys on the site.
@Suite("Merchant site administration")
struct MerchantAdministrationTests {
    static let shopA = MerchantID(rawValue: "shop-a")

    /// The text of the element with `id` on `page` (its first text, up to the next tag).
    static func element(_ id: String, in page: SiteBrowser.Page) -> String? {
        guard let start = page.text.range(of: "id=\"\(id)\">") else { return nil }
        return String(page.text[start.upperBound...].prefix { $0 != "<" })
    }

    @Test(
        "an admin adds, disables, enables, unlocks and resets the password of the merchant's staff, never their own nor another merchant's; each change is audited"
    )
    func staff() async throws {
        try await MerchantSiteTests.seeded { store in
            try await MerchantSiteTests.withSite(store) { site in
                let viewer = site.session()
                try await viewer.logIn("viewer@a.example", MerchantSiteTests.password)
                #expect(try await viewer.get("/staff").status == .forbidden)
                let viewerToken = try await viewer.csrf()
                #expect(
                    try await viewer.post(
                        "/staff", fields: ["csrf": viewerToken, "login": "x@a.example", "role": "admin"]
                    ).status == .forbidden, "a viewer cannot add staff, least of all an admin")
                let admin = site.session()
                try await admin.logIn("admin@a.example", MerchantSiteTests.password)
                let list = try await admin.get("/staff")
                #expect(list.status == .ok)
                #expect(list.text.contains("viewer@a.example") && !list.text.contains("admin@b.example"))
                #expect(
                    try await admin.post("/staff", fields: ["login": "new@a.example", "role": "viewer"]).status
                        == .forbidden, "no CSRF token")
                let token = try await admin.csrf()
                #expect(
                    try await admin.post("/staff", fields: ["csrf": token, "login": "Not a login", "role": "viewer"])
                        .status == .badRequest)
                #expect(
                    try await admin.post("/staff", fields: ["csrf": token, "login": "n@a.example", "role": "agent"])
                        .status == .badRequest, "a support-desk role is not a merchant's")
                #expect(
                    try await admin.post(
                        "/staff", fields: ["csrf": token, "login": "viewer@a.example", "role": "viewer"]
                    ).status == .conflict, "a login taken")

                // Added: the password is shown once, and works.
                let added = try await admin.post(
                    "/staff",
                    fields: [
                        "csrf": token, "login": "New@A.example", "name": "<b>New</b>", "role": "viewer",
                        "totp": "on",
                    ])
                #expect(added.status == .ok)
                let password = try #require(Self.element("new-password", in: added))
                let secret = try #require(Self.element("new-totp", in: added))
                #expect(password.count == 14)
                #expect(!(try await admin.get("/staff").text.contains(password)), "shown once")
                #expect(try await admin.get("/staff").text.contains("&lt;b&gt;New&lt;/b&gt;"))
                let newcomer = site.session()
                #expect(try await newcomer.logIn("new@a.example", password, expect: false), "its TOTP is required")
                let stored = try #require(try await store.staffAccount(site: .merchant, login: "new@a.example"))
                let totp = try #require(stored.totpSecret)
                #expect(TOTP.base32(totp) == secret && stored.merchantID == Self.shopA && stored.role == .viewer)
                let code = TOTP.code(secret: totp, at: Date())
                try await newcomer.logIn("new@a.example", password, code: code)
                #expect(try await newcomer.get("/staff").status == .forbidden, "added as a viewer")

                // Never one's own account; never another merchant's.
                #expect(
                    try await admin.post(
                        "/staff/change", fields: ["csrf": token, "login": "admin@a.example", "action": "disable"]
                    ).status == .conflict)
                let b = site.session()
                try await b.logIn("admin@b.example", MerchantSiteTests.password)
                #expect(
                    try await b.post(
                        "/staff/change",
                        fields: ["csrf": try await b.csrf(), "login": "new@a.example", "action": "disable"]
                    ).status == .notFound)
                #expect(
                    try await admin.post(
                        "/staff/change", fields: ["csrf": token, "login": "new@a.example", "action": "delete"]
                    ).status == .badRequest)

                // Disabled: its session ends and it cannot log in; enabled again, it can.
                let disabled = try await admin.post(
                    "/staff/change", fields: ["csrf": token, "login": "new@a.example", "action": "disable"])
                #expect(disabled.status == .seeOther && disabled.location == "/staff?done=disable")
                #expect(try await newcomer.get("/overview").status == .seeOther, "its session ended")
                #expect(try await site.session().logIn("new@a.example", password, code: code, expect: false))
                _ = try await admin.post(
                    "/staff/change", fields: ["csrf": token, "login": "new@a.example", "action": "enable"])
                try await site.session().logIn("viewer@a.example", MerchantSiteTests.password)

                // Locked by five failures, unlocked by the admin.
                for attempt in 1...5 {
                    try await site.session().logIn("viewer@a.example", "wrong \(attempt)", expect: false)
                }
                #expect(try await site.session().logIn("viewer@a.example", MerchantSiteTests.password, expect: false))
                #expect(try await admin.get("/staff").text.contains("name=\"action\" value=\"unlock\""))
                _ = try await admin.post(
                    "/staff/change", fields: ["csrf": token, "login": "viewer@a.example", "action": "unlock"])
                try await site.session().logIn("viewer@a.example", MerchantSiteTests.password)

                // A new password: the old one stops working, the viewer's sessions end.
                let reset = try await admin.post(
                    "/staff/change", fields: ["csrf": token, "login": "viewer@a.example", "action": "reset-password"])
                let newPassword = try #require(Self.element("new-password", in: reset))
                #expect(try await viewer.get("/overview").status == .seeOther)
                #expect(try await site.session().logIn("viewer@a.example", MerchantSiteTests.password, expect: false))
                try await site.session().logIn("viewer@a.example", newPassword)

                // Made an admin.
                _ = try await admin.post(
                    "/staff/change",
                    fields: ["csrf": token, "login": "viewer@a.example", "action": "role", "role": "admin"])
                let promoted = site.session()
                try await promoted.logIn("viewer@a.example", newPassword)
                #expect(try await promoted.get("/staff").status == .ok)

                let log = try await store.auditLog(site: .merchant, merchant: Self.shopA, limit: 100)
                for (action, subject) in [
                    ("staff_added", "new@a.example"), ("staff_disabled", "new@a.example"),
                    ("staff_enabled", "new@a.example"), ("staff_unlocked", "viewer@a.example"),
                    ("staff_password_reset", "viewer@a.example"), ("staff_role_changed", "viewer@a.example"),
                ] {
                    #expect(
                        log.contains {
                            $0.action == action && $0.subject == subject && $0.staffLogin == "admin@a.example"
                        }, "\(action) of \(subject) is in the log")
                }
                #expect(!log.contains { $0.detail.contains(password) || $0.detail.contains(newPassword) })
                let shopB = try await store.auditLog(site: .merchant, merchant: MerchantID(rawValue: "shop-b"))
                #expect(!shopB.contains { $0.action.hasPrefix("staff_") && $0.staffLogin != "matomete" })
            }
        }
    }

    @Test("an admin creates and revokes the merchant's signing keys: the secret shown once, two valid at most, audited")
    func keys() async throws {
        try await MerchantSiteTests.seeded { store in
            let sealer = try SecretSealer(keyEncryptionKey: Array(repeating: 7, count: 32))
            try await MerchantSiteTests.withSite(store, sealer: sealer) { site in
                let viewer = site.session()
                try await viewer.logIn("viewer@a.example", MerchantSiteTests.password)
                #expect(try await viewer.get("/keys").status == .forbidden)
                #expect(try await viewer.post("/keys", fields: ["csrf": try await viewer.csrf()]).status == .forbidden)
                let admin = site.session()
                try await admin.logIn("admin@a.example", MerchantSiteTests.password)
                #expect(try await admin.post("/keys", fields: [:]).status == .forbidden, "no CSRF token")
                let token = try await admin.csrf()
                var created: [(id: String, secret: String)] = []
                for _ in 1...2 {
                    let page = try await admin.post("/keys", fields: ["csrf": token])
                    #expect(page.status == .ok)
                    created.append(
                        (
                            try #require(Self.element("new-key-id", in: page)),
                            try #require(Self.element("new-key-secret", in: page))
                        ))
                }
                #expect(try await admin.post("/keys", fields: ["csrf": token]).status == .conflict, "two at most")
                let list = try await admin.get("/keys")
                #expect(list.text.contains(created[0].id) && !list.text.contains(created[0].secret), "shown once")
                #expect(list.text.contains("id=\"keys-full\""))

                // The stored secret opens with the key-encryption key to what was shown.
                let stored = try await store.signingKeys(of: .merchant("shop-a"))
                #expect(stored.map(\.keyID) == created.map(\.id))
                let opened = try sealer.open(
                    stored[0].sealedSecret, boundTo: KeyOwner.merchant("shop-a").sealingContext(keyID: created[0].id))
                #expect(MessageSignature.hex(opened) == created[0].secret)

                // Another merchant's admin cannot revoke it.
                let b = site.session()
                try await b.logIn("admin@b.example", MerchantSiteTests.password)
                #expect(
                    try await b.post("/keys/revoke", fields: ["csrf": try await b.csrf(), "keyId": created[0].id])
                        .status == .notFound)
                #expect(!(try await b.get("/keys").text.contains(created[0].id)))
                let revoked = try await admin.post("/keys/revoke", fields: ["csrf": token, "keyId": created[0].id])
                #expect(revoked.status == .seeOther && revoked.location == "/keys?done=revoked")
                #expect(try await store.signingKeys(of: .merchant("shop-a")).first?.revokedAt != nil)
                #expect(
                    try await admin.post("/keys/revoke", fields: ["csrf": token, "keyId": created[0].id]).status
                        == .notFound, "revoked already")
                #expect(try await admin.post("/keys", fields: ["csrf": token]).status == .ok, "room for one again")

                let log = try await store.auditLog(site: .merchant, merchant: Self.shopA, limit: 100)
                #expect(log.filter { $0.action == "key_created" }.count == 3)
                #expect(log.contains { $0.action == "key_revoked" && $0.subject == created[0].id })
                #expect(!log.contains { $0.detail.contains(created[0].secret) })
            }
            // Without a key-encryption key, keys are listed and revoked only.
            try await MerchantSiteTests.withSite(store) { site in
                let admin = site.session()
                try await admin.logIn("admin@a.example", MerchantSiteTests.password)
                #expect(!(try await admin.get("/keys").text.contains("id=\"create-key\"")))
                #expect(
                    try await admin.post("/keys", fields: ["csrf": try await admin.csrf()]).status
                        == .serviceUnavailable)
            }
        }
    }
}
