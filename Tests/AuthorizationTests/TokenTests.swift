import Crypto
import Foundation
import Testing

@testable import Authorization

@Suite("Purchase authorizations")
struct TokenTests {
    let signer = AuthorizationSigner(keyID: "k1", privateKey: Curve25519.Signing.PrivateKey())
    let claims = PurchaseClaims(
        tokenID: "t-1", lineID: "L0000001", merchantID: "m1", kind: "charge", amount: 500, reference: "c-1",
        expiresAt: 1_800_000_000)

    var verifier: AuthorizationVerifier { AuthorizationVerifier(keys: ["k1": signer.publicKey]) }

    func verify(
        _ token: String, amount: Int64 = 500, line: String = "L0000001", merchant: String = "m1",
        kind: String = "charge", reference: String = "c-1", now: Int64 = 1_700_000_000
    ) -> Result<PurchaseClaims, AuthorizationFailure> {
        verifier.verify(
            token, lineID: line, merchantID: merchant, kind: kind, amount: amount, reference: reference, now: now)
    }

    @Test("A token signed by the gateway verifies for exactly the request it names")
    func roundTrip() throws {
        let token = try signer.token(for: claims)
        #expect(try verify(token).get() == claims)
        #expect(verify(token, amount: 501) == .failure(.mismatch))
        #expect(verify(token, line: "L0000002") == .failure(.mismatch))
        #expect(verify(token, merchant: "m2") == .failure(.mismatch))
        #expect(verify(token, kind: "subscription") == .failure(.mismatch))
        #expect(verify(token, reference: "c-2") == .failure(.mismatch))
    }

    @Test("Expired, forged, tampered, unknown-key and garbage tokens are refused")
    func refusals() throws {
        let token = try signer.token(for: claims)
        #expect(verify(token, now: 1_800_000_001) == .failure(.expired))
        let forger = AuthorizationSigner(keyID: "k1", privateKey: Curve25519.Signing.PrivateKey())
        #expect(verify(try forger.token(for: claims)) == .failure(.invalid))
        // The claims changed after signing: a larger amount.
        var parts = token.split(separator: ".").map(String.init)
        var richer = claims
        richer.amount = 50_000
        parts[2] = try JSONEncoder().encode(richer).base64EncodedString().replacingOccurrences(of: "=", with: "")
        #expect(verify(parts.joined(separator: "."), amount: 50_000) == .failure(.invalid))
        // A retired key: the verifier no longer lists it.
        let retired = AuthorizationSigner(keyID: "k0", privateKey: Curve25519.Signing.PrivateKey())
        #expect(verify(try retired.token(for: claims)) == .failure(.invalid))
        for garbage in ["", "v1", "v1.k1..", "v2.k1.e30.AAAA", "not a token at all"] {
            #expect(verify(garbage) == .failure(.invalid))
        }
    }

    @Test("Every token one character away from a valid one is refused")
    func oneCharacterAway() throws {
        let token = Array(try signer.token(for: claims).utf8)
        let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.".utf8)
        var accepted: [String] = []
        for index in token.indices {
            // The next character of the alphabet, and one far from it.
            for step in [1, 31] {
                var changed = token
                let position = alphabet.firstIndex(of: token[index]) ?? 0
                changed[index] = alphabet[(position + step) % alphabet.count]
                let text = String(decoding: changed, as: UTF8.self)
                if case .success = verify(text) { accepted.append(text) }
            }
        }
        #expect(accepted == [])
    }

    @Test("Claims read the same with and without JSONDecoder, escapes included")
    func claimsReaders() throws {
        var foundation = verifier
        foundation.foundationOnly = true
        for reference in ["c-1", "c/1", #"c"1\"#, "c-é-日本-😀", "c\u{0}\n"] {
            var odd = claims
            odd.reference = reference
            let token = try signer.token(for: odd)
            #expect(try verifier.claims(of: token, now: 0).get() == odd)
            #expect(try foundation.claims(of: token, now: 0).get() == odd)
        }
    }

    @Test("Base64url: Foundation's encoding decodes to the same bytes; anything non-canonical is refused")
    func base64url() {
        var generator = SystemRandomNumberGenerator()
        for count in 0..<70 {
            let bytes = (0..<count).map { _ in UInt8.random(in: 0...255, using: &generator) }
            #expect(Base64URL.decode(Array(Base64URL.encode(bytes).utf8)) == bytes)
        }
        #expect(Base64URL.decode(Array("-_-_".utf8)) == [0xFB, 0xFF, 0xBF])
        for refused in ["A", "AB", "ABC", "AAAAB", "AA=", "AA==", "A+AA", "A/AA", "AA.A", "AA A"] {
            #expect(Base64URL.decode(Array(refused.utf8)) == nil, "\(refused)")
        }
        #expect(Base64URL.decode(Array("AA".utf8)) == [0])
        #expect(Base64URL.decode(Array("AAE".utf8)) == [0, 1])
    }

    @Test("Keys can be rotated: old and new keys accepted together")
    func rotation() throws {
        let next = AuthorizationSigner(keyID: "k2", privateKey: Curve25519.Signing.PrivateKey())
        let list =
            "k1=\(signer.publicKey.rawRepresentation.base64EncodedString()),k2=\(next.publicKey.rawRepresentation.base64EncodedString())"
        let both = AuthorizationVerifier(keys: try SigningKeys.publicKeys(list: list))
        for token in [try signer.token(for: claims), try next.token(for: claims)] {
            #expect(
                (try? both.verify(
                    token, lineID: "L0000001", merchantID: "m1", kind: "charge", amount: 500, reference: "c-1",
                    now: 1_700_000_000
                ).get()) == claims)
        }
    }

    @Test("Passwords: the right one matches, others do not; salts differ")
    func passwords() throws {
        let first = try PasswordHash.make(password: "correct horse", logRounds: 10)
        let second = try PasswordHash.make(password: "correct horse", logRounds: 10)
        #expect(first.matches("correct horse"))
        #expect(!first.matches("correct horsf"))
        #expect(!first.matches(""))
        #expect(first.salt != second.salt)
        #expect(first.hash != second.hash)
        #expect(first.hash.count == 32)
    }
}
