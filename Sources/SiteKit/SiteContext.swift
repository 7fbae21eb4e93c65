import Foundation
import HTTPTypes
import Hummingbird
import Logging
import NIOCore
import ServerKit
import ServiceLifecycle
import Store
import Synchronization

/// A staff site's request context: the connection's peer, the session (when logged in) and the page's language.
public struct SiteContext: RequestContext {
    /// Hummingbird's storage for the request.
    public var coreContext: CoreRequestContextStorage
    /// The IP address of the connection's peer.
    public let peerAddress: String?
    /// The address the person is at, for the audit log: the peer's, or, when the peer is one of the site's
    /// trusted proxies, the right-most untrusted address of its `X-Forwarded-For` (set by ``SiteMiddleware``).
    public var clientAddress: String?
    /// Who is logged in, once ``SiteMiddleware`` found the session.
    public var session: StaffSession?
    /// The page's language.
    public var language: Language = .ja
    /// The address asked for, path and query (`/purchases?line=L1`): where the language switch comes back to.
    public var requestedPath = "/"

    /// The context of a request on `source`'s connection.
    public init(source: ApplicationRequestContextSource) {
        coreContext = CoreRequestContextStorage(source: source)
        peerAddress = source.channel.remoteAddress?.ipAddress
        clientAddress = peerAddress
    }

    /// The session, or a redirect to the login page when there is none.
    public func requireSession() throws -> StaffSession {
        guard let session else { throw HTTPError(.seeOther, headers: [.location: "/login"]) }
        return session
    }
}

/// How a staff site keeps its sessions and logins.
public struct SiteSettings: Sendable {
    /// Which accounts log in here.
    public var site: StaffSite
    /// The session cookie's name (each site its own).
    public var cookieName: String
    /// Whether cookies are `Secure` (sent over TLS only): true unless the site is served over plain HTTP (dev).
    public var secureCookies: Bool
    /// A session unused this long ends (default 30 minutes).
    public var idleTimeout: Duration = .seconds(30 * 60)
    /// A session ends this long after its login, used or not (default 12 hours).
    public var absoluteTimeout: Duration = .seconds(12 * 3600)
    /// Failed logins in a row that lock an account (default 5).
    public var maxFailures = 5
    /// How long a lock lasts (default 15 minutes).
    public var lockout: Duration = .seconds(15 * 60)
    /// The proxies whose `X-Forwarded-For` names the person's address (default none: the peer's address).
    public var trustedProxies: [AddressPrefix] = []

    /// Settings for `site`.
    public init(site: StaffSite, cookieName: String, secureCookies: Bool) {
        self.site = site
        self.cookieName = cookieName
        self.secureCookies = secureCookies
    }
}

/// The store, once the database could be opened: pages answer 503 until then.
public final class StoreHolder: Sendable {
    private let value = Mutex<BillingStore?>(nil)

    /// An empty holder.
    public init() {}

    /// A holder with the store already open (tests).
    public init(_ store: BillingStore) { value.withLock { $0 = store } }

    /// The store, or 503 while the database is not open yet.
    public func store() throws -> BillingStore {
        guard let store = value.withLock({ $0 }) else {
            throw HTTPError(.serviceUnavailable, message: "The database is not reachable yet. Try again shortly.")
        }
        return store
    }

    /// Opens the store, retrying every second until the database answers and is migrated, then checks it every
    /// five seconds for `/healthz`.
    public func keepOpen(client: PostgresClientHandle, readiness: Readiness, logger: Logger) async {
        var attempt = 0
        while !Task.isShuttingDownGracefully && !Task.isCancelled {
            do {
                if value.withLock({ $0 }) == nil {
                    let store = try await client.open()
                    value.withLock { $0 = store }
                } else {
                    try await client.check()
                }
                readiness.set("database", passing: true, "connected")
                attempt = 0
            } catch {
                attempt += 1
                readiness.set("database", passing: false, "unreachable")
                if attempt == 1 || attempt % 10 == 0 {
                    logger.error(
                        "Database check failed", metadata: ["error": "\(String(reflecting: error).prefix(300))"])
                }
            }
            try? await Task.sleep(for: .seconds(value.withLock({ $0 }) == nil ? 1 : 5))
        }
    }
}

/// What ``StoreHolder/keepOpen(client:readiness:logger:)`` opens and checks.
public struct PostgresClientHandle: Sendable {
    /// Opens the store.
    public var open: @Sendable () async throws -> BillingStore
    /// Checks the database answers.
    public var check: @Sendable () async throws -> Void

    /// A handle from its two operations.
    public init(
        open: @escaping @Sendable () async throws -> BillingStore, check: @escaping @Sendable () async throws -> Void
    ) {
        self.open = open
        self.check = check
    }
}
