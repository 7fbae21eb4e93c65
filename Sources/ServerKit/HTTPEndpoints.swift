import Foundation
import Hummingbird
import HummingbirdCore
import Logging
import NIOCore
import Synchronization

/// What `/healthz` reports: named checks, each passing or failing with a
/// detail. The process is ready when every check passes.
public final class Readiness: Sendable {
    /// One named check.
    public struct Check: Sendable, Hashable {
        /// Whether it passes.
        public var passing: Bool
        /// What it found, for people.
        public var detail: String
    }

    private let checks: Mutex<[String: Check]>

    /// Starts with `names` failing ("starting").
    public init(_ names: [String]) {
        checks = Mutex(Dictionary(uniqueKeysWithValues: names.map { ($0, Check(passing: false, detail: "starting")) }))
    }

    /// Records the check `name` as passing or failing, with a detail.
    public func set(_ name: String, passing: Bool, _ detail: String) {
        checks.withLock { $0[name] = Check(passing: passing, detail: detail) }
    }

    /// Whether every check passes.
    public var isReady: Bool { checks.withLock { $0.values.allSatisfy(\.passing) } }

    /// `{"ready":true,"checks":{"database":{"ok":true,"detail":"…"},…}}`
    var json: String {
        let snapshot = checks.withLock { $0 }
        let body = snapshot.sorted { $0.key < $1.key }.map { name, check in
            let detail = check.detail.replacingOccurrences(of: "\\", with: "\\\\")
                .replacingOccurrences(of: "\"", with: "\\\"")
            return "\"\(name)\":{\"ok\":\(check.passing),\"detail\":\"\(detail)\"}"
        }
        return "{\"ready\":\(snapshot.values.allSatisfy(\.passing)),\"checks\":{\(body.joined(separator: ","))}}\n"
    }
}

/// The HTTP endpoints every worker serves:
/// - `GET /healthz`: 200 when ready (assigned and connected), else 503; JSON body with each check.
/// - `GET /livez`: 200 while the process serves requests at all.
/// - `GET /metrics`: Prometheus text format.
public enum HTTPEndpoints {
    /// The endpoints alone, served at `address`.
    public static func application(
        address: HTTPAddress, readiness: Readiness, logger: Logger
    ) -> some ApplicationProtocol {
        application(router: Router(), address: address, readiness: readiness, logger: logger)
    }

    /// The endpoints added to `router`, served at `address` within `limits`.
    public static func application<Context: RequestContext>(
        router: Router<Context>, address: HTTPAddress, readiness: Readiness, limits: HTTPLimits = HTTPLimits(),
        logger: Logger
    ) -> some ApplicationProtocol where Context.Source == ApplicationRequestContextSource {
        router.get("healthz") { _, _ -> Response in
            Response(
                status: readiness.isReady ? .ok : .serviceUnavailable,
                headers: [.contentType: "application/json"],
                body: ResponseBody(byteBuffer: ByteBuffer(string: readiness.json)))
        }
        router.get("livez") { _, _ -> Response in
            Response(status: .ok, body: ResponseBody(byteBuffer: ByteBuffer(string: "ok\n")))
        }
        router.get("metrics") { _, _ -> Response in
            Response(
                status: .ok,
                headers: [.contentType: "text/plain; version=0.0.4; charset=utf-8"],
                body: ResponseBody(byteBuffer: ByteBuffer(bytes: ProcessMetrics.registry.emitToBuffer())))
        }
        var serverLogger = logger
        serverLogger.logLevel = max(logger.logLevel, .notice)
        return Application(
            router: router, server: limits.server,
            configuration: ApplicationConfiguration(
                address: .hostname(address.host, port: address.port), serverName: nil,
                availableConnectionsDelegate: MaximumAvailableConnections(limits.maxConnections)),
            onServerRunning: { channel in
                logger.info(
                    "HTTP endpoints listening",
                    metadata: ["http.port": "\(channel.localAddress?.port ?? address.port)"])
            },
            logger: serverLogger)
    }
}
