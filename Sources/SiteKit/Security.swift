import Crypto
import Foundation
import HTTPTypes
import Hummingbird

/// Random tokens and their digests, for sessions and forms.
public enum SiteTokens {
    /// 32 random bytes, base64url without padding (43 characters): a session's or a form's token.
    public static func make() -> String {
        var generator = SystemRandomNumberGenerator()
        let bytes = (0..<32).map { _ in UInt8.random(in: .min ... .max, using: &generator) }
        return Data(bytes).base64EncodedString().replacingOccurrences(of: "+", with: "-")
            .replacingOccurrences(of: "/", with: "_").replacingOccurrences(of: "=", with: "")
    }

    /// What is kept of a session token: its SHA-256.
    public static func digest(_ token: String) -> [UInt8] { Array(SHA256.hash(data: Data(token.utf8))) }

    /// Whether two tokens are equal, in a time that does not depend on where they differ.
    public static func equal(_ a: String, _ b: String) -> Bool {
        let x = Array(a.utf8)
        let y = Array(b.utf8)
        guard x.count == y.count else { return false }
        var difference: UInt8 = 0
        for (p, q) in zip(x, y) { difference |= p ^ q }
        return difference == 0
    }
}

/// The headers every page of a staff site carries: a strict Content-Security-Policy (scripts, styles and forms
/// of the site's own origin only, never framed), no MIME sniffing, no referrer, no caching of pages.
public enum SecurityHeaders {
    /// The policy sent: nothing inline, nothing from elsewhere, no framing.
    public static let contentSecurityPolicy =
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; object-src 'none'; "
        + "base-uri 'none'; form-action 'self'; frame-ancestors 'none'"

    /// Adds the headers to `response` (a response that sets its own caching keeps it).
    public static func add(to response: inout Response) {
        response.headers[.contentSecurityPolicy] = contentSecurityPolicy
        response.headers[.xContentTypeOptions] = "nosniff"
        response.headers[.xFrameOptions] = "DENY"
        response.headers[.referrerPolicy] = "no-referrer"
        if response.headers[.cacheControl] == nil { response.headers[.cacheControl] = "no-store" }
    }
}

extension HTTPField.Name {
    static let xContentTypeOptions = Self("X-Content-Type-Options")!
    static let xFrameOptions = Self("X-Frame-Options")!
    static let referrerPolicy = Self("Referrer-Policy")!
}

/// A form posted as `application/x-www-form-urlencoded`, read strictly.
public struct PostedForm: Sendable {
    /// The fields, by name (a name given twice is refused).
    public var fields: [String: String]

    /// The form in `body`: 400 when it is not URL-encoded fields or a name repeats.
    public init(body: ByteBuffer) throws {
        fields = [:]
        let text = String(buffer: body)
        for pair in text.split(separator: "&", omittingEmptySubsequences: true) {
            let parts = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            guard let name = Self.decode(parts[0]), let value = Self.decode(parts.count > 1 ? parts[1] : ""),
                fields[name] == nil
            else { throw HTTPError(.badRequest, message: "The form is not valid URL-encoded fields.") }
            fields[name] = value
        }
    }

    /// A field's value, trimmed; `nil` when absent or empty.
    public subscript(_ name: String) -> String? {
        guard let value = fields[name]?.trimmingCharacters(in: .whitespacesAndNewlines), !value.isEmpty else {
            return nil
        }
        return value
    }

    private static func decode(_ text: Substring) -> String? {
        String(text).replacingOccurrences(of: "+", with: " ").removingPercentEncoding
    }
}
