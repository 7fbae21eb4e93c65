import Crypto
import CryptoExtras
import Foundation

/// A password kept only as a scrypt hash with its own random salt.
public struct PasswordHash: Hashable, Sendable {
    /// The 32 bytes scrypt derived from the password and ``salt``.
    public var hash: [UInt8]
    /// The credential's own random salt (16 bytes for new hashes).
    public var salt: [UInt8]
    /// scrypt's cost: N = 2^logRounds, r = blockSize, p = parallelism.
    public var logRounds: Int
    /// scrypt's r (8 by default).
    public var blockSize: Int
    /// scrypt's p (1 by default).
    public var parallelism: Int

    /// A hash as stored, with the salt and cost it was made with.
    public init(hash: [UInt8], salt: [UInt8], logRounds: Int, blockSize: Int, parallelism: Int) {
        self.hash = hash
        self.salt = salt
        self.logRounds = logRounds
        self.blockSize = blockSize
        self.parallelism = parallelism
    }

    /// Hashes a new password with a fresh 16-byte salt. The default cost
    /// (N = 2^15, r = 8, p = 1) takes 32 MiB and some tens of milliseconds.
    public static func make(
        password: String, logRounds: Int = 15, blockSize: Int = 8, parallelism: Int = 1
    ) throws
        -> PasswordHash
    {
        var generator = SystemRandomNumberGenerator()
        let salt = (0..<16).map { _ in UInt8.random(in: .min ... .max, using: &generator) }
        return PasswordHash(
            hash: try derive(
                password, salt: salt, logRounds: logRounds, blockSize: blockSize, parallelism: parallelism),
            salt: salt, logRounds: logRounds, blockSize: blockSize, parallelism: parallelism)
    }

    /// Whether `password` is the one hashed; the comparison takes the same time
    /// wherever the bytes differ.
    public func matches(_ password: String) -> Bool {
        guard
            let candidate = try? Self.derive(
                password, salt: salt, logRounds: logRounds, blockSize: blockSize, parallelism: parallelism),
            candidate.count == hash.count
        else { return false }
        var difference: UInt8 = 0
        for (a, b) in zip(candidate, hash) { difference |= a ^ b }
        return difference == 0
    }

    private static func derive(
        _ password: String, salt: [UInt8], logRounds: Int, blockSize: Int, parallelism: Int
    )
        throws -> [UInt8]
    {
        let key = try KDF.Scrypt.deriveKey(
            from: Array(password.utf8), salt: salt, outputByteCount: 32, rounds: 1 << logRounds,
            blockSize: blockSize, parallelism: parallelism)
        return key.withUnsafeBytes { Array($0) }
    }
}
