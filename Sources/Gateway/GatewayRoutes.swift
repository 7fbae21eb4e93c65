import Authorization
import Foundation
import HTTPTypes
import Hummingbird
import JSON
import Logging
import NIOCore
import PostgresNIO
import ServerKit
import ServiceLifecycle
import Store
import Synchronization

/// The request context: the connection's peer address, for the line check.
public struct GatewayContext: RequestContext {
    /// Hummingbird's storage for the request.
    public var coreContext: CoreRequestContextStorage
    /// The IP address of the connection's peer; `nil` when the connection has none.
    public let peerAddress: String?

    /// The context of a request on `source`'s connection.
    public init(source: ApplicationRequestContextSource) {
        coreContext = CoreRequestContextStorage(source: source)
        peerAddress = source.channel.remoteAddress?.ipAddress
    }
}

/// `POST /v1/authorizations`, next to `/healthz`, `/livez` and `/metrics`.
public enum GatewayRoutes {
    /// The gateway's HTTP application at `address`: `POST /v1/authorizations`, answered by the service in
    /// `service` (503 until the database is open) with the client's address from `resolver`, and the
    /// shared endpoints reporting `readiness`.
    public static func application(
        service: ServiceHolder, resolver: ClientAddressResolver, address: HTTPAddress, limits: HTTPLimits,
        readiness: Readiness, logger: Logger
    ) -> some ApplicationProtocol {
        let router = Router(context: GatewayContext.self)
        router.post("v1/authorizations") { request, context -> Response in
            // JSON only: a form or text post (what any web page can make a browser send) is refused unread.
            guard Self.isJSON(request.headers[.contentType]) else {
                return json(415, ["error": "unsupported_media_type"])
            }
            let body = try await request.body.collect(upTo: 16 * 1024)
            // One set of rules for every JSON input: UTF-8, no key twice, integers as integers.
            guard StrictJSON.problem(in: body.readableBytesView) == nil,
                let purchase = try? JSONDecoder().decode(AuthorizationRequest.self, from: Data(buffer: body))
            else {
                return json(400, ["error": "invalid_request"])
            }
            guard let service = service.current else { return json(503, ["error": "unavailable"]) }
            let client = resolver.clientAddress(
                peer: context.peerAddress, forwardedFor: request.headers[.xForwardedFor])
            let decision: AuthorizationDecision
            do {
                decision = try await service.authorize(purchase, clientAddress: client)
            } catch {
                logger.error(
                    "Authorization failed on the database",
                    metadata: ["error": "\(String(reflecting: error).prefix(300))"])
                return json(503, ["error": "unavailable"])
            }
            switch decision {
            case .issued(let token, let tokenID, let lineID, let expiresAt):
                return json(
                    201,
                    [
                        "authorization": token, "tokenId": tokenID, "lineId": lineID,
                        "expiresAt": Date(timeIntervalSince1970: TimeInterval(expiresAt)).formatted(.iso8601),
                    ])
            case .refused(let status, let code):
                return json(status, ["error": code])
            case .busy(let seconds):
                var response = json(503, ["error": "busy"])
                response.headers[.retryAfter] = "\(seconds)"
                return response
            }
        }
        return HTTPEndpoints.application(
            router: router, address: address, readiness: readiness, limits: limits, logger: logger)
    }

    /// Whether a `Content-Type` is `application/json`, with or without
    /// parameters (`; charset=utf-8`), in any letter case.
    static func isJSON(_ contentType: String?) -> Bool {
        guard let contentType else { return false }
        let mediaType = contentType.split(separator: ";", maxSplits: 1).first ?? ""
        return mediaType.trimmingCharacters(in: .whitespaces).lowercased() == "application/json"
    }

    private static func json(_ status: Int, _ fields: [String: String]) -> Response {
        let encoder = JSONEncoder()
        encoder.outputFormatting = .sortedKeys
        let body = (try? encoder.encode(fields)) ?? Data("{}".utf8)
        return Response(
            status: HTTPResponse.Status(code: status), headers: [.contentType: "application/json"],
            body: ResponseBody(byteBuffer: ByteBuffer(bytes: body)))
    }
}

extension HTTPField.Name {
    static let xForwardedFor = Self("X-Forwarded-For")!
}

/// The authorization service, once the database is open.
public final class ServiceHolder: Sendable {
    private let service = Mutex<AuthorizationService?>(nil)

    /// An empty holder: authorization requests get 503 until the service is set.
    public init() {}

    /// The service, or `nil` while the database is not open yet.
    public var current: AuthorizationService? { service.withLock { $0 } }

    func set(_ value: AuthorizationService) { service.withLock { $0 = value } }
}

/// Runs the gateway: the database client, the HTTP endpoints, and a service
/// that opens the store (waiting for the database) and keeps `/healthz` honest.
public enum GatewayProcess {
    /// Runs the gateway until SIGTERM or SIGINT: authorizations signed by `signer`, valid for `lifetime`,
    /// with lock-outs by `policy` and password checks bounded by `gate`, served at `address` within `limits`.
    public static func run(
        database: DatabaseConfiguration, signer: AuthorizationSigner, lifetime: Duration, policy: LockoutPolicy,
        gate: PasswordCheckGate, resolver: ClientAddressResolver, address: HTTPAddress, limits: HTTPLimits,
        logger: Logger
    ) async throws {
        let client = PostgresClient(configuration: database.clientConfiguration, backgroundLogger: logger)
        let readiness = Readiness(["database"])
        let holder = ServiceHolder()
        let app = GatewayRoutes.application(
            service: holder, resolver: resolver, address: address, limits: limits, readiness: readiness,
            logger: logger)
        let opener = StoreOpener(
            client: client, holder: holder, readiness: readiness, logger: logger,
            make: { store in
                AuthorizationService(
                    store: store, signer: signer, lifetime: lifetime, policy: policy, gate: gate, logger: logger)
            })
        let group = ServiceGroup(
            configuration: ServiceGroupConfiguration(
                services: [
                    .init(service: client), .init(service: app),
                    .init(
                        service: opener, successTerminationBehavior: .ignore,
                        failureTerminationBehavior: .gracefullyShutdownGroup),
                ],
                gracefulShutdownSignals: [.sigterm, .sigint], logger: logger))
        try await group.run()
        logger.info("Stopped")
    }
}

struct StoreOpener: Service {
    var client: PostgresClient
    var holder: ServiceHolder
    var readiness: Readiness
    var logger: Logger
    var make: @Sendable (BillingStore) -> AuthorizationService

    func run() async throws {
        var attempt = 0
        while !Task.isShuttingDownGracefully {
            do {
                if holder.current == nil {
                    holder.set(make(try await BillingStore.open(client: client, logger: logger)))
                } else {
                    _ = try await holder.current!.store.lines(at: "0.0.0.0")
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
            try? await Task.sleep(for: .seconds(holder.current == nil ? 1 : 5))
        }
    }
}
