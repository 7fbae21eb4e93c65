import Crypto
import Foundation
import MatometeTestSupport
import Testing

@testable import Authorization

/// The worked example in `docs/purchase-flow.md` is what the gateway signs
/// and what the workers accept: an outside implementer can check their code
/// against it.
@Suite("The documented authorization test vector")
struct TestVectorTests {
    /// The `name: value` lines between the test-vector markers of the purchase-flow page.
    static func documentedVector() throws -> [String: String] {
        let page = try String(
            contentsOf: JSONSchema.checkout.appendingPathComponent("docs/purchase-flow.md"), encoding: .utf8)
        let start = try #require(page.range(of: "<!-- test-vector -->"))
        let end = try #require(page.range(of: "<!-- /test-vector -->"))
        var fields: [String: String] = [:]
        for line in page[start.upperBound..<end.lowerBound].split(separator: "\n") {
            guard let colon = line.firstIndex(of: ":"), !line.hasPrefix("`") else { continue }
            fields[line[..<colon].trimmingCharacters(in: .whitespaces)] = line[line.index(after: colon)...]
                .trimmingCharacters(in: .whitespaces)
        }
        return fields
    }

    static func bytes(hex: String) -> [UInt8] {
        stride(from: 0, to: hex.count, by: 2).compactMap {
            let start = hex.index(hex.startIndex, offsetBy: $0)
            return UInt8(hex[start..<hex.index(start, offsetBy: 2)], radix: 16)
        }
    }

    @Test("The documented token is the documented claims signed with the documented key, and it verifies")
    func documentedVector() throws {
        let vector = try Self.documentedVector()
        let seed = Self.bytes(hex: try #require(vector["private key seed (hex)"]))
        let key = try Curve25519.Signing.PrivateKey(rawRepresentation: seed)
        #expect(Array(key.publicKey.rawRepresentation) == Self.bytes(hex: try #require(vector["public key (hex)"])))
        #expect(key.publicKey.rawRepresentation.base64EncodedString() == vector["public key (base64)"])
        let claims = PurchaseClaims(
            tokenID: "7f3c9a52-1d4e-4b8a-9c61-0e2f5a7b8c90", lineID: "L0000001", merchantID: "m-points",
            kind: "charge", amount: 500, reference: "c-1001", expiresAt: 1_795_000_000)
        let encoder = JSONEncoder()
        encoder.outputFormatting = .sortedKeys
        #expect(String(decoding: try encoder.encode(claims), as: UTF8.self) == vector["claims"])
        let keyID = try #require(vector["key id"])
        let signed = "v1.\(keyID).\(Base64URL.encode(try encoder.encode(claims)))"
        #expect(signed == vector["signed text"])
        let token = try #require(vector["token"])
        #expect(token.hasPrefix(signed + "."))
        #if os(Linux)
            // BoringSSL's Ed25519 is deterministic (RFC 8032); Apple's CryptoKit randomizes signatures.
            let made = try AuthorizationSigner(keyID: keyID, privateKey: key).token(for: claims)
            #expect(made == token, "made: \(made)")
        #endif
        let verifier = AuthorizationVerifier(keys: [keyID: key.publicKey])
        #expect(try verifier.claims(of: token, now: 1_795_000_000).get() == claims)
        #expect(verifier.claims(of: token, now: 1_795_000_001) == .failure(.expired))
        #expect(
            verifier.claims(of: token.replacingOccurrences(of: "v1.\(keyID).ey", with: "v1.\(keyID).eY"), now: nil)
                == .failure(.invalid))
    }
}

/// The signing example in `docs/merchants.md`: an outside implementer can check
/// their request signing against it (it was computed with Python's `hmac`).
@Suite("The documented request-signing test vector")
struct SigningTestVectorTests {
    static func documented() throws -> [String: String] {
        let page = try String(
            contentsOf: JSONSchema.checkout.appendingPathComponent("docs/merchants.md"), encoding: .utf8)
        let start = try #require(page.range(of: "<!-- signing-test-vector -->"))
        let end = try #require(page.range(of: "<!-- /signing-test-vector -->"))
        var fields: [String: String] = [:]
        for line in page[start.upperBound..<end.lowerBound].split(separator: "\n") {
            guard let colon = line.firstIndex(of: ":") else { continue }
            fields[String(line[..<colon])] = line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
        }
        return fields
    }

    @Test("The documented signature is the documented message signed with the documented secret, and it verifies")
    func vector() throws {
        let vector = try Self.documented()
        let secretHex = try #require(vector["secret (hex)"])
        let secret = try #require(MessageSignature.bytes(hex: secretHex))
        let topic = try #require(vector["topic"])
        let timestampText = try #require(vector["timestamp"])
        let timestamp = try #require(Int64(timestampText))
        let keyID = try #require(vector["key id"])
        let key = Array(try #require(vector["key"]).utf8)
        let value = Array(try #require(vector["value"]).utf8)
        let text = String(
            decoding: MessageSignature.textToSign(
                topic: topic, timestamp: timestamp, keyID: keyID, key: key, value: value),
            as: UTF8.self)
        #expect(text.split(separator: "\n").last == vector["SHA-256 of the value"].map { Substring($0) })
        #expect(text.split(separator: "\n").dropLast().last == vector["SHA-256 of the key"].map { Substring($0) })
        let signature = MessageSignature.signature(
            secret: secret, topic: topic, timestamp: timestamp, keyID: keyID, key: key, value: value)
        #expect(signature == vector["matomete-signature"])
        #expect(
            MessageSignature.isValid(
                signature, secret: secret, topic: topic, timestamp: timestamp, keyID: keyID, key: key, value: value))
        // Any change to what is signed, or another secret, fails.
        var other = secret
        other[0] ^= 1
        #expect(
            !MessageSignature.isValid(
                signature, secret: other, topic: topic, timestamp: timestamp, keyID: keyID, key: key, value: value))
        #expect(
            !MessageSignature.isValid(
                signature, secret: secret, topic: "matomete.cancellations", timestamp: timestamp, keyID: keyID,
                key: key, value: value))
        #expect(
            !MessageSignature.isValid(
                signature, secret: secret, topic: topic, timestamp: timestamp + 1, keyID: keyID, key: key,
                value: value))
        #expect(
            !MessageSignature.isValid(
                signature, secret: secret, topic: topic, timestamp: timestamp, keyID: keyID, key: [UInt8]?.none,
                value: value))
        #expect(
            !MessageSignature.isValid(
                signature, secret: secret, topic: topic, timestamp: timestamp, keyID: keyID, key: key,
                value: value + [0x20]))
    }

    @Test("Sealed secrets open only with their key-encryption key and for their own key id")
    func sealing() throws {
        let sealer = try SecretSealer(keyEncryptionKey: Array(repeating: 7, count: 32))
        let secret = Array(repeating: UInt8(42), count: 32)
        let sealed = try sealer.seal(secret, boundTo: "mk-1")
        #expect(sealed.count == 12 + 32 + 16)
        #expect(try sealer.open(sealed, boundTo: "mk-1") == secret)
        #expect(throws: (any Error).self) { try sealer.open(sealed, boundTo: "mk-2") }
        let other = try SecretSealer(keyEncryptionKey: Array(repeating: 8, count: 32))
        #expect(throws: (any Error).self) { try other.open(sealed, boundTo: "mk-1") }
        #expect(throws: SecretSealerError.self) { try SecretSealer(keyEncryptionKey: [1, 2, 3]) }
    }
}
