import Authorization
import Dispatch
import Foundation
import HTTPTypes
import Hummingbird
import Logging
import Store

/// Logins, sessions and forms of a staff site.
public struct StaffSessions: Sendable {
    /// The site's settings.
    public var settings: SiteSettings
    let holder: StoreHolder
    let logger: Logger

    /// Sessions of `settings.site` kept in the store in `holder`.
    public init(settings: SiteSettings, holder: StoreHolder, logger: Logger) {
        self.settings = settings
        self.holder = holder
        self.logger = logger
    }

    /// The cookie that carries the login form's token before there is a session.
    var loginCookieName: String { settings.cookieName + "_login" }

    /// The session whose token is in the request's cookie, if it is valid.
    func session(of request: Request) async throws -> StaffSession? {
        guard let token = request.cookies[settings.cookieName]?.value, token.utf8.count == 43 else { return nil }
        return try await holder.store().staffSession(
            site: settings.site, tokenHash: SiteTokens.digest(token), idle: settings.idleTimeout,
            absolute: settings.absoluteTimeout)
    }

    /// The posted form of a logged-in page, after checking its CSRF token against the session's: 403 when it is
    /// missing or wrong. Bodies over 64 KiB are refused.
    public func form(_ request: Request, _ context: SiteContext) async throws -> PostedForm {
        let session = try context.requireSession()
        let form = try PostedForm(body: try await request.body.collect(upTo: 64 * 1024))
        guard let token = form.fields["csrf"], SiteTokens.equal(token, session.csrfToken) else {
            throw HTTPError(
                .forbidden,
                message: "This form has expired or did not come from this site. Reload the page and try again.")
        }
        return form
    }

    /// A token for the login form, set as a cookie too (the form must send back the same).
    public func loginFormToken(_ request: Request) -> (token: String, cookie: Cookie?) {
        if let existing = request.cookies[loginCookieName]?.value, existing.utf8.count == 43 { return (existing, nil) }
        let token = SiteTokens.make()
        return (token, cookie(loginCookieName, token, maxAge: 3600))
    }

    /// What a login attempt came to.
    public enum LoginResult: Sendable {
        /// Logged in: set `cookie`; any session cookie sent before is replaced (no fixation).
        case loggedIn(StaffAccount, cookie: Cookie)
        /// Refused: a wrong login, password or code, a locked or disabled account, all alike.
        case refused
    }

    /// Checks a posted login form (login, password, optional TOTP `code`, and the login form's token), counts a
    /// failure against the account, locks it at the limit, and on success opens a new session. Every attempt is
    /// in the audit log.
    public func login(_ request: Request, _ context: SiteContext) async throws -> LoginResult {
        let form = try PostedForm(body: try await request.body.collect(upTo: 16 * 1024))
        guard let sent = form.fields["csrf"], let expected = request.cookies[loginCookieName]?.value,
            SiteTokens.equal(sent, expected)
        else {
            throw HTTPError(.forbidden, message: "The login form has expired. Reload the page and try again.")
        }
        let store = try holder.store()
        let login = (form["login"] ?? "").lowercased()
        let password = form.fields["password"] ?? ""
        let address = context.clientAddress
        func audit(_ action: String, _ account: StaffAccount?, _ detail: String = "") async throws {
            try await store.audit(
                AuditEntry(
                    site: settings.site, merchantID: account?.merchantID, staffLogin: String(login.prefix(254)),
                    action: action, detail: detail, address: address))
        }
        guard StaffAccount.isValidLogin(login),
            let account = try await store.staffAccount(site: settings.site, login: login),
            account.isActive
        else {
            // As long as a real check, so the time taken tells nothing of which logins exist.
            _ = await Self.offload { Self.decoy.matches(password) }
            try await audit("login_failed", nil, "no such account")
            return .refused
        }
        if let until = account.lockedUntil, until > Date() {
            try await audit("login_failed", account, "locked until \(SiteFormat.time(until))")
            return .refused
        }
        let hash = PasswordHash(
            hash: account.passwordHash, salt: account.passwordSalt, logRounds: account.scrypt.logRounds,
            blockSize: account.scrypt.blockSize, parallelism: account.scrypt.parallelism)
        let passwordMatches = await Self.offload { hash.matches(password) }
        let codeMatches = account.totpSecret.map { TOTP.verify(form["code"] ?? "", secret: $0, at: Date()) } ?? true
        guard passwordMatches, codeMatches else {
            let lockedUntil = try await store.recordStaffLoginFailure(
                id: account.id, maxFailures: settings.maxFailures, lockFor: settings.lockout)
            try await audit(
                "login_failed", account,
                (passwordMatches ? "wrong code" : "wrong password")
                    + (lockedUntil.map { "; locked until \(SiteFormat.time($0))" } ?? ""))
            return .refused
        }
        let token = SiteTokens.make()
        try await store.openStaffSession(
            id: account.id, tokenHash: SiteTokens.digest(token), csrfToken: SiteTokens.make())
        try await audit("login", account)
        return .loggedIn(account, cookie: cookie(settings.cookieName, token, maxAge: nil))
    }

    /// Ends the request's session (or every session of its account), and says so in the audit log. Returns the
    /// cookie that clears the browser's.
    public func logout(_ request: Request, _ context: SiteContext, everywhere: Bool) async throws -> Cookie {
        let session = try context.requireSession()
        let store = try holder.store()
        if everywhere {
            let count = try await store.closeStaffSessions(id: session.account.id)
            try await store.audit(
                AuditEntry(
                    site: settings.site, merchantID: session.account.merchantID, staffLogin: session.account.login,
                    action: "logout_everywhere", detail: "\(count) sessions", address: context.clientAddress))
        } else {
            if let token = request.cookies[settings.cookieName]?.value {
                try await store.closeStaffSession(tokenHash: SiteTokens.digest(token))
            }
            try await store.audit(
                AuditEntry(
                    site: settings.site, merchantID: session.account.merchantID, staffLogin: session.account.login,
                    action: "logout", address: context.clientAddress))
        }
        return cookie(settings.cookieName, "", maxAge: 0)
    }

    /// A cookie of the site: HttpOnly, SameSite=Strict, path /, Secure when the site is served over TLS.
    func cookie(_ name: String, _ value: String, maxAge: Int?) -> Cookie {
        Cookie(
            name: name, value: value, maxAge: maxAge, path: "/", secure: settings.secureCookies, httpOnly: true,
            sameSite: .strict)
    }

    /// A hash no password matches, checked when a login does not exist.
    private static let decoy = (try? PasswordHash.make(password: SiteTokens.make()))!

    /// Runs a password check (scrypt: tens of milliseconds, 32 MiB) on a thread of its own, off the threads
    /// that serve requests.
    static func offload(_ check: @escaping @Sendable () -> Bool) async -> Bool {
        await withCheckedContinuation { continuation in
            DispatchQueue.global(qos: .userInitiated).async { continuation.resume(returning: check()) }
        }
    }
}

/// Finds the session and the language of every request, renders errors as pages, and adds the security
/// headers (see ``SecurityHeaders``).
public struct SiteMiddleware: RouterMiddleware {
    /// The request context.
    public typealias Context = SiteContext
    let sessions: StaffSessions
    let pages: SitePages

    /// The middleware of a site with `sessions`, rendering its error pages with `pages`.
    public init(sessions: StaffSessions, pages: SitePages) {
        self.sessions = sessions
        self.pages = pages
    }

    /// Sets the context's session and language, then answers.
    public func handle(
        _ request: Request, context: SiteContext, next: (Request, SiteContext) async throws -> Response
    ) async throws -> Response {
        var context = context
        context.language = Language.preferred(
            chosen: request.cookies["lang"]?.value, acceptLanguage: request.headers[.acceptLanguage])
        context.requestedPath = request.uri.description
        context.clientAddress = ClientAddressResolver(trustedProxies: sessions.settings.trustedProxies).clientAddress(
            peer: context.peerAddress, forwardedFor: request.headers[HTTPField.Name("X-Forwarded-For")!])
        var response: Response
        do {
            context.session = try await sessions.session(of: request)
            response = try await next(request, context)
        } catch let error as HTTPError {
            if error.status.code < 400 {
                response = Response(status: error.status, headers: error.headers)
            } else {
                response = pages.errorPage(status: error.status, message: error.body ?? "", context: context)
            }
        } catch {
            // The database's or the program's fault, never the visitor's: logged (no request data but the path),
            // and a page that tells nothing of the inside.
            sessions.logger.error(
                "Page failed",
                metadata: ["path": "\(request.uri.path)", "error": "\(String(reflecting: error).prefix(500))"])
            response = pages.errorPage(
                status: .internalServerError, message: pages.texts.text("error_internal", context.language),
                context: context)
        }
        SecurityHeaders.add(to: &response)
        return response
    }
}
