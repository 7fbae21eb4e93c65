import Crypto
import Foundation
import JSON

/// What a purchase authorization allows: one request, on one line, for one
/// merchant, of one kind and amount, with the merchant's reference, until it
/// expires. Issued by the auth gateway, checked by the charge worker.
public struct PurchaseClaims: Codable, Hashable, Sendable {
    /// The token's unique id: a token is accepted once.
    public var tokenID: String
    /// The line the purchase was confirmed from; the request must be for this line.
    public var lineID: String
    /// The merchant the user confirmed the purchase for.
    public var merchantID: String
    /// `charge` or `subscription`.
    public var kind: String
    /// Yen: the charge's amount or the subscription's monthly amount.
    public var amount: Int64
    /// The merchant's charge id or subscription id.
    public var reference: String
    /// Seconds since 1970 after which the token is refused.
    public var expiresAt: Int64

    /// Claims for one purchase, valid until `expiresAt`.
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
    /// Well signed, but its expiry has passed.
    case expired
    /// Signed, but for another line, merchant, kind, amount or reference.
    case mismatch
}

/// Signs claims with the gateway's Ed25519 key.
///
/// A token is `v1.<key id>.<claims>.<signature>`, the last two base64url
/// without padding; the signature covers `v1.<key id>.<claims>`.
public struct AuthorizationSigner: Sendable {
    /// The id of the signing key, written into every token so workers can pick the public key to check it with.
    public let keyID: String
    private let key: Curve25519.Signing.PrivateKey

    /// A signer with the gateway's private key and its id (`MATOMETE_SIGNING_KEY`, `MATOMETE_SIGNING_KEY_ID`).
    public init(keyID: String, privateKey: Curve25519.Signing.PrivateKey) {
        self.keyID = keyID
        key = privateKey
    }

    /// The public key the charge workers need to accept this signer's tokens.
    public var publicKey: Curve25519.Signing.PublicKey { key.publicKey }

    /// A signed token for `claims`: `v1.<key id>.<claims>.<signature>`.
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
    /// The accepted keys by the bytes of their ids: a token's key id is looked
    /// up without making a string of it (one or two keys: a scan beats hashing).
    private let keysByID: [(id: [UInt8], key: Curve25519.Signing.PublicKey)]
    /// Reads claims with Foundation's `JSONDecoder` alone (for tests comparing the two readers).
    var foundationOnly = false

    /// A verifier accepting tokens signed with any of `keys`, given by key id.
    public init(keys: [String: Curve25519.Signing.PublicKey]) {
        keysByID = keys.map { (Array($0.key.utf8), $0.value) }
    }

    /// The claims of a well-signed token, unexpired at `now` (seconds since
    /// 1970; `nil`: expiry not checked here, the caller judges it).
    ///
    /// Every charge's token passes here, so it is taken apart as bytes: the
    /// signature check is the only work that shows in the charge worker's profile.
    public func claims(of token: String, now: Int64?) -> Result<PurchaseClaims, AuthorizationFailure> {
        var token = token
        return token.withUTF8 { claims(of: $0, now: now) }
    }

    private func claims(
        of token: UnsafeBufferPointer<UInt8>, now: Int64?
    ) -> Result<PurchaseClaims, AuthorizationFailure> {
        // v1.<key id>.<claims>.<signature>: exactly three dots.
        var dots: (Int, Int, Int) = (-1, -1, -1)
        for index in token.indices where token[index] == UInt8(ascii: ".") {
            if dots.0 < 0 {
                dots.0 = index
            } else if dots.1 < 0 {
                dots.1 = index
            } else if dots.2 < 0 {
                dots.2 = index
            } else {
                return .failure(.invalid)
            }
        }
        guard dots.2 > 0, dots.0 == 2, token[0] == UInt8(ascii: "v"), token[1] == UInt8(ascii: "1") else {
            return .failure(.invalid)
        }
        let keyID = token[(dots.0 + 1)..<dots.1]
        guard let key = keysByID.first(where: { $0.id.elementsEqual(keyID) })?.key,
            let payload = Base64URL.decode(token[(dots.1 + 1)..<dots.2]),
            let signature = Base64URL.decode(token[(dots.2 + 1)...]),
            key.isValidSignature(
                signature, for: UnsafeRawBufferPointer(UnsafeBufferPointer(rebasing: token[..<dots.2])))
        else { return .failure(.invalid) }
        guard let claims = decodeClaims(payload) else { return .failure(.invalid) }
        if let now, now > claims.expiresAt { return .failure(.expired) }
        return .success(claims)
    }

    /// The gateway writes claims as a flat object; `JSONDecoder` reads anything else.
    private func decodeClaims(_ payload: [UInt8]) -> PurchaseClaims? {
        if !foundationOnly, let object = FlatJSONObject(payload),
            let tokenID = try? object.string("jti"), let lineID = try? object.string("line"),
            let merchantID = try? object.string("merchant"), let kind = try? object.string("kind"),
            let amount = try? object.integer("amount"), let reference = try? object.string("ref"),
            let expiresAt = try? object.integer("exp")
        {
            return PurchaseClaims(
                tokenID: tokenID, lineID: lineID, merchantID: merchantID, kind: kind, amount: amount,
                reference: reference, expiresAt: expiresAt)
        }
        guard StrictJSON.problem(in: payload) == nil else { return nil }
        return try? JSONDecoder().decode(PurchaseClaims.self, from: Data(payload))
    }

    /// Checks a token against the request it comes with, and its expiry at
    /// `now` unless `nil` (see ``claims(of:now:)``).
    public func verify(
        _ token: String, lineID: String, merchantID: String, kind: String, amount: Int64, reference: String,
        now: Int64?
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
    /// A private key from base64 of its raw 32 bytes (surrounding whitespace ignored); throws when it is not one.
    public static func privateKey(base64: String) throws -> Curve25519.Signing.PrivateKey {
        guard let raw = Data(base64Encoded: base64.trimmingCharacters(in: .whitespacesAndNewlines)) else {
            throw AuthorizationFailure.invalid
        }
        return try Curve25519.Signing.PrivateKey(rawRepresentation: raw)
    }

    /// A public key from base64 of its raw 32 bytes (surrounding whitespace ignored); throws when it is not one.
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

    /// Unpadded base64url, strictly: any other character, a length no
    /// encoding has, or bits left over that are not zero make it `nil`.
    static func decode(_ text: some Collection<UInt8>) -> [UInt8]? {
        guard text.count % 4 != 1 else { return nil }
        var bytes: [UInt8] = []
        bytes.reserveCapacity(text.count * 3 / 4)
        var accumulated: UInt32 = 0
        var bits = 0
        for character in text {
            let value: UInt8
            switch character {
            case UInt8(ascii: "A")...UInt8(ascii: "Z"): value = character - UInt8(ascii: "A")
            case UInt8(ascii: "a")...UInt8(ascii: "z"): value = character - UInt8(ascii: "a") + 26
            case UInt8(ascii: "0")...UInt8(ascii: "9"): value = character - UInt8(ascii: "0") + 52
            case UInt8(ascii: "-"): value = 62
            case UInt8(ascii: "_"): value = 63
            default: return nil
            }
            accumulated = accumulated &<< 6 | UInt32(value)
            bits += 6
            if bits >= 8 {
                bits -= 8
                bytes.append(UInt8(truncatingIfNeeded: accumulated >> UInt32(bits)))
            }
        }
        guard accumulated & ((1 << UInt32(bits)) - 1) == 0 else { return nil }
        return bytes
    }
}
