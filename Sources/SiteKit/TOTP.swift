import Crypto
import Foundation

/// Time-based one-time passwords (RFC 6238): HMAC-SHA1, 30-second steps, 6 digits, as authenticator apps make
/// them.
public enum TOTP {
    /// A new 20-byte secret.
    public static func makeSecret() -> [UInt8] {
        var generator = SystemRandomNumberGenerator()
        return (0..<20).map { _ in UInt8.random(in: .min ... .max, using: &generator) }
    }

    /// The code for `secret` at `date`.
    public static func code(secret: [UInt8], at date: Date) -> String {
        code(secret: secret, step: Int64(date.timeIntervalSince1970.rounded(.down)) / 30)
    }

    /// Whether `code` is the secret's code at `date`, or one step before or after (clocks drift).
    public static func verify(_ code: String, secret: [UInt8], at date: Date) -> Bool {
        let step = Int64(date.timeIntervalSince1970.rounded(.down)) / 30
        let digits = code.filter { !$0.isWhitespace }
        return (step - 1...step + 1).contains { SiteTokens.equal(Self.code(secret: secret, step: $0), digits) }
    }

    /// The `otpauth://` address an authenticator app reads (usually from a QR code).
    public static func provisioningURI(secret: [UInt8], account: String, issuer: String) -> String {
        let allowed = CharacterSet.alphanumerics
        let label = "\(issuer):\(account)".addingPercentEncoding(withAllowedCharacters: allowed) ?? account
        let issuerParameter = issuer.addingPercentEncoding(withAllowedCharacters: allowed) ?? issuer
        return "otpauth://totp/\(label)?secret=\(base32(secret))&issuer=\(issuerParameter)&digits=6&period=30"
    }

    /// RFC 4648 base32 without padding, as authenticator apps take a secret.
    public static func base32(_ bytes: [UInt8]) -> String {
        let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZ234567")
        var output = ""
        var buffer = 0
        var bits = 0
        for byte in bytes {
            buffer = (buffer << 8) | Int(byte)
            bits += 8
            while bits >= 5 {
                output.append(alphabet[(buffer >> (bits - 5)) & 31])
                bits -= 5
            }
        }
        if bits > 0 { output.append(alphabet[(buffer << (5 - bits)) & 31]) }
        return output
    }

    private static func code(secret: [UInt8], step: Int64) -> String {
        var counter = UInt64(bitPattern: step).bigEndian
        let message = withUnsafeBytes(of: &counter) { Data($0) }
        let mac = Array(HMAC<Insecure.SHA1>.authenticationCode(for: message, using: SymmetricKey(data: secret)))
        let offset = Int(mac[mac.count - 1] & 0x0f)
        let value =
            (UInt32(mac[offset] & 0x7f) << 24) | (UInt32(mac[offset + 1]) << 16) | (UInt32(mac[offset + 2]) << 8)
            | UInt32(mac[offset + 3])
        let digits = String(value % 1_000_000)
        return String(repeating: "0", count: 6 - digits.count) + digits
    }
}
