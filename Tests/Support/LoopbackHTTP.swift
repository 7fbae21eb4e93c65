import Foundation

#if canImport(Glibc)
    import Glibc
#endif

/// HTTP/1.1 to a server on this machine, over a plain socket: one request per connection. For peers that
/// Foundation's client cannot read (chromedriver writes headers without a space after the colon).
public enum LoopbackHTTP {
    /// A response: its status, its headers (names in lower case) and its body.
    public struct Response: Sendable {
        public var status: Int
        public var headers: [String: String]
        public var body: Data
    }

    /// Sends one request to 127.0.0.1:`port` and reads the whole response (60 s at most).
    public static func request(
        port: Int, method: String, path: String, headers: [String: String] = [:], body: Data? = nil
    ) throws -> Response {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw TestFailure("no socket") }
        defer { close(fd) }
        var timeout = timeval(tv_sec: 60, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = UInt16(port).bigEndian
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) == 0
            }
        }
        guard connected else { throw TestFailure("cannot connect to 127.0.0.1:\(port)") }
        var head = "\(method) \(path) HTTP/1.1\r\nHost: 127.0.0.1:\(port)\r\nConnection: close\r\n"
        for (name, value) in headers { head += "\(name): \(value)\r\n" }
        head += "Content-Length: \(body?.count ?? 0)\r\n\r\n"
        var request = Data(head.utf8)
        if let body { request.append(body) }
        try request.withUnsafeBytes { bytes in
            var sent = 0
            while sent < bytes.count {
                let count = send(fd, bytes.baseAddress! + sent, bytes.count - sent, 0)
                guard count > 0 else { throw TestFailure("cannot send to 127.0.0.1:\(port)") }
                sent += count
            }
        }
        // Read until the response is whole: by its Content-Length, its last chunk, or the peer closing (chromedriver
        // keeps the connection open despite `Connection: close`).
        var answer = Data()
        var buffer = [UInt8](repeating: 0, count: 65_536)
        var parsed: (end: Range<Data.Index>, fields: [String: String], status: Int)?
        while true {
            let count = recv(fd, &buffer, buffer.count, 0)
            if count <= 0 { break }
            answer.append(buffer, count: count)
            if parsed == nil, let end = answer.range(of: Data("\r\n\r\n".utf8)) {
                parsed = parseHead(answer[..<end.lowerBound], end: end)
            }
            if let parsed, isComplete(answer[parsed.end.upperBound...], fields: parsed.fields) { break }
        }
        guard let parsed else { throw TestFailure("no HTTP response from 127.0.0.1:\(port)") }
        let (end, fields, status) = parsed
        var payload = Data(answer[end.upperBound...])
        if fields["transfer-encoding"]?.lowercased() == "chunked" { payload = unchunked(payload) }
        return Response(status: status, headers: fields, body: payload)
    }

    private static func parseHead(
        _ bytes: Data, end: Range<Data.Index>
    ) -> (
        end: Range<Data.Index>, fields: [String: String], status: Int
    ) {
        let lines = String(decoding: bytes, as: UTF8.self).components(separatedBy: "\r\n")
        let status = Int(lines.first?.split(separator: " ").dropFirst().first ?? "") ?? 0
        var fields: [String: String] = [:]
        for line in lines.dropFirst() {
            guard let colon = line.firstIndex(of: ":") else { continue }
            fields[line[..<colon].lowercased()] = line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
        }
        return (end, fields, status)
    }

    private static func isComplete(_ body: Data, fields: [String: String]) -> Bool {
        if let length = fields["content-length"].flatMap({ Int($0) }) { return body.count >= length }
        if fields["transfer-encoding"]?.lowercased() == "chunked" {
            return body.count >= 5 && body.suffix(5) == Data("0\r\n\r\n".utf8)
        }
        return false
    }

    private static func unchunked(_ data: Data) -> Data {
        var output = Data()
        var rest = data[...]
        while let lineEnd = rest.range(of: Data("\r\n".utf8)),
            let size = Int(String(decoding: rest[..<lineEnd.lowerBound], as: UTF8.self), radix: 16), size > 0
        {
            let start = lineEnd.upperBound
            guard rest.distance(from: start, to: rest.endIndex) >= size else { break }
            let stop = rest.index(start, offsetBy: size)
            output.append(rest[start..<stop])
            rest = rest[(rest.index(stop, offsetBy: 2, limitedBy: rest.endIndex) ?? rest.endIndex)...]
        }
        return output
    }
}
