import Crypto
import Foundation

/// What a purchase authorization allows: one request, on one line, for one
/// merchant, of one kind and amount, with the merchant's reference, until it
/// expires. Issued by the auth gateway, checked by the charge worker.
public struct PurchaseClaims: Codable, Hashable, Sendable {
    /// The token's unique id: a token is accepted once.
    public var tokenID: String
    public var lineID: String
    public var merchantID: String
    /// `charge` or `subscription`.
    public var kind: String
    /// Yen: the charge's amount or the subscription's monthly amount.
    public var amount: Int64
    /// The merchant's charge id or subscription id.
    public var reference: String
    /// Seconds since 1970 after which the token is refused.
    public var expiresAt: Int64

    public init(
        tokenID: String, lineID: String, merchantID: String, kind: String, amount: Int64, reference: String,
        expiresAt: Int64
    ) {
        self.tokenID = tokenID
        self.lineID = lineID
        self.merchantID = merchantID
        self.kind = kind
        self.amount = amount
        self.reference = reference
        self.expiresAt = expiresAt
    }

    enum CodingKeys: String, CodingKey {
        case tokenID = "jti"
        case lineID = "line"
        case merchantID = "merchant"
        case kind
        case amount
        case reference = "ref"
        case expiresAt = "exp"
    }
}

/// Why an authorization was refused; each maps to a rejection reason code.
public enum AuthorizationFailure: String, Error, Sendable {
    /// Not a token, a bad signature, or signed by a key not (or no longer) accepted.
    case invalid
    case expired
    /// Signed, but for another line, merchant, kind, amount or reference.
    case mismatch
}

/// Signs claims with the gateway's Ed25519 key.
///
/// A token is `v1.<key id>.<claims>.<signature>`, the last two base64url
/// without padding; the signature covers `v1.<key id>.<claims>`.
public struct AuthorizationSigner: Sendable {
    public let keyID: String
    private let key: Curve25519.Signing.PrivateKey

    public init(keyID: String, privateKey: Curve25519.Signing.PrivateKey) {
        self.keyID = keyID
        key = privateKey
    }

    public var publicKey: Curve25519.Signing.PublicKey { key.publicKey }

    public func token(for claims: PurchaseClaims) throws -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = .sortedKeys
        let signed = "v1.\(keyID).\(Base64URL.encode(try encoder.encode(claims)))"
        let signature = try key.signature(for: Data(signed.utf8))
        return "\(signed).\(Base64URL.encode(signature))"
    }
}

/// Checks tokens with the gateway's public keys. Several keys can be accepted
/// at once, so the gateway's key can be rotated: add the new public key to
/// every worker, switch the gateway, and remove the old key once its tokens
/// have expired.
public struct AuthorizationVerifier: Sendable {
    public let keys: [String: Curve25519.Signing.PublicKey]

    public init(keys: [String: Curve25519.Signing.PublicKey]) {
        self.keys = keys
    }

    /// The claims of a well-signed, unexpired token; `now` in seconds since 1970.
    public func claims(of token: String, now: Int64) -> Result<PurchaseClaims, AuthorizationFailure> {
        let parts = token.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 4, parts[0] == "v1", let key = keys[String(parts[1])],
            let payload = Base64URL.decode(parts[2]), let signature = Base64URL.decode(parts[3])
        else { return .failure(.invalid) }
        let signed = Data(token.utf8.prefix(parts[0].utf8.count + parts[1].utf8.count + parts[2].utf8.count + 2))
        guard key.isValidSignature(signature, for: signed),
            let claims = try? JSONDecoder().decode(PurchaseClaims.self, from: payload)
        else { return .failure(.invalid) }
        guard now <= claims.expiresAt else { return .failure(.expired) }
        return .success(claims)
    }

    /// Checks a token against the request it comes with.
    public func verify(
        _ token: String, lineID: String, merchantID: String, kind: String, amount: Int64, reference: String,
        now: Int64
    ) -> Result<PurchaseClaims, AuthorizationFailure> {
        claims(of: token, now: now).flatMap { claims in
            claims.lineID == lineID && claims.merchantID == merchantID && claims.kind == kind
                && claims.amount == amount && claims.reference == reference
                ? .success(claims) : .failure(.mismatch)
        }
    }
}

/// Ed25519 keys as text: base64 of the raw 32 bytes, as kept in files and environment variables.
public enum SigningKeys {
    public static func privateKey(base64: String) throws -> Curve25519.Signing.PrivateKey {
        guard let raw = Data(base64Encoded: base64.trimmingCharacters(in: .whitespacesAndNewlines)) else {
            throw AuthorizationFailure.invalid
        }
        return try Curve25519.Signing.PrivateKey(rawRepresentation: raw)
    }

    public static func publicKey(base64: String) throws -> Curve25519.Signing.PublicKey {
        guard let raw = Data(base64Encoded: base64.trimmingCharacters(in: .whitespacesAndNewlines)) else {
            throw AuthorizationFailure.invalid
        }
        return try Curve25519.Signing.PublicKey(rawRepresentation: raw)
    }

    /// Parses `id=base64,id=base64` (the workers' list of accepted keys).
    public static func publicKeys(list: String) throws -> [String: Curve25519.Signing.PublicKey] {
        var keys: [String: Curve25519.Signing.PublicKey] = [:]
        for entry in list.split(separator: ",") {
            guard let equals = entry.firstIndex(of: "=") else { throw AuthorizationFailure.invalid }
            keys[String(entry[..<equals])] = try publicKey(base64: String(entry[entry.index(after: equals)...]))
        }
        return keys
    }
}

enum Base64URL {
    static func encode(_ data: some DataProtocol) -> String {
        Data(data).base64EncodedString().replacingOccurrences(of: "+", with: "-")
            .replacingOccurrences(of: "/", with: "_").replacingOccurrences(of: "=", with: "")
    }

    /// Byte by byte: every charge's token passes here, and Foundation's string
    /// replacing showed in the charge worker's profile.
    static func decode(_ text: Substring) -> Data? {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(text.utf8.count + 3)
        for byte in text.utf8 {
            switch byte {
            case UInt8(ascii: "-"): bytes.append(UInt8(ascii: "+"))
            case UInt8(ascii: "_"): bytes.append(UInt8(ascii: "/"))
            case UInt8(ascii: "+"), UInt8(ascii: "/"), UInt8(ascii: "="): return nil
            default: bytes.append(byte)
            }
        }
        while bytes.count % 4 != 0 { bytes.append(UInt8(ascii: "=")) }
        return Data(base64Encoded: Data(bytes))
    }
}
