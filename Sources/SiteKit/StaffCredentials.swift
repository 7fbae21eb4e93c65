import Authorization
import Billing
import Foundation
import Store

/// Passwords and second factors for staff accounts, made the same way by the operators' tool and by a site's admin.
public enum StaffCredentials {
    /// A new password of 14 characters from an alphabet without look-alikes (about 81 bits), to be handed over and
    /// changed by its holder.
    public static func generatePassword() -> String {
        let alphabet = Array("abcdefghjkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789")
        var generator = SystemRandomNumberGenerator()
        return String((0..<14).map { _ in alphabet.randomElement(using: &generator)! })
    }

    /// An account for `login` with `password` kept as its scrypt hash (hashed off the caller's thread: 32 MiB and
    /// tens of milliseconds), and a TOTP secret when `secondFactor`.
    public static func account(
        site: StaffSite, login: String, merchant: MerchantID?, role: StaffRole, displayName: String,
        password: String, secondFactor: Bool
    ) async throws -> StaffAccount {
        let hash = try await hashed(password)
        return StaffAccount(
            site: site, login: login, merchantID: merchant, role: role, displayName: displayName,
            passwordHash: hash.hash, passwordSalt: hash.salt,
            scrypt: (hash.logRounds, hash.blockSize, hash.parallelism),
            totpSecret: secondFactor ? TOTP.makeSecret() : nil)
    }

    /// The change that sets an account's password to `password`.
    public static func passwordChange(_ password: String) async throws -> StaffChange {
        let hash = try await hashed(password)
        return .password(
            hash: hash.hash, salt: hash.salt, scrypt: (hash.logRounds, hash.blockSize, hash.parallelism))
    }

    private static func hashed(_ password: String) async throws -> PasswordHash {
        try await withCheckedThrowingContinuation { continuation in
            DispatchQueue.global(qos: .userInitiated).async {
                continuation.resume(with: Result { try PasswordHash.make(password: password) })
            }
        }
    }
}
