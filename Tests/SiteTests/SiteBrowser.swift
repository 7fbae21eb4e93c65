import Foundation
import HTTPTypes
import HummingbirdTesting
import NIOCore
import Synchronization
import Testing

/// A test client with a browser's habits: one cookie jar per session, forms posted URL-encoded.
struct SiteBrowser: Sendable {
    let client: any TestClientProtocol

    /// A new browser session (its own cookies).
    func session() -> Session { Session(client: client) }

    /// A page as the browser got it.
    struct Page: Sendable {
        var status: HTTPResponse.Status
        var headers: HTTPFields
        var text: String
        /// Where a redirect points.
        var location: String? { headers[.location] }
    }

    final class Session: Sendable {
        let client: any TestClientProtocol
        private let state = Mutex<(cookies: [String: String], setCookies: [String], language: String?)>(([:], [], nil))

        init(client: any TestClientProtocol) { self.client = client }

        /// The cookies held, by name.
        var cookies: [String: String] {
            get { state.withLock { $0.cookies } }
            set { state.withLock { $0.cookies = newValue } }
        }
        /// Every Set-Cookie header received.
        var setCookies: [String] { state.withLock { $0.setCookies } }
        /// The Accept-Language sent.
        var acceptLanguage: String? {
            get { state.withLock { $0.language } }
            set { state.withLock { $0.language = newValue } }
        }

        func get(_ path: String) async throws -> Page { try await send(path, method: .get, body: nil) }

        func post(_ path: String, fields: [String: String]) async throws -> Page {
            let allowed = CharacterSet.alphanumerics.union(CharacterSet(charactersIn: "-._~"))
            let body = fields.map { name, value in
                "\(name)=\(value.addingPercentEncoding(withAllowedCharacters: allowed) ?? "")"
            }.joined(separator: "&")
            return try await send(path, method: .post, body: body)
        }

        /// The CSRF token of the session's pages.
        func csrf() async throws -> String {
            let page = try await get("/overview")
            guard let range = page.text.range(of: #"name="csrf" value=""#) else {
                throw TestFailureMessage("no CSRF token on /overview (\(page.status))")
            }
            return String(page.text[range.upperBound...].prefix { $0 != "\"" })
        }

        /// Logs in through the login form; `expect: false` for a login that must fail (returns true when it
        /// did fail).
        @discardableResult
        func logIn(_ login: String, _ password: String, code: String? = nil, expect: Bool = true) async throws -> Bool {
            let form = try await get("/login")
            guard let range = form.text.range(of: #"name="csrf" value=""#) else {
                throw TestFailureMessage("no token on the login form")
            }
            let token = String(form.text[range.upperBound...].prefix { $0 != "\"" })
            var fields = ["csrf": token, "login": login, "password": password]
            if let code { fields["code"] = code }
            let answer = try await post("/login", fields: fields)
            let succeeded = answer.status == .seeOther && answer.headers[.location] != "/login?failed=1"
            if expect && !succeeded {
                throw TestFailureMessage(
                    "\(login) could not log in: \(answer.status) \(answer.headers[.location] ?? "")")
            }
            return expect ? succeeded : !succeeded
        }

        private func send(_ path: String, method: HTTPRequest.Method, body: String?) async throws -> Page {
            var headers = HTTPFields()
            let cookies = self.cookies
            if !cookies.isEmpty {
                headers[.cookie] = cookies.map { "\($0.key)=\($0.value)" }.sorted().joined(separator: "; ")
            }
            if let language = acceptLanguage { headers[.acceptLanguage] = language }
            if body != nil { headers[.contentType] = "application/x-www-form-urlencoded" }
            let response = try await client.execute(
                uri: path, method: method, headers: headers, body: body.map { ByteBuffer(string: $0) })
            for line in response.headers[values: .setCookie] {
                let pair = line.split(separator: ";").first ?? ""
                let parts = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
                guard parts.count == 2 else { continue }
                let (name, value) = (String(parts[0]), String(parts[1]))
                state.withLock { state in
                    state.setCookies.append(line)
                    if value.isEmpty || line.contains("Max-Age=0") {
                        state.cookies[name] = nil
                    } else {
                        state.cookies[name] = value
                    }
                }
            }
            return Page(status: response.status, headers: response.headers, text: String(buffer: response.body))
        }
    }
}

struct TestFailureMessage: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}
