import Crypto
import Foundation

/// How a merchant (or the carrier's line system) proves it sent a request:
/// an HMAC-SHA256, under a secret only it and Matomete hold, of the
/// message's topic, key, value and a timestamp, carried in three headers.
///
/// The text signed is six lines joined by LF, with no LF at the end:
///
///     matomete-request-v1
///     <topic>
///     <timestamp: milliseconds since 1970-01-01T00:00:00Z, decimal>
///     <key id>
///     <SHA-256 of the Kafka key's bytes, lowercase hex; "-" when there is no key>
///     <SHA-256 of the value's bytes, lowercase hex>
///
/// Hashing the key and value makes the text printable and binary-safe, so a
/// shell (`sha256sum`, `openssl dgst -hmac`) can sign as well as a library.
public enum MessageSignature {
    /// The headers a signed request carries.
    public enum Header {
        /// The id of the key it is signed with.
        public static let keyID = "matomete-key-id"
        /// When it was signed, in milliseconds since 1970, decimal.
        public static let timestamp = "matomete-timestamp"
        /// `v1=` and the HMAC-SHA256, lowercase hex (64 characters).
        public static let signature = "matomete-signature"
    }

    /// A secret's length in bytes.
    public static let secretBytes = 32

    /// The text signed for a message (see ``MessageSignature``).
    public static func textToSign(
        topic: String, timestamp: Int64, keyID: String, key: (some Collection<UInt8>)?, value: some Collection<UInt8>
    ) -> [UInt8] {
        let keyHash = if let key { sha256Hex(key) } else { "-" }
        return Array("matomete-request-v1\n\(topic)\n\(timestamp)\n\(keyID)\n\(keyHash)\n\(sha256Hex(value))".utf8)
    }

    /// The SHA-256 of `bytes`, lowercase hex; hashed in place when they are contiguous (no copy).
    static func sha256Hex(_ bytes: some Collection<UInt8>) -> String {
        var hasher = SHA256()
        let hashed: Void? = bytes.withContiguousStorageIfAvailable {
            hasher.update(bufferPointer: UnsafeRawBufferPointer($0))
        }
        if hashed == nil { hasher.update(data: Array(bytes)) }
        return hex(hasher.finalize())
    }

    /// The `matomete-signature` header's value for a message signed with `secret`.
    public static func signature(
        secret: [UInt8], topic: String, timestamp: Int64, keyID: String, key: (some Collection<UInt8>)?,
        value: some Collection<UInt8>
    ) -> String {
        let text = textToSign(topic: topic, timestamp: timestamp, keyID: keyID, key: key, value: value)
        let mac = HMAC<SHA256>.authenticationCode(for: text, using: SymmetricKey(data: secret))
        return "v1=" + hex(mac)
    }

    /// Whether `header` is the signature of the message under `secret`, compared in constant time.
    public static func isValid(
        _ header: String, secret: [UInt8], topic: String, timestamp: Int64, keyID: String,
        key: (some Collection<UInt8>)?, value: some Collection<UInt8>
    ) -> Bool {
        isValid(
            header, key: SymmetricKey(data: secret), topic: topic, timestamp: timestamp, keyID: keyID, messageKey: key,
            value: value)
    }

    /// Whether `header` is the signature of the message under the HMAC key
    /// `key` (the secret, ready for use), compared in constant time.
    public static func isValid(
        _ header: String, key: SymmetricKey, topic: String, timestamp: Int64, keyID: String,
        messageKey: (some Collection<UInt8>)?, value: some Collection<UInt8>
    ) -> Bool {
        guard header.hasPrefix("v1="), header.utf8.count == 67, let mac = bytes(hex: header.dropFirst(3)) else {
            return false
        }
        let text = textToSign(topic: topic, timestamp: timestamp, keyID: keyID, key: messageKey, value: value)
        return HMAC<SHA256>.isValidAuthenticationCode(mac, authenticating: text, using: key)
    }

    /// Lowercase hex of `bytes`.
    public static func hex(_ bytes: some Sequence<UInt8>) -> String {
        let digits = Array("0123456789abcdef".utf8)
        var text: [UInt8] = []
        for byte in bytes {
            text.append(digits[Int(byte >> 4)])
            text.append(digits[Int(byte & 0x0F)])
        }
        return String(decoding: text, as: UTF8.self)
    }

    /// The bytes of lowercase or uppercase hex; `nil` when it is not hex of whole bytes.
    public static func bytes(hex: some StringProtocol) -> [UInt8]? {
        let digits = Array(hex.utf8)
        guard digits.count % 2 == 0 else { return nil }
        var bytes: [UInt8] = []
        bytes.reserveCapacity(digits.count / 2)
        var index = 0
        while index < digits.count {
            guard let high = value(of: digits[index]), let low = value(of: digits[index + 1]) else { return nil }
            bytes.append(high << 4 | low)
            index += 2
        }
        return bytes
    }

    private static func value(of digit: UInt8) -> UInt8? {
        switch digit {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): digit - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): digit - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): digit - UInt8(ascii: "A") + 10
        default: nil
        }
    }
}

/// Keeps the message-signing secrets unreadable in the database: each is
/// sealed (AES-256-GCM) under the key-encryption key, which lives only in
/// the workers' and the operator tool's configuration
/// (`MATOMETE_KEY_ENCRYPTION_KEY`), and bound to its key id, so that a
/// stolen copy of the database reveals no secret and a sealed secret moved
/// to another key's row does not open.
public struct SecretSealer: Sendable {
    private let key: SymmetricKey

    /// A sealer with the 32-byte key-encryption key.
    public init(keyEncryptionKey: [UInt8]) throws(SecretSealerError) {
        guard keyEncryptionKey.count == 32 else { throw SecretSealerError("the key-encryption key must be 32 bytes") }
        key = SymmetricKey(data: keyEncryptionKey)
    }

    /// A sealer with the key-encryption key in base64, as configured.
    public init(base64: String) throws(SecretSealerError) {
        guard let bytes = Data(base64Encoded: base64.trimmingCharacters(in: .whitespacesAndNewlines)) else {
            throw SecretSealerError("the key-encryption key is not base64")
        }
        try self.init(keyEncryptionKey: Array(bytes))
    }

    /// The key-encryption key as configured: read from the file `file` when
    /// one is named (or from `MATOMETE_KEY_ENCRYPTION_KEY_FILE`), else the
    /// key itself from `MATOMETE_KEY_ENCRYPTION_KEY`.
    public static func configured(
        file: String?, environment: [String: String] = ProcessInfo.processInfo.environment
    ) throws(SecretSealerError) -> SecretSealer {
        let text: String
        if let path = file ?? environment["MATOMETE_KEY_ENCRYPTION_KEY_FILE"] {
            do {
                text = try String(contentsOfFile: path, encoding: .utf8)
            } catch {
                throw SecretSealerError("cannot read the key-encryption key file \(path)")
            }
        } else if let key = environment["MATOMETE_KEY_ENCRYPTION_KEY"], !key.isEmpty {
            text = key
        } else {
            throw SecretSealerError(
                "no key-encryption key: give --key-encryption-key-file, MATOMETE_KEY_ENCRYPTION_KEY_FILE or MATOMETE_KEY_ENCRYPTION_KEY"
            )
        }
        return try SecretSealer(base64: text)
    }

    /// `secret` sealed and bound to `context` (the key's id and owner): nonce, ciphertext and tag, in one.
    public func seal(_ secret: [UInt8], boundTo context: String) throws -> [UInt8] {
        let box = try AES.GCM.seal(secret, using: key, authenticating: Array(context.utf8))
        guard let combined = box.combined else { throw SecretSealerError("cannot seal") }
        return Array(combined)
    }

    /// The secret sealed and bound to `context`; throws when it was sealed
    /// under another key-encryption key, bound to something else (another
    /// key id or owner), or altered.
    public func open(_ sealed: [UInt8], boundTo context: String) throws -> [UInt8] {
        let box = try AES.GCM.SealedBox(combined: sealed)
        return Array(try AES.GCM.open(box, using: key, authenticating: Array(context.utf8)))
    }
}

/// A key-encryption key that cannot be used.
public struct SecretSealerError: Error, CustomStringConvertible {
    /// What is wrong with it.
    public var description: String

    init(_ description: String) { self.description = description }
}

/// Signs requests with one key: what a merchant's producer (or the line
/// system's) does before each send.
public struct RequestSigner: Sendable, Hashable {
    /// The key's id, as `matomete merchants keys create` printed it.
    public var keyID: String
    /// The key's secret: 32 bytes.
    public var secret: [UInt8]

    /// A signer with the key `keyID` and its secret.
    public init(keyID: String, secret: [UInt8]) {
        self.keyID = keyID
        self.secret = secret
    }

    /// A new key: a random secret, and an id of `keyIDPrefix` and 16 random hex digits.
    public static func generate(keyIDPrefix: String) -> RequestSigner {
        var generator = SystemRandomNumberGenerator()
        let secret = (0..<MessageSignature.secretBytes).map { _ in UInt8.random(in: 0...255, using: &generator) }
        let id = (0..<8).map { _ in UInt8.random(in: 0...255, using: &generator) }
        return RequestSigner(keyID: keyIDPrefix + MessageSignature.hex(id), secret: secret)
    }

    /// The three signing headers, by name, for a message to `topic` signed
    /// at `timestamp` (milliseconds since 1970; now by default).
    public func headers(
        topic: String, key: (some Collection<UInt8>)?, value: some Collection<UInt8>,
        timestamp: Int64 = Int64(Date().timeIntervalSince1970 * 1000)
    ) -> [(name: String, value: String)] {
        [
            (MessageSignature.Header.keyID, keyID),
            (MessageSignature.Header.timestamp, String(timestamp)),
            (
                MessageSignature.Header.signature,
                MessageSignature.signature(
                    secret: secret, topic: topic, timestamp: timestamp, keyID: keyID, key: key, value: value)
            ),
        ]
    }
}
