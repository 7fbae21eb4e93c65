import Hummingbird
import HummingbirdCore
import NIOCore
import NIOHTTPTypes

/// What an HTTP server allows its clients, so that slow or idle ones cannot
/// hold its connections (and file handles) for ever.
public struct HTTPLimits: Sendable, Hashable {
    /// A connection on which nothing has been read for this long is closed,
    /// unless a request on it is being answered: an idle keep-alive
    /// connection, or a client sending its request line and headers too
    /// slowly (nothing counts as read until the whole head is). Default 10 s.
    public var idleTimeout: Duration
    /// A request whose head and body are not all read this long after its
    /// head closes its connection, without an answer: a body drip-fed a
    /// byte at a time. Default 10 s.
    public var requestReadTimeout: Duration
    /// Connections held at once; beyond, new ones wait in the listen backlog
    /// until one closes. Default 1,024.
    public var maxConnections: Int

    /// Limits; the defaults suit every Matomete server.
    public init(
        idleTimeout: Duration = .seconds(10), requestReadTimeout: Duration = .seconds(10), maxConnections: Int = 1_024
    ) {
        self.idleTimeout = idleTimeout
        self.requestReadTimeout = requestReadTimeout
        self.maxConnections = maxConnections
    }

    /// The HTTP/1.1 server these limits describe.
    var server: HTTPServerBuilder {
        let readTimeout = TimeAmount(requestReadTimeout)
        return .http1(
            configuration: HTTP1Channel.Configuration(
                additionalChannelHandlers: [RequestReadDeadline(timeout: readTimeout)],
                idleTimeout: TimeAmount(idleTimeout)))
    }
}

extension TimeAmount {
    init(_ duration: Duration) {
        let (seconds, attoseconds) = duration.components
        self = .nanoseconds(seconds * 1_000_000_000 + attoseconds / 1_000_000_000)
    }
}

/// Closes the connection when a request's body has not been read in full
/// `timeout` after its head; the idle timeout covers a slow head.
final class RequestReadDeadline: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPRequestPart
    typealias InboundOut = HTTPRequestPart

    private let timeout: TimeAmount
    private var deadline: Scheduled<Void>?

    init(timeout: TimeAmount) { self.timeout = timeout }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head:
            deadline?.cancel()
            let loopBound = NIOLoopBound(context, eventLoop: context.eventLoop)
            deadline = context.eventLoop.scheduleTask(in: timeout) { loopBound.value.close(promise: nil) }
        case .end:
            deadline?.cancel()
            deadline = nil
        case .body:
            break
        }
        context.fireChannelRead(data)
    }

    func channelInactive(context: ChannelHandlerContext) {
        deadline?.cancel()
        deadline = nil
        context.fireChannelInactive()
    }
}
